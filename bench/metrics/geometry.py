"""Geometry metrics between point clouds: Chamfer distances and COV / MMD over sets of shapes.

Definitions as PointFlow (metrics/evaluation_metrics.py) and LION: Chamfer L2 = mean squared
nearest-neighbour distance A->B plus B->A, no square root. With M[i, j] = CD(generated i,
reference j): COV = |{argmin_j M[i, j]}| / N_ref, MMD = mean_j min_i M[i, j]. Reported as
cov_cd x100 (%) and mmd_cd x1000 (per mille) by the report layer.

Speed without approximation: COV and MMD need only each row's argmin and each column's min of
M. Cheap exact bounds on every CD (from a 256-point cover of each cloud, see `_bounds`) rule out
pairs that cannot be a row or column minimum; the exact CD is computed only for the rest, with
the same function as a full matrix would use, so COV and MMD are identical to brute force.

The torch route (brute force with torch.cdist, for CUDA machines) works in distance blocks of at
most TORCH_MAX_BYTES (256 MiB), so its memory does not grow with the reference set; which route
backend="auto" takes is decided by measurement (see coverage_mmd).

Across ranks (torchrun, several GPUs or nodes): a RowPartition (bench.metrics.distributed), given
to coverage_mmd or set with `row_partition`, splits the generated rows over the ranks; each
computes its rows' bounds and exact entries, and the result is bitwise that of one process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from bench.metrics.distributed import RowPartition, agree, column_min, combine, current_partition

NORMALIZATIONS = ("none", "lion_box")
BACKENDS = ("auto", "kdtree", "torch")
COVER = 256  # representatives per cloud for the bounds


def _nn(tree: cKDTree, points: np.ndarray) -> np.ndarray:
    return tree.query(points, k=1, workers=-1)[0]


def chamfer_l2(a: np.ndarray, b: np.ndarray, tree_a: cKDTree | None = None,
               tree_b: cKDTree | None = None) -> float:
    """(N, 3), (M, 3) -> mean_a min_b |a-b|^2 + mean_b min_a |a-b|^2 (float64, PointFlow)."""
    _check_cloud(a)
    _check_cloud(b)
    d_ab = _nn(tree_b or cKDTree(b), a)
    d_ba = _nn(tree_a or cKDTree(a), b)
    return float(np.mean(d_ab**2) + np.mean(d_ba**2))


def chamfer_l1(a: np.ndarray, b: np.ndarray) -> float:
    """(N, 3), (M, 3) -> mean_a min_b |a-b| + mean_b min_a |a-b| (Euclidean, not squared).

    The one L1 Chamfer of bench; bench.metrics.parts.chamfer(a, b, "l1", "sum") gives the same
    number (same nearest-neighbour distances, summed in the same order)."""
    _check_cloud(a)
    _check_cloud(b)
    return float(np.mean(_nn(cKDTree(b), a)) + np.mean(_nn(cKDTree(a), b)))


def _check_cloud(p: np.ndarray) -> None:
    if p.ndim != 2 or p.shape[1] != 3 or len(p) == 0:
        raise ValueError(f"a point cloud must be a non-empty (N, 3) array, got shape {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("point cloud has NaN or infinite coordinates")


def lion_box_normalize(p: np.ndarray) -> np.ndarray:
    """LION's per-shape normalization (utils/eval_helper.py norm_box): bbox to [-1, 1], x 0.5."""
    lo, hi = p.min(0), p.max(0)
    scale = float((hi - lo).max()) / 2 or 1.0
    return ((p - (lo + hi) / 2) / scale * 0.5).astype(np.float64)


@dataclass
class _Cloud:
    """A cloud with what the bounds need: its KD-tree, a cover of representatives and the
    distance of every point to its representative."""

    points: np.ndarray
    tree: cKDTree
    reps: np.ndarray  # (R, 3)
    rep_of: np.ndarray  # (N,) index of each point's nearest representative
    radius: np.ndarray  # (N,) distance of each point to it

    @classmethod
    def build(cls, p: np.ndarray) -> _Cloud:
        _check_cloud(p)
        p = np.asarray(p, np.float64)
        # FPS-ordered clouds (ours) make their first points a good cover; any subset is valid
        reps = p[:COVER]
        radius, rep_of = cKDTree(reps).query(p, k=1)
        return cls(p, cKDTree(p), reps, rep_of, radius)


