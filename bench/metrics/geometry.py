"""Geometry metrics between point clouds: Chamfer L2 and COV / MMD over sets of shapes.

Definitions as PointFlow (metrics/evaluation_metrics.py) and LION: Chamfer L2 = mean squared
nearest-neighbour distance A->B plus B->A, no square root. With M[i, j] = CD(generated i,
reference j): COV = |{argmin_j M[i, j]}| / N_ref, MMD = mean_j min_i M[i, j]. Reported as
cov_cd x100 (%) and mmd_cd x1000 (per mille) by the report layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree


def chamfer_l2(a: np.ndarray, b: np.ndarray, tree_a: cKDTree | None = None,
               tree_b: cKDTree | None = None) -> float:
    """(N, 3), (M, 3) -> mean_a min_b |a-b|^2 + mean_b min_a |a-b|^2 (float64)."""
    tree_a = tree_a or cKDTree(a)
    tree_b = tree_b or cKDTree(b)
    d_ab, _ = tree_b.query(a, k=1, workers=-1)
    d_ba, _ = tree_a.query(b, k=1, workers=-1)
    return float(np.mean(d_ab**2) + np.mean(d_ba**2))


def distance_matrix(generated: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> np.ndarray:
    """(N_gen, N_ref) Chamfer L2 matrix, with each cloud's KD-tree built once."""
    tg = [cKDTree(g) for g in generated]
    tr = [cKDTree(r) for r in reference]
    m = np.empty((len(generated), len(reference)))
    for i, (g, a) in enumerate(zip(generated, tg)):
        for j, (r, b) in enumerate(zip(reference, tr)):
            m[i, j] = chamfer_l2(g, r, a, b)
    return m


def coverage_mmd(generated: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> tuple[float, float]:
    """(COV in [0, 1], MMD in squared units) of a generated set against a reference set."""
    if len(reference) == 0:
        raise ValueError("COV/MMD need at least one reference shape")
    if len(generated) == 0:
        return 0.0, float("nan")
    m = distance_matrix(generated, reference)
    cov = len(np.unique(m.argmin(axis=1))) / len(reference)
    mmd = float(m.min(axis=0).mean())
    return float(cov), mmd
