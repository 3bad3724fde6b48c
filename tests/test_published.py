"""Published tables (reports/published/*.csv) against the seed texts, and bench.report.published."""

from __future__ import annotations

import csv
import math
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from bench.report.published import COLUMNS, PUBLISHED_DIR, load_published, published_beside

# the papers' text extractions: ../shared/seeds beside the clone, or $AMODAL_BENCH_SEEDS
SEEDS = Path(os.environ.get("AMODAL_BENCH_SEEDS", Path(__file__).resolve().parents[2] / "shared" / "seeds"))
TABLES = {
    "gena3d_table1.csv": "GENA3D Table 1",
    "gena3d_table2.csv": "GENA3D Table 2",
    "gena3d_table4.csv": "GENA3D Table 4",
    "gena3d_table5.csv": "GENA3D Table 5",
    "gena3d_tableB1.csv": "GENA3D Table B.1",
    "holopart_table1.csv": "HoloPart Table 1",
    "holopart_table2.csv": "HoloPart Table 2",
    "holopart_table3.csv": "HoloPart Table 3",
    "holopart_table4.csv": "HoloPart Table 4",
}
ROWS = {"gena3d_table1.csv": 84, "gena3d_table2.csv": 30, "gena3d_table4.csv": 15,
        "gena3d_table5.csv": 9, "gena3d_tableB1.csv": 18, "holopart_table1.csv": 95,
        "holopart_table2.csv": 189, "holopart_table3.csv": 16, "holopart_table4.csv": 135}


def seed_text(paper: str) -> str:
    path = SEEDS / f"{paper.lower()}.txt"
    if not path.is_file():
        pytest.skip(f"seed text {path} not available")
    # the extraction puts no-break / thin spaces between some cells
    return re.sub(r"[\u00a0\u2000-\u200a]", " ", path.read_text(encoding="utf-8"))


def number_near(text: str, anchor: str, number: str, within: int = 160) -> bool:
    """True when `number` (as a whole token) occurs within `within` characters after `anchor`."""
    token = re.compile(r"(?<![\d.])" + re.escape(number) + r"(?![\d])")
    for m in re.finditer(re.escape(anchor), text):
        if token.search(text, m.end(), m.end() + within):
            return True
    return False


