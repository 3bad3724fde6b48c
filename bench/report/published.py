"""Published numbers (GENA3D, HoloPart tables) as data, and a side-by-side view with our leaderboard.

The numbers live in ``reports/published/*.csv``, one file per paper table, one row per printed cell
(see ``reports/published/README.md`` for what each file holds and the scaling conventions).

    load_published()                  # every table, validated
    load_published("GENA3D")          # one paper (case-insensitive)
    published_beside(leaderboard, load_published())

Values are kept on the paper's printed scale; the harness columns they map to use the same scale
where the README says so (mmd_cd x1000, cov_cd %, psnr_masked dB, ssim_masked 0-1), so nothing is
rescaled here.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pandas as pd

from bench.files import shipped_dir

REFERENCE_DIR = shipped_dir("bench.report.reference", Path(__file__).resolve().parents[2] / "reports")
PUBLISHED_DIR = REFERENCE_DIR / "published"

COLUMNS = ["source", "paper", "dataset", "method", "views", "occlusion_degree", "setting", "metric",
           "metric_harness", "value", "unit_note", "direction", "note"]
HARNESS_METRICS = {"fid_inception", "kid_inception", "clip_score", "pcs", "mmd_cd", "cov_cd",
                   "psnr_masked", "ssim_masked", "lpips_masked", "part_chamfer", "part_iou", "part_fscore",
                   "success_rate"}
DIRECTIONS = {"", "lower", "higher"}

# Our method name (lower case) -> the published name it corresponds to, or None: no published
# counterpart (left out). Names not listed match the published name case-insensitively.
METHOD_NAMES: dict[str, str | None] = {"oracle": None, "visible": None}
# Misprints in the papers -> the intended name (lower case).
PUBLISHED_ALIASES = {"sdfuison": "sdfusion"}


def _check_row(path: Path, line: int, rec: dict) -> None:
    def bad(why: str) -> ValueError:
        return ValueError(f"{path}: line {line}: {why} (row {rec})")

    for col in ("source", "paper", "method", "metric"):
        if not rec[col].strip():
            raise bad(f"empty {col!r}")
    try:
        value = float(rec["value"])
    except ValueError:
        raise bad(f"value {rec['value']!r} is not a number") from None
    if not math.isfinite(value):
        raise bad(f"value {rec['value']!r} is not finite")
    if rec["views"] and not rec["views"].isdigit():
        raise bad(f"views {rec['views']!r} is not an integer")
    if rec["occlusion_degree"]:
        try:
            occ = float(rec["occlusion_degree"])
        except ValueError:
            raise bad(f"occlusion_degree {rec['occlusion_degree']!r} is not a number") from None
        if not 0.0 <= occ <= 1.0:
            raise bad(f"occlusion_degree {occ} is not a fraction in [0, 1]")
    if rec["metric_harness"] and rec["metric_harness"] not in HARNESS_METRICS:
        raise bad(f"unknown metric_harness {rec['metric_harness']!r}")
    if rec["direction"] not in DIRECTIONS:
        raise bad(f"direction {rec['direction']!r} is not one of lower/higher/empty")


def _read_csv(path: Path) -> pd.DataFrame:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}")
        rows = []
        for rec in reader:
            if None in rec or any(v is None for v in rec.values()):
                raise ValueError(f"{path}: line {reader.line_num}: wrong number of fields")
            _check_row(path, reader.line_num, rec)
            rows.append(rec)
    df = pd.DataFrame(rows, columns=list(reader.fieldnames or COLUMNS), dtype=object)
    df["value"] = df["value"].astype(float)
    df["views"] = pd.array([int(v) if v else pd.NA for v in df["views"]], dtype="Int64")
    df["occlusion_degree"] = pd.array([float(v) if v else float("nan") for v in df["occlusion_degree"]],
                                      dtype=float)
    df["file"] = path.name
    return df


def load_published(paper: str | None = None, directory: str | Path | None = None) -> pd.DataFrame:
    """All published tables as one long DataFrame (the CSV columns plus ``file``).

    ``paper`` keeps one paper (matched case-insensitively on the ``paper`` column, e.g. "GENA3D",
    "holopart"); an unknown name is a ValueError. Every row is validated: a value that is not a finite
    number, a non-integer ``views``, an ``occlusion_degree`` outside [0, 1], an unknown
    ``metric_harness`` or ``direction`` raises ValueError naming the file and line.
    ``views`` is a nullable integer column, ``occlusion_degree`` a float (NaN when not a setting).
    """
    directory = Path(directory) if directory is not None else PUBLISHED_DIR
    paths = sorted(directory.glob("*.csv"))
    if not paths:
        raise ValueError(f"no published CSVs in {directory}")
    df = pd.concat([_read_csv(p) for p in paths], ignore_index=True)
    if paper is not None:
        keep = df["paper"].str.casefold() == paper.casefold()
        if not keep.any():
            raise ValueError(f"no published tables for paper {paper!r}; known: {sorted(set(df['paper']))}")
        df = df[keep].reset_index(drop=True)
    return df


def _published_key(paper: str, method: str) -> str:
    """'Ours' in a paper's table is the paper's own method: 'Ours w/o C-A' -> 'holopart w/o c-a'."""
    if method == "Ours" or method.startswith("Ours "):
        method = paper + method[len("Ours"):]
    key = method.casefold()
    return PUBLISHED_ALIASES.get(key, key)


def _setting_key(views, occlusion_degree) -> tuple[str, str]:
    views = "" if pd.isna(views) else str(int(views))
    occ = "" if pd.isna(occlusion_degree) else f"{float(occlusion_degree):.4g}"
    return views, occ


def published_beside(leaderboard: pd.DataFrame, published: pd.DataFrame,
                     names: dict[str, str | None] | None = None) -> pd.DataFrame:
    """Our leaderboard values beside the paper's for the same method, views and metric.

    ``leaderboard`` has columns method, views, (protocol, occlusion_degree,) and metric columns named
    as in the harness (mmd_cd, cov_cd, psnr_masked, ...). A leaderboard row matches a published row
    when

    * the method names agree case-insensitively, after ``names`` (our name -> published name, or
      None for "no published counterpart"; defaults to METHOD_NAMES, where oracle and visible are
      None) and with a paper's "Ours" read as the paper's name (GENA3D, HoloPart);
    * ``views`` agree (both empty counts as agreeing: part-completion tables have no views);
    * ``occlusion_degree`` agrees (both empty, or the same fraction: GENA3D Table B.1 only);
    * the leaderboard column is the published row's ``metric_harness``.

    Unmatched rows on either side are left out. One of our values can meet several published ones
    (e.g. GENA3D at 1 view: Tables 1 and 4; HoloPart per category): each is its own row, labelled
    by ``source`` and ``setting``. ``ours`` may be NaN where we did not measure the metric.

    Returns columns: method (ours), views, metric, ours, published, source, then occlusion_degree,
    protocol, published_method, setting, dataset, unit_note, direction.
    """
    names = {k.casefold(): v for k, v in (METHOD_NAMES if names is None else names).items()}
    out_cols = ["method", "views", "metric", "ours", "published", "source", "occlusion_degree",
                "protocol", "published_method", "setting", "dataset", "unit_note", "direction"]
    metrics = [m for m in sorted(set(published["metric_harness"]) - {""}) if m in leaderboard.columns]

    index: dict[tuple, list] = {}
    for rec in published.itertuples(index=False):
        if rec.metric_harness in metrics:
            key = (_published_key(rec.paper, rec.method), *_setting_key(rec.views, rec.occlusion_degree),
                   rec.metric_harness)
            index.setdefault(key, []).append(rec)

    rows = []
    for lb in leaderboard.to_dict("records"):
        ours_name = str(lb["method"])
        target = names.get(ours_name.casefold(), ours_name)
        if target is None:
            continue
        target = PUBLISHED_ALIASES.get(target.casefold(), target.casefold())
        setting = _setting_key(lb.get("views"), lb.get("occlusion_degree"))
        for metric in metrics:
            for rec in index.get((target, *setting, metric), []):
                rows.append({
                    "method": ours_name, "views": lb.get("views"), "metric": metric,
                    "ours": float(lb[metric]) if pd.notna(lb[metric]) else float("nan"),
                    "published": rec.value, "source": rec.source,
                    "occlusion_degree": lb.get("occlusion_degree", float("nan")),
                    "protocol": lb.get("protocol", ""), "published_method": rec.method,
                    "setting": rec.setting, "dataset": rec.dataset, "unit_note": rec.unit_note,
                    "direction": rec.direction,
                })
    return pd.DataFrame(rows, columns=out_cols)
