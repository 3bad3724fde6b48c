"""A supervised worker command never outlives the harness (trust issue, item 18): a real
`amodal-bench run` with a worker method whose command starts a grandchild is killed with SIGTERM
or SIGKILL; the command, its grandchild and its temporary folder must be gone within seconds
(before the fix they were reparented to PID 1 and the folder stayed). Worker logs of several
methods no longer collide (item 19)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SMALL_GSO_OBJECT

REPO = Path(__file__).resolve().parents[1]

SLEEPER = r"""
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
pids = {"command": os.getpid(), "grandchild": child.pid, "case_dir": sys.argv[1]}
tmp = sys.argv[2] + ".tmp"
open(tmp, "w").write(__import__("json").dumps(pids))
os.replace(tmp, sys.argv[2])
time.sleep(300)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _wait(predicate, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_worker_dies_with_the_harness(gso_root, tmp_path, sig):
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    pidfile = tmp_path / "pids.json"
    spec = tmp_path / "sleeper.yaml"
    spec.write_text(json.dumps({"name": "sleeper", "timeout_s": 600,
                                "command": [sys.executable, str(script), "{case_dir}", str(pidfile)]}))
    harness = subprocess.Popen(
        [sys.executable, "-m", "bench", "run", "--data", str(gso_root),
         "--protocol", "amodal3r-gso+raster-unlit",
         "--methods", f"worker:{spec}", "--objects", SMALL_GSO_OBJECT, "--jobs", "1", "--sheets", "0",
         "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache")],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert _wait(pidfile.exists, 240), harness.stderr.read().decode()[-2000:] if harness.poll() else ""
        pids = json.loads(pidfile.read_text())
        workdir = Path(pids["case_dir"]).parents[3]  # <tmp>/cases/<protocol>/<setting>/<object>
        assert workdir.name.startswith("amodal-worker-sleeper-") and workdir.is_dir()
        assert _alive(pids["command"]) and _alive(pids["grandchild"])
        harness.send_signal(sig)
        harness.wait(timeout=60)
        assert _wait(lambda: not _alive(pids["command"]) and not _alive(pids["grandchild"]), 20), pids
        assert _wait(lambda: not workdir.exists(), 10), f"{workdir} left behind"
    finally:
        if harness.poll() is None:
            os.killpg(harness.pid, signal.SIGKILL)
        if pidfile.exists():
            for key in ("command", "grandchild"):
                try:
                    os.kill(json.loads(pidfile.read_text())[key], signal.SIGKILL)
                except ProcessLookupError:
                    pass


def test_worker_logs_of_two_methods_do_not_collide(tmp_path):
    from test_worker import _tiny_case

    from bench.methods.worker import WorkerAdapter, WorkerSpec

    case = _tiny_case()
    paths = {WorkerAdapter(WorkerSpec(name, ["true"], log_dir=str(tmp_path / "logs"))).log_path(case)
             for name in ("method-a", "method-b")}
    assert len(paths) == 2
    assert all(p.is_relative_to(tmp_path / "logs") for p in paths)
