"""GSO benchmark suite: `pytest bench/ -k gso`.

One test per (protocol, method, setting), a setting being a number of input views and, in
occlusion sweeps, an occlusion degree. Each protocol is evaluated once per session on the first
AMODAL_BENCH_GSO_LIMIT objects (default 4) with both baselines; the tests then check that the
oracle is perfect, that `visible` is worse on every per-object metric and on MMD, and that its
COV is a whole number of covered references, which checks the harness end to end on real data.
Skips with a clear reason when the GSO data is absent. The protocols run with the fast unlit GT
renderer (`<protocol>+raster-unlit`: same inputs, unlit GT images) so the suite fits CI; the lit
Cycles GT is exercised by the drift gate and tests/test_gtappearance.py.
"""

from __future__ import annotations

import math
import os

import pandas as pd
import pytest

from bench.inputs.dataset import default_root
from bench.inputs.protocol import list_protocols, load_protocol

METHODS = ["oracle", "visible"]
LIMIT = int(os.environ.get("AMODAL_BENCH_GSO_LIMIT", "4"))
CASES = [(f"{p}+raster-unlit", m, s) for p in list_protocols() if load_protocol(p).spec["dataset"] == "gso"
         for s in load_protocol(p).settings for m in METHODS]


@pytest.fixture(scope="session")
def gso_leaderboards(tmp_path_factory) -> dict[str, pd.DataFrame]:
    root = default_root("gso")
    if not root.is_dir():
        pytest.skip(f"GSO data not found at {root}: set AMODAL_BENCH_GSO or put it at "
                    "../shared/data/gso")
    from bench.run.runner import RunConfig, run

    boards = {}
    cache = tmp_path_factory.mktemp("gt-cache")
    for protocol in sorted({p for p, _, _ in CASES}):
        out = tmp_path_factory.mktemp(protocol)
        path = run(RunConfig(out=str(out), protocol=protocol, methods=METHODS, data=str(root),
                             limit=LIMIT, jobs=2, cache=str(cache), sheets=0), progress=False)
        boards[protocol] = pd.read_csv(path)
        boards[protocol].attrs["run"] = out
    return boards


def _input_failures(board: pd.DataFrame, method: str, setting) -> int:
    """Records of (method, setting) that failed because the protocol could not be met for the
    object (failure "input": e.g. gena3d-code's 30-70 % filter leaves fewer than 4 of its 8 yaws)."""
    from bench.records.store import load_records

    recs = load_records(board.attrs["run"])
    return sum(r.status == "failed" and r.failure == "input" for r in recs
               if r.method == method and r.views == setting.views
               and (r.occlusion_degree is None if setting.degree is None
                    else abs((r.occlusion_degree or 0) - setting.degree) < 1e-9))


def _row(board: pd.DataFrame, method: str, setting) -> pd.Series:
    degree = board.occlusion_degree
    same_degree = degree.isna() if setting.degree is None else (degree - setting.degree).abs() < 1e-9
    rows = board[(board.method == method) & (board.views == setting.views) & same_degree]
    assert len(rows) == 1, board
    return rows.iloc[0]


@pytest.mark.gso
@pytest.mark.parametrize("protocol,method,setting", CASES,
                         ids=[f"gso-{p}-{m}-{s.label}" for p, m, s in CASES])
def test_gso(gso_leaderboards, protocol, method, setting):
    board = gso_leaderboards[protocol]
    row = _row(board, method, setting)
    oracle = _row(board, "oracle", setting)
    assert row.n == LIMIT
    if method == "oracle":
        # the oracle returns the GT mesh: every metric must be perfect (on the unlit GT path);
        # it fails only where the case itself cannot be built (an input failure)
        assert row.success_rate == pytest.approx(1.0 - _input_failures(board, method, setting) / LIMIT)
        assert row.success_rate > 0
        assert row.psnr_masked >= 40.0
        assert row.ssim_masked == pytest.approx(1.0, abs=1e-6)
        # each generation is its own reference: it covers exactly the objects it succeeded on;
        # MMD is 0 only when every reference object has its generation
        assert row.cov_cd == pytest.approx(100.0 * row.success_rate)
        if row.success_rate == 1.0:
            assert row.mmd_cd == pytest.approx(0.0, abs=1e-9)
    else:
        # the lower bound is strictly worse on every per-object and distance metric
        assert row.success_rate > 0
        assert row.psnr_masked < oracle.psnr_masked
        assert row.ssim_masked < oracle.ssim_masked
        assert row.mmd_cd > oracle.mmd_cd and math.isfinite(row.mmd_cd)
        # COV = |distinct nearest references| / N_ref over the LIMIT reference objects: a multiple
        # of 100 / LIMIT in [100 / LIMIT, 100]; a wrong reference set or scale breaks the grid.
        # (visible's COV is not always below 100: on the 4 default objects it is 50, 75 or 100
        # depending on the setting, 100 in 11 of the 18 settings; its MMD is >= 4.47 per mille.)
        covered = row.cov_cd * LIMIT / 100
        assert covered == pytest.approx(round(covered), abs=1e-9) and 1 <= round(covered) <= LIMIT
