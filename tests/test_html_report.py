"""The static HTML report: table formatting on synthetic leaderboards, and a real small run
rendered by headless Chromium (screenshot not blank, every image decoded)."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
from conftest import SMALL_GSO_OBJECT, one_view_protocol

from bench.report.aggregate import COLUMNS
from bench.report.html import DASH, best_mask, note_for, write_html_report


def _leaderboard(rows: list[dict]) -> pd.DataFrame:
    base = {c: np.nan for c in COLUMNS}
    base.update(protocol="p", views=1, n=2, success_rate=1.0, notes="", dataset="gso",
                protocol_hash="h", rasterizer="numpy", pointnet_sha256="")
    return pd.DataFrame([{**base, **r} for r in rows], columns=COLUMNS)


def _run_dir(tmp: Path, name: str, df: pd.DataFrame) -> Path:
    d = tmp / name
    d.mkdir(parents=True)
    df.to_csv(d / "leaderboard.csv", index=False)
    return d


class _Cells(HTMLParser):
    """Rows of the first leaderboard table: [(text, class, title)] per cell."""

    def __init__(self):
        super().__init__()
        self.rows, self.imgs, self._cell, self._in_lb, self._done = [], [], None, False, False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src"))
        if tag == "table" and "leaderboard" in (a.get("class") or "") and not self._done:
            self._in_lb = True
        if not self._in_lb:
            return
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = ["", a.get("class") or "", a.get("title")]

    def handle_endtag(self, tag):
        if tag == "table" and self._in_lb:
            self._in_lb, self._done = False, True
        if tag in ("td", "th") and self._cell is not None and self._in_lb:
            self.rows[-1].append(tuple(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0] += data


def _parse(html_text: str) -> _Cells:
    p = _Cells()
    p.feed(html_text)
    return p


def _column(cells: _Cells, header: str) -> list[tuple]:
    head = [c[0] for c in cells.rows[0]]
    j = next(i for i, h in enumerate(head) if h.startswith(header))
    return [r[j] for r in cells.rows[1:]]


def test_best_value_bold_respects_direction(tmp_path):
    df = _leaderboard([
        dict(method="a", views=1, psnr_masked=20.0, mmd_cd=5.0, cov_cd=40.0),
        dict(method="b", views=1, psnr_masked=25.0, mmd_cd=7.0, cov_cd=40.0),
        dict(method="a", views=2, psnr_masked=30.0, mmd_cd=3.0, cov_cd=50.0),
        dict(method="b", views=2, psnr_masked=22.0, mmd_cd=2.0, cov_cd=60.0),
    ])
    # the helper itself: PSNR higher is better, MMD lower is better, ties all best
    keys = ["protocol", "views", "occlusion_degree"]
    assert best_mask(df, "psnr_masked", keys).tolist() == [False, True, True, False]
    assert best_mask(df, "mmd_cd", keys).tolist() == [True, False, False, True]
    assert best_mask(df, "cov_cd", keys).tolist() == [True, True, False, True]
    out = write_html_report([_run_dir(tmp_path, "r", df)], tmp_path / "site" / "index.html")
    cells = _parse(out.read_text())
    methods = [c[0] for c in _column(cells, "method")]
    views = [c[0] for c in _column(cells, "views")]
    assert list(zip(methods, views)) == [("a", "1"), ("b", "1"), ("a", "2"), ("b", "2")]
    psnr = _column(cells, "PSNR-m ↑")
    mmd = _column(cells, "MMD ‰ ↓")
    assert ["best" in c[1] for c in psnr] == [False, True, True, False]
    assert ["best" in c[1] for c in mmd] == [True, False, False, True]
    assert [c[0] for c in psnr] == ["20.00", "25.00", "30.00", "22.00"]
    assert [c[0] for c in mmd] == ["5.000", "7.000", "3.000", "2.000"]  # already per-mille in CSV


def test_inf_is_shown_and_counts_as_best(tmp_path):
    df = _leaderboard([dict(method="oracle", psnr_masked=np.inf), dict(method="m", psnr_masked=12.0)])
    cells = _parse(write_html_report([_run_dir(tmp_path, "r", df)], tmp_path / "i.html").read_text())
    psnr = dict(zip([c[0] for c in _column(cells, "method")], _column(cells, "PSNR-m")))
    assert psnr["oracle"][0] == "∞" and "best" in psnr["oracle"][1]
    assert psnr["m"][0] == "12.00" and "best" not in psnr["m"][1]


def test_method_name_is_escaped(tmp_path):
    evil = '<script>alert("x")</script>'
    df = _leaderboard([dict(method=evil, psnr_masked=1.0), dict(method="ok", psnr_masked=2.0,
                                                                   notes='a "quoted" <b>note</b>')])
    pub = pd.DataFrame([dict(method=evil, views=1, metric="psnr_masked", ours=1.0, published=2.5,
                             source="Paper <Tab. 1>")])
    text = write_html_report([_run_dir(tmp_path, "r", df)], tmp_path / "i.html", published=pub).read_text()
    assert evil not in text and "<b>note" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert "Paper &lt;Tab. 1&gt;" in text
    assert text.count("<script>") == 1  # only the page's own image check
    assert "Published numbers" in text and "from the papers" in text
    cells = _parse(text)
    assert _column(cells, "method")[0][0] == evil  # the parser unescapes back to the raw name


def test_nan_rendered_as_dash_with_note(tmp_path):
    note = "pfid_pointnet missing: no pointnet.pt <given>"
    df = _leaderboard([dict(method="m", psnr_masked=20.0, notes=note),
                       dict(method="n", psnr_masked=np.nan, notes="")])
    text = write_html_report([_run_dir(tmp_path, "r", df)], tmp_path / "i.html").read_text()
    cells = _parse(text)
    pfid = _column(cells, "P-FID ↓")
    assert pfid[0][0].startswith(DASH) and "na" in pfid[0][1].split()
    assert pfid[0][2] == note  # tooltip carries the row's note
    assert pfid[1][0] == DASH and pfid[1][2] == "not available"  # no note: generic tooltip
    assert _column(cells, "PSNR-m")[1][0] == DASH
    # the note is also a footnote, escaped, referenced by number
    assert re.search(r'<li id="lb0-note-1">pfid_pointnet missing: no pointnet.pt &lt;given&gt;</li>', text)
    assert "nan" not in " ".join(c[0] for r in cells.rows for c in r).lower()


def test_nan_cell_footnote_names_only_its_own_reason(tmp_path):
    pointnet = "pfid_pointnet, pkid_pointnet missing: no pointnet.pt"
    inception = "fid_inception, kid_inception, kid_inception_std missing: no inception.pt"
    other = "2 generations rendered nothing"
    df = _leaderboard([dict(method="m", psnr_masked=20.0, fid_inception=np.nan,
                            notes="; ".join([pointnet, inception, other]))])
    text = write_html_report([_run_dir(tmp_path, "r", df)], tmp_path / "i.html").read_text()
    cells = _parse(text)
    assert _column(cells, "P-FID ↓")[0][2] == pointnet
    assert _column(cells, "FID ↓")[0][2] == inception
    assert f'">{pointnet}</li>' in text and f'">{inception}</li>' in text
    assert _column(cells, "SSIM-m")[0][2] == other  # a reason for the row, not for a metric
    only_metric_notes = _leaderboard([dict(method="m", psnr_masked=20.0, notes=pointnet)])
    text = write_html_report([_run_dir(tmp_path, "s", only_metric_notes)], tmp_path / "j.html").read_text()
    assert _column(_parse(text), "FID ↓")[0][2] == "not available"  # not P-FID's reason


def test_note_for_picks_the_column_then_the_row():
    cols = ["a", "b", "c", "z"]
    assert note_for("a, b missing: x; c: y", "b", cols) == "a, b missing: x"
    assert note_for("a, b missing: x; c: y", "c", cols) == "c: y"
    assert note_for("a, b missing: x; c: y; row gone: w; plain", "z", cols) == "row gone: w; plain"
    assert note_for("a, b missing: x; c: y", "z", cols) == ""  # every reason is another column's
    assert note_for("ab: x", "a", cols) == "ab: x"  # whole names only: "ab" is not a column: general


def test_occlusion_sweep_plots(tmp_path):
    rows = [dict(method=m, protocol="sweep", views=v, occlusion_degree=d, psnr_masked=20 - 10 * d + v,
                 mmd_cd=5 + d)
            for m in ("a", "b") for v in (1, 2) for d in (0.2, 0.5, 0.7)]
    out = write_html_report([_run_dir(tmp_path, "r", _leaderboard(rows))], tmp_path / "rep.html")
    assets = tmp_path / "rep_assets" / "plots"
    assert (assets / "psnr_masked_vs_occlusion.png").is_file()
    assert (assets / "psnr_masked_vs_views.png").is_file()
    assert not (assets / "pfid_pointnet_vs_views.png").exists()  # all NaN: no empty plot
    cells = _parse(out.read_text())
    occ = [c[0] for c in _column(cells, "occlusion")]
    assert occ == ["20%", "20%", "50%", "50%", "70%", "70%"] * 2  # views 1 then 2, methods a, b
    for src in cells.imgs:
        assert (out.parent / unquote(src)).is_file()


def test_missing_leaderboard_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="leaderboard.csv"):
        write_html_report([tmp_path / "empty"], tmp_path / "i.html")


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.gso
def test_real_run_renders_in_chromium(tmp_path, gso_root):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium not on PATH (apt-get install -y chromium) - cannot render the page")
    from PIL import Image

    from bench.run.runner import RunConfig, run

    objects = ["Room_Essentials_Salad_Plate_Turquoise", SMALL_GSO_OBJECT]
    for oid in objects:
        if not (gso_root / oid).is_dir():
            pytest.skip(f"GSO object {oid} not in {gso_root}")
    out = tmp_path / "run"
    run(RunConfig(out=str(out), protocol=one_view_protocol(tmp_path), methods=["oracle", "visible"],
                  data=str(gso_root), jobs=1, cache=str(tmp_path / "cache"), sheets=2,
                  object_ids=objects), progress=False)
    pub = pd.DataFrame([dict(method="visible", views=1, metric="psnr_masked", ours=15.0,
                             published=np.nan, source="test")])
    # the page is written elsewhere and then moved with its assets: relative links must survive
    html_path = write_html_report([out], tmp_path / "site" / "report.html", published=pub)
    moved = tmp_path / "moved"
    shutil.copytree(html_path.parent, moved)
    shutil.rmtree(html_path.parent)
    html_path = moved / "report.html"
    text = html_path.read_text()

    srcs = _parse(text).imgs
    sheets = [s for s in srcs if "/sheets/" in s]
    assert len(sheets) == 2 and any(s.endswith(f"{SMALL_GSO_OBJECT}.png") for s in sheets)
    assert any("/plots/" in s for s in srcs)
    for src in srcs:
        assert not src.startswith(("/", "file:")), src
        assert (html_path.parent / unquote(src)).is_file(), src

    shot = tmp_path / "shot.png"
    cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]
    url = html_path.resolve().as_uri()
    r = subprocess.run(cmd + [f"--screenshot={shot}", "--window-size=1400,3000", url],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), np.float32)
    assert pixels.shape == (3000, 1400)
    assert pixels.std() > 10, "screenshot is (nearly) blank"

    r = subprocess.run(cmd + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    m = re.search(r'<div id="img-check"[^>]*data-total="(\d+)" data-broken="(\d+)"', r.stdout)
    assert m, "image check did not run: " + r.stdout[-500:]
    assert int(m.group(1)) == len(srcs) and int(m.group(2)) == 0
