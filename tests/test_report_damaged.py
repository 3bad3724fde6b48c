"""`amodal-bench report` / `drift` on a damaged run directory (trust items 22 and 3), through the
real CLI on a real run: a record with a wrong type and a truncated point cloud are one-line errors
naming the file (exit 2, no traceback); a deleted record is a warning naming the missing item, and
the row it leaves short is scored against the protocol's full reference set and marked not ranked.

One real run (oracle + visible, 2 GSO objects, amodal3r-gso: 12 records) is made per module and
copied per test. The expected COV/MMD of a damaged row come from
bench.metrics.geometry.coverage_mmd on the clouds in the run directory.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.metrics.geometry import coverage_mmd

PROTOCOL = "amodal3r-gso+raster-unlit"


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "amodal-bench"
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "bench"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, gso_root) -> Path:
    """One real run shared by the module (never changed: tests damage copies)."""
    out = tmp_path_factory.mktemp("report-damaged") / "run"
    cache = tmp_path_factory.getbasetemp() / "report-gt-cache"  # shared by the report test modules
    r = _cli("run", "--data", str(gso_root), "--protocol", PROTOCOL, "--methods", "oracle,visible",
             "--limit", "2", "--jobs", "1", "--sheets", "0", "--out", str(out), "--cache", str(cache),
             timeout=1200)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert len(list((out / "records").rglob("*.json"))) == 12  # 2 methods x 2 objects x 3 settings
    return out


@pytest.fixture
def run_copy(base_run, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(base_run, out)
    return out


def _objects(run: Path) -> list[str]:
    return json.loads((run / "run.json").read_text())["objects"]


def _record(run: Path, method: str, views: int, oid: str) -> Path:
    return run / "records" / PROTOCOL / method / f"views-{views}" / f"{oid}.json"


def _one_line_error(r: subprocess.CompletedProcess, path: Path) -> str:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stdout[-1500:] + r.stderr[-1500:]
    assert len(lines) == 1 and lines[0].startswith("amodal-bench: error: "), r.stderr[-1500:]
    assert "Traceback" not in r.stderr and str(path) in lines[0]
    return lines[0]


def test_undamaged_run_reports_without_warning(run_copy, base_run):
    r = _cli("report", str(run_copy), "--out", str(run_copy / "board.csv"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "warning" not in r.stderr and "not ranked" not in r.stdout
    board = pd.read_csv(run_copy / "board.csv")
    assert len(board) == 6 and board.complete.all() and (board.n_reference == 2).all()
    assert board.reference_set.nunique() == 1
    gate = _cli("drift", "--baseline", str(base_run / "leaderboard.csv"), str(run_copy))
    assert gate.returncode == 0 and "no drift" in gate.stdout and "warning" not in gate.stderr, gate.stderr


@pytest.mark.parametrize("value", ["oops", None])
def test_metric_of_the_wrong_type_is_one_line_naming_the_record(run_copy, base_run, value):
    path = _record(run_copy, "visible", 2, _objects(run_copy)[1])
    data = json.loads(path.read_text())
    data["metrics"]["psnr_masked"] = value
    path.write_text(json.dumps(data))
    for r in (_cli("report", str(run_copy)),
              _cli("drift", "--baseline", str(base_run / "leaderboard.csv"), str(run_copy))):
        line = _one_line_error(r, path)
        assert f"corrupt record {path}: metric 'psnr_masked' must be a number" in line


@pytest.mark.parametrize("which", ["gt", "visible"])
def test_truncated_point_cloud_is_one_line_naming_the_file(run_copy, base_run, which):
    oid = _objects(run_copy)[0]
    path = (run_copy / "pointclouds" / PROTOCOL / "gt" / f"{oid}.npy" if which == "gt"
            else run_copy / "pointclouds" / PROTOCOL / "visible" / "views-1" / f"{oid}.npy")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for r in (_cli("report", str(run_copy)),
              _cli("drift", "--baseline", str(base_run / "leaderboard.csv"), str(run_copy))):
        line = _one_line_error(r, path)
        assert f"unreadable point cloud {path}" in line


def test_deleted_record_warns_and_its_row_keeps_the_full_reference(run_copy, base_run):
    objects = _objects(run_copy)
    gone = _record(run_copy, "visible", 2, objects[1])
    gone.unlink()
    r = _cli("report", str(run_copy), "--out", str(run_copy / "board.csv"))
    assert r.returncode == 0, r.stderr[-2000:]
    warnings = [line for line in r.stderr.splitlines() if line.startswith("amodal-bench: warning: ")]
    assert any(f"visible {PROTOCOL} views-2: no record for 1 of 2 configured objects: {objects[1]}" in w
               for w in warnings), r.stderr
    assert any("1 of 12 configured items" in w for w in warnings), r.stderr
    assert f"not ranked: visible {PROTOCOL} views-2" in r.stdout
    board = pd.read_csv(run_copy / "board.csv")
    row = board[(board.method == "visible") & (board.views == 2)].iloc[0]
    assert row.n == 1 and row.n_reference == 2 and not row.complete
    assert board[board.method != "visible"].complete.all()
    assert board.reference_set.nunique() == 1  # the same reference for every row of the protocol
    # COV/MMD of the short row against both GT clouds (the run's reference set), not only its own
    gen = [np.load(run_copy / "pointclouds" / PROTOCOL / "visible" / "views-2" / f"{objects[0]}.npy")]
    refs = [np.load(run_copy / "pointclouds" / PROTOCOL / "gt" / f"{o}.npy") for o in objects]
    cov, mmd = coverage_mmd(gen, refs)
    assert row.cov_cd == pytest.approx(cov * 100, rel=1e-5) and row.cov_cd == pytest.approx(50.0)
    assert row.mmd_cd == pytest.approx(mmd * 1000, rel=1e-5)  # CSV keeps 6 significant digits
    md = (run_copy / "board-table.md").read_text()
    assert f"| visible * | {PROTOCOL}‡ | 2 |" in md  # ‡: the unlit GT variant
    # drift on the damaged run: the same warning, and the gate still compares (no error)
    gate = _cli("drift", "--baseline", str(base_run / "leaderboard.csv"), str(run_copy))
    assert gate.returncode in (0, 1) and "Traceback" not in gate.stderr
    assert f"no record for 1 of 2 configured objects: {objects[1]}" in gate.stderr


def test_harness_error_record_is_not_counted_and_is_named(run_copy):
    """A record with status "error" (the harness failed while measuring; retried on resume) is
    not a result of the method: not in n, named as a warning."""
    objects = _objects(run_copy)
    path = _record(run_copy, "oracle", 1, objects[0])
    data = json.loads(path.read_text())
    data.update(status="error", reason="harness: OSError: disk full", metrics={}, pointcloud="",
                features={}, failure="harness")
    path.write_text(json.dumps(data))
    r = _cli("report", str(run_copy), "--out", str(run_copy / "board.csv"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"oracle {PROTOCOL} views-1: a harness error (retried on resume) for 1 of 2 configured " \
           f"objects: {objects[0]}" in r.stderr
    board = pd.read_csv(run_copy / "board.csv")
    row = board[(board.method == "oracle") & (board.views == 1)].iloc[0]
    assert row.n == 1 and row.success_rate == 1.0 and not row.complete
    assert "1 harness error record(s) not counted" in row.notes


def test_run_json_missing_or_unreadable_is_a_warning(run_copy):
    (run_copy / "run.json").write_text("{broken")
    r = _cli("report", str(run_copy))
    assert r.returncode == 0
    assert f"amodal-bench: warning: {run_copy / 'run.json'}: unreadable run configuration" in r.stderr
    (run_copy / "run.json").unlink()
    r = _cli("report", str(run_copy))
    assert r.returncode == 0 and f"{run_copy}: no run.json" in r.stderr
