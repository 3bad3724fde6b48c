"""How much the set metrics move between two point samplers (exact FPS vs fpsample bucket FPS).

    amodal-bench run --protocol amodal3r-gso ... --out runs/a
    amodal-bench run --protocol <copy of it with pointcloud.sampling: fps_bucket> ... --out runs/b
    python -m bench.perf.sampler_effect runs/a runs/b [--pointnet PATH]

Prints COV/MMD (and P-FID/P-KID) of each (method, views) group in both runs and the difference.
Without Point-E's pointnet.pt, P-FID is computed with a seeded randomly initialized PointNet++
and labelled `pfid_pointnet-randinit` (NON-STANDARD: it only shows how much the sampler moves a
PointNet feature statistic, not a P-FID value anyone should report).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from bench.metrics.geometry import coverage_mmd
from bench.metrics.pointnet import PointNet2ClsSSG, WeightsMissing, load_pointnet, p_fid, pointnet_features
from bench.records.store import gt_cloud_path, load_records


def _sets(out: Path) -> dict:
    groups: dict = {}
    for r in load_records(out):
        groups.setdefault((r.method, r.views, r.protocol), []).append(r)
    result = {}
    for (method, views, protocol), recs in groups.items():
        ids = sorted(r.object_id for r in recs if r.ok and r.pointcloud)
        by_id = {r.object_id: r for r in recs}
        result[(method, views)] = ([np.load(out / by_id[i].pointcloud) for i in ids],
                                   [np.load(gt_cloud_path(out, protocol, i)) for i in ids])
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_a")
    ap.add_argument("run_b")
    ap.add_argument("--pointnet", default=None)
    args = ap.parse_args(argv)
    try:
        model, _ = load_pointnet(args.pointnet)
        name = "pfid_pointnet"
    except WeightsMissing:
        torch.manual_seed(0)
        model, name = PointNet2ClsSSG().eval(), "pfid_pointnet-randinit (NON-STANDARD)"
    a, b = _sets(Path(args.run_a)), _sets(Path(args.run_b))
    for key in sorted(set(a) & set(b)):
        rows = []
        for gens, refs in (a[key], b[key]):
            cov, mmd = coverage_mmd(gens, refs)
            pfid = p_fid(pointnet_features(model, gens), pointnet_features(model, refs))
            rows.append((cov * 100, mmd * 1000, pfid))
        (c1, m1, p1), (c2, m2, p2) = rows
        print(f"{key[0]} ({key[1]} view): COV % {c1:.2f} -> {c2:.2f} ({c2 - c1:+.2f}); "
              f"MMD permille {m1:.4f} -> {m2:.4f} ({m2 - m1:+.4f}); "
              f"{name} {p1:.4g} -> {p2:.4g} ({p2 - p1:+.3g})")


if __name__ == "__main__":
    main()
