"""Sharded runs (bench.run.shard, bench.run.sharded): the item partition, and real processes
(--shard as separate processes, torchrun ranks with gloo, a SIGKILLed run resumed at another
world size) ending with the records and leaderboard of one uninterrupted process."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import SMALL_GSO_OBJECT

from bench.run.shard import Ranks, Shard, combined, item_key, parse_shard, pin_local_gpu, slurm_shard

OBJECTS = [SMALL_GSO_OBJECT, "Room_Essentials_Salad_Plate_Turquoise",
           "Craftsman_Grip_Screwdriver_Phillips_Cushion"]
ARGS = ["--protocol", "amodal3r-gso+raster-unlit", "--methods", "oracle,visible", "--jobs", "1",
        "--sheets", "1", "--fid-extractors", "", "--lpips-nets", "", "--no-clip-score",
        "--objects", ",".join(OBJECTS)]
ITEMS = [(m, o, v, None) for m in ("oracle", "visible") for o in OBJECTS for v in (1, 2, 4)]


def test_every_item_has_exactly_one_shard_at_every_world_size():
    items = [(m, f"obj{i}", v, d) for m in ("a", "b", "c") for i in range(40) for v in (1, 2, 4)
             for d in (None, 0.2)]
    for n in range(1, 9):
        owners = [[s for s in range(n) if Shard(s, n).owns(*it)] for it in items]
        assert all(len(o) == 1 for o in owners)
        sizes = [sum(o == [s] for o in owners) for s in range(n)]
        assert min(sizes) > 0.6 * len(items) / n  # roughly balanced (720 items)
    # the key is a pure function of the item: a fixed value, independent of anything else
    assert item_key("oracle", "A", 1, None) == item_key("oracle", "A", 1, None)
    assert item_key("oracle", "A", 1, None) != item_key("oracle", "A", 2, None)
    assert item_key("oracle", "A", 1, 0.2) == item_key("oracle", "A", 1.0, 0.2)


def test_shard_arguments_and_environments():
    assert parse_shard("2/3") == Shard(2, 3)
    for bad in ("3/3", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)
    assert slurm_shard({}) is None
    assert slurm_shard({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "4",
                        "SLURM_ARRAY_TASK_MIN": "3"}) == Shard(2, 4)
    assert combined(Shard(1, 3), Ranks(1, 2, 1)) == Shard(3, 6)
    assert combined(None, Ranks(1, 4, 1)) == Shard(1, 4) and combined(Shard(0, 2), None) == Shard(0, 2)
    env = {"CUDA_VISIBLE_DEVICES": "4,6"}
    pin_local_gpu(Ranks(3, 4, 1), env)
    assert env == {"CUDA_VISIBLE_DEVICES": "6"}
    env = {}
    pin_local_gpu(Ranks(2, 4, 2), env)
    assert env == {"CUDA_VISIBLE_DEVICES": "2"}


def _env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "RANK", "WORLD_SIZE", "LOCAL_RANK"))}
    return {**env, "OMP_NUM_THREADS": "1"}  # the same BLAS threads in every process


def _run(out, cache, *extra, timeout=900):
    return subprocess.run([sys.executable, "-m", "bench", "run", "--out", str(out), "--cache", str(cache),
                           *ARGS, *extra], capture_output=True, text=True, timeout=timeout, env=_env())


def _state(out: Path) -> dict:
    """Records without their timing field, every point cloud and feature file, the leaderboard."""
    state = {}
    for p in sorted((out / "records").rglob("*.json")):
        rec = json.loads(p.read_text())
        rec.pop("seconds")
        state[str(p.relative_to(out))] = rec
    for sub in ("pointclouds", "features"):
        for p in sorted((out / sub).rglob("*")):
            if p.is_file():
                state[str(p.relative_to(out))] = p.read_bytes()
    state["leaderboard"] = (out / "leaderboard.csv").read_text()
    return state


@pytest.fixture(scope="module")
def single(gso_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "run"
    r = _run(out, out.parent / "cache")
    assert r.returncode == 0, r.stderr[-3000:]
    return _state(out)


@pytest.mark.gso
def test_three_shard_processes_equal_one_run(single, tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    procs = [subprocess.Popen([sys.executable, "-m", "bench", "run", "--out", str(out), "--cache", str(cache),
                               *ARGS, "--shard", f"{i}/3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=_env()) for i in range(3)]
    results = [p.communicate(timeout=900) for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1][-2000:] for r in results]
    logs = {p.name: [tuple(line.split("\t")) for line in p.read_text().splitlines()]
            for p in (out / "shards").glob("*.log")}
    written = [item for lines in logs.values() for item in lines]
    assert sorted(logs) == ["0-of-3.log", "1-of-3.log", "2-of-3.log"]
    assert len(written) == len(set(written)) == len(ITEMS)  # no item written twice, none missed
    assert _state(out) == single  # the last shard to finish wrote the leaderboard
    # report merges the same leaderboard from the records
    (out / "leaderboard.csv").unlink()
    rep = subprocess.run([sys.executable, "-m", "bench", "report", str(out), "--out",
                          str(tmp_path / "m.csv")], capture_output=True, text=True, timeout=300, env=_env())
    assert rep.returncode == 0, rep.stderr[-2000:]
    merged = pd.read_csv(tmp_path / "m.csv").drop(columns="run")  # report adds the run's path
    pd.testing.assert_frame_equal(merged, pd.read_csv(io.StringIO(single["leaderboard"])), check_exact=True)


@pytest.mark.gso
def test_slurm_array_environment_shards_and_a_partial_run_says_so(single, tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    env = {**_env(), "SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2"}
    r = subprocess.run([sys.executable, "-m", "bench", "run", "--out", str(out), "--cache", str(cache),
                        *ARGS], capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "shard 1/2 done" in r.stdout and not (out / "leaderboard.csv").exists()
    assert [p.name for p in (out / "shards").glob("*.log")] == ["1-of-2.log"]
    r = _run(out, cache, "--shard", "0/2")
    assert r.returncode == 0, r.stderr[-2000:]
    assert _state(out) == single


def _torchrun(out, cache, n: int, **kw):
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             f"--nproc_per_node={n}", "-m", "bench", "run", "--out", str(out),
                             "--cache", str(cache), *ARGS], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env(), start_new_session=True, **kw)


@pytest.mark.gso
def test_torchrun_ranks_equal_one_run(single, tmp_path):
    out = tmp_path / "run"
    p = _torchrun(out, tmp_path / "cache", 2)
    stdout, stderr = p.communicate(timeout=900)
    assert p.returncode == 0, stderr[-3000:]
    assert sorted(q.name for q in (out / "shards").glob("*.log")) == ["0-of-2.log", "1-of-2.log"]
    assert _state(out) == single
    assert stdout.count("leaderboard:") == 1  # rank 0 prints


def _kill_all(marker: str) -> None:
    """SIGKILL every process whose command line holds `marker`."""
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass


@pytest.mark.gso
def test_a_killed_torchrun_resumed_by_one_process_equals_one_run(single, tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    p = _torchrun(out, cache, 2)
    deadline = time.time() + 600
    while time.time() < deadline and len(list((out / "records").rglob("*.json"))) < 3:
        time.sleep(0.2)
    _kill_all(str(out))  # the agent and every rank (torchrun starts ranks in their own sessions)
    p.communicate(timeout=60)
    done = len(list((out / "records").rglob("*.json")))
    assert 3 <= done < len(ITEMS) and not (out / "leaderboard.csv").exists()
    r = _run(out, cache)  # world size 1
    assert r.returncode == 0, r.stderr[-2000:]
    assert _state(out) == single
    shutil.rmtree(out / "shards")
