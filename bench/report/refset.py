"""Reference sets: which GT objects the set-level metrics of a protocol compare against, and which
leaderboard rows may be ranked together.

Set-level metrics (COV/MMD, P-FID/P-KID, FID/KID) compare a method's generations with a reference
set. In one run directory the reference set of a protocol is the GT of **every object of that
protocol whose asset loaded**: an object with a GT cloud at pointclouds/<protocol>/gt/<object>.npy
or with a record that is not an asset failure (reason "asset: ..."), unless all its records are
asset failures. It is the same for every row of the protocol, whatever objects the row's method
attempted. A row is `complete` when its method has a record (ok or failed; a harness error,
status "error", is retried on resume and does not count) for every reference object.

Ranking (best bold / second underlined in bench.report.tables, best in bench.report.html): only
complete rows rank, and only against rows of the same (protocol, views, occlusion degree) **and
the same reference set** (`reference_set`, a hash of the dataset, the protocol's content hash and
the sorted object ids), so rows merged from runs over other objects are never ranked together.
Leaderboards without these columns (older CSVs) rank as before.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from bench.records.store import gt_cloud_path

ASSET_FAILURE = "asset:"  # reason prefix of the failure records of an object whose asset failed


def reference_ids(out: Path, records: list, protocol: str) -> list[str]:
    """Sorted ids of the objects of `protocol` whose asset loaded in the run directory `out`."""
    gt_dir = gt_cloud_path(out, protocol, "x").parent
    on_disk = {p.stem for p in gt_dir.glob("*.npy")} if gt_dir.is_dir() else set()
    mine = [r for r in records if r.protocol == protocol]
    loaded = {r.object_id for r in mine if not r.reason.startswith(ASSET_FAILURE)}
    asset_only = {r.object_id for r in mine} - loaded
    return sorted((on_disk | loaded) - asset_only)


def reference_set_id(dataset: str, protocol_hash: str, ids: list[str]) -> str:
    """A short identity of a reference set: sha256 of the dataset, the protocol's content hash
    (the GT clouds depend on it) and the sorted object ids."""
    text = "\n".join([dataset, protocol_hash, *sorted(ids)])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def rankable(df: pd.DataFrame) -> pd.Series:
    """True for the rows that may rank: `complete` is true, or unknown (no column, empty cell)."""
    if "complete" not in df.columns:
        return pd.Series(True, index=df.index)

    def one(v) -> bool:
        if isinstance(v, str):
            return v.strip().lower() not in ("false", "0", "no")
        return True if v is None or pd.isna(v) else bool(v)

    return df["complete"].map(one).astype(bool)


def rank_keys(df: pd.DataFrame, keys: list[str]) -> list[str]:
    """`keys` plus `reference_set` when the leaderboard has it: rows are ranked only against rows
    scored on the same reference objects."""
    return keys + ["reference_set"] if "reference_set" in df.columns and "reference_set" not in keys \
        else list(keys)


def _label(row) -> str:
    occ = row.get("occlusion_degree")
    parts = [str(row["method"]), str(row["protocol"]), f"views-{int(row['views'])}"]
    if occ is not None and not pd.isna(occ):
        parts.append(f"occ {float(occ):.0%}")
    if "run" in row and isinstance(row["run"], str):
        parts.append(f"(run {row['run']})")
    return " ".join(parts)


def reference_report(df: pd.DataFrame) -> list[str]:
    """Lines saying which rows are not ranked with the others: rows whose method did not attempt
    every reference object, and protocols whose rows (merged runs) use different reference sets."""
    lines = []
    if "complete" in df.columns:
        for _, row in df[~rankable(df)].iterrows():
            n_ref = row.get("n_reference")
            n_ref = "?" if n_ref is None or pd.isna(n_ref) else int(n_ref)
            missing = next((p for p in str(row.get("notes", "")).split("; ")
                            if p.startswith("incomplete:")), "")
            detail = missing.removeprefix("incomplete: ").removesuffix(", not ranked")
            lines.append(f"not ranked: {_label(row)}: not scored on the full reference set of its "
                         f"protocol ({n_ref} objects)" + (f": {detail}" if detail else ""))
    if "reference_set" in df.columns:
        for protocol, rows in df.groupby("protocol", sort=True):
            sets = rows.groupby("reference_set", sort=True, dropna=False)
            if sets.ngroups < 2:
                continue
            parts = []
            for ref, g in sets:
                n = g["n_reference"].iloc[0] if "n_reference" in g else None
                runs = sorted({str(x) for x in g["run"]}) if "run" in g else []
                parts.append(f"{ref}: {'?' if n is None or pd.isna(n) else int(n)} objects"
                             + (f" (run {', '.join(runs)})" if runs else ""))
            lines.append(f"{protocol}: rows come from {sets.ngroups} different reference sets "
                         f"({'; '.join(parts)}); they are ranked only within the same reference set")
    return lines
