"""Paper-style tables from a leaderboard: best bold, second best underlined, arrows, units.

Within each (protocol, views, occlusion degree) group and for each metric, the best value is
bold and the second best underlined, following the metric's direction (bench.metrics
HIGHER_IS_BETTER). MMD is printed per mille and COV in percent, as the papers print them (the
leaderboard already stores them scaled). Exported as Markdown, LaTeX and CSV.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.metrics import HIGHER_IS_BETTER

KEYS = ["protocol", "views", "occlusion_degree"]
METRICS = {  # column -> printed header (unit), in table order
    "success_rate": "Success",
    "psnr_masked": "PSNR-m (dB)",
    "ssim_masked": "SSIM-m",
    "mmd_cd": "MMD (‰)",
    "cov_cd": "COV (%)",
    "pfid_pointnet": "P-FID",
    "pkid_pointnet": "P-KID",
    "fid_inception": "FID",
    "kid_inception": "KID (%)",
    "clip_score": "CLIP (%)",
    "lpips_masked": "LPIPS-m",
    "pcs": "PCS (%)",
    "fid_mobilenet": "FID-MobileNet†",
    "kid_mobilenet": "KID-MobileNet (%)†",
    "lpips_masked_mobilenet": "LPIPS-m-MobileNet†",
}
NON_STANDARD_FOOTNOTE = ("† computed with a substitute network (MobileNetV2 ImageNet features): "
                         "not comparable with any published number.")


def _ranks(values: pd.Series, higher: bool) -> pd.Series:
    """1 for the best value(s), 2 for the second best, 0 otherwise; NaN never ranks."""
    finite = values.dropna().unique()
    order = sorted(finite, reverse=higher)
    ranks = pd.Series(0, index=values.index)
    for rank, v in enumerate(order[:2], start=1):
        ranks[values == v] = rank
    return ranks


def ranked(leaderboard: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard's metric columns plus `<metric>_rank` (1 best, 2 second, 0 otherwise)."""
    df = leaderboard.copy()
    if "occlusion_degree" not in df:
        df["occlusion_degree"] = np.nan
    group = pd.Series([f"{p}/{v}/{d}" for p, v, d in
                       zip(df.protocol, df.views, df.occlusion_degree.fillna(-1))], index=df.index)
    for metric in METRICS:
        if metric in df:
            df[f"{metric}_rank"] = 0
            for _, idx in df.groupby(group).groups.items():
                df.loc[idx, f"{metric}_rank"] = _ranks(df.loc[idx, metric],
                                                       HIGHER_IS_BETTER[metric])
    return df


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
    header = ["Method", "Protocol", "Views"]
    if df["occlusion_degree"].notna().any():
        header.append("Occlusion")
    header = [escape(h) for h in header]
    header += [f"{escape(METRICS[m])} {arrow_up if HIGHER_IS_BETTER[m] else arrow_down}"
               for m in metrics]
    rows = []
    for _, r in df.sort_values(["protocol", "occlusion_degree", "views", "method"]).iterrows():
        row = [escape(str(r.method)), escape(str(r.protocol)), str(int(r.views))]
        if df["occlusion_degree"].notna().any():
            row.append("" if pd.isna(r.occlusion_degree) else escape(f"{r.occlusion_degree:.0%}"))
        for m in metrics:
            text = escape(_fmt(r[m], m))
            rank = r[f"{m}_rank"]
            row.append(bold(text) if rank == 1 else underline(text) if rank == 2 else text)
        rows.append(row)
    return header, rows


def to_markdown(leaderboard: pd.DataFrame) -> str:
    header, rows = _render(leaderboard, lambda t: f"**{t}**", lambda t: f"<u>{t}</u>", "↑", "↓")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    if any("†" in h for h in header):
        lines += ["", NON_STANDARD_FOOTNOTE]
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                 ("#", r"\#"), ("$", r"\$"), ("‰", r"\textperthousand{}"), ("—", "--"),
                 ("−∞", r"$-\infty$"), ("∞", r"$\infty$"), ("†", r"$^\dagger$")):
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
