"""Drift gate: compare a run's leaderboard with a committed baseline, metric by metric.

    amodal-bench drift --baseline reports/baseline.csv RUN [--tolerances reports/drift_tolerances.yaml]

Rows are matched on (method, protocol, views, occlusion_degree). Each metric drifts when
|current - baseline| > abs + rel * |baseline| (two-sided: a better number is drift too, so the
baseline is updated in the same change). `abs` is the metric's float-noise floor: a value that is
0 up to rounding (the oracle's FID is 5.7e-14 on one machine, 2.4e-10 with another process
count) must not drift on another machine, so every metric that is not a count needs abs > 0
(`load_tolerances` refuses a file without one); only the discrete metrics in EXACT may have 0.
The output reads like asv's compare:
    ' '  within tolerance        '+'  worse beyond tolerance   '-'  better beyond tolerance
    '!'  newly failing (a value became NaN/missing, or the row vanished)
    'x'  not comparable: protocol hash, reference set (bench.report.refset: other objects) or
         PointNet weights changed, or the row is new
Exit status 1 when any row is not ' ', 0 otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from bench.metrics import HIGHER_IS_BETTER

KEY = ["method", "protocol", "views", "occlusion_degree"]
# what must match for numbers to be comparable (checked only where both leaderboards have the column)
IDENTITY = ["protocol_hash", "reference_set", "pointnet_sha256"]
# metrics whose values are counts or shares of counts: they move in steps of 1/n, never by noise
EXACT = frozenset({"success_rate", "cov_cd", "cov_cd_aligned", "pcs_n", "n_geometry", "n_images"})


@dataclass
class Drift:
    key: tuple
    metric: str
    baseline: float
    current: float
    mark: str  # ' ', '+', '-', '!', 'x'
    reason: str = ""


def load_tolerances(path: str | Path) -> dict[str, dict[str, float]]:
    """{metric: {"abs": a, "rel": r}}; a `default` entry applies to metrics not listed.

    Every entry but those of EXACT metrics must give an absolute floor abs > 0: with rel alone, a
    baseline of 0 leaves no room for float noise and the gate fails on an unchanged run.
    """
    tol = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(tol, dict):
        raise ValueError(f"{path}: expected a mapping of metric -> {{abs, rel}}")
    for metric, t in tol.items():
        if not isinstance(t, dict) or set(t) - {"abs", "rel"}:
            raise ValueError(f"{path}: tolerance of {metric!r} must be a mapping with abs and/or rel")
        for k, v in t.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= 0:
                raise ValueError(f"{path}: {metric}.{k} must be a number >= 0, got {v!r}")
        if metric not in EXACT and not t.get("abs", 0) > 0:
            raise ValueError(f"{path}: {metric!r} needs an absolute floor abs > 0 (float noise around 0 "
                             "would fail the gate); only counts may be exact: "
                             + ", ".join(sorted(EXACT)))
    return tol


def _row_key(row: pd.Series) -> tuple:
    degree = row.get("occlusion_degree")
    degree = None if degree is None or pd.isna(degree) else round(float(degree), 6)
    return (str(row["method"]), str(row["protocol"]), int(row["views"]), degree)


def _index(df: pd.DataFrame, name: str) -> dict[tuple, pd.Series]:
    missing = [c for c in ["method", "protocol", "views"] if c not in df]
    if missing:
        raise ValueError(f"{name} lacks the columns {', '.join(missing)}")
    rows: dict[tuple, pd.Series] = {}
    for _, row in df.iterrows():
        key = _row_key(row)
        if key in rows:
            raise ValueError(f"{name} has the row {key} twice")
        rows[key] = row
    return rows


def _same(a, b) -> bool:
    a_nan = a is None or (isinstance(a, float) and math.isnan(a))
    b_nan = b is None or (isinstance(b, float) and math.isnan(b))
    return (a_nan and b_nan) or str(a) == str(b)


def compare(baseline: pd.DataFrame, current: pd.DataFrame,
            tolerances: dict[str, dict[str, float]]) -> list[Drift]:
    """Every (row, metric) of the baseline and the current leaderboard, marked as above."""
    base, cur = _index(baseline, "baseline"), _index(current, "current run")
    metrics = [m for m in HIGHER_IS_BETTER if m in baseline.columns or m in current.columns]
    default = tolerances.get("default", {"abs": 1e-9, "rel": 0.0})
    out: list[Drift] = []
    for key in sorted(set(base) | set(cur), key=str):
        if key not in cur:
            out.append(Drift(key, "*", math.nan, math.nan, "!", "row missing from the current run"))
            continue
        if key not in base:
            out.append(Drift(key, "*", math.nan, math.nan, "x", "row not in the baseline"))
            continue
        b, c = base[key], cur[key]
        changed = [f for f in IDENTITY if f in b and f in c and not _same(b[f], c[f])]
        for m in metrics:
            if m not in b:
                out.append(Drift(key, m, math.nan, float(c.get(m, math.nan)), "x",
                                 f"baseline has no column {m}"))
                continue
            bv, cv = float(b[m]), float(c[m]) if m in c else math.nan
            if changed:
                out.append(Drift(key, m, bv, cv, "x", f"{', '.join(changed)} changed"))
            elif math.isnan(bv) and math.isnan(cv):
                out.append(Drift(key, m, bv, cv, " "))
            elif math.isnan(cv):
                out.append(Drift(key, m, bv, cv, "!", "no value now"))
            elif math.isnan(bv):
                out.append(Drift(key, m, bv, cv, "x", "no value in the baseline"))
            elif bv == cv:  # includes inf == inf
                out.append(Drift(key, m, bv, cv, " "))
            else:
                t = {**default, **tolerances.get(m, {})}
                allowed = t.get("abs", 0.0) + t.get("rel", 0.0) * abs(bv)
                if math.isinf(bv) or math.isinf(cv) or abs(cv - bv) > allowed:
                    worse = (cv < bv) if HIGHER_IS_BETTER[m] else (cv > bv)
                    out.append(Drift(key, m, bv, cv, "+" if worse else "-",
                                     f"beyond abs {t.get('abs', 0)} + rel {t.get('rel', 0)}"))
                else:
                    out.append(Drift(key, m, bv, cv, " "))
    return out


def format_drift(drifts: list[Drift], only_changes: bool = False) -> str:
    lines = [f"{'':2}{'baseline':>14} {'current':>14}  {'ratio':>7}  row / metric"]
    for d in drifts:
        if only_changes and d.mark == " ":
            continue
        ratio = d.current / d.baseline if d.baseline not in (0.0,) and math.isfinite(d.baseline) \
            and math.isfinite(d.current) else math.nan
        method, protocol, views, degree = d.key
        where = f"{method} {protocol} views={views}" + ("" if degree is None else f" occ={degree}")
        lines.append(f"{d.mark} {d.baseline:>14.6g} {d.current:>14.6g}  {ratio:>7.3f}  {where} "
                     f"{d.metric}" + (f"  ({d.reason})" if d.reason else ""))
    return "\n".join(lines)


def failed(drifts: list[Drift]) -> bool:
    return any(d.mark != " " for d in drifts)
