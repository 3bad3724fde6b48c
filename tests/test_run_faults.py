"""Faults during a run are records of the right kind, never the end of the run (trust issue,
items 8, 9, 13, 15, 20, 7). Real runs on real GSO objects, real files; a harness fault is made
real by putting a file where the run must create a folder."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SMALL_GSO_OBJECT, one_view_protocol

from bench.records.store import load_records
from bench.run.runner import RunConfig, run

GOOD = SMALL_GSO_OBJECT
FLAT = "Flat_Triangle"  # `v 0 0 0 / v 1 0 0 / f 1 2 2`: loads, renders nothing


@pytest.fixture
def data(gso_root, tmp_path) -> Path:
    root = tmp_path / "data"
    (root / FLAT / "meshes").mkdir(parents=True)
    (root / FLAT / "meshes" / "model.obj").write_text("v 0 0 0\nv 1 0 0\nf 1 2 2\n")
    (root / GOOD).symlink_to(gso_root / GOOD)
    return root


def _config(tmp_path, data, **kw) -> RunConfig:
    base = dict(out=str(tmp_path / "run"), protocol=one_view_protocol(tmp_path), data=str(data),
                methods=["oracle", "visible"], jobs=1, cache=str(tmp_path / "cache"), sheets=0,
                object_ids=[FLAT, GOOD])
    return RunConfig(**{**base, **kw})


def _by(records, object_id):
    return {r.method: r for r in records if r.object_id == object_id}


def test_a_mesh_that_renders_nothing_is_an_input_failure_and_the_run_goes_on(tmp_path, data):
    """Item 13: it ended the whole run (rc 2, "the rig renders no surface", no record)."""
    board = run(_config(tmp_path, data), progress=False)
    records = load_records(tmp_path / "run")
    flat, good = _by(records, FLAT), _by(records, GOOD)
    assert set(flat) == set(good) == {"oracle", "visible"}
    for r in flat.values():
        assert r.status == "failed" and r.failure == "input", r
        assert "ground truth cannot be measured" in r.reason and "no surface" in r.reason
    assert all(r.status == "ok" and r.failure == "" for r in good.values())
    assert Path(board).is_file()


def test_records_hold_the_mesh_sha256(tmp_path, data, gso_root):
    """Item 15: records held no mesh hash, so a tampered mesh under a pinned id went unseen."""
    run(_config(tmp_path, data, object_ids=[GOOD], methods=["oracle"]), progress=False)
    (record,) = load_records(tmp_path / "run")
    expected = hashlib.sha256((gso_root / GOOD / "meshes" / "model.obj").read_bytes()).hexdigest()
    assert record.mesh_sha256 == expected


def test_harness_error_is_not_a_method_failure_and_is_retried(tmp_path, data):
    """Item 8: an exception while measuring a generation (here: its feature folder cannot be
    created, a file stands in the way) was a failure of the method, kept forever by resume."""
    config = _config(tmp_path, data, object_ids=[GOOD], methods=["visible"])
    from bench.inputs.protocol import load_protocol

    blocker = tmp_path / "run" / "features" / load_protocol(config.protocol).name / "visible"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way")
    run(config, progress=False)
    (record,) = load_records(tmp_path / "run")
    assert record.status == "error" and record.failure == "harness"
    assert record.reason.startswith("harness: ") and "visible" in str(blocker)
    blocker.unlink()  # the fault is gone: a resume retries the item
    run(config, progress=False)
    (record,) = load_records(tmp_path / "run")
    assert record.status == "ok" and record.failure == ""


class _NoMesh:
    name = "no-mesh"

    @classmethod
    def availability(cls):
        return True, ""

    def generate(self, case):
        from bench.methods.adapter import Generation

        return Generation(None, {"reason": "gave up"})


def test_failed_generation_contributes_background_features(tmp_path, data, monkeypatch):
    """Item 4 (run side): a failed generation's record carries the image features of a
    background-only rig render, equal to the features of a render of nothing."""
    import bench.methods.registry as registry

    monkeypatch.setitem(registry.REGISTRY, "no-mesh", "tests.test_run_faults:_NoMesh")
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    run(_config(tmp_path, data, object_ids=[GOOD], methods=["no-mesh"]), progress=False)
    (record,) = load_records(tmp_path / "run")
    assert record.status == "failed" and record.failure == "method" and record.reason == "gave up"
    assert record.meta["features_of"] == "background" and "mobilenet" in record.features
    feats = np.load(tmp_path / "run" / record.features["mobilenet"])["features"]
    from bench.inputs.protocol import load_protocol
    from bench.run.appearance import AppearanceConfig, AppearanceSuite

    protocol = load_protocol(_config(tmp_path, data).protocol)
    rig = protocol.eval_rig()
    white = np.ones((len(rig), rig.cameras[0].height, rig.cameras[0].width, 3), np.float32)
    suite = AppearanceSuite(AppearanceConfig(fid_extractors=["mobilenet"], lpips_nets=[],
                                             clip_score=False))
    np.testing.assert_allclose(feats, suite.features("mobilenet", white), rtol=1e-5, atol=1e-6)
    # ... and they enter the set-level FID: one generated set of 4 background images
    import pandas as pd

    board = pd.read_csv(tmp_path / "run" / "leaderboard.csv")
    assert board.loc[0, "success_rate"] == 0 and board.loc[0, "n_images"] == len(rig)
    assert np.isfinite(board.loc[0, "fid_mobilenet"]) and "1 failed generation(s)" in board.loc[0, "notes"]


def test_contact_sheet_after_a_resume_shows_every_setting(tmp_path, data, gso_root):
    """Item 20: after a resume the sheet showed only the settings done after the restart."""
    from PIL import Image

    config = _config(tmp_path, data, object_ids=[GOOD], methods=["visible"], sheets=1,
                     protocol="amodal3r-gso+raster-unlit")
    run(config, progress=False)
    sheet = tmp_path / "run" / "sheets" / "amodal3r-gso+raster-unlit" / f"{GOOD}.png"
    full = np.asarray(Image.open(sheet))
    # a killed run: the 4-view setting's record is gone and the sheet too; resume redoes it
    for rec in (tmp_path / "run" / "records").rglob("*.json"):
        if "views-4" in str(rec):
            rec.unlink()
    sheet.unlink()
    run(config, progress=False)
    assert np.array_equal(np.asarray(Image.open(sheet)), full)


def test_gt_cache_key_changes_with_the_code(tmp_path, monkeypatch):
    """Item 7: the key held bench.__version__, a constant; now the source of the GT code."""
    from bench.run import gtcache

    src = Path(gtcache.__file__).parent.parent / "render" / "pointcloud.py"
    copy = tmp_path / "pkg" / "pointcloud_copy.py"
    copy.parent.mkdir()
    shutil.copy(src, copy)
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    before = gtcache.code_hash(("pointcloud_copy",))
    assert before == gtcache.code_hash(("pointcloud_copy",))
    copy.write_text(copy.read_text().replace("ties", "ties "))  # any edit, even a comment
    assert gtcache.code_hash(("pointcloud_copy",)) != before
    assert "bench.render.pointcloud" in gtcache.GT_CODE and "bench.render.shading" in gtcache.GT_CODE
    assert json.dumps(gtcache.GT_CODE_HASH) and len(gtcache.GT_CODE_HASH) == 64


def test_a_changed_mesh_never_reuses_a_gt_cache_entry(tmp_path, gso_root):
    """Item 9: the GT cache is keyed by the mesh's content: one changed vertex is a new entry
    (and a new GT cloud), the unchanged mesh hits its entry."""
    from dataclasses import replace

    from bench.inputs.dataset import open_dataset
    from bench.inputs.protocol import load_protocol
    from bench.run.appearance import AppearanceConfig, AppearanceSuite
    from bench.run.gtcache import _gt_side

    protocol = load_protocol("amodal3r-gso+raster-unlit")
    asset = open_dataset("gso", gso_root).load(GOOD)
    moved = asset.mesh.vertices.copy()
    moved[0] += 0.01
    changed = replace(asset, mesh=replace(asset.mesh, vertices=moved))
    suite = AppearanceSuite(AppearanceConfig(fid_extractors=[], lpips_nets=[], clip_score=False))
    config = RunConfig(out=str(tmp_path / "run"), protocol="amodal3r-gso+raster-unlit", methods=["oracle"],
                       cache=str(tmp_path / "c"))
    gt_a, _ = _gt_side(config, protocol, asset, "gso", "moderngl", suite)
    entries = sorted((tmp_path / "c" / "gt").iterdir())
    gt_b, _ = _gt_side(config, protocol, changed, "gso", "moderngl", suite)
    assert len(sorted((tmp_path / "c" / "gt").iterdir())) == len(entries) + 1
    _gt_side(config, protocol, asset, "gso", "moderngl", suite)  # a hit: nothing new
    assert len(sorted((tmp_path / "c" / "gt").iterdir())) == len(entries) + 1
    assert not np.array_equal(gt_a, gt_b)


def test_psnr_mean_over_objects_never_infinite_for_one_perfect_object():
    """Item 2: one identical view made a real method's mean PSNR infinite. Per object the PSNR
    comes from the pooled MSE (bench.run.measure); over objects, inf only if all are perfect."""
    from types import SimpleNamespace

    from bench.report.aggregate import PSNR_CAP, _mean_psnr

    recs = [SimpleNamespace(metrics={"psnr_masked": v}) for v in (np.inf, 20.0, 30.0)]
    value, note = _mean_psnr(recs)
    assert value == pytest.approx((PSNR_CAP + 20 + 30) / 3) and "1 object(s)" in note
    assert _mean_psnr(recs[:1]) == (float("inf"), "")  # the oracle stays visibly inf
    assert _mean_psnr(recs[1:]) == (25.0, "")


def test_pooled_psnr_of_an_object_is_finite_with_one_identical_view():
    """Item 2, per object: view 1 identical, view 2 off by 0.1 on its 50 masked pixels: the pooled
    MSE is 0.01 * 50 / 100 over 2 x 50 pixels -> 10 log10(1 / 0.005) dB (analytic)."""
    from bench.metrics.image import psnr_masked

    target = np.zeros((2, 10, 10, 3))
    pred = target.copy()
    pred[1] += 0.1
    masks = np.zeros((2, 10, 10), bool)
    masks[:, :5] = True
    pooled = psnr_masked(np.concatenate(list(pred)), np.concatenate(list(target)), np.concatenate(masks))
    assert pooled == pytest.approx(10 * np.log10(1 / 0.005), abs=1e-9)


def test_lion_box_normalization_is_a_protocol_option_reaching_the_report(tmp_path, gso_root):
    """Item 6: `pointcloud.normalization: lion_box` existed in coverage_mmd but could not be
    selected. Reference: coverage_mmd on the run's stored clouds with that normalization."""
    import pandas as pd
    import yaml

    from bench.metrics.geometry import coverage_mmd

    spec = yaml.safe_load(Path(one_view_protocol(tmp_path)).read_text())
    spec["pointcloud"]["normalization"] = "lion_box"
    proto = tmp_path / "lion.yaml"
    proto.write_text(yaml.safe_dump(spec))
    objs = [GOOD, "Room_Essentials_Salad_Plate_Turquoise"]
    board = pd.read_csv(run(RunConfig(out=str(tmp_path / "run"), protocol=str(proto), methods=["visible"],
                                      data=str(gso_root), jobs=1, cache=str(tmp_path / "c"), sheets=0,
                                      object_ids=objs), progress=False))
    out = tmp_path / "run"
    recs = load_records(out)
    gens = [np.load(out / r.pointcloud) for r in recs]
    refs = [np.load(out / "pointclouds" / "amodal3r-gso" / "gt" / f"{o}.npy") for o in sorted(objs)]
    cov, mmd = coverage_mmd(gens, refs, normalization="lion_box")
    raw_cov, raw_mmd = coverage_mmd(gens, refs)
    assert board.loc[0, "mmd_cd"] == pytest.approx(mmd * 1000, rel=1e-5)
    assert board.loc[0, "cov_cd"] == pytest.approx(cov * 100, rel=1e-5)
    assert abs(mmd - raw_mmd) > 1e-6  # the option changes the number
    assert "lion_box normalized" in board.loc[0, "notes"]
