"""The report's plots: each leaderboard metric against the number of input views and, for
occlusion sweeps, against the occlusion degree (PNG, matplotlib Agg), one line per (method,
protocol[, run][, views or occlusion degree]).

    make_plots(df, Path("reports/index_assets"))  # -> [(png path, caption)]

Also the metric display lookups the page shares (METRICS: column, label, format; labels and the
direction arrow from bench.metrics.catalog) and the NaN / occlusion-label helpers; bench.report.html
imports them from here.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.metrics.catalog import HIGHER_IS_BETTER, compact

# Leaderboard metric columns in display order: (column, label, format); labels and directions are
# bench.metrics.catalog's. MMD is already x1000 and COV x100 in leaderboard.csv
# (bench.report.aggregate.aggregate).
METRICS: list[tuple[str, str, str]] = [(col, compact(col), fmt) for col, fmt in [
    ("success_rate", "{:.0%}"),
    ("psnr_masked", "{:.2f}"),
    ("ssim_masked", "{:.4f}"),
    ("mmd_cd", "{:.3f}"),
    ("cov_cd", "{:.1f}"),
    ("pfid_pointnet", "{:.3f}"),
    ("pkid_pointnet", "{:.4g}"),
    ("fid_inception", "{:.2f}"),
    ("kid_inception", "{:.3f}"),
    ("clip_score", "{:.2f}"),
    ("lpips_masked", "{:.4f}"),
    ("pcs", "{:.1f}"),
    ("fid_mobilenet", "{:.2f}"),
    ("kid_mobilenet", "{:.3f}"),
    ("lpips_masked_mobilenet", "{:.4f}"),
]]


def _is_nan(x) -> bool:
    try:
        return x is None or (isinstance(x, float | np.floating) and math.isnan(x)) or pd.isna(x)
    except (TypeError, ValueError):
        return False


def _metric_columns(df: pd.DataFrame) -> list[tuple[str, str, str]]:
    return [m for m in METRICS if m[0] in df.columns]


def _arrow(col: str) -> str:
    if col not in HIGHER_IS_BETTER:
        return ""
    return " ↑" if HIGHER_IS_BETTER[col] else " ↓"


def _occ_label(degree) -> str:
    return "" if _is_nan(degree) else f"{float(degree) * 100:.0f}%"


def _line_key(row, extra: list[str], has_run: bool) -> str:
    parts = [str(row["method"]), str(row["protocol"])]
    if has_run:
        parts.append(str(row["run"]))
    for e in extra:
        if e == "occlusion_degree":
            if not _is_nan(row[e]):
                parts.append(f"occ {_occ_label(row[e])}")
        else:
            parts.append(f"{row[e]} views" if e == "views" else str(row[e]))
    return " / ".join(parts)


def _plot(df: pd.DataFrame, metric: str, label: str, x: str, group_extra: list[str],
          path: Path) -> bool:
    """One PNG: `metric` against column `x`, one line per (method, protocol[, run], extra).
    Non-finite values are not drawn (the legend says so). False when nothing could be drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_run = "run" in df.columns and df["run"].nunique() > 1
    lines: dict[str, list[tuple[float, float]]] = {}
    omitted: dict[str, int] = {}
    for _, row in df.iterrows():
        key = _line_key(row, group_extra, has_run)
        xv, yv = pd.to_numeric(row[x], errors="coerce"), pd.to_numeric(row[metric], errors="coerce")
        if _is_nan(xv) or _is_nan(yv) or not math.isfinite(float(yv)):
            omitted[key] = omitted.get(key, 0) + (0 if _is_nan(yv) else 1)
            lines.setdefault(key, [])
            continue
        lines.setdefault(key, []).append((float(xv), float(yv)))
    if not any(lines.values()):
        return False
    fig, ax = plt.subplots(figsize=(6.0, 4.0), dpi=100)
    markers, linestyles = ("o", "s", "^", "D", "v", "x"), ("-", "--", ":", "-.")
    try:
        for k, (key, pts) in enumerate(sorted(lines.items())):
            marker, ls = markers[k % len(markers)], linestyles[k % len(linestyles)]
            legend = key + (f" ({omitted[key]} non-finite not drawn)" if omitted.get(key) else "")
            if not pts:
                ax.plot([], [], marker=marker, linestyle=ls, label=legend)
                continue
            pts.sort()
            xs = [p[0] * (100 if x == "occlusion_degree" else 1) for p in pts]
            ax.plot(xs, [p[1] for p in pts], marker=marker, linestyle=ls, markersize=7 - 1.5 * (k % 3),
                    label=legend)
        ax.set_xlabel("number of input views" if x == "views" else "occlusion degree (% of faces)")
        ax.set_ylabel(label + _arrow(metric))
        ax.set_title(f"{label} vs {'views' if x == 'views' else 'occlusion degree'}")
        if x == "views":
            ticks = sorted({int(v) for v in pd.to_numeric(df[x], errors="coerce").dropna()})
            ax.set_xticks(ticks)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return True


def make_plots(df: pd.DataFrame, assets: Path) -> list[tuple[Path, str]]:
    """PNG plots of each metric vs views and (sweeps) vs occlusion degree: [(path, caption)]."""
    out = []
    has_occ = "occlusion_degree" in df.columns and df["occlusion_degree"].notna().any()
    for col, label, _ in _metric_columns(df):
        if pd.to_numeric(df[col], errors="coerce").notna().sum() == 0:
            continue
        path = assets / "plots" / f"{col}_vs_views.png"
        extra = ["occlusion_degree"] if has_occ else []
        if df["views"].nunique() > 0 and _plot(df, col, label, "views", extra, path):
            out.append((path, f"{label} against the number of input views"))
        if has_occ:
            sweep = df[df["occlusion_degree"].notna()]
            path = assets / "plots" / f"{col}_vs_occlusion.png"
            if _plot(sweep, col, label, "occlusion_degree", ["views"], path):
                out.append((path, f"{label} against the occlusion degree"))
    return out
