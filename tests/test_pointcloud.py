"""bench.render.pointcloud: exact farthest point sampling and depth unprojection."""

from __future__ import annotations

import numpy as np
import pytest

from bench.inputs.cameras import camera_from_yaw_pitch
from bench.render.pointcloud import farthest_point_sampling, sample_point_cloud, unproject_depths

fpsample = pytest.importorskip("fpsample")


def _brute_force_fps(points: np.ndarray, n: int, start: int) -> np.ndarray:
    """Textbook FPS in numpy: squared float32 distances, the last index wins exact ties."""
    p = points.astype(np.float32)
    dist = np.full(len(p), np.inf, np.float32)
    out = [start]
    for _ in range(n - 1):
        d = p - p[out[-1]]
        dist = np.minimum(dist, (d * d).sum(1, dtype=np.float32))
        out.append(int(len(dist) - 1 - np.argmax(dist[::-1])))
    return np.asarray(out)


# (M, n, start); on these seeded clouds no two candidates ever tie in float32.
CASES = [(50, 1, 0), (50, 7, 49), (300, 64, 0), (1000, 100, 5), (5000, 512, 4321)]

def _check_against_fpsample(m, n, start):
    pts = np.random.default_rng(m + n).random((m, 3), dtype=np.float32)
    ours = farthest_point_sampling(pts, n, start)
    # reference: fpsample.fps_sampling (exact vanilla FPS); exact index equality
    ref = fpsample.fps_sampling(pts, n, start_idx=start)
    assert ours.shape == (n,)
    np.testing.assert_array_equal(ours, ref.astype(np.int64))


@pytest.mark.parametrize(("m", "n", "start"), CASES)
def test_fps_equals_fpsample(m, n, start):
    _check_against_fpsample(m, n, start)


def test_fps_equals_fpsample_protocol_size():
    # the protocol's size: 4,096 points from a 20,000-point cloud; two exact float32 ties occur
    _check_against_fpsample(20000, 4096, 17)


def test_fps_tie_rule_matches_fpsample():
    # points 0..10 on a line: after {0, 10, 5}, points 2, 3, 7, 8 tie (squared distance 4)
    pts = np.c_[np.arange(11.0), np.zeros(11), np.zeros(11)].astype(np.float32)
    ref = fpsample.fps_sampling(pts, 5, start_idx=0)  # fpsample 1.0.2: [0, 10, 5, 8, 3]
    np.testing.assert_array_equal(farthest_point_sampling(pts, 5, 0), ref.astype(np.int64))


@pytest.mark.parametrize(("m", "n", "start"), CASES)
def test_fps_equals_brute_force(m, n, start):
    pts = np.random.default_rng(2 * m + n).normal(size=(m, 3)).astype(np.float32)
    # reference: the numpy loop above; exact index equality
    np.testing.assert_array_equal(farthest_point_sampling(pts, n, start),
                                  _brute_force_fps(pts, n, start))


def test_fps_analytic_line_highest_index_wins_ties():
    # the rule farthest_point_sampling documents ("exact ties go to the highest index").
    # Points on a line at 0, 1, 2, ..., 10: from 0 the farthest is 10, then 5, then 2, 3, 7, 8
    # tie at squared distance 4 -> 8; then 3 (squared distance 4 from 5, 9 from 0) ties with 2 -> 3
    pts = np.c_[np.arange(11.0), np.zeros(11), np.zeros(11)].astype(np.float32)
    np.testing.assert_array_equal(farthest_point_sampling(pts, 5, 0), [0, 10, 5, 8, 3])


def test_fps_indices_distinct_when_enough_points():
    pts = np.random.default_rng(0).random((500, 3), dtype=np.float32)
    idx = farthest_point_sampling(pts, 200, 3)
    assert len(np.unique(idx)) == 200 and idx[0] == 3


@pytest.mark.parametrize(("m", "n"), [(5, 12), (7, 7), (1, 4), (10, 11)])
def test_fps_fewer_points_than_requested(m, n):
    pts = np.random.default_rng(m).random((m, 3), dtype=np.float32)
    idx = farthest_point_sampling(pts, n, start=m - 1)
    assert idx.shape == (n,)
    assert set(idx.tolist()) == set(range(m))  # every point covered
    first = idx[:m]
    assert len(np.unique(first)) == m and first[0] == m - 1
    np.testing.assert_array_equal(idx, np.resize(first, n))  # then repeated cyclically
    np.testing.assert_array_equal(first, _brute_force_fps(pts, m, m - 1))