def raw_rows(name: str) -> list[dict]:
    with open(PUBLISHED_DIR / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def cell(name: str, **where) -> str:
    """The printed value string of the one row of `name` matching all `where` columns."""
    hits = [r for r in raw_rows(name) if all(r[k] == str(v) for k, v in where.items())]
    assert len(hits) == 1, (name, where, hits)
    return hits[0]["value"]


def test_number_near_helper():
    text = "TRELLIS 1 view 49.68 3.21 Amodal3R 39.05"
    assert number_near(text, "TRELLIS", "3.21")
    assert not number_near(text, "TRELLIS", "3.2")      # whole tokens only
    assert not number_near(text, "Amodal3R", "49.68")   # only after the anchor
    assert not number_near(text, "TRELLIS", "39.05", within=20)


@pytest.mark.parametrize("name", sorted(TABLES))
def test_every_csv_loads_with_the_columns(name):
    rows = raw_rows(name)
    assert list(rows[0]) == COLUMNS
    assert len(rows) == ROWS[name]
    assert {r["source"] for r in rows} == {TABLES[name]}
    for r in rows:
        assert math.isfinite(float(r["value"]))


def test_load_published_all_and_by_paper():
    df = load_published()
    assert set(df["file"]) == set(TABLES)
    assert len(df) == sum(ROWS.values())
    assert df["value"].map(math.isfinite).all()
    assert set(df["direction"]) <= {"", "lower", "higher"}
    g = load_published("gena3d")
    assert set(g["paper"]) == {"GENA3D"} and len(g) == 84 + 30 + 15 + 9 + 18
    assert len(load_published("HoloPart")) == 95 + 189 + 16 + 135
    with pytest.raises(ValueError, match="no published tables"):
        load_published("nope")


def test_every_value_is_in_the_seed_text():
    """Each printed value occurs in its paper's seed; repaired tokens occur as the note says."""
    texts = {p: seed_text(p) for p in ("gena3d", "holopart")}
    for name in TABLES:
        for r in raw_rows(name):
            text = texts[r["paper"].lower()]
            m = re.search(r"seed text reads '(\d+)'", r["note"])
            token = m.group(1) if m else r["value"]
            if m:
                assert r["value"] == "0." + token[1:]
            assert re.search(r"(?<![\d.])" + re.escape(token) + r"(?![\d])", text), (name, r)


GENA3D_SPOTS = [
    # (file, anchor in the seed, row selector, printed value)
    ("gena3d_table1.csv", "FreeSplatter‡ [xu2025freesplatter] OAAC + MV",
     dict(method="FreeSplatter‡", views=1, metric="FID"), "72.88"),
    ("gena3d_table1.csv", "TRELLIS [xiang2025structured] 2 views",
     dict(method="TRELLIS", views=2, metric="MMD(‰)"), "6.27"),
    ("gena3d_table1.csv", "TRELLIS‡ [xiang2025structured] OAAC + MV",
     dict(method="TRELLIS‡", views=4, metric="PCS(%)"), "28.6"),
    ("gena3d_table1.csv", "SAM3D [chen2025sam] N/A",
     dict(method="SAM3D", views=1, metric="COV(%)"), "39.03"),
    ("gena3d_table2.csv", "SAM3D [chen2025sam] 0.797",
     dict(method="SAM3D", views=1, metric="LPIPS"), "0.226"),
    ("gena3d_table2.csv", "TRELLIS [xiang2025structured] 4 views",
     dict(method="TRELLIS", views=4, metric="PSNR"), "13.66"),
    ("gena3d_table2.csv", "TRELLIS [xiang2025structured] 2 views",
     dict(method="Amodal3R", views=2, metric="SSIM"), "0.819"),
    ("gena3d_table4.csv", "\n10 ", dict(views=10, metric="CLIP-Score(%)"), "82.98"),
    ("gena3d_table4.csv", "\n20 ", dict(views=20, metric="FID"), "29.43"),
    ("gena3d_table4.csv", "\n1 33.91", dict(views=1, metric="MMD(‰)"), "5.52"),
    ("gena3d_table5.csv", "pix2gestalt [ozguroglu2024pix2gestalt]",
     dict(setting="2D amodal: pix2gestalt", metric="FID"), "38.61"),
    ("gena3d_table5.csv", "Flux inpainting [flux2024]",
     dict(setting="2D amodal: Flux inpainting", metric="CLIP-Score(%)"), "84.26"),
    ("gena3d_table5.csv", "OAAC [ao2025open]", dict(setting="2D amodal: OAAC", metric="COV(%)"), "39.08"),
    ("gena3d_tableB1.csv", "20% 1 view", dict(views=1, occlusion_degree=0.2, metric="CLIP(%)"), "82.40"),
    ("gena3d_tableB1.csv", "20% 2 views", dict(views=2, occlusion_degree=0.2, metric="FID"), "31.98"),
    ("gena3d_tableB1.csv", "70% 37.16", dict(views=2, occlusion_degree=0.7, metric="KID(%)"), "0.47"),
]

HOLOPART_SPOTS = [
    ("holopart_table1.csv", "Chamfer | lamp",
     dict(method="PatchComplete", setting="task: part amodal completion; category: lamp",
          metric="Chamfer"), "0.170"),
    ("holopart_table1.csv", "mean (category) 0.160",
     dict(method="Ours", setting="task: part amodal completion; mean (category)", metric="IoU"), "0.771"),
    ("holopart_table1.csv", "Success T mean (instance)",
     dict(method="Finetune-VAE", metric="Success"), "0.976"),
    ("holopart_table2.csv", "Ours w/o Local 0.618",
     dict(method="Ours w/o Local", setting="task: part amodal completion; category: Plants",
          metric="IoU"), "0.673"),
    ("holopart_table2.csv", "F-Score 1 Finetune-VAE",
     dict(method="Finetune-VAE", setting="task: part amodal completion; category: Food",
          metric="F-Score"), "0.718"),
    ("holopart_table2.csv", "Ours 0.034 0.034",
     dict(method="Ours", setting="task: part amodal completion; category: Electronics",
          metric="Chamfer"), "0.041"),
    ("holopart_table3.csv", "Chamfer |", dict(setting="task: part amodal completion; guidance scale: 7",
                                               metric="Chamfer"), "0.089"),
    ("holopart_table3.csv", "IoU 1 0.590", dict(setting="task: part amodal completion; guidance scale: 3.5",
                                                 metric="IoU"), "0.618"),
    ("holopart_table3.csv", "Success 1", dict(setting="task: part amodal completion; guidance scale: 5",
                                               metric="Success"), "0.996"),
    ("holopart_table4.csv", "Chamfer |  DiffComplete",
     dict(method="DiffComplete", setting="task: part amodal segmentation (SAMPart3D surface masks); "
                                         "category: Buildings", metric="Chamfer"), "0.307"),
    ("holopart_table4.csv", "SDFuison",
     dict(method="SDFuison", setting="task: part amodal segmentation (SAMPart3D surface masks); "
                                     "category: Food", metric="F-Score"), "0.364"),
    ("holopart_table4.csv", "\nOurs",
     dict(method="Ours", setting="task: part amodal segmentation (SAMPart3D surface masks); "
                                 "category: Overall", metric="IoU"), "0.455"),
]


@pytest.mark.parametrize("name,anchor,where,value", GENA3D_SPOTS + HOLOPART_SPOTS)
def test_spot_checks_against_seed(name, anchor, where, value):
    text = seed_text(name.split("_")[0])
    assert cell(name, **where) == value
    assert number_near(text, anchor, value), (anchor, value)


def test_spot_checks_cover_every_table():
    spots = GENA3D_SPOTS + HOLOPART_SPOTS
    for name in TABLES:
        assert sum(s[0] == name for s in spots) >= 3, name


def test_repaired_tokens_are_noted():
    """'0291' in the seed -> 0.291 with a note; the repaired cell sits on the seed line of its row."""
    text = seed_text("holopart")
    r = [r for r in raw_rows("holopart_table1.csv")
         if r["method"] == "PatchComplete" and r["metric"] == "F-Score" and r["setting"].endswith("table")]
    assert len(r) == 1 and r[0]["value"] == "0.291" and "'0291'" in r[0]["note"]
    assert number_near(text, "table", "0291", within=12)


def test_holopart_table1_category_means_agree():
    """'mean (category)' is the mean of the four category rows to print rounding (checks the layout)."""
    df = load_published("HoloPart")
    t1 = df[df["source"] == "HoloPart Table 1"]
    for (_, _), g in t1.groupby(["method", "metric"]):
        cats = g[g["setting"].str.contains("category: ")]["value"]
        mean = g[g["setting"].str.endswith("mean (category)")]["value"]
        if len(mean):
            assert len(cats) == 4 and abs(cats.mean() - mean.iloc[0]) <= 0.0015


def test_gena3d_table1_views_and_methods():
    df = load_published("GENA3D")
    t1 = df[df["source"] == "GENA3D Table 1"]
    assert sorted(t1["views"].unique()) == [1, 2, 4]
    assert set(t1[t1["views"] == 1]["method"]) == {"TRELLIS", "FreeSplatter‡", "Amodal3R", "SAM3D", "Ours"}
    assert set(t1[t1["views"] == 4]["method"]) == {"TRELLIS", "TRELLIS‡", "FreeSplatter", "Amodal3R", "Ours"}
    assert len(t1) == 14 * 6
    assert set(t1["metric_harness"]) == {"fid_inception", "kid_inception", "clip_score", "mmd_cd", "cov_cd",
                                         "pcs"}
    b1 = df[df["source"] == "GENA3D Table B.1"]
    assert sorted(b1["occlusion_degree"].unique()) == [0.2, 0.5, 0.7]


def _write(tmp_path: Path, value: str) -> Path:
    path = tmp_path / "bad.csv"
    row = ["X Table 1", "X", "GSO", "m", "1", "", "", "FID", "fid_inception", value, "", "lower", ""]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerow(row)
    return path


@pytest.mark.parametrize("value", ["abc", "nan", "inf", ""])
def test_bad_value_names_the_file(tmp_path, value):
    _write(tmp_path, value)
    with pytest.raises(ValueError, match=r"bad\.csv: line 2"):
        load_published(directory=tmp_path)


def test_good_tmp_file_loads(tmp_path):
    _write(tmp_path, "12.5")
    df = load_published(directory=tmp_path)
    assert df["value"].tolist() == [12.5] and df["views"].tolist() == [1]


def test_published_beside_matches_method_views_metric():
    published = load_published()
    lb = pd.DataFrame([
        # amodal3r at 1 view: Table 1 (mmd, cov) and Table 2 (psnr, ssim)
        dict(method="amodal3r", protocol="gena3d-gso", views=1, occlusion_degree=float("nan"),
             mmd_cd=6.0, cov_cd=40.0, psnr_masked=15.0, ssim_masked=0.8, pfid_pointnet=1.0),
        # no published counterpart
        dict(method="oracle", protocol="gena3d-gso", views=1, occlusion_degree=float("nan"),
             mmd_cd=0.0, cov_cd=100.0, psnr_masked=float("inf"), ssim_masked=1.0, pfid_pointnet=0.0),
        # no published 3-view setting
        dict(method="TRELLIS", protocol="gena3d-gso", views=3, occlusion_degree=float("nan"),
             mmd_cd=6.0, cov_cd=30.0, psnr_masked=14.0, ssim_masked=0.7, pfid_pointnet=1.0),
        # 'Ours' of GENA3D; 1 view: Table 1 and Table 4 both print MMD
        dict(method="GENA3D", protocol="gena3d-gso", views=1, occlusion_degree=float("nan"),
             mmd_cd=5.0, cov_cd=39.0, psnr_masked=16.0, ssim_masked=0.83, pfid_pointnet=1.0),
        # occlusion sweep: no published mmd at a degree (B.1 has FID/KID/CLIP only)
        dict(method="GENA3D", protocol="gena3d-occlusion-sweep", views=1, occlusion_degree=0.2,
             mmd_cd=5.0, cov_cd=39.0, psnr_masked=16.0, ssim_masked=0.83, pfid_pointnet=1.0),
    ])
    out = published_beside(lb, published)
    assert list(out.columns[:6]) == ["method", "views", "metric", "ours", "published", "source"]
    assert set(out["method"]) == {"amodal3r", "GENA3D"}
    assert "pfid_pointnet" not in set(out["metric"])
    a = out[out["method"] == "amodal3r"].set_index("metric")
    assert a.loc["mmd_cd", "published"] == 5.52 and a.loc["mmd_cd", "source"] == "GENA3D Table 1"
    assert a.loc["mmd_cd", "ours"] == 6.0
    assert a.loc["cov_cd", "published"] == 38.64
    assert a.loc["psnr_masked", "published"] == 16.41 and a.loc["psnr_masked", "source"] == "GENA3D Table 2"
    assert a.loc["ssim_masked", "published"] == 0.814
    g = out[(out["method"] == "GENA3D") & (out["metric"] == "mmd_cd")]
    assert sorted(zip(g["source"], g["published"])) == [("GENA3D Table 1", 5.68), ("GENA3D Table 4", 5.52)]
    assert (out["occlusion_degree"].isna()).all()     # the sweep row found nothing to match
    assert len(out) == 4 + 5           # amodal3r: 4; GENA3D: mmd x2, cov, psnr, ssim


def test_published_beside_name_mapping_and_empty():
    published = load_published()
    lb = pd.DataFrame([dict(method="ours-amodal3r-port", views=4, mmd_cd=5.0)])
    assert published_beside(lb, published).empty
    out = published_beside(lb, published, names={"ours-amodal3r-port": "Amodal3R"})
    assert out["published"].tolist() == [5.51] and out["source"].tolist() == ["GENA3D Table 1"]
    # part metrics: no views on either side; the misprint SDFuison matches sdfusion
    parts = pd.DataFrame([dict(method="sdfusion", views=float("nan"), part_fscore=0.2)])
    out = published_beside(parts, published)
    assert set(out["source"]) == {"HoloPart Table 2", "HoloPart Table 4"}
    assert len(out) == 9 + 9
