"""Paper-style tables from a leaderboard: best bold, second best underlined, arrows, units.

Within each (protocol, views, occlusion degree) group and for each metric, the best value is
bold and the second best underlined, following the metric's direction. Only rows scored on the
protocol's full reference set rank (`complete`; bench.report.refset): an incomplete row is marked
`*` and never bold or underlined, and rows of merged runs with different reference sets
(`reference_set`) are ranked apart (the tables then show each row's number of reference objects).
Headers (label, unit, † for non-standard metrics) and directions come from bench.metrics.catalog.
MMD is printed per mille and COV in percent, as the papers print them (the leaderboard already
stores them scaled). Exported as Markdown, LaTeX and CSV.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.metrics.catalog import HIGHER_IS_BETTER, NON_STANDARD_FOOTNOTE, header
from bench.report.refset import rank_keys, rankable

KEYS = ["protocol", "views", "occlusion_degree"]
# Metric columns in table order -> printed header (label, unit, † for non-standard; bench.metrics.catalog).
METRICS = {col: header(col) for col in (
    "success_rate", "psnr_masked", "ssim_masked", "mmd_cd", "cov_cd", "pfid_pointnet", "pkid_pointnet",
    "fid_inception", "kid_inception", "clip_score", "lpips_masked", "pcs", "fid_mobilenet", "kid_mobilenet",
    "lpips_masked_mobilenet")}


def _ranks(values: pd.Series, higher: bool) -> pd.Series:
    """1 for the best value(s), 2 for the second best, 0 otherwise; NaN never ranks."""
    finite = values.dropna().unique()
    order = sorted(finite, reverse=higher)
    ranks = pd.Series(0, index=values.index)
    for rank, v in enumerate(order[:2], start=1):
        ranks[values == v] = rank
    return ranks


UNLIT_GT_MARK = "‡"
UNLIT_GT_FOOTNOTE = ("‡ ground truth rendered unlit by the rasterizer (raster-unlit), not lit Cycles as "
                     "the papers: image metrics not comparable with published numbers")
INCOMPLETE_FOOTNOTE = ("* not scored on the full reference set of its protocol (its method did not "
                       "attempt every reference object): not ranked")


def ranked(leaderboard: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard's metric columns plus `<metric>_rank` (1 best, 2 second, 0 otherwise),
    within (protocol, views, occlusion degree[, reference set]); incomplete rows rank 0."""
    df = leaderboard.copy()
    if "occlusion_degree" not in df:
        df["occlusion_degree"] = np.nan
    keys = rank_keys(df, KEYS)
    group = pd.Series(["/".join(str(x) for x in k) for k in
                       zip(*(df[c].fillna(-1) if c == "occlusion_degree" else df[c] for c in keys))],
                      index=df.index)
    ok = rankable(df)
    for metric in METRICS:
        if metric in df:
            df[f"{metric}_rank"] = 0
            for _, idx in df[ok].groupby(group[ok]).groups.items():
                df.loc[idx, f"{metric}_rank"] = _ranks(df.loc[idx, metric],
                                                       HIGHER_IS_BETTER[metric])
    return df


def _several_reference_sets(df: pd.DataFrame) -> bool:
    """True when some protocol's rows come from more than one reference set (merged runs)."""
    return "reference_set" in df.columns and bool(
        (df.groupby("protocol")["reference_set"].nunique(dropna=False) > 1).any())