def test_fps_empty_and_bad_start_raise():
    with pytest.raises(ValueError, match="empty"):
        farthest_point_sampling(np.zeros((0, 3), np.float32), 4)
    pts = np.random.default_rng(0).random((10, 3), dtype=np.float32)
    for bad in (-1, 10, 99):
        with pytest.raises(ValueError, match="start index"):
            farthest_point_sampling(pts, 4, bad)


# ---------------------------------------------------------------------------- unprojection


def _plane_depth(cam, res: int, height: float) -> np.ndarray:
    """Analytic camera-z depth of the world plane Z = height (0 where the ray misses it)."""
    k, r, t = cam.intrinsics, cam.extrinsics[:3, :3], cam.extrinsics[:3, 3]
    v, u = np.mgrid[0:res, 0:res]
    d_cam = np.stack([(u + 0.5 - k[0, 2]) / k[0, 0], (v + 0.5 - k[1, 2]) / k[1, 1],
                      np.ones((res, res))], -1)  # camera-z = 1 along each ray
    d_world = d_cam @ r  # R^T d, row-vector form
    c = -r.T @ t
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (height - c[2]) / d_world[..., 2]  # ray parameter = camera-z depth
    s[~np.isfinite(s) | (s <= 0) | (s > 10)] = 0
    return s


def test_unproject_plane_depth_lies_on_plane():
    res = 64
    cams = [camera_from_yaw_pitch(0, 30, 2.0, 40, res), camera_from_yaw_pitch(135, 50, 2.5, 40, res)]
    heights = [0.0, 0.0]
    depth = np.stack([_plane_depth(c, res, h) for c, h in zip(cams, heights)])
    counts = [(d > 0).sum() for d in depth]
    assert min(counts) > res * res // 4  # the plane fills a good part of each view

    pts = unproject_depths(depth, cams)
    assert pts.dtype == np.float32 and pts.shape == (sum(counts), 3)
    # reference: analytic plane Z = 0; tolerance 2e-6 (float32 output, |coordinates| < 10)
    np.testing.assert_allclose(pts[:, 2], 0.0, atol=2e-6)
    # views in order: the first view's points come first and match its own unprojection
    np.testing.assert_allclose(pts[: counts[0]], cams[0].unproject(depth[0]).astype(np.float32))


def test_unproject_fronto_parallel_plane():
    # constant depth 1.5 in a camera at yaw 0 pitch 0 (looking along world -Y): points on the
    # world plane Y = 2 - 1.5 = 0.5 (analytic; tolerance 1e-6, float32)
    res = 32
    cam = camera_from_yaw_pitch(0, 0, 2.0, 40, res)
    depth = np.full((1, res, res), 1.5)
    depth[0, :4] = 0  # some empty rows are skipped
    pts = unproject_depths(depth, [cam])
    assert len(pts) == res * (res - 4)
    np.testing.assert_allclose(pts[:, 1], 0.5, atol=1e-6)
    half = np.tan(np.deg2rad(20)) * 1.5  # the view spans +-half in X (and Z) at that depth
    assert np.abs(pts[:, 0]).max() < half and np.abs(pts[:, 0]).max() > 0.9 * half


def test_unproject_depths_count_mismatch_raises():
    cam = camera_from_yaw_pitch(0, 30, 2.0, 40, 8)
    with pytest.raises(ValueError, match="2 depth maps for 1 cameras"):
        unproject_depths(np.ones((2, 8, 8)), [cam])


def test_sample_point_cloud_seeded():
    res = 32
    cams = [camera_from_yaw_pitch(y, 30, 2.0, 40, res) for y in (0, 90)]
    depth = np.stack([_plane_depth(c, res, 0.0) for c in cams])
    a = sample_point_cloud(depth, cams, 256, seed=1)
    b = sample_point_cloud(depth, cams, 256, seed=1)
    assert a.shape == (256, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)  # same seed, same cloud (exact)
    pts = unproject_depths(depth, cams)
    start = int(np.random.default_rng(1).integers(len(pts)))
    np.testing.assert_array_equal(a, pts[_brute_force_fps(pts, 256, start)])
    with pytest.raises(ValueError, match="empty point cloud"):
        sample_point_cloud(np.zeros_like(depth), cams, 256, seed=1)