def _directed_bounds(sources: list[_Cloud], target: _Cloud) -> tuple[np.ndarray, np.ndarray]:
    """For every source A, bounds on mean_a d(a, T)^2 from A's representatives only:
    d(a', T) - |a - a'| <= d(a, T) <= d(a', T) + |a - a'| (triangle inequality).
    One KD query for the representatives of all sources. Returns (lower, upper), (len(sources),)."""
    q_all = _nn(target.tree, np.concatenate([s.reps for s in sources]))
    shapes = {(len(s.reps), len(s.points)) for s in sources}
    if len(shapes) == 1:  # equal-sized clouds (the harness's case): one vectorized pass
        n_reps, _ = shapes.pop()
        q = np.take_along_axis(q_all.reshape(len(sources), n_reps),
                               np.stack([s.rep_of for s in sources]), axis=1)
        radius = np.stack([s.radius for s in sources])
        lo = np.maximum(q - radius, 0.0)
        hi = q + radius
        return (lo * lo).mean(1), (hi * hi).mean(1)
    lower, upper = np.empty(len(sources)), np.empty(len(sources))
    offset = 0
    for k, src in enumerate(sources):
        q = q_all[offset:offset + len(src.reps)][src.rep_of]
        offset += len(src.reps)
        lo = np.maximum(q - src.radius, 0.0)
        hi = q + src.radius
        lower[k], upper[k] = np.mean(lo * lo), np.mean(hi * hi)
    return lower, upper


def chamfer_bounds(gens: list[_Cloud], refs: list[_Cloud]) -> tuple[np.ndarray, np.ndarray]:
    """(N_gen, N_ref) lower and upper bounds on every Chamfer L2 (exact, up to rounding)."""
    lower = np.zeros((len(gens), len(refs)))
    upper = np.zeros_like(lower)
    for j, r in enumerate(refs):  # generated -> reference term
        lo, hi = _directed_bounds(gens, r)
        lower[:, j] += lo
        upper[:, j] += hi
    for i, g in enumerate(gens):  # reference -> generated term
        lo, hi = _directed_bounds(refs, g)
        lower[i] += lo
        upper[i] += hi
    return lower, upper


TORCH_MAX_BYTES = 1 << 28  # 256 MiB: the largest distance block the torch route allocates


