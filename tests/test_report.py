"""Leaderboard aggregation from records and stored point clouds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.metrics.geometry import coverage_mmd
from bench.records.store import Record, cloud_path, gt_cloud_path, record_path, write_array, write_record
from bench.report.aggregate import COLUMNS, aggregate, write_leaderboard
from bench.report.tables import format_table


def _populate(out, rng, n=4, failed=("o3",), protocol_hash="h"):
    gts, gens = [], []
    for i in range(n):
        oid = f"o{i}"
        gt = rng.random((64, 3)).astype(np.float32)
        write_array(gt_cloud_path(out, "p", oid), gt)
        gts.append(gt)
        if oid in failed:
            rec = Record(method="m", protocol="p", protocol_hash=protocol_hash, dataset="gso",
                         object_id=oid, views=1, status="failed", reason="boom")
        else:
            gen = gt + rng.normal(0, 0.05, gt.shape).astype(np.float32)
            cp = cloud_path(out, "p", "m", 1, oid)
            write_array(cp, gen)
            gens.append(gen)
            rec = Record(method="m", protocol="p", protocol_hash=protocol_hash, dataset="gso",
                         object_id=oid, views=1, status="ok", pointcloud=str(cp.relative_to(out)),
                         metrics={"psnr_masked": 20.0 + i, "ssim_masked": 0.5}, rasterizer="numpy")
        write_record(record_path(out, "p", "m", 1, oid), rec)
    return gts, gens


def test_aggregate_matches_direct_computation(tmp_path):
    rng = np.random.default_rng(0)
    gts, gens = _populate(tmp_path, rng)
    df = aggregate(tmp_path)
    assert list(df.columns) == COLUMNS and len(df) == 1
    row = df.iloc[0]
    cov, mmd = coverage_mmd(gens, gts)  # reference set: every object with a GT cloud
    assert row.n == 4 and row.success_rate == pytest.approx(0.75)
    assert row.psnr_masked == pytest.approx(21.0)  # mean of 20, 21, 22 (failure excluded)
    assert row.mmd_cd == pytest.approx(mmd * 1000) and row.cov_cd == pytest.approx(cov * 100)


def test_leaderboard_csv_round_trip(tmp_path):
    _populate(tmp_path, np.random.default_rng(1))
    path = write_leaderboard(tmp_path)
    back = pd.read_csv(path)
    assert back.method.tolist() == ["m"] and "MMD" in format_table(back)


def test_mixed_protocol_versions_refused(tmp_path):
    _populate(tmp_path, np.random.default_rng(2))
    write_record(record_path(tmp_path, "p", "m", 1, "x"),
                 Record(method="m", protocol="p", protocol_hash="other", dataset="gso",
                        object_id="x", views=1, status="failed"))
    with pytest.raises(ValueError, match="different protocol versions"):
        aggregate(tmp_path)


def test_empty_run_dir_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no records"):
        aggregate(tmp_path)


def test_pfid_reported_with_weights_and_missing_without(tmp_path, monkeypatch):
    # P-FID needs Point-E's pointnet.pt: with a file in that format (seeded random weights,
    # written here) the report computes it and records the file's sha256; without, NaN + reason
    import hashlib

    import torch

    from bench.metrics.pointnet import PointNet2ClsSSG

    rng = np.random.default_rng(3)
    out = tmp_path / "run"
    for i in range(3):
        gt = rng.normal(size=(1024, 3)).astype(np.float32)
        write_array(gt_cloud_path(out, "p", f"o{i}"), gt)
        cp = cloud_path(out, "p", "m", 1, f"o{i}")
        write_array(cp, gt + rng.normal(0, 0.05, gt.shape).astype(np.float32))
        write_record(record_path(out, "p", "m", 1, f"o{i}"),
                     Record(method="m", protocol="p", protocol_hash="h", dataset="gso",
                            object_id=f"o{i}", views=1, status="ok",
                            pointcloud=str(cp.relative_to(out)),
                            metrics={"psnr_masked": 1.0, "ssim_masked": 1.0}))
    monkeypatch.delenv("AMODAL_BENCH_POINTNET", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    row = aggregate(out).iloc[0]
    assert np.isnan(row.pfid_pointnet) and "pointnet.pt" in row.notes
    torch.manual_seed(0)
    weights = tmp_path / "pointnet.pt"
    torch.save({"model_state_dict": PointNet2ClsSSG().state_dict()}, weights)
    monkeypatch.setenv("AMODAL_BENCH_POINTNET", str(weights))
    row = aggregate(out).iloc[0]
    assert np.isfinite(row.pfid_pointnet) and row.pfid_pointnet > 0
    assert row.pointnet_sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert not isinstance(row.notes, str) or "pointnet.pt" not in row.notes


def test_merge_runs_refuses_duplicate_rows_and_non_runs(tmp_path):
    from bench.report.aggregate import merge_runs

    a, b = tmp_path / "a", tmp_path / "b"
    _populate(a, np.random.default_rng(4))
    _populate(b, np.random.default_rng(5))
    with pytest.raises(ValueError, match="several runs"):
        merge_runs([a, b])
    assert len(merge_runs([a])) == 1
    with pytest.raises(ValueError, match="not a run directory"):
        merge_runs([tmp_path / "empty"])
