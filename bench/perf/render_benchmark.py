"""Render benchmark: an 8-view 512^2 rig of a ~50k-face mesh, RGB + alpha + depth.

    python -m bench.perf.render_benchmark [--repeats 5]

Times the default CPU rasterizer (moderngl/EGL) against the numpy reference rasterizer in the same
run and prints the ratio, the rasterize step and shading apart, and the mask IoU between them.
Normals (derived lazily from face ids) are timed apart; metrics do not use them.
Target (issue 2): at most 0.2 s per rig for the default backend on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import trimesh

from bench.inputs.assets import Mesh
from bench.inputs.cameras import Rig
from bench.render import Render, get_rasterizer
from bench.render.shading import shade

RIG = {"yaws_deg": [0, 45, 90, 135, 180, 225, 270, 315], "pitch_deg": 30, "radius": 2.0,
       "fov_deg": 40, "resolution": 512}


def benchmark_mesh(target_faces: int = 50_000) -> Mesh:
    """A textured ~50k-face mesh: the largest GSO object subdivided if needed, else a UV sphere."""
    from bench.inputs.dataset import default_root, open_dataset

    root = default_root("gso")
    if root.is_dir():
        ds = open_dataset("gso", root)
        import csv

        with open(root / "INDEX.csv") as f:
            largest = max(csv.DictReader(f), key=lambda r: int(r["faces"]))["object_id"]
        return ds.load(largest).mesh
    n = int(np.sqrt(target_faces / 2))
    s = trimesh.creation.uv_sphere(radius=0.5, count=[n, n])
    return Mesh(s.vertices, s.faces, vertex_colors=np.full((len(s.vertices), 3), 180, np.uint8))


def _time(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up (context creation, JIT)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    mesh = benchmark_mesh()
    cams = Rig.from_spec("bench", RIG).cameras
    print(f"mesh: {len(mesh.faces)} faces; rig: {len(cams)} views at {RIG['resolution']}^2")
    results = {}
    for name in ("moderngl", "numpy"):
        r = get_rasterizer(name)
        t_rast, rast = _time(lambda r=r: r.rasterize(mesh.vertices, mesh.faces, cams),
                             args.repeats if name == "moderngl" else max(1, args.repeats // 2))
        def shade_rgb_alpha_depth(rast=rast):
            out = shade(mesh, rast, "white")
            return out, (out["face_id"] >= 0).astype(np.float32)  # alpha

        t_shade, (out, _) = _time(shade_rgb_alpha_depth, args.repeats)
        results[name] = (t_rast, t_shade, rast)
        print(f"{name:9s} rasterize {t_rast:7.3f} s  shade {t_shade:6.3f} s  "
              f"total {t_rast + t_shade:7.3f} s")
    t_normals, _ = _time(lambda: Render(**out, mesh=mesh).normals, args.repeats)
    print(f"normals (on demand): {t_normals:.3f} s")
    a, b = results["moderngl"][2][..., 3] > 0, results["numpy"][2][..., 3] > 0
    iou = (a & b).sum() / (a | b).sum()
    fast = results["moderngl"][0] + results["moderngl"][1]
    slow = results["numpy"][0] + results["numpy"][1]
    print(f"ratio numpy/moderngl (total): {slow / fast:.1f}x; mask IoU {iou:.6f}")
    print(f"target <= 0.2 s per rig: {'met' if fast <= 0.2 else 'NOT met'} ({fast:.3f} s)")


if __name__ == "__main__":
    main()