def _block_shape(n_items: int, n_rows: int, n_cols: int, itemsize: int,
                 max_bytes: int | None) -> tuple[int, int, int]:
    """(items, rows, cols) of a distance block with items * rows * cols * itemsize <= max_bytes,
    filling columns first, then rows, then items; at least one of each (one distance).
    max_bytes None: everything at once (no cap)."""
    if max_bytes is None:
        return n_items, n_rows, n_cols
    budget = max(1, max_bytes // itemsize)  # distances per block
    cols = min(n_cols, budget)
    rows = min(n_rows, max(1, budget // cols))
    return min(n_items, max(1, budget // (rows * cols))), rows, cols


def _chamfer_to_stack(g, refs, max_bytes: int | None):
    """Chamfer L2 of one cloud g (n, 3) to every cloud of a stack refs (K, m, 3): a (K,) tensor.

    Squared distances in blocks of at most `max_bytes` (K' references x n' rows x m' columns);
    each point's nearest distance is the running minimum over the blocks, which is exact (a
    minimum does not depend on the order), and the means are taken over the complete (K', n)
    and (K', m) minima, as without blocks."""
    import torch

    n_refs, m = refs.shape[:2]
    n = g.shape[0]
    kb, rb, cb = _block_shape(n_refs, n, m, g.element_size(), max_bytes)
    out = []
    for k0 in range(0, n_refs, kb):
        r = refs[k0:k0 + kb]
        row_min = g.new_full((len(r), n), float("inf"))  # each point of g: nearest in r
        col_min = g.new_full((len(r), m), float("inf"))  # each point of r: nearest in g
        for i0 in range(0, n, rb):
            gi = g[i0:i0 + rb].expand(len(r), -1, -1)
            for j0 in range(0, m, cb):
                # as PointFlow's distChamfer: |a|^2 + |b|^2 - 2ab (cdist's mm route), squared
                d = torch.cdist(gi, r[:, j0:j0 + cb], compute_mode="use_mm_for_euclid_dist").square_()
                row_min[:, i0:i0 + rb] = torch.minimum(row_min[:, i0:i0 + rb], d.amin(2))
                col_min[:, j0:j0 + cb] = torch.minimum(col_min[:, j0:j0 + cb], d.amin(1))
                del d
        out.append(row_min.mean(1) + col_min.mean(1))
    return torch.cat(out)


def chamfer_matrix_torch(generated: Sequence[np.ndarray], reference: Sequence[np.ndarray],
                         device: str = "cpu", dtype=None,
                         max_bytes: int | None = TORCH_MAX_BYTES) -> np.ndarray:
    """Brute-force (N_gen, N_ref) Chamfer L2 matrix with torch.cdist, in the style of PointFlow's
    reference (every pairwise distance by the |a|^2 + |b|^2 - 2ab expansion, as PointFlow's
    distChamfer, no tree). float64 by default so it agrees with the KD-tree path to rounding.
    The route for CUDA machines, and the reference our tests and benchmark use.

    Memory is bounded: for each generated cloud, the references (grouped by point count) are
    taken in blocks whose distance tensor holds at most `max_bytes` (default TORCH_MAX_BYTES =
    256 MiB: two 4,096 x 4,096 float64 pairs), and a single pair larger than that is split over
    points of both clouds, down to one distance. Peak memory is about max_bytes plus the clouds
    themselves, whatever N_ref is. max_bytes=None takes all references of a point count at once
    (N_ref x n x m distances: 64 x 4096 x 4096 x 8 B = 8.6 GB for 64 references, the old
    allocation); kept for tests.
    """
    import torch

    dtype = dtype or torch.float64
    groups: dict[int, list[int]] = {}  # point count -> reference indices
    for j, r in enumerate(reference):
        groups.setdefault(len(r), []).append(j)
    stacks = {n: torch.stack([torch.as_tensor(np.asarray(reference[j]), dtype=dtype, device=device)
                              for j in js]) for n, js in groups.items()}
    out = np.empty((len(generated), len(reference)))
    for i, g in enumerate(generated):
        gt = torch.as_tensor(np.asarray(g), dtype=dtype, device=device)
        for n, js in groups.items():
            out[i, js] = _chamfer_to_stack(gt, stacks[n], max_bytes).cpu().numpy()
    return out


def coverage_mmd(generated: Sequence[np.ndarray], reference: Sequence[np.ndarray],
                 normalization: str = "none", prune: bool = True,
                 backend: str = "auto", max_bytes: int | None = TORCH_MAX_BYTES,
                 partition: RowPartition | None = None) -> tuple[float, float]:
    """(COV in [0, 1], MMD in squared units) of a generated set against a reference set.

    normalization: "none" (PointFlow) or "lion_box" (LION's per-shape box normalization).
    prune: skip pairs that provably are neither a row argmin nor a column min (exact; False
    computes the full matrix, for testing).
    backend: both routes are exact and agree (same COV, MMD to rounding, ~1e-15 relative):
      "kdtree": CPU, KD-trees with exact pruning; memory O(total points + N_gen x N_ref).
      "torch": brute force with torch.cdist (chamfer_matrix_torch), on CUDA when available;
        memory bounded by `max_bytes` per distance block (see chamfer_matrix_torch).
      "auto": the faster of the two, by measurement (`auto_backend`):
        - no CUDA device: "kdtree", by measurement (`python -m bench.perf.covmmd_benchmark`,
          64 x 64 clouds of 4,096 points, float64, 2 shared CPU cores): KD route with pruning
          15.2 s; torch route on the CPU (chunked, 256 MiB blocks) 1,098 s (extrapolated from
          2 of 64 rows against all 64 references), 72x slower; entries agree to 4e-15. Brute
          force is O(n m) per pair against O((n + m) log m), so no probe is run on CPUs.
        - a CUDA device: the first "auto" call of the process times both routes on a probe
          (8 x 8 clouds of 4,096 points, `_probe_backends`) and keeps the faster for the
          process (`auto_backend`); the probe's KD half takes 1.6-1.8 s on the 2 cores here. Not
          measured on a GPU: this machine has none.
    max_bytes: the torch route's cap on one distance block (None: no cap).
    partition: this rank's share of the generated rows (default: the one set by
      `bench.metrics.distributed.row_partition`, else one process). Collective: every rank
      calls with the same sets and gets the same (COV, MMD), == one process's; the route is
      rank 0's; torch route: each rank its rows. KD route: a rank bounds only its rows (1/world
      of the bounds' O(N_gen N_ref) KD queries, which dominate at scale; bounds of every row on
      every rank would not shrink) and exchanges its (N_ref,) column minima of the upper bounds,
      whose minimum is one process's column bound (bitwise), so the ranks compute exactly the
      pairs one process does; then row argmins and column minima are gathered (combine).
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}; valid: {', '.join(NORMALIZATIONS)}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if len(reference) == 0:
        raise ValueError("COV/MMD need at least one reference shape")
    if len(generated) == 0:
        return 0.0, float("nan")
    for p in list(generated) + list(reference):  # on every rank, before any exchange
        _check_cloud(np.asarray(p))
    part = partition or current_partition()
    n_gen, n_ref = len(generated), len(reference)
    generated = [generated[i] for i in (part.rows(n_gen) if part else range(n_gen))]
    if normalization == "lion_box":
        generated = [lion_box_normalize(np.asarray(g, np.float64)) for g in generated]
        reference = [lion_box_normalize(np.asarray(r, np.float64)) for r in reference]
    if backend == "auto":
        backend = auto_backend() if part is None or part.rank == 0 else backend
    if part is not None:
        backend = agree(part, backend, n_gen, n_ref)
    if backend == "torch":
        m = chamfer_matrix_torch(generated, reference, "cuda" if _cuda_available() else "cpu",
                                 max_bytes=max_bytes)
        return _cov_mmd_from_matrix(m) if part is None else combine(part, m, n_ref)
    gens = [_Cloud.build(g) for g in generated]
    refs = [_Cloud.build(r) for r in reference]
    m = np.full((len(gens), len(refs)), np.inf)
    if prune and n_gen * n_ref > 1:
        lower, upper = chamfer_bounds(gens, refs) if gens else (m, m)
        col_upper = upper.min(0, initial=np.inf)
        if part is not None:
            col_upper = column_min(part, col_upper)
        slack = 1e-9  # bounds are exact up to rounding
        row_best = upper.min(1, keepdims=True) * (1 + slack) + 1e-15
        col_best = col_upper * (1 + slack) + 1e-15
        need = (lower * (1 - slack) <= row_best) | (lower * (1 - slack) <= col_best)
    else:
        need = np.ones_like(m, bool)
    for i, j in zip(*np.nonzero(need)):
        m[i, j] = chamfer_l2(gens[i].points, refs[j].points, gens[i].tree, refs[j].tree)
    return _cov_mmd_from_matrix(m) if part is None else combine(part, m, n_ref)


def _cov_mmd_from_matrix(m: np.ndarray) -> tuple[float, float]:
    """PointFlow's definitions on M[i, j] = CD(generated i, reference j)."""
    cov = len(np.unique(m.argmin(axis=1))) / m.shape[1]
    return float(cov), float(m.min(axis=0).mean())


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


_AUTO: dict[str, str] = {}  # device -> the route "auto" takes there, once per process


def auto_backend() -> str:
    """The route coverage_mmd(backend="auto") takes in this process: "kdtree" without a CUDA
    device (measured, see coverage_mmd); with one, the faster on a probe, timed once and cached."""
    if not _cuda_available():
        return "kdtree"
    if "cuda" not in _AUTO:
        _AUTO["cuda"] = _probe_backends("cuda")
    return _AUTO["cuda"]


def _probe_sets(n_clouds: int, n_points: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A small COV/MMD problem like the harness's: references are surface samples of
    ellipsoids with random axes, generated clouds are them rescaled with noise, shuffled."""
    rng = np.random.default_rng(seed)
    refs = []
    for _ in range(n_clouds):
        u = rng.normal(size=(n_points, 3))
        refs.append(u / np.linalg.norm(u, axis=1, keepdims=True) * rng.uniform(0.2, 0.5, 3))
    gens = [r * rng.uniform(0.9, 1.1, 3) + rng.normal(0, 0.01, r.shape) for r in refs]
    return [gens[i] for i in rng.permutation(n_clouds)], refs


def _probe_backends(device: str, n_clouds: int = 8, n_points: int = 4096) -> str:
    """Time the KD route and the torch route (on `device`) on the same probe problem, after one
    untimed torch pair (CUDA context, kernels); return the faster route's name."""
    import time

    gens, refs = _probe_sets(n_clouds, n_points)
    chamfer_matrix_torch(gens[:1], refs[:1], device)  # warm-up, not timed
    t = time.perf_counter()
    coverage_mmd(gens, refs, backend="kdtree")
    t_kd = time.perf_counter() - t
    t = time.perf_counter()
    _cov_mmd_from_matrix(chamfer_matrix_torch(gens, refs, device))  # .cpu() synchronizes
    t_torch = time.perf_counter() - t
    return "torch" if t_torch < t_kd else "kdtree"


def distance_matrix(generated: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> np.ndarray:
    """The full (N_gen, N_ref) Chamfer L2 matrix, with each cloud's KD-tree built once."""
    gens = [_Cloud.build(g) for g in generated]
    refs = [_Cloud.build(r) for r in reference]
    return np.array([[chamfer_l2(g.points, r.points, g.tree, r.tree) for r in refs] for g in gens])
