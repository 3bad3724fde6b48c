"""FPS benchmark: 4,096 points from ~500k, our exact FPS against fpsample's exact FPS.

    python -m bench.perf.fps_benchmark [--points 500000]

Clouds: a synthetic 500k-point sphere surface, and the unprojected 8-view 512^2 rig depth maps
of the largest GSO mesh (when the data is present). Both samplers start from the same index;
the index sequences must be identical. fpsample's bucket FPS (approximate) is timed too, with
the share of its indices that agree with exact FPS. Target (issue 8): exact in <= 1 s.
"""

from __future__ import annotations

import argparse
import time

import fpsample
import numpy as np

from bench.render.pointcloud import farthest_point_sampling

N_SAMPLES = 4096


def _clouds(n_points: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    sphere = rng.normal(size=(n_points, 3)).astype(np.float32)
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    clouds = {f"sphere {n_points // 1000}k": sphere}
    from bench.inputs.dataset import default_root

    if default_root("gso").is_dir():
        from bench.inputs.cameras import Rig
        from bench.perf.render_benchmark import RIG, benchmark_mesh
        from bench.render import render
        from bench.render.pointcloud import unproject_depths

        rig = Rig.from_spec("bench", RIG)
        pts = unproject_depths(render(benchmark_mesh(), rig.cameras).depth, rig.cameras)
        clouds[f"GSO rig {len(pts) // 1000}k"] = pts
    return clouds


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=500_000)
    args = ap.parse_args(argv)
    farthest_point_sampling(np.random.default_rng(1).random((2000, 3)), 16, 0)  # JIT warm-up
    for name, pts in _clouds(args.points).items():
        start = len(pts) // 3
        t_ours, ours = _timed(lambda p=pts, s=start: farthest_point_sampling(p, N_SAMPLES, s))
        t_ref, ref = _timed(lambda p=pts, s=start: fpsample.fps_sampling(p, N_SAMPLES, start_idx=s))
        t_bucket, bucket = _timed(lambda p=pts, s=start: farthest_point_sampling(p, N_SAMPLES, s,
                                                                                 "fps_bucket"))
        same = np.array_equal(ours, np.asarray(ref, np.int64))
        overlap = len(np.intersect1d(ours, bucket)) / N_SAMPLES
        print(f"{name}: exact {t_ours:.3f} s, fpsample exact {t_ref:.3f} s "
              f"(ratio {t_ref / t_ours:.1f}x), identical indices: {same}; "
              f"fpsample bucket {t_bucket:.3f} s, {overlap:.0%} of its indices in exact FPS; "
              f"target <= 1 s: {'met' if t_ours <= 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
