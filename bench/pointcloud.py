"""Point clouds for the geometry metrics (Amodal3R B.1b, GENA3D A.3).

The rig's depth maps are unprojected to the object frame and their union is reduced to 4,096
points by exact farthest point sampling from a seeded start index, for GT and generation alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

from bench.cameras import Camera


def unproject_depths(depth: np.ndarray, cameras: Sequence[Camera]) -> np.ndarray:
    """(V, H, W) camera-z depth maps (0 = empty) -> (M, 3) float32 world points, views in order."""
    if len(depth) != len(cameras):
        raise ValueError(f"{len(depth)} depth maps for {len(cameras)} cameras")
    pts = [c.unproject(d) for d, c in zip(depth, cameras)]
    return np.concatenate(pts).astype(np.float32) if pts else np.zeros((0, 3), np.float32)


@numba.njit(cache=True)
def _fps_exact(points: np.ndarray, n: int, start: int) -> np.ndarray:
    m = points.shape[0]
    dist = np.full(m, np.inf, dtype=np.float32)
    out = np.empty(n, dtype=np.int64)
    cur = start
    for k in range(n):
        out[k] = cur
        cx, cy, cz = points[cur, 0], points[cur, 1], points[cur, 2]
        best, best_i = np.float32(-1.0), 0
        for i in range(m):
            dx, dy, dz = points[i, 0] - cx, points[i, 1] - cy, points[i, 2] - cz
            d = dx * dx + dy * dy + dz * dz
            if d < dist[i]:
                dist[i] = d
            if dist[i] >= best:  # the last index wins exact ties, as fpsample's exact FPS
                best, best_i = dist[i], i
        cur = best_i
    return out


def farthest_point_sampling(points: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    """Exact FPS: indices (n,) of `points` (M, 3), beginning at `start`.

    Each next point maximizes the squared distance (float32) to the chosen set; exact ties go to
    the highest index, as `fpsample.fps_sampling` does, so the indices agree with it. If M < n,
    every index is returned once, then repeated cyclically, so clouds always have n points
    (a tiny cloud is penalized by the metrics, not dropped).
    """
    m = len(points)
    if m == 0:
        raise ValueError("cannot sample from an empty point cloud")
    if not 0 <= start < m:
        raise ValueError(f"start index {start} outside [0, {m})")
    if m <= n:
        first = _fps_exact(np.ascontiguousarray(points, np.float32), m, start)
        return np.resize(first, n)
    return _fps_exact(np.ascontiguousarray(points, np.float32), n, start)


def sample_point_cloud(depth: np.ndarray, cameras: Sequence[Camera], n: int,
                       seed: int) -> np.ndarray:
    """Depth maps of a rig -> (n, 3) float32 FPS point cloud; the start index is drawn from seed.

    Raises ValueError when the depth maps are empty (nothing was rendered)."""
    pts = unproject_depths(depth, cameras)
    if len(pts) == 0:
        raise ValueError("the rig renders no surface: empty point cloud")
    start = int(np.random.default_rng(seed).integers(len(pts)))
    return pts[farthest_point_sampling(pts, n, start)]
