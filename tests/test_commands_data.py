"""The data side of the command line, as real subprocesses over real GSO files: a run evaluates
the folder it is given, a manifest pins it, `ls objects` prints what a run evaluates."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from conftest import SMALL_GSO_OBJECT

FAST = ["--protocol", "amodal3r-gso+raster-unlit", "--methods", "visible", "--jobs", "1", "--sheets", "0",
        "--fid-extractors", "", "--lpips-nets", "", "--no-clip-score"]


def _cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "bench", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture()
def renamed(gso_root, tmp_path):
    """Two real GSO objects under names no manifest lists (as a user's own folder would be)."""
    root = tmp_path / "mine"
    for src, name in [(SMALL_GSO_OBJECT, "My_Cans"), ("Android_Lego", "My_Robot")]:
        shutil.copytree(gso_root / src, root / name)
    return root


@pytest.mark.gso
def test_a_run_evaluates_the_objects_found_in_the_folder(renamed, tmp_path):
    out = tmp_path / "run"
    r = _cli("run", "--data", renamed, "--out", out, "--cache", tmp_path / "cache", *FAST)
    assert r.returncode == 0, r.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["objects"] == ["My_Cans", "My_Robot"] and run["selection"]["found"] == 2
    listed = [ln for ln in (out / "objects.txt").read_text().splitlines() if not ln.startswith("#")]
    assert listed == ["My_Cans", "My_Robot"]
    board = pd.read_csv(out / "leaderboard.csv")
    assert board.n.tolist() == [2] * len(board) and (board.success_rate == 1).all()
    # ls objects prints the same list, and writes it in the run's format
    ls = _cli("ls", "objects", "--protocol", "amodal3r-gso+raster-unlit", "--data", renamed,
              "--out", tmp_path / "list.txt")
    assert ls.returncode == 0 and ls.stdout.split() == listed
    assert (tmp_path / "list.txt").read_text() == (out / "objects.txt").read_text()


@pytest.mark.gso
def test_a_pin_mismatch_is_one_line_before_any_work_or_a_failure_record(gso_root, tmp_path):
    data = tmp_path / "data"
    for name in (SMALL_GSO_OBJECT, "Android_Lego"):
        shutil.copytree(gso_root / name, data / name)
    obj = data / "Android_Lego" / "meshes" / "model.obj"
    obj.chmod(0o644)
    obj.write_bytes(obj.read_bytes()[:-200])  # cut inside the last face line: may still parse
    out = tmp_path / "run"
    r = _cli("run", "--data", data, "--manifest", "gso-dev", "--objects", f"{SMALL_GSO_OBJECT},Android_Lego",
             "--out", out, "--cache", tmp_path / "cache", *FAST)
    assert r.returncode == 2 and not out.exists(), r.stderr
    line = r.stderr.strip().splitlines()
    assert len(line) == 1 and "Android_Lego: sha256 mismatch" in line[0] and "--bad-objects record" in line[0]
    r = _cli("run", "--data", data, "--manifest", "gso-dev", "--objects", f"{SMALL_GSO_OBJECT},Android_Lego",
             "--bad-objects", "record", "--out", out, "--cache", tmp_path / "cache", *FAST)
    assert r.returncode == 0, r.stderr
    recs = [json.loads(p.read_text()) for p in (out / "records").rglob("*.json")]
    bad = [x for x in recs if x["object_id"] == "Android_Lego"]
    assert bad and all(x["failure"] == "input" and "sha256 mismatch" in x["reason"] for x in bad)
    assert all(x["status"] == "ok" for x in recs if x["object_id"] == SMALL_GSO_OBJECT)


def test_a_run_where_nothing_loads_exits_non_zero_with_the_reason(tmp_path):
    data = tmp_path / "data"
    for name in ("Bad_A", "Bad_B"):
        (data / name / "meshes").mkdir(parents=True)
        (data / name / "meshes" / "model.obj").write_text("v 0 0 0\nv 1 0 0\n")  # no faces
    r = _cli("run", "--data", data, "--out", tmp_path / "run", "--cache", tmp_path / "cache", *FAST)
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("amodal-bench: error: none of the 2 objects could be loaded (first reason: asset:")


def test_a_folder_without_objects_is_one_line(tmp_path):
    (tmp_path / "data" / "x").mkdir(parents=True)
    r = _cli("run", "--data", tmp_path / "data", "--out", tmp_path / "run", *FAST)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no gso objects found under" in r.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.gso
def test_ls_objects_subsets_and_manifests(gso_root):
    a = _cli("ls", "objects", "--protocol", "gena3d-gso", "--data", gso_root, "--subset", "random:10:3")
    b = _cli("ls", "objects", "--protocol", "gena3d-gso", "--data", gso_root, "--subset", "random:10:3")
    assert a.returncode == 0 and a.stdout == b.stdout and len(a.stdout.split()) == 10
    found = sorted(p.name for p in gso_root.iterdir() if (p / "meshes" / "model.obj").is_file())
    assert a.stdout.split() == [n for n in found if n in set(a.stdout.split())]  # in folder order
    full = _cli("ls", "objects", "--protocol", "gena3d-gso", "--data", gso_root, "--manifest", "gso")
    assert full.returncode == 2 and "cannot be evaluated as pinned" in full.stderr
    assert full.stderr.count("\n") == 1
    dev = _cli("ls", "objects", "--protocol", "gena3d-gso", "--data", gso_root, "--manifest", "gso-dev")
    assert dev.returncode == 0 and dev.stdout.split() == found
