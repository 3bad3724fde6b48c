"""Cycles GT benchmark: N views of one GSO object at 512^2 with the lit Cycles renderer.

    python -m bench.perf.cycles_benchmark [--views 4] [--object Android_Lego]

Times the cycles-trellis preset (128 samples) with 1 render thread and with all cores in the same
run and prints the speed-up, then the cycles-gena3d preset (32 samples) on all cores. Seconds per
view include one scene setup per call (factory reset, OBJ import, texture), shared by the views.
Needs bpy (pip install 'amodal-bench[cycles]') and the GSO data.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from bench.inputs.cameras import camera_from_yaw_pitch
from bench.render.cycles import blender_version, render_cycles


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--object", default="Android_Lego")
    args = ap.parse_args(argv)
    from bench.inputs.dataset import default_root

    path = default_root("gso") / args.object / "meshes" / "model.obj"
    if not path.is_file():
        raise SystemExit(f"GSO object not found: {path}")
    yaws = np.linspace(0, 360, args.views, endpoint=False)
    cams = [camera_from_yaw_pitch(float(y), 30.0, 2.0, 40.0, 512) for y in yaws]
    cores = os.cpu_count() or 1
    print(f"Blender {blender_version()}; {args.object}; {args.views} views at 512^2; {cores} cores")
    seconds = {}
    for preset, threads in (("cycles-trellis", 1), ("cycles-trellis", cores), ("cycles-gena3d", cores)):
        t = time.perf_counter()
        render_cycles(path, cams, preset, threads=threads, progress=False)
        seconds[preset, threads] = (time.perf_counter() - t) / args.views
        print(f"{preset:15s} threads {threads:2d}: {seconds[preset, threads]:6.2f} s/view")
    print(f"speed-up cycles-trellis, {cores} threads vs 1: "
          f"{seconds['cycles-trellis', 1] / seconds['cycles-trellis', cores]:.2f}x")
    print(f"cycles-trellis (128 samples) / cycles-gena3d (32 samples), {cores} threads: "
          f"{seconds['cycles-trellis', cores] / seconds['cycles-gena3d', cores]:.2f}x")


if __name__ == "__main__":
    main()
