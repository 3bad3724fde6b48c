"""Drift gate: two-sided tolerances, asv-style marks, exit codes through the real CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd

from bench.drift import compare, failed, format_drift

TOL = {"default": {"abs": 0.0, "rel": 1e-6}, "psnr_masked": {"abs": 0.01}, "cov_cd": {"abs": 0.0}}


def _board(**changes) -> pd.DataFrame:
    df = pd.DataFrame({"method": ["oracle", "visible"], "protocol": ["p", "p"], "views": [1, 1],
                       "occlusion_degree": [np.nan, np.nan], "success_rate": [1.0, 1.0],
                       "psnr_masked": [np.inf, 16.3], "mmd_cd": [0.0, 21.9], "cov_cd": [100.0, 63.5],
                       "pfid_pointnet": [np.nan, np.nan], "protocol_hash": ["h", "h"],
                       "pointnet_sha256": [np.nan, np.nan]})
    for col, (row, value) in changes.items():
        df.loc[row, col] = value
    return df


def _marks(drifts, metric):
    return {d.key[0]: d.mark for d in drifts if d.metric == metric}


def test_identical_boards_pass_including_inf_and_nan():
    drifts = compare(_board(), _board(), TOL)
    assert not failed(drifts) and all(d.mark == " " for d in drifts)


def test_within_tolerance_passes_beyond_fails_both_ways():
    assert not failed(compare(_board(), _board(psnr_masked=(1, 16.305)), TOL))
    worse = compare(_board(), _board(psnr_masked=(1, 16.2)), TOL)
    better = compare(_board(), _board(mmd_cd=(1, 21.0)), TOL)
    assert _marks(worse, "psnr_masked")["visible"] == "+"  # PSNR fell: worse
    assert _marks(better, "mmd_cd")["visible"] == "-"  # MMD fell: better, still drift
    assert failed(worse) and failed(better)


def test_newly_failing_and_not_comparable():
    gone = compare(_board(), _board(mmd_cd=(1, np.nan)), TOL)
    assert _marks(gone, "mmd_cd")["visible"] == "!"
    rehashed = compare(_board(), _board(protocol_hash=(1, "other")), TOL)
    assert set(_marks(rehashed, "mmd_cd").values()) == {" ", "x"}
    missing_row = compare(_board(), _board().iloc[:1], TOL)
    assert any(d.mark == "!" and d.key[0] == "visible" for d in missing_row)
    new_row = compare(_board().iloc[:1], _board(), TOL)
    assert any(d.mark == "x" and "not in the baseline" in d.reason for d in new_row)
    assert "visible p views=1" in format_drift(new_row, only_changes=True)


def test_baseline_missing_a_metric_is_named():
    drifts = compare(_board().drop(columns=["cov_cd"]), _board(), TOL)
    assert any(d.mark == "x" and "no column cov_cd" in d.reason for d in drifts)


def test_cli_exit_codes(tmp_path):
    base, cur = tmp_path / "base.csv", tmp_path / "cur.csv"
    _board().to_csv(base, index=False)
    for board, code in ((_board(), 0), (_board(cov_cd=(1, 65.0)), 1)):
        board.to_csv(cur, index=False)
        r = subprocess.run([sys.executable, "-m", "bench.cli", "drift", "--baseline", str(base),
                            str(cur)], capture_output=True, text=True, timeout=120)
        assert r.returncode == code, r.stdout + r.stderr
    assert "DRIFT" in r.stdout and "+" in r.stdout
    bad = subprocess.run([sys.executable, "-m", "bench.cli", "drift", "--baseline",
                          str(tmp_path / "nope.csv"), str(cur)], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
