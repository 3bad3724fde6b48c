"""bench.metrics.alignment: yaw search and ICP recover known rigid transforms; never make things worse."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from bench.metrics.alignment import align, apply, chamfer, kabsch, rot_z


def _shape(n=3000, seed=0):
    """An asymmetric point set (an L of boxes), so the yaw is identifiable."""
    rng = np.random.default_rng(seed)
    a = rng.uniform([-0.4, -0.1, -0.2], [0.4, 0.1, 0.2], size=(n // 2, 3))
    b = rng.uniform([0.2, 0.1, -0.2], [0.4, 0.4, 0.0], size=(n - n // 2, 3))
    return np.concatenate([a, b])


def test_kabsch_recovers_rotation_and_translation():
    x = _shape(500)
    r = Rotation.from_euler("xyz", [10, -25, 70], degrees=True).as_matrix()
    t = np.array([0.05, -0.02, 0.1])
    r2, t2 = kabsch(x, x @ r.T + t)
    np.testing.assert_allclose(r2, r, atol=1e-10)
    np.testing.assert_allclose(t2, t, atol=1e-10)
    assert np.linalg.det(r2) == pytest.approx(1.0)


@pytest.mark.parametrize("yaw", [0.0, 45.0, 90.0, 165.0, 270.0])
def test_yaw_search_recovers_grid_yaw(yaw):
    ref = _shape()
    t = np.eye(4)
    t[:3, :3] = rot_z(yaw)
    gen = apply(t, ref)  # the generation is the GT turned by `yaw`
    a = align(gen, ref, "yaw", steps=24)
    assert a.chamfer_after == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(a.transform[:3, :3], rot_z(-yaw), atol=1e-9)
    if yaw == 0.0:
        np.testing.assert_array_equal(a.transform, np.eye(4))


def test_yaw_plus_icp_recovers_off_grid_pose():
    ref = _shape(4096, seed=1)
    t = np.eye(4)
    t[:3, :3] = rot_z(100.0) @ Rotation.from_euler("x", 3, degrees=True).as_matrix()
    t[:3, 3] = [0.03, -0.02, 0.01]
    gen = apply(t, _shape(4096, seed=2))  # a different sample of the same shape, moved
    a = align(gen, ref, "yaw+icp")
    assert a.chamfer_after < 0.1 * a.chamfer_before
    # the recovered transform undoes the pose: R_a R_t ~ I
    np.testing.assert_allclose(a.transform[:3, :3] @ t[:3, :3], np.eye(3), atol=0.02)
    assert chamfer(apply(a.transform, gen), ref) == pytest.approx(a.chamfer_after)


def test_alignment_never_worsens_and_none_is_identity():
    rng = np.random.default_rng(3)
    gen, ref = rng.normal(size=(800, 3)), rng.normal(size=(900, 3))
    for method in ("none", "yaw", "yaw+icp"):
        a = align(gen, ref, method)
        assert a.chamfer_after <= a.chamfer_before
    assert np.array_equal(align(gen, ref, "none").transform, np.eye(4))
    with pytest.raises(ValueError, match="alignment must be one of"):
        align(gen, ref, "procrustes")
    rec = align(gen, ref, "yaw").record()
    assert rec["method"] == "yaw" and len(rec["transform"]) == 4