def _fmt(value: float, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if metric == "success_rate":
        return f"{value:.0%}"
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"


def _render(leaderboard: pd.DataFrame, bold, underline, arrow_up: str, arrow_down: str,
            escape=lambda t: t) -> tuple[list, list]:
    """Header and rows of cell strings; `escape` applies to text, not to the markup."""
    df = ranked(leaderboard)
    metrics = [m for m in METRICS if m in df]
    ok = rankable(df)
    objects = _several_reference_sets(df) and "n_reference" in df
    header = ["Method", "Protocol", "Views"]
    if df["occlusion_degree"].notna().any():
        header.append("Occlusion")
    if objects:
        header.append("Ref. objects")
    header = [escape(h) for h in header]
    header += [f"{escape(METRICS[m])} {arrow_up if HIGHER_IS_BETTER[m] else arrow_down}"
               for m in metrics]
    rows = []
    for _, r in df.sort_values(["protocol", "occlusion_degree", "views", "method"]).iterrows():
        method = str(r.method) if ok[r.name] else f"{r.method} *"
        protocol = str(r.protocol) + (UNLIT_GT_MARK if _unlit_gt(r) else "")
        row = [escape(method), escape(protocol), str(int(r.views))]
        if df["occlusion_degree"].notna().any():
            row.append("" if pd.isna(r.occlusion_degree) else escape(f"{r.occlusion_degree:.0%}"))
        if objects:
            row.append("" if pd.isna(r.n_reference) else str(int(r.n_reference)))
        for m in metrics:
            text = escape(_fmt(r[m], m))
            rank = r[f"{m}_rank"]
            row.append(bold(text) if rank == 1 else underline(text) if rank == 2 else text)
        rows.append(row)
    return header, rows


def _unlit_gt(row) -> bool:
    """The row's GT appearance came from the fast unlit rasterizer, not a paper's renderer."""
    return "raster-unlit" in str(row.get("gt_renderer", "") or "").split(",")


def to_markdown(leaderboard: pd.DataFrame) -> str:
    header, rows = _render(leaderboard, lambda t: f"**{t}**", lambda t: f"<u>{t}</u>", "↑", "↓")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    if any("†" in h for h in header):
        lines += ["", NON_STANDARD_FOOTNOTE]
    if any(UNLIT_GT_MARK in r[1] for r in rows):
        lines += ["", UNLIT_GT_FOOTNOTE]
    if not rankable(leaderboard).all():
        lines += ["", INCOMPLETE_FOOTNOTE]
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                 ("#", r"\#"), ("$", r"\$"), ("‰", r"\textperthousand{}"), ("—", "--"),
                 ("−∞", r"$-\infty$"), ("∞", r"$\infty$"), ("†", r"$^\dagger$"),
                 ("‡", r"$^\ddagger$")):
        text = text.replace(a, b)
    return text


