"""COV/MMD benchmark: an N x N set of 4,096-point clouds, ours against brute force.

    python -m bench.perf.covmmd_benchmark [--n 64] [--reference-pairs 256 | --full-reference]

Clouds: surface samples of the GSO meshes (TRELLIS frame) topped up with primitives to N
references; the generated set is each reference scaled anisotropically (0.9-1.1) with 0.01
noise, in shuffled order. Timed in the same run:
  - brute force: float64 torch.cdist over every point pair, PointFlow style
    (`chamfer_matrix_torch`), on a random sample of pairs (extrapolated to N x N, said so) or
    on all pairs with --full-reference;
  - KD-tree, full matrix (no pruning);
  - ours: KD-tree with exact pruning (the KD route of `coverage_mmd`);
  - the torch route of `coverage_mmd` (chunked `chamfer_matrix_torch`, blocks of at most
    TORCH_MAX_BYTES, on CUDA when available): --torch-rows generated clouds against all N
    references (extrapolated to N rows, said so; default 2 on a CPU, all on CUDA) or all rows
    with --full-torch, with its ratio to the KD route and its largest relative difference to
    the KD matrix on those rows.
Prints ratios, the largest relative difference of matrix entries against brute force, and
whether COV/MMD are identical. Target (issue 8): >= 20x faster than brute force, identical.
The KD / torch ratio is what `coverage_mmd(backend="auto")` documents for CPU machines.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import trimesh

from bench.metrics.geometry import (
    TORCH_MAX_BYTES,
    _cov_mmd_from_matrix,
    _cuda_available,
    chamfer_matrix_torch,
    coverage_mmd,
    distance_matrix,
)

N_POINTS = 4096


def _reference_clouds(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    from bench.inputs.dataset import default_root, open_dataset

    meshes = []
    if default_root("gso").is_dir():
        ds = open_dataset("gso")
        for oid in ds.object_ids[:n]:
            m = ds.load(oid).mesh
            meshes.append(trimesh.Trimesh(m.vertices, m.faces, process=False))
    while len(meshes) < n:
        kind = len(meshes) % 3
        prim = (trimesh.creation.box(extents=rng.uniform(0.3, 1.0, 3)) if kind == 0 else
                trimesh.creation.icosphere(radius=rng.uniform(0.2, 0.5)) if kind == 1 else
                trimesh.creation.cylinder(radius=rng.uniform(0.1, 0.4), height=rng.uniform(0.3, 1)))
        meshes.append(prim)
    clouds = []
    for i, m in enumerate(meshes):
        pts, _ = trimesh.sample.sample_surface(m, N_POINTS, seed=i)
        clouds.append(np.asarray(pts, np.float64))
    return clouds


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--reference-pairs", type=int, default=256)
    ap.add_argument("--full-reference", action="store_true")
    ap.add_argument("--torch-rows", type=int, default=None,
                    help="generated clouds timed on the torch route (default: 2 on a CPU, all on CUDA)")
    ap.add_argument("--full-torch", action="store_true")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    refs = _reference_clouds(args.n, rng)
    gens = [r * rng.uniform(0.9, 1.1, 3) + rng.normal(0, 0.01, r.shape) for r in refs]
    gens = [gens[i] for i in rng.permutation(len(gens))]
    n_pairs = len(gens) * len(refs)
    print(f"{len(gens)} x {len(refs)} clouds of {N_POINTS} points ({n_pairs} pairs)")

    t = time.perf_counter()
    ours = coverage_mmd(gens, refs)
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    full = distance_matrix(gens, refs)
    t_full = time.perf_counter() - t
    cov_full, mmd_full = _cov_mmd_from_matrix(full)

    if args.full_reference:
        pairs = [(i, j) for i in range(len(gens)) for j in range(len(refs))]
    else:
        flat = rng.choice(n_pairs, size=min(args.reference_pairs, n_pairs), replace=False)
        pairs = [divmod(int(k), len(refs)) for k in flat]
    t = time.perf_counter()
    brute = np.array([chamfer_matrix_torch([gens[i]], [refs[j]])[0, 0] for i, j in pairs])
    t_brute = (time.perf_counter() - t) * n_pairs / len(pairs)
    kd = np.array([full[i, j] for i, j in pairs])
    rel = float(np.max(np.abs(kd / brute - 1)))
    label = "measured" if args.full_reference else f"extrapolated from {len(pairs)} pairs"
    print(f"brute force torch.cdist float64: {t_brute:8.1f} s ({label})")
    print(f"KD-tree, full matrix:            {t_full:8.1f} s  ({t_brute / t_full:.1f}x)")
    print(f"ours, KD-tree + exact pruning:   {t_ours:8.1f} s  ({t_brute / t_ours:.1f}x faster than "
          f"brute force, {t_full / t_ours:.1f}x than the full KD matrix)")
    print(f"largest relative difference, KD vs brute force entries: {rel:.2e}")
    print(f"COV {ours[0]:.6f} MMD {ours[1]:.9f}; full matrix COV {cov_full:.6f} MMD {mmd_full:.9f}; "
          f"identical: {ours == (cov_full, mmd_full)}")
    print(f"target >= 20x and identical: "
          f"{'met' if t_brute / t_ours >= 20 and ours == (cov_full, mmd_full) and rel < 1e-6 else 'NOT met'}")

    device = "cuda" if _cuda_available() else "cpu"
    rows = len(gens) if args.full_torch or (args.torch_rows is None and device == "cuda") else \
        min(len(gens), args.torch_rows or 2)
    chamfer_matrix_torch(gens[:1], refs[:1], device)  # warm-up (CUDA context), not timed
    t = time.perf_counter()
    torch_rows = chamfer_matrix_torch(gens[:rows], refs, device)
    t_torch = (time.perf_counter() - t) * len(gens) / rows
    rel_torch = float(np.max(np.abs(torch_rows / full[:rows] - 1)))
    label = "measured" if rows == len(gens) else f"extrapolated from {rows} of {len(gens)} rows"
    print(f"torch route, chunked ({TORCH_MAX_BYTES >> 20} MiB blocks, {device}): {t_torch:8.1f} s "
          f"({label}); KD route {t_ours:.1f} s: torch / KD = {t_torch / t_ours:.1f}x; "
          f"largest relative difference to the KD matrix {rel_torch:.2e}")
    if rows == len(gens):
        print(f"torch route COV/MMD {_cov_mmd_from_matrix(torch_rows)}; KD route {ours}")

if __name__ == "__main__":
    main()
