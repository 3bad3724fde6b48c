"""Optional frame alignment of a generation to the GT: yaw search, then rigid ICP.

Some methods generate in their own canonical frame (e.g. a yaw that follows the input view, as
SAM 3D's pose output or a TRELLIS model fed an unposed crop), so their geometry metrics mix
shape error with frame error. Aligning to the GT removes the frame error but uses the GT, so
aligned numbers are a *different* metric: the run names the option (`alignment`), records it
and the transform in every record, and the report prints the aligned COV/MMD in their own
columns (`mmd_cd_aligned`, `cov_cd_aligned`) beside the unaligned ones, never instead of them.

Methods (on the 4,096-point rig clouds, in the object frame):
- "yaw": rotations about +Z (the up axis) by 360/steps degrees; keep the one with the smallest
  Chamfer L2 to the GT cloud (ties: the smaller angle, so identity wins when equal).
- "yaw+icp": the best yaw, then point-to-point ICP (rotation + translation, no scale: the frame
  normalization already fixes scale) with nearest neighbours from a KD-tree and the Kabsch /
  Umeyama solution (a reflection is never returned), until the mean squared distance improves
  by less than `tol` or after `iters` iterations. The result is accepted only when it lowers the
  Chamfer distance, so alignment never makes a generation worse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

ALIGNMENTS = ("none", "yaw", "yaw+icp")


@dataclass
class Alignment:
    method: str
    transform: np.ndarray  # (4, 4) applied to the generation: x -> R x + t
    chamfer_before: float
    chamfer_after: float

    def record(self) -> dict:
        return {"method": self.method, "transform": np.round(self.transform, 9).tolist(),
                "chamfer_before": self.chamfer_before, "chamfer_after": self.chamfer_after}


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Chamfer L2 (mean squared NN distance both ways), as bench.metrics.geometry."""
    da, _ = cKDTree(b).query(a)
    db, _ = cKDTree(a).query(b)
    return float(np.mean(da**2) + np.mean(db**2))


def rot_z(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def apply(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    return (points @ transform[:3, :3].T + transform[:3, 3]).astype(points.dtype)


def kabsch(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation R (det +1) and translation t minimizing sum ||R src + t - dst||^2."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    h = (src - mu_s).T @ (dst - mu_d)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return r, mu_d - r @ mu_s


def icp(src: np.ndarray, ref: np.ndarray, init: np.ndarray, iters: int = 50,
        tol: float = 1e-10) -> np.ndarray:
    """Point-to-point ICP from the 4x4 `init`; returns the 4x4 transform."""
    tree = cKDTree(ref)
    t = init.copy()
    prev = np.inf
    for _ in range(iters):
        moved = src @ t[:3, :3].T + t[:3, 3]
        dist, idx = tree.query(moved)
        err = float(np.mean(dist**2))
        if prev - err < tol:
            break
        prev = err
        r, tr = kabsch(src, ref[idx])
        t = np.eye(4)
        t[:3, :3], t[:3, 3] = r, tr
    return t


def align(cloud: np.ndarray, reference: np.ndarray, method: str = "yaw+icp",
          steps: int = 24) -> Alignment:
    """Align a generated cloud (N, 3) to the GT cloud (M, 3) with `method` (see module doc)."""
    if method not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {', '.join(ALIGNMENTS)}, got {method!r}")
    src, ref = np.asarray(cloud, np.float64), np.asarray(reference, np.float64)
    before = chamfer(src, ref)
    best = np.eye(4)
    if method == "none":
        return Alignment(method, best, before, before)
    best_cd = before
    for k in range(1, steps):
        t = np.eye(4)
        t[:3, :3] = rot_z(360.0 * k / steps)
        cd = chamfer(apply(t, src), ref)
        if cd < best_cd:
            best, best_cd = t, cd
    if method == "yaw+icp":
        t = icp(src, ref, best)
        cd = chamfer(apply(t, src), ref)
        if cd < best_cd:
            best, best_cd = t, cd
    return Alignment(method, best, before, best_cd)
