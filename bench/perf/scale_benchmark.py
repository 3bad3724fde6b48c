"""The set metrics at full scale: exact COV/MMD over N x N clouds, FID/KID over feature rows.

    python -m bench.perf.scale_benchmark [--n 1030] [--feature-rows 4120] [--dim 2048]
        [--kd-pairs 256] [--brute-pairs 12] [--generated matched|independent]

Clouds (N GT, N generated, 4,096 points each): surface samples of the GSO objects (all of
/work/shared/data/gso when present, from covmmd_benchmark's builder, which tops up with
primitives without the data), put in farthest-point order (bench.render.pointcloud, as the
harness's clouds) so the first 256 points cover each cloud as coverage_mmd's bounds assume.
GT cloud k is object k mod n_objects under a seeded random rotation, anisotropic scale
(0.8-1.2 per axis) and Gaussian noise (sigma 0.005-0.02), so the N clouds are distinct.
Generated, "matched" (default, a method's reconstructions): GT cloud k's object and pose turned
by up to 10 degrees, scaled 0.9-1.1 per axis, with its own noise (0.005-0.02), in shuffled
order; "independent": drawn as the GT clouds with other seeds (no generated cloud near any GT
cloud: the hard case for the pruning).

Timed in one run, 4,096-point clouds, float64:
  (i) exact COV/MMD, N x N, `coverage_mmd` (KD route with exact pruning), with its split into
      bounds and exact pairs (wrappers around geometry.chamfer_bounds / chamfer_l2);
  (ii) without pruning, estimated: the full-matrix exact Chamfer (KD-tree per cloud, the
      `distance_matrix` computation) timed on --kd-pairs random pairs, and the PointFlow-style
      float64 torch.cdist brute force on --brute-pairs pairs, both extrapolated to N x N (said
      so), with their ratios to (i);
  (iii) FID (`frechet_distance`, scipy sqrtm at feature-rows >= dim) and KID
      (`kernel_inception_distance`, 100 subsets of 1,000) over --feature-rows x --dim rows per
      set. Features are synthetic: Gaussian with a power-law spectrum (eigenvalue k ~ 1/k, in a
      random orthonormal basis, positive mean), as Inception pool features decay; generated =
      a shifted mean and perturbed spectrum. No 2048-d extractor's weights are available here
      to measure a real covariance (only MobileNet's 1280-d).
Prints a table and the peak RSS (resource.getrusage, this process).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

N_POINTS = 4096


def _base_clouds(n_objects: int) -> list[np.ndarray]:
    """One FPS-ordered 4,096-point cloud per object (covmmd_benchmark's surface samples)."""
    from bench.perf.covmmd_benchmark import _reference_clouds
    from bench.render.pointcloud import farthest_point_sampling

    clouds = _reference_clouds(n_objects, np.random.default_rng(0))
    return [c[farthest_point_sampling(c, N_POINTS)] for c in clouds]


def _pose(rng: np.random.Generator, max_angle: float | None = None) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    if max_angle is None:
        return Rotation.random(random_state=rng).as_matrix()
    axis = rng.normal(size=3)
    return Rotation.from_rotvec(axis / np.linalg.norm(axis) * rng.uniform(0, max_angle)).as_matrix()


def make_sets(n: int, generated: str = "matched", seed: int = 0
              ) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """(generated, GT, number of objects) as the module docstring says."""
    from bench.inputs.dataset import default_root

    n_objects = min(n, len(_gso_ids()) if default_root("gso").is_dir() else 52)
    base = _base_clouds(n_objects)
    rng = np.random.default_rng(seed)
    gt, poses = [], []
    for k in range(n):
        rot, scale = _pose(rng), rng.uniform(0.8, 1.2, 3)
        poses.append((rot, scale))
        gt.append((base[k % n_objects] * scale) @ rot.T
                  + rng.normal(0, rng.uniform(0.005, 0.02), (N_POINTS, 3)))
    gen = []
    for k in range(n):
        if generated == "matched":
            rot, scale = poses[k]
            rot, scale = _pose(rng, np.radians(10)) @ rot, scale * rng.uniform(0.9, 1.1, 3)
        else:
            rot, scale = _pose(rng), rng.uniform(0.8, 1.2, 3)
        gen.append((base[k % n_objects] * scale) @ rot.T
                   + rng.normal(0, rng.uniform(0.005, 0.02), (N_POINTS, 3)))
    return [gen[i] for i in rng.permutation(n)], gt, n_objects


def _gso_ids() -> list[str]:
    from bench.inputs.dataset import open_dataset

    return open_dataset("gso").object_ids


def time_cov_mmd(gen, gt) -> dict:
    """coverage_mmd timed, with the bounds / exact-pair split from wrappers."""
    from bench.metrics import geometry

    split = {"bounds_s": 0.0, "exact_s": 0.0, "exact_pairs": 0}
    bounds, exact = geometry.chamfer_bounds, geometry.chamfer_l2

    def timed_bounds(*a, **k):
        t = time.perf_counter()
        try:
            return bounds(*a, **k)
        finally:
            split["bounds_s"] += time.perf_counter() - t

    def timed_exact(*a, **k):
        t = time.perf_counter()
        try:
            return exact(*a, **k)
        finally:
            split["exact_s"] += time.perf_counter() - t
            split["exact_pairs"] += 1

    geometry.chamfer_bounds, geometry.chamfer_l2 = timed_bounds, timed_exact
    try:
        t = time.perf_counter()
        cov, mmd = geometry.coverage_mmd(gen, gt, backend="kdtree")
        split["total_s"] = time.perf_counter() - t
    finally:
        geometry.chamfer_bounds, geometry.chamfer_l2 = bounds, exact
    return {**split, "cov": cov, "mmd": mmd}


def time_unpruned(gen, gt, kd_pairs: int, brute_pairs: int, seed: int = 1) -> dict:
    """The full matrix without pruning, extrapolated from random pairs: KD-tree exact Chamfer
    (trees built once per cloud, as distance_matrix: that time is measured in full) and the
    float64 torch.cdist brute force."""
    from bench.metrics.geometry import _Cloud, chamfer_l2, chamfer_matrix_torch

    n_pairs = len(gen) * len(gt)
    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    gens, gts = [_Cloud.build(g) for g in gen], [_Cloud.build(r) for r in gt]
    t_trees = time.perf_counter() - t
    pairs = [divmod(int(k), len(gt)) for k in rng.choice(n_pairs, min(kd_pairs, n_pairs), replace=False)]
    t = time.perf_counter()
    kd = [chamfer_l2(gens[i].points, gts[j].points, gens[i].tree, gts[j].tree) for i, j in pairs]
    t_kd_pair = (time.perf_counter() - t) / len(pairs)
    sample = pairs[:brute_pairs]
    chamfer_matrix_torch([gen[0][:64]], [gt[0][:64]])  # warm-up (threads, kernels)
    t = time.perf_counter()
    brute = [chamfer_matrix_torch([gen[i]], [gt[j]])[0, 0] for i, j in sample]
    t_brute_pair = (time.perf_counter() - t) / max(1, len(sample))
    rel = max((abs(b / k - 1) for b, k in zip(brute, kd)), default=float("nan"))
    return {"kd_s": t_trees + t_kd_pair * n_pairs, "kd_pair_s": t_kd_pair, "kd_pairs": len(pairs),
            "trees_s": t_trees, "brute_s": t_brute_pair * n_pairs, "brute_pair_s": t_brute_pair,
            "brute_pairs": len(sample), "max_rel_kd_vs_brute": rel}


def synthetic_features(rows: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(generated, GT) feature rows: see the module docstring."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    spectrum = 1.0 / np.arange(1, dim + 1)
    mean = np.abs(rng.normal(0.4, 0.2, dim))
    gt = mean + (rng.normal(size=(rows, dim)) * np.sqrt(spectrum)) @ basis.T
    gen_spectrum = spectrum * rng.uniform(0.8, 1.25, dim)
    gen = mean + rng.normal(0, 0.02, dim) + (rng.normal(size=(rows, dim)) * np.sqrt(gen_spectrum)) @ basis.T
    return gen, gt


def time_fid_kid(rows: int, dim: int) -> dict:
    from bench.metrics.distribution import frechet_distance, kernel_inception_distance

    gen, gt = synthetic_features(rows, dim)
    t = time.perf_counter()
    fid = frechet_distance(gen, gt)
    t_fid = time.perf_counter() - t
    t = time.perf_counter()
    kid, kid_std = kernel_inception_distance(gen, gt)
    t_kid = time.perf_counter() - t
    return {"fid": fid, "fid_s": t_fid, "kid": kid, "kid_std": kid_std, "kid_s": t_kid}


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / (1 << 30)  # Linux: KiB


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1030, help="GT clouds, and as many generated")
    ap.add_argument("--feature-rows", type=int, default=4120)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--kd-pairs", type=int, default=256)
    ap.add_argument("--brute-pairs", type=int, default=12)
    ap.add_argument("--generated", choices=("matched", "independent"), default="matched")
    args = ap.parse_args(argv)

    t = time.perf_counter()
    gen, gt, n_objects = make_sets(args.n, args.generated)
    t_build = time.perf_counter() - t
    n_pairs = args.n * args.n
    print(f"{args.n} generated ({args.generated}) x {args.n} GT clouds of {N_POINTS} points from "
          f"{n_objects} objects ({n_pairs:,} pairs); built in {t_build:.1f} s", flush=True)
    cm = time_cov_mmd(gen, gt)
    print(f"COV {cm['cov']:.6f}  MMD {cm['mmd']:.9f}  ({cm['total_s']:.1f} s)", flush=True)
    un = time_unpruned(gen, gt, args.kd_pairs, args.brute_pairs)
    fk = time_fid_kid(args.feature_rows, args.dim)
    print(f"FID {fk['fid']:.6f}  KID {fk['kid']:.6g} +- {fk['kid_std']:.2g}", flush=True)

    rows = [
        ("COV/MMD exact, KD + pruning (coverage_mmd), measured", cm["total_s"], ""),
        (f"  of which bounds (O(N^2) KD queries of {256} reps)", cm["bounds_s"], ""),
        (f"  of which exact Chamfer, {cm['exact_pairs']:,} pairs "
         f"({cm['exact_pairs'] / n_pairs:.2%} of N^2)", cm["exact_s"], ""),
        (f"COV/MMD full KD matrix, no pruning: extrapolated from {un['kd_pairs']} pairs "
         f"({un['kd_pair_s'] * 1e3:.2f} ms/pair) + trees {un['trees_s']:.1f} s measured",
         un["kd_s"], f"{un['kd_s'] / cm['total_s']:.1f}x"),
        (f"COV/MMD torch.cdist float64 brute force: extrapolated from {un['brute_pairs']} pairs "
         f"({un['brute_pair_s']:.3f} s/pair)", un["brute_s"], f"{un['brute_s'] / cm['total_s']:.0f}x"),
        (f"FID, {args.feature_rows} x {args.dim} rows per set "
         f"({'scipy sqrtm' if args.feature_rows >= args.dim else 'low-rank identity'}), measured",
         fk["fid_s"], ""),
        (f"KID, 100 subsets of {min(args.feature_rows, 1000)}, measured", fk["kid_s"], ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'step':<{width}}  {'seconds':>10}  {'vs ours':>8}")
    for label, seconds, ratio in rows:
        print(f"{label:<{width}}  {seconds:>10.1f}  {ratio:>8}")
    print(f"\nlargest relative difference KD vs brute-force entries: {un['max_rel_kd_vs_brute']:.2e}")
    print(f"peak RSS {_peak_rss_gib():.2f} GiB (resource.getrusage ru_maxrss, this process)")
    return {"cov_mmd": cm, "unpruned": un, "fid_kid": fk, "build_s": t_build,
            "peak_rss_gib": _peak_rss_gib()}


if __name__ == "__main__":
    main()
