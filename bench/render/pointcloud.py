"""Point clouds for the geometry metrics (Amodal3R B.1b, GENA3D A.3).

The rig's depth maps are unprojected to the object frame and their union is reduced to 4,096
points by exact farthest point sampling from a seeded start index, for GT and generation alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

from bench.inputs.cameras import Camera


def unproject_depths(depth: np.ndarray, cameras: Sequence[Camera]) -> np.ndarray:
    """(V, H, W) camera-z depth maps (0 = empty) -> (M, 3) float32 world points, views in order."""
    if len(depth) != len(cameras):
        raise ValueError(f"{len(depth)} depth maps for {len(cameras)} cameras")
    pts = [c.unproject(d) for d, c in zip(depth, cameras)]
    return np.concatenate(pts).astype(np.float32) if pts else np.zeros((0, 3), np.float32)


SAMPLERS = ("fps", "fps_bucket")
LEAF = 256  # points per bucket of the pruned exact FPS (measured: 256-512 fastest)


def _spread_bits(v: np.ndarray) -> np.ndarray:
    """Spread the low 10 bits of v so two zero bits follow each (3D Morton interleave)."""
    v = v.astype(np.uint64) & np.uint64(0x3FF)
    for shift, mask in ((16, 0x030000FF), (8, 0x0300F00F), (4, 0x030C30C3), (2, 0x09249249)):
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


def _morton_order(points: np.ndarray) -> np.ndarray:
    """Permutation sorting points along a Z-order curve of a 1024^3 grid over their bbox."""
    lo = points.min(0)
    ext = float((points.max(0) - lo).max()) or 1.0
    q = np.minimum(((points - lo) / ext * 1024).astype(np.int64), 1023)
    code = _spread_bits(q[:, 0]) | (_spread_bits(q[:, 1]) << np.uint64(1)) | (
        _spread_bits(q[:, 2]) << np.uint64(2))
    return np.argsort(code, kind="stable")


@numba.njit(cache=True, boundscheck=False)
def _fps_pruned(pts, orig, starts, bbmin, bbmax, n, start_pos):
    """Exact FPS over points grouped in buckets (contiguous runs of pts with bounding boxes).

    A bucket is rescanned only when the new sample could lower some point's distance in it:
    the squared distance from the sample to the bucket's box is a lower bound for all its
    points, so when that bound (shrunk by 1e-5 relative, against float rounding) exceeds the
    bucket's largest current distance, nothing in it can change. Distances are float32 computed
    as in the plain loop, and ties go to the highest original index, so the result equals the
    plain O(n M) loop (and fpsample's exact FPS) index for index.
    """
    nb = starts.shape[0] - 1
    dist = np.full(pts.shape[0], np.inf, dtype=np.float32)
    bmax = np.full(nb, np.inf, dtype=np.float32)  # largest current distance in each bucket
    bpos = starts[:-1].copy()  # where it is (highest original index among equals)
    out = np.empty(n, dtype=np.int64)
    cur = start_pos
    for k in range(n):
        out[k] = orig[cur]
        c0, c1, c2 = pts[cur, 0], pts[cur, 1], pts[cur, 2]
        best, best_orig, best_pos = np.float32(-1.0), -1, 0
        for b in range(nb):
            rescan = bmax[b] == np.inf
            if not rescan:
                lb = 0.0
                for a in range(3):
                    cc = c0 if a == 0 else (c1 if a == 1 else c2)
                    g = max(bbmin[b, a] - cc, cc - bbmax[b, a])
                    if g > 0:
                        lb += g * g
                rescan = lb * (1.0 - 1e-5) <= bmax[b]
            if rescan:
                mm, mo, mp = np.float32(-1.0), -1, starts[b]
                for i in range(starts[b], starts[b + 1]):
                    dx, dy, dz = pts[i, 0] - c0, pts[i, 1] - c1, pts[i, 2] - c2
                    d = dx * dx + dy * dy + dz * dz
                    if d < dist[i]:
                        dist[i] = d
                    di = dist[i]
                    if di > mm or (di == mm and orig[i] > mo):
                        mm, mo, mp = di, orig[i], i
                bmax[b], bpos[b] = mm, mp
            if bmax[b] > best or (bmax[b] == best and orig[bpos[b]] > best_orig):
                best, best_orig, best_pos = bmax[b], orig[bpos[b]], bpos[b]
        cur = best_pos
    return out


def _fps_exact(points: np.ndarray, n: int, start: int) -> np.ndarray:
    order = _morton_order(points)
    pts = np.ascontiguousarray(points[order])
    starts = np.r_[np.arange(0, len(points), LEAF), len(points)].astype(np.int64)
    bbmin = np.minimum.reduceat(pts, starts[:-1], axis=0).astype(np.float64)
    bbmax = np.maximum.reduceat(pts, starts[:-1], axis=0).astype(np.float64)
    position = np.empty(len(points), np.int64)
    position[order] = np.arange(len(points))
    return _fps_pruned(pts, order.astype(np.int64), starts, bbmin, bbmax, n, int(position[start]))


def farthest_point_sampling(points: np.ndarray, n: int, start: int = 0,
                            method: str = "fps") -> np.ndarray:
    """Farthest point sampling: indices (n,) of `points` (M, 3), beginning at `start`.

    method "fps" (default): exact. Each next point maximizes the squared distance (float32) to
    the chosen set; exact ties go to the highest index, as `fpsample.fps_sampling` does, so the
    indices agree with it. Buckets of points are skipped when they provably cannot change
    (see _fps_pruned), which makes 4,096 of 500k points take well under a second.
    method "fps_bucket": fpsample's approximate bucket FPS (`bucket_fps_kdline_sampling`, h=7),
    faster but not exact; a named option, recorded in the protocol.
    If M < n, every index is returned once, then repeated cyclically, so clouds always have n
    points (a tiny cloud is penalized by the metrics, not dropped).
    """
    if method not in SAMPLERS:
        raise ValueError(f"unknown sampler {method!r}; valid: {', '.join(SAMPLERS)}")
    m = len(points)
    if m == 0:
        raise ValueError("cannot sample from an empty point cloud")
    if not 0 <= start < m:
        raise ValueError(f"start index {start} outside [0, {m})")
    pts = np.ascontiguousarray(points, np.float32)
    if not np.isfinite(pts).all():
        raise ValueError("point cloud has NaN or infinite coordinates")
    k = min(m, n)
    if method == "fps_bucket" and k > 1:
        import fpsample

        first = np.asarray(fpsample.bucket_fps_kdline_sampling(pts, k, h=7, start_idx=start),
                           dtype=np.int64)
    else:
        first = _fps_exact(pts, k, start)
    return first if k == n else np.resize(first, n)


def sample_point_cloud(depth: np.ndarray, cameras: Sequence[Camera], n: int,
                       seed: int, method: str = "fps") -> np.ndarray:
    """Depth maps of a rig -> (n, 3) float32 FPS point cloud; the start index is drawn from seed.

    Raises ValueError when the depth maps are empty (nothing was rendered)."""
    pts = unproject_depths(depth, cameras)
    if len(pts) == 0:
        raise ValueError("the rig renders no surface: empty point cloud")
    start = int(np.random.default_rng(seed).integers(len(pts)))
    return pts[farthest_point_sampling(pts, n, start, method)]
