"""Image-feature throughput and the GT feature cache, measured in one run.

    python -m bench.perf.features_benchmark [--objects 4]

1. Images per second of each feature extractor whose weights are present (and of masked LPIPS
   per network) on 512^2 eval-rig renders of real GSO objects, on this CPU, batch size 32.
2. The GT cache: `visible` is evaluated on the same objects twice, once with an empty GT cache
   and once after `oracle` has filled it (as when a second method joins a leaderboard); the
   ratio of the two wall times is the saving. jobs=1 so the two timings share one process model.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def _renders(n_objects: int):
    from bench.inputs.dataset import open_dataset
    from bench.inputs.protocol import load_protocol
    from bench.render import render

    ds, protocol = open_dataset("gso"), load_protocol("gena3d-gso")
    rig = protocol.eval_rig()
    rs = [render(ds.load(o).mesh, rig.cameras, protocol.background) for o in ds.object_ids[:n_objects]]
    return np.concatenate([r.rgb for r in rs]), np.concatenate([r.face_id >= 0 for r in rs]), ds


def throughput(images: np.ndarray, masks: np.ndarray) -> list[tuple[str, float]]:
    from bench.metrics.features import EXTRACTORS, load_extractor
    from bench.metrics.lpips import LPIPS_NETS, load_lpips
    from bench.metrics.weights import WeightsMissing

    rows = []
    for name in EXTRACTORS:
        try:
            ext = load_extractor(name)
        except WeightsMissing:
            rows.append((f"features {name}", float("nan")))
            continue
        ext(list(images[:2]))  # warm-up
        t0 = time.perf_counter()
        ext(list(images), batch_size=32)
        rows.append((f"features {name}", len(images) / (time.perf_counter() - t0)))
    for net in LPIPS_NETS:
        try:
            model = load_lpips(net)
        except WeightsMissing:
            rows.append((f"lpips {net}", float("nan")))
            continue
        model(images[0], images[1], masks[0])
        n = min(8, len(images) - 1)
        t0 = time.perf_counter()
        for i in range(n):
            model(images[i], images[i + 1], masks[i])
        rows.append((f"lpips {net}", n / (time.perf_counter() - t0)))
    return rows


def cache_saving(n_objects: int, ids: list[str]) -> tuple[float, float]:
    from bench.run.runner import RunConfig, run

    def timed(methods, cache, out):
        t0 = time.perf_counter()
        run(RunConfig(out=out, protocol="gena3d-gso", methods=methods, object_ids=ids,
                      jobs=1, cache=cache, sheets=0), progress=False)
        return time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        cold = timed(["visible"], f"{tmp}/cache-cold", f"{tmp}/cold")
        timed(["oracle"], f"{tmp}/cache-warm", f"{tmp}/first")
        warm = timed(["visible"], f"{tmp}/cache-warm", f"{tmp}/second")
    return cold, warm


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=4)
    args = ap.parse_args(argv)
    images, masks, ds = _renders(args.objects)
    print(f"{len(images)} eval-rig renders of {args.objects} GSO objects, {images.shape[1]}^2, "
          f"torch threads={__import__('torch').get_num_threads()}")
    for name, ips in throughput(images, masks):
        unit = "image pairs/s" if name.startswith("lpips") else "images/s"
        print(f"  {name:<28} {'weights absent' if np.isnan(ips) else f'{ips:8.1f} {unit}'}")
    cold, warm = cache_saving(args.objects, ds.object_ids[: args.objects])
    print(f"second method (visible, {args.objects} objects x 3 settings): empty GT cache {cold:.2f} s, "
          f"GT cache filled by oracle {warm:.2f} s -> {cold / warm:.2f}x faster, {cold - warm:.2f} s saved")


if __name__ == "__main__":
    main()
