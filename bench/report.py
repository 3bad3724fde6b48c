"""Aggregate records into the leaderboard: one row per (method, protocol, views).

Per-object metrics (masked PSNR/SSIM) are averaged over successful objects; set-level metrics
(COV/MMD) are computed once from all stored point clouds of the group against the GT clouds of
every object whose asset loaded. mmd_cd is reported x1000, cov_cd x100 (%), as the papers print.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.metrics.geometry import coverage_mmd
from bench.store import gt_cloud_path, load_records

COLUMNS = ["method", "protocol", "views", "n", "success_rate", "psnr_masked", "ssim_masked",
           "mmd_cd", "cov_cd", "dataset", "protocol_hash", "rasterizer"]


def aggregate(out: str | Path) -> pd.DataFrame:
    out = Path(out)
    records = load_records(out)
    if not records:
        raise ValueError(f"no records under {out / 'records'}")
    groups: dict[tuple, list] = {}
    for r in records:
        groups.setdefault((r.method, r.protocol, r.views), []).append(r)
    rows = []
    for (method, protocol, views), recs in sorted(groups.items()):
        hashes = {r.protocol_hash for r in recs}
        if len(hashes) > 1:
            raise ValueError(f"{method}/{protocol}/views-{views}: records from different protocol "
                             f"versions {sorted(hashes)}; use a fresh --out")
        ok = [r for r in recs if r.ok]
        ref_ids = sorted({r.object_id for r in recs
                          if gt_cloud_path(out, protocol, r.object_id).is_file()})
        refs = [np.load(gt_cloud_path(out, protocol, i)) for i in ref_ids]
        gens = [np.load(out / r.pointcloud) for r in ok]
        cov, mmd = coverage_mmd(gens, refs) if refs else (float("nan"), float("nan"))
        rows.append({
            "method": method, "protocol": protocol, "views": views, "n": len(recs),
            "success_rate": len(ok) / len(recs),
            "psnr_masked": float(np.mean([r.metrics["psnr_masked"] for r in ok])) if ok else np.nan,
            "ssim_masked": float(np.mean([r.metrics["ssim_masked"] for r in ok])) if ok else np.nan,
            "mmd_cd": mmd * 1000, "cov_cd": cov * 100, "dataset": recs[0].dataset,
            "protocol_hash": hashes.pop(),
            "rasterizer": ",".join(sorted({r.rasterizer for r in ok})),
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def write_leaderboard(out: str | Path) -> Path:
    df = aggregate(out)
    path = Path(out) / "leaderboard.csv"
    df.to_csv(path, index=False, float_format="%.6g")
    return path


def format_table(df: pd.DataFrame) -> str:
    """A terminal table with arrows for metric direction."""
    shown = df[["method", "protocol", "views", "n", "success_rate", "psnr_masked", "ssim_masked",
                "mmd_cd", "cov_cd"]].rename(columns={
                    "success_rate": "success↑", "psnr_masked": "PSNR-m↑", "ssim_masked": "SSIM-m↑",
                    "mmd_cd": "MMD‰↓", "cov_cd": "COV%↑"})
    return shown.to_string(index=False, float_format=lambda x: f"{x:.4g}")