def to_latex(leaderboard: pd.DataFrame) -> str:
    header, rows = _render(leaderboard, lambda t: r"\textbf{" + t + "}",
                           lambda t: r"\underline{" + t + "}", r"$\uparrow$", r"$\downarrow$",
                           _latex_escape)
    lines = [r"\begin{tabular}{" + "l" * 3 + "c" * (len(header) - 3) + "}", r"\toprule",
             " & ".join(header) + r" \\", r"\midrule"]
    lines += [" & ".join(r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if any("†" in h for h in header):
        lines += [_latex_escape(NON_STANDARD_FOOTNOTE)]
    if any(UNLIT_GT_MARK in r[1] for r in rows):
        lines += [_latex_escape(UNLIT_GT_FOOTNOTE)]
    if not rankable(leaderboard).all():
        lines += [_latex_escape(INCOMPLETE_FOOTNOTE)]
    return "\n".join(lines) + "\n"


def write_tables(leaderboard: pd.DataFrame, stem: Path) -> list[Path]:
    """Write <stem>.md, <stem>.tex and <stem>.csv (numbers with ranks); returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".md"), stem.with_suffix(".tex"), stem.with_suffix(".csv")]
    paths[0].write_text(to_markdown(leaderboard))
    paths[1].write_text(to_latex(leaderboard))
    ranked(leaderboard).to_csv(paths[2], index=False, float_format="%.6g")
    return paths


def versus(leaderboard: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Every other method against `baseline`, per (protocol, views, occlusion degree) group.

    One row per (method, group, metric) where both values are finite or infinite numbers:
    columns method, protocol, views, occlusion_degree, metric, value, baseline_value, delta
    (value - baseline_value, in the leaderboard's units), ratio (value / baseline_value; NaN when
    the baseline is 0 or either value is infinite), better (True when the method beats the
    baseline in the metric's direction, False when it is worse, None when tied) and complete (both
    rows scored on the full reference set; bench.report.refset). Rows pair only within the same
    reference set.
    Raises ValueError when `baseline` is not a method of the leaderboard."""
    df = leaderboard.copy()
    if "occlusion_degree" not in df:
        df["occlusion_degree"] = np.nan
    methods = sorted(df["method"].unique())
    if baseline not in methods:
        raise ValueError(f"baseline method {baseline!r} is not in the leaderboard; "
                         f"its methods: {', '.join(methods)}")
    metrics = [m for m in METRICS if m in df]
    df["_degree"] = df.occlusion_degree.fillna(-1)  # NaN degrees pair with each other
    df["_complete"] = rankable(df)
    keys = rank_keys(df, ["protocol", "views", "_degree"])
    pairs = df[df.method != baseline].merge(df[df.method == baseline][keys + metrics + ["_complete"]],
                                            on=keys, suffixes=("", "_baseline"))
    rows = []
    for _, r in pairs.iterrows():
        for m in metrics:
            v, bv = float(r[m]), float(r[f"{m}_baseline"])
            if math.isnan(v) or math.isnan(bv):
                continue
            finite = math.isfinite(v) and math.isfinite(bv)
            delta = v - bv if finite else (0.0 if v == bv else math.copysign(math.inf, v - bv))
            ratio = v / bv if finite and bv != 0 else math.nan
            better = None if v == bv else (v > bv) == HIGHER_IS_BETTER[m]
            rows.append({"method": r.method, "protocol": r.protocol, "views": int(r.views),
                         "occlusion_degree": r.occlusion_degree, "metric": m, "value": v,
                         "baseline_value": bv, "delta": delta, "ratio": ratio, "better": better,
                         "complete": bool(r._complete and r._complete_baseline)})
    return pd.DataFrame(rows, columns=["method", "protocol", "views", "occlusion_degree",
                                       "metric", "value", "baseline_value", "delta", "ratio",
                                       "better", "complete"])


def versus_markdown(leaderboard: pd.DataFrame, baseline: str) -> str:
    """Markdown of `versus`: one row per (method, group), one cell per metric reading
    `baseline → method (delta)`, bold when the method is better and both rows are complete
    (an incomplete pair is marked `*` and never bold); † metrics footnoted."""
    table = versus(leaderboard, baseline)
    if table.empty:
        return f"(no metric shared with baseline {baseline})\n"
    metrics = [m for m in METRICS if m in set(table.metric)]
    occlusion = table.occlusion_degree.notna().any()
    header = ["Method", "Protocol", "Views"] + (["Occlusion"] if occlusion else [])
    header += [f"{METRICS[m]} {'↑' if HIGHER_IS_BETTER[m] else '↓'}" for m in metrics]
    lines = [f"Against `{baseline}` (cell: {baseline} → method (delta); bold: method better)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    keys = ["method", "protocol", "occlusion_degree", "views"]
    unlit = {str(r.protocol) for _, r in leaderboard.iterrows() if _unlit_gt(r)}
    for key, group in table.groupby(keys, dropna=False, sort=True):
        method, protocol, degree, views = key
        complete = bool(group["complete"].all())
        shown = str(protocol) + (UNLIT_GT_MARK if str(protocol) in unlit else "")
        cells = [str(method) if complete else f"{method} *", shown, str(int(views))]
        if occlusion:
            cells.append("" if pd.isna(degree) else f"{degree:.0%}")
        by_metric = {row.metric: row for row in group.itertuples()}
        for m in metrics:
            row = by_metric.get(m)
            if row is None:
                cells.append("—")
                continue
            delta = row.delta
            sign = "+" if delta > 0 else "−" if delta < 0 else "±"
            text = (f"{_fmt(row.baseline_value, m)} → {_fmt(row.value, m)} "
                    f"({sign}{_fmt(abs(delta), m)})")
            cells.append(f"**{text}**" if row.better is True and complete else text)
        lines.append("| " + " | ".join(cells) + " |")
    if any("†" in h for h in header):
        lines += ["", NON_STANDARD_FOOTNOTE]
    if unlit:
        lines += ["", UNLIT_GT_FOOTNOTE]
    if not table["complete"].all():
        lines += ["", "* the method or the baseline was not scored on the full reference set of its "
                  "protocol: not compared in bold"]
    return "\n".join(lines) + "\n"


def format_table(df: pd.DataFrame) -> str:
    """A terminal table with arrows for metric direction; `n_ref` is the protocol's number of
    reference objects, a method marked `*` did not attempt all of them (never ranked), a protocol
    marked ‡ had its GT rendered unlit (raster-unlit)."""
    if "complete" in df.columns:
        df = df.assign(method=[m if ok else f"{m} *" for m, ok in zip(df["method"], rankable(df))])
    df = df.assign(protocol=[str(r.protocol) + (UNLIT_GT_MARK if _unlit_gt(r) else "")
                             for _, r in df.iterrows()])
    cols = ["method", "protocol", "views", "occlusion_degree", "n", "n_reference", "success_rate",
            "psnr_masked",
            "ssim_masked", "mmd_cd", "cov_cd", "pfid_pointnet", "fid_inception", "clip_score",
            "lpips_masked", "fid_mobilenet", "lpips_masked_mobilenet"]
    shown = df[[c for c in cols if c in df]].rename(columns={
        "occlusion_degree": "occ", "n_reference": "n_ref", "success_rate": "success↑",
        "psnr_masked": "PSNR-m↑",
        "ssim_masked": "SSIM-m↑", "mmd_cd": "MMD‰↓", "cov_cd": "COV%↑", "pfid_pointnet": "P-FID↓",
        "fid_inception": "FID↓", "clip_score": "CLIP%↑", "lpips_masked": "LPIPS-m↓",
        "fid_mobilenet": "FID-MN†↓", "lpips_masked_mobilenet": "LPIPS-m-MN†↓"})
    return shown.to_string(index=False, float_format=lambda x: f"{x:.4g}")
