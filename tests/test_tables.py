"""Paper-style tables: best bold, second underlined per metric and group, directions respected."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.report.tables import ranked, to_latex, to_markdown, versus, versus_markdown, write_tables


def _board() -> pd.DataFrame:
    return pd.DataFrame({
        "method": ["a", "b", "c", "a", "b"], "protocol": ["p"] * 5, "views": [1, 1, 1, 2, 2],
        "occlusion_degree": [np.nan] * 5, "success_rate": [1.0, 1.0, 0.5, 1.0, 1.0],
        "psnr_masked": [20.0, 25.0, 22.0, np.inf, 18.0],
        "mmd_cd": [3.0, 1.0, 2.0, 5.0, np.nan], "cov_cd": [50.0, 60.0, 60.0, 40.0, 30.0]})


def test_ranks_follow_direction_and_groups():
    r = ranked(_board())
    # PSNR higher is better: in views=1, b (25) best, c (22) second; in views=2, a (inf) best
    assert r.psnr_masked_rank.tolist() == [0, 1, 2, 1, 2]
    # MMD lower is better; NaN never ranks
    assert r.mmd_cd_rank.tolist() == [0, 1, 2, 1, 0]
    # ties share the rank: b and c both best COV in views=1, a second
    assert r.cov_cd_rank.tolist() == [2, 1, 1, 1, 2]


def test_markdown_marks_and_arrows():
    md = to_markdown(_board())
    assert "PSNR-m (dB) ↑" in md and "MMD (‰) ↓" in md
    assert "| b | p | 1 | **100%** | **25.000** | **1.000** |" in md
    assert "<u>22.000</u>" in md and "**∞**" in md and "—" in md


def test_latex_is_escaped_and_marked():
    tex = to_latex(_board())
    assert r"\textbf{25.000}" in tex and r"\underline{22.000}" in tex
    assert r"MMD (\textperthousand{}) $\downarrow$" in tex and r"\textbf{$\infty$}" in tex
    assert r"\textbf{100\%}" in tex and "--" in tex


def test_write_tables(tmp_path):
    paths = write_tables(_board(), tmp_path / "t")
    assert [p.suffix for p in paths] == [".md", ".tex", ".csv"] and all(p.is_file() for p in paths)
    assert "psnr_masked_rank" in pd.read_csv(paths[2]).columns


def test_versus_deltas_ratios_and_direction():
    t = versus(_board(), "a").set_index(["method", "views", "metric"])
    # b vs a at 1 view, checked by hand: PSNR 25 vs 20, MMD 1 vs 3 (lower is better), COV 60 vs 50
    assert t.loc[("b", 1, "psnr_masked"), "delta"] == 5.0
    assert t.loc[("b", 1, "psnr_masked"), "ratio"] == 1.25
    assert t.loc[("b", 1, "psnr_masked"), "better"] is True
    assert t.loc[("b", 1, "mmd_cd"), "delta"] == -2.0
    assert t.loc[("b", 1, "mmd_cd"), "better"] is True
    assert t.loc[("c", 1, "success_rate"), "better"] is False
    assert t.loc[("b", 1, "success_rate"), "better"] is None  # tie
    # a's PSNR is inf at 2 views: the delta is -inf, no ratio, b is worse
    row = t.loc[("b", 2, "psnr_masked")]
    assert row.delta == -np.inf and np.isnan(row.ratio) and row.better is False
    # NaN on either side: no row (b's MMD at 2 views)
    assert ("b", 2, "mmd_cd") not in t.index
    # c has no 2-view row: nothing invented
    assert not any(k[0] == "c" and k[1] == 2 for k in t.index)
    assert "a" not in t.index.get_level_values("method")


def test_versus_markdown_marks_better_and_rejects_unknown_baseline():
    md = versus_markdown(_board(), "a")
    assert "Against `a`" in md
    assert "**20.000 → 25.000 (+5.000)**" in md  # b beats a on PSNR at 1 view: bold
    assert "3.000 → 2.000 (−1.000)" in md  # c's MMD better than a: bold
    assert "**3.000 → 2.000 (−1.000)**" in md
    assert "| c | p | 1 | 100% → 50% (−50%) |" in md  # worse: not bold
    with pytest.raises(ValueError, match="baseline method 'z' is not in the leaderboard; its "
                                         "methods: a, b, c"):
        versus(_board(), "z")
