"""One reference set per protocol (trust item 3): set metrics of every row of a protocol compare
with the GT of every object whose asset loaded, a row whose method skipped reference objects is
marked and never ranked, and rows of merged runs over other objects are ranked apart.

Run directories are written with the store's own functions (records, clouds); the expected COV/MMD
come from bench.metrics.geometry.coverage_mmd on the clouds written here, and the COV values are
also known by construction (each generation is its own GT plus small noise, far from the others).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from bench.metrics.geometry import coverage_mmd
from bench.records.store import Record, cloud_path, gt_cloud_path, record_path, write_array, write_record
from bench.report.aggregate import aggregate, merge_runs
from bench.report.html import best_mask, write_html_report
from bench.report.refset import reference_report
from bench.report.tables import format_table, ranked, to_latex, to_markdown, versus, versus_markdown

OBJECTS = [f"o{i}" for i in range(4)]


def _gt(oid: str) -> np.ndarray:
    """A GT cloud per object, far apart from the others (each one its own unit-box region)."""
    i = int(oid[1:])
    return (np.random.default_rng(i).random((64, 3)) + 10.0 * i).astype(np.float32)


def _write(out, method: str, objects: list[str], psnr: float, asset_failed=(), views: int = 1,
           write_gt: bool = True) -> list[np.ndarray]:
    """Records of `method` on `objects` (ok, generation = GT + noise) and asset failures on
    `asset_failed` (no GT cloud, as bench.run.evaluate leaves them); returns the generations."""
    gens = []
    for oid in objects:
        gt = _gt(oid)
        if write_gt:
            write_array(gt_cloud_path(out, "p", oid), gt)
        gen = gt + np.random.default_rng(100 + int(oid[1:])).normal(0, 0.01, gt.shape).astype(np.float32)
        cp = cloud_path(out, "p", method, views, oid)
        write_array(cp, gen)
        gens.append(gen)
        write_record(record_path(out, "p", method, views, oid),
                     Record(method=method, protocol="p", protocol_hash="h", dataset="gso", object_id=oid,
                            views=views, status="ok", pointcloud=str(cp.relative_to(out)),
                            metrics={"psnr_masked": psnr, "ssim_masked": 0.5}))
    for oid in asset_failed:
        write_record(record_path(out, "p", method, views, oid),
                     Record(method=method, protocol="p", protocol_hash="h", dataset="gso", object_id=oid,
                            views=views, status="failed", reason="asset: unreadable texture",
                            failure="input"))
    return gens


def _row(df: pd.DataFrame, method: str) -> pd.Series:
    return df[df.method == method].iloc[0]


def test_every_row_of_a_protocol_uses_the_same_reference_set(tmp_path):
    _write(tmp_path, "a", OBJECTS, psnr=20.0)
    gens_b = _write(tmp_path, "b", OBJECTS[:2], psnr=30.0)  # b skipped o2, o3
    df = aggregate(tmp_path)
    a, b = _row(df, "a"), _row(df, "b")
    refs = [_gt(o) for o in OBJECTS]
    cov, mmd = coverage_mmd(gens_b, refs)
    # b's two generations cover 2 of the 4 reference objects: 50 %, not the 100 % it got when its
    # reference was only the objects it attempted
    assert b.cov_cd == pytest.approx(50.0, abs=1e-12) and b.cov_cd == pytest.approx(cov * 100, abs=1e-12)
    assert b.mmd_cd == pytest.approx(mmd * 1000, rel=1e-12)
    assert a.cov_cd == pytest.approx(100.0, abs=1e-12)
    assert (a.n_reference, b.n_reference) == (4, 4) and a.reference_set == b.reference_set
    assert bool(a.complete) and not bool(b.complete)
    assert "incomplete: 2 of 4 reference objects not attempted (o2, o3)" in b.notes
    assert "incomplete" not in (a.notes or "")


def test_objects_whose_asset_failed_are_not_reference_objects(tmp_path):
    _write(tmp_path, "a", OBJECTS[:3], psnr=20.0, asset_failed=["o3"])
    _write(tmp_path, "b", OBJECTS[:3], psnr=30.0, asset_failed=["o3"])
    df = aggregate(tmp_path)
    for method in ("a", "b"):
        row = _row(df, method)
        assert row.n == 4 and row.success_rate == pytest.approx(0.75)  # the failure still counts in n
        assert row.n_reference == 3 and bool(row.complete) and row.cov_cd == pytest.approx(100.0)


def test_gt_cloud_of_a_reference_object_missing_is_an_error_naming_it(tmp_path):
    _write(tmp_path, "a", OBJECTS, psnr=20.0)
    gone = gt_cloud_path(tmp_path, "p", "o2")
    gone.unlink()
    with pytest.raises(ValueError, match=re.escape(f"GT point cloud {gone} is missing")):
        aggregate(tmp_path)


def test_incomplete_row_is_never_bold_in_tables_html_or_versus(tmp_path):
    _write(tmp_path, "a", OBJECTS, psnr=20.0)
    _write(tmp_path, "b", OBJECTS[:2], psnr=30.0)  # best PSNR, but only 2 of 4 objects
    _write(tmp_path, "c", OBJECTS, psnr=25.0)
    df = merge_runs([tmp_path])
    r = ranked(df).set_index("method")
    assert r.loc["b", "psnr_masked_rank"] == 0  # never ranked
    assert (r.loc["c", "psnr_masked_rank"], r.loc["a", "psnr_masked_rank"]) == (1, 2)
    md = to_markdown(df)
    assert "| b * | p | 1 |" in md and "**30.000**" not in md and "<u>30.000</u>" not in md
    assert "**25.000**" in md and "<u>20.000</u>" in md and "not ranked" in md
    tex = to_latex(df)
    assert r"\textbf{25.000}" in tex and r"\textbf{30.000}" not in tex
    assert best_mask(df, "psnr_masked", ["protocol", "views", "occlusion_degree"]).tolist() == \
        [False, False, True]  # rows a, b, c: c is best among the complete rows
    page = write_html_report([tmp_path], tmp_path / "site" / "index.html", leaderboard=df).read_text()
    assert re.search(r'<td class="incomplete"[^>]*>b \*', page)
    assert '<td class="num best">30.00</td>' not in page and '<td class="num best">25.00</td>' in page
    vs = versus(df, "a")
    assert not vs[vs.method == "b"].complete.any() and vs[vs.method == "c"].complete.all()
    vmd = versus_markdown(df, "a")
    assert "| b * |" in vmd and "**20.00" not in vmd.split("| b * |")[1].split("\n")[0]
    assert "a *" not in format_table(df) and "b *" in format_table(df)
    assert reference_report(df) == [
        f"not ranked: b p views-1 (run {tmp_path}): not scored on the full reference set of its protocol "
        "(4 objects): 2 of 4 reference objects not attempted (o2, o3)"]


def test_merged_runs_with_other_objects_are_ranked_apart(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    _write(a, "m1", OBJECTS, psnr=20.0)  # 4 objects
    _write(b, "m2", OBJECTS[:2], psnr=30.0)  # another run over 2 objects: complete there
    _write(c, "m3", OBJECTS, psnr=25.0)  # same 4 objects as run a
    df = merge_runs([a, b, c])
    assert df.complete.all() and df.set_index("method").n_reference.to_dict() == {"m1": 4, "m2": 2, "m3": 4}
    assert df.set_index("method").reference_set["m1"] == df.set_index("method").reference_set["m3"]
    assert df.set_index("method").reference_set["m1"] != df.set_index("method").reference_set["m2"]
    r = ranked(df).set_index("method")
    # m1 and m3 are ranked together; m2 only against rows of its own reference set (alone: best)
    assert r.psnr_masked_rank.to_dict() == {"m1": 2, "m2": 1, "m3": 1}
    md = to_markdown(df)
    assert "Ref. objects" in md and "| m2 | p | 1 | 2 |" in md
    best = best_mask(df, "psnr_masked", ["protocol", "views", "occlusion_degree"])
    assert best.tolist() == [False, False, True]  # a group of one (m2) has no best in the HTML
    vs = versus(df, "m1")
    assert set(vs.method) == {"m3"}  # m2 is never compared with a row of another reference set
    lines = reference_report(df)
    assert len(lines) == 1 and lines[0].startswith("p: rows come from 2 different reference sets")
    assert f"2 objects (run {b})" in lines[0] and f"4 objects (run {a}, {c})" in lines[0]


def test_leaderboard_without_reference_columns_ranks_as_before():
    # an older CSV (no complete / reference_set): every row ranks, one set per group
    df = pd.DataFrame({"method": ["a", "b"], "protocol": ["p", "p"], "views": [1, 1],
                       "occlusion_degree": [np.nan, np.nan], "psnr_masked": [20.0, 25.0]})
    assert ranked(df).psnr_masked_rank.tolist() == [2, 1]
    assert best_mask(df, "psnr_masked", ["protocol", "views", "occlusion_degree"]).tolist() == [False, True]
    assert reference_report(df) == []


def test_drift_calls_another_reference_set_not_comparable(tmp_path):
    # the same method and numbers, scored against other objects: not a drift of the method, a
    # different comparison ('x'); a baseline without the column (older CSV) compares as before
    from bench.report.drift import compare

    a, b = tmp_path / "a", tmp_path / "b"
    _write(a, "m", OBJECTS, psnr=20.0)
    _write(b, "m", OBJECTS[:2] + ["o3"], psnr=20.0)
    tol = {"default": {"abs": 1e-9, "rel": 0.0}}
    base, other = aggregate(a), aggregate(b)
    assert base.reference_set[0] != other.reference_set[0]
    marks = {d.metric: d.mark for d in compare(base, other, tol)}
    assert marks["psnr_masked"] == "x" and marks["cov_cd"] == "x"
    assert {d.mark for d in compare(base, aggregate(a), tol)} == {" "}
    old = base.drop(columns=["reference_set"])
    assert {d.metric: d.mark for d in compare(old, base, tol)}["psnr_masked"] == " "
