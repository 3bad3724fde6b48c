"""Aggregate records into the leaderboard: one row per (method, protocol, views, occlusion degree).

Per-object metrics (masked PSNR/SSIM) are averaged over successful objects; set-level metrics
(COV/MMD, P-FID/P-KID, FID/KID) are computed once from all stored point clouds / features of the
group against the protocol's reference set (bench.report.refset: the GT of every object of the
protocol whose asset loaded in the run, the same for every row of the protocol; `n_reference`,
`reference_set`); `complete` is false, and `notes` names the missing objects, when the row's method
did not attempt every reference object (such a row is never ranked); `n_geometry` says how many
generated clouds they used. Harness errors (status "error", retried on resume) are not counted.
mmd_cd is reported x1000, cov_cd x100 (%), as the papers print. P-FID/P-KID need Point-E's
`pointnet.pt`; without it they are NaN and the `notes` column says why.

Image metrics (computed by bench.run.appearance, named in bench.metrics.catalog): fid_<extractor>
/ kid_<extractor> are set level, between the generated and GT eval-rig renders of the group (every
view of every object; `n_images` generated images); KID is printed x100 (%) and clip_score is in
percent, as GENA3D prints them; pkid_pointnet stays unscaled. mmd_cd_aligned / cov_cd_aligned: the
same set metrics after the run's optional frame alignment to the GT (bench.metrics.alignment;
column `alignment`), NaN when the run did not align. A metric whose network had no weights is NaN
with the reason in `notes`; a metric computed with a substitute network (fid_mobilenet,
kid_mobilenet, lpips_masked_mobilenet) is named so and `notes` says it is not comparable with
published numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.files import atomic_write_bytes
from bench.metrics.catalog import RASTER_UNLIT_NOTE
from bench.metrics.geometry import coverage_mmd
from bench.records.store import gt_cloud_path, load_records, read_cloud
from bench.report.refset import reference_ids, reference_set_id

FID_EXTRACTORS = ("inception", "mobilenet")  # extractors with leaderboard columns
PER_RECORD_IMAGE_METRICS = ["clip_score", "lpips_masked", "lpips_masked_vgg", "lpips_masked_mobilenet"]
IMAGE_COLUMNS = [c for e in FID_EXTRACTORS for c in (f"fid_{e}", f"kid_{e}", f"kid_{e}_std")] + \
    PER_RECORD_IMAGE_METRICS + ["n_images", "pcs", "pcs_n", "pcs_judge"]
COLUMNS = ["method", "protocol", "views", "occlusion_degree", "n", "n_reference", "complete",
           "success_rate", "psnr_masked",
           "ssim_masked", "mmd_cd", "cov_cd", "pfid_pointnet", "pkid_pointnet", "pkid_pointnet_std",
           "n_geometry", "mmd_cd_aligned", "cov_cd_aligned", "alignment", *IMAGE_COLUMNS,
           "dataset", "protocol_hash", "reference_set", "rasterizer", "gt_renderer", "appearance_render",
           "pointnet_sha256", "notes"]


class _PointNet:
    """Loads Point-E's PointNet++ once per report, or remembers why it could not."""

    def __init__(self, weights: str | None):
        self.model, self.sha256, self.missing = None, "", ""
        try:
            from bench.metrics.pointnet import WeightsMissing, load_pointnet
        except ImportError as e:  # torch absent
            self.missing = f"pfid_pointnet, pkid_pointnet: {e}"
            return
        try:
            self.model, self.sha256 = load_pointnet(weights)
        except WeightsMissing as e:
            self.missing = f"pfid_pointnet, pkid_pointnet missing: {e}"

    def scores(self, gens: list, refs: list) -> tuple[float, float, float]:
        from bench.metrics.pointnet import p_fid, p_kid, pointnet_features

        if self.model is None or len(gens) < 2 or len(refs) < 2:
            return float("nan"), float("nan"), float("nan")
        fg, fr = pointnet_features(self.model, gens), pointnet_features(self.model, refs)
        kid, kid_std = p_kid(fg, fr)
        return p_fid(fg, fr), kid, kid_std


PSNR_CAP = 100.0  # dB: an object identical at every input view, in a mean with imperfect ones


def _mean_psnr(ok: list) -> tuple[float, str]:
    """Mean over objects of the per-object PSNR (each from the MSE pooled over its input views,
    bench.run.measure). inf only when every object is identical (the oracle); when only some
    are, those count as PSNR_CAP dB and the note says how many, so one perfect object cannot make
    a method's cell infinite."""
    values = np.array([r.metrics["psnr_masked"] for r in ok], np.float64)
    if not len(values):
        return float("nan"), ""
    perfect = np.isinf(values)
    if perfect.all():
        return float("inf"), ""
    if perfect.any():
        return float(np.mean(np.where(perfect, PSNR_CAP, values))), (
            f"psnr_masked: {int(perfect.sum())} object(s) identical at every input view counted as "
            f"{PSNR_CAP:g} dB")
    return float(np.mean(values)), ""


def _mean_metric(records: list, name: str) -> float:
    values = [r.metrics[name] for r in records if name in r.metrics]
    return float(np.nanmean(values)) if values and not np.isnan(values).all() else float("nan")


def _image_distribution(out: Path, protocol: str, ok: list, ref_ids: list) -> tuple[dict, list, int]:
    """fid_/kid_ per extractor stored in the records; returns (columns, notes, n generated images)."""
    from bench.metrics.distribution import frechet_distance, kernel_inception_distance
    from bench.metrics.features import metric_key
    from bench.records.features import load_features
    from bench.records.store import gt_features_path

    cols, notes, n_images = {}, [], 0
    names = sorted({n for r in ok for n in r.meta.get("fid_extractors", [])})
    for name in names:
        hashes = {r.meta["weights_sha256"][name] for r in ok if name in r.features}
        if len(hashes) > 1:
            raise ValueError(f"{protocol}: {name} features come from different weights {sorted(hashes)}; "
                             "use a fresh --out")
        if not hashes:
            continue
        sha = hashes.pop()
        gens = [load_features(out / r.features[name], name, sha) for r in ok if name in r.features]
        refs = []
        for i in ref_ids:
            path = gt_features_path(out, protocol, i, name)
            if not path.is_file():
                raise ValueError(f"GT features {path} are missing: {i} is a reference object of "
                                 f"{protocol} (its asset loaded) and the run computed {name} features")
            refs.append(load_features(path, name, sha))
        k = metric_key(name)
        gen_x = np.concatenate(gens) if gens else np.zeros((0, 1))
        ref_x = np.concatenate(refs) if refs else np.zeros((0, 1))
        n_images = max(n_images, len(gen_x))
        if len(gen_x) < 2 or len(ref_x) < 2:
            notes.append(f"fid_{k}/kid_{k}: {len(gen_x)} generated and {len(ref_x)} GT images; "
                         "at least 2 of each are needed")
            continue
        kid, kid_std = kernel_inception_distance(gen_x, ref_x)
        cols.update({f"fid_{k}": frechet_distance(gen_x, ref_x), f"kid_{k}": kid * 100,
                     f"kid_{k}_std": kid_std * 100})
    return cols, notes, n_images


def _pcs(out: Path, ok: list) -> tuple[dict, list]:
    """PCS over the group's generations that have a judge verdict (amodal-bench pcs)."""
    import json

    from bench.metrics.pcs import pcs_mean
    from bench.records.store import pcs_path

    verdicts = []
    for r in ok:
        p = pcs_path(out, r.protocol, r.method, r.views, r.object_id, r.occlusion_degree)
        if p.is_file():
            try:
                verdict = json.loads(p.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                raise ValueError(f"corrupt PCS verdict {p}: {e}") from e
            score = verdict.get("score") if isinstance(verdict, dict) else None
            if not isinstance(verdict, dict) or not (score is None or isinstance(score, (int, float))
                                                     and not isinstance(score, bool)):
                raise ValueError(f"corrupt PCS verdict {p}: expected an object with a numeric or null score")
            verdicts.append(verdict)
    if not verdicts:
        return {"pcs": float("nan"), "pcs_n": 0, "pcs_judge": ""}, []
    scores = [v["score"] for v in verdicts if v.get("score") is not None]
    judges = sorted({f"{v.get('model', '')} prompt {v.get('prompt_sha256', '')[:12]}" for v in verdicts})
    notes = []
    if len(scores) < len(ok):
        notes.append(f"pcs: {len(ok) - len(scores)} of {len(ok)} generations without a judge score "
                     f"({len(verdicts) - len(scores)} unparseable or failed, "
                     f"{len(ok) - len(verdicts)} not judged)")
    summary = pcs_mean(v.get("score") for v in verdicts)
    return {"pcs": summary["pcs"], "pcs_n": summary["n_scored"], "pcs_judge": "; ".join(judges)}, notes


def _metric_notes(recs: list, row: dict) -> list[str]:
    """Why image metrics are missing (from the records) and which shown ones are non-standard."""
    from bench.metrics.catalog import grouped_notes, missing_notes, non_standard_metrics

    missing = {m: why for r in recs for m, why in r.meta.get("missing_metrics", {}).items()}
    shown = {m: why for m, why in non_standard_metrics().items()
             if m in row and isinstance(row[m], float) and np.isfinite(row[m])}
    return missing_notes(missing) + grouped_notes(shown)


def _references(out: Path, records: list) -> dict[str, tuple[list[str], list[np.ndarray]]]:
    """{protocol: (reference object ids, their GT clouds)} (bench.report.refset). Raises
    ValueError when a protocol's records come from several protocol versions, or naming the GT
    cloud of a reference object that is missing or unreadable."""
    out_refs = {}
    for protocol in sorted({r.protocol for r in records}):
        hashes = sorted({r.protocol_hash for r in records if r.protocol == protocol})
        if len(hashes) > 1:
            raise ValueError(f"{protocol}: records from different protocol versions {hashes}; "
                             "use a fresh --out")
        ids = reference_ids(out, records, protocol)
        clouds = []
        for i in ids:
            path = gt_cloud_path(out, protocol, i)
            if not path.is_file():
                raise ValueError(f"GT point cloud {path} is missing: {i} has records of {protocol} "
                                 "that are not asset failures (damaged run directory)")
            clouds.append(read_cloud(path))
        out_refs[protocol] = (ids, clouds)
    return out_refs


def aggregate(out: str | Path, pointnet_weights: str | None = None) -> pd.DataFrame:
    """pointnet_weights: path to pointnet.pt (default: $AMODAL_BENCH_POINTNET or the cache)."""
    out = Path(out)
    records = load_records(out)
    if not records:
        raise ValueError(f"no records under {out / 'records'}")
    pointnet = _PointNet(pointnet_weights)
    references = _references(out, records)
    groups: dict[tuple, list] = {}
    for r in records:
        degree = -1.0 if r.occlusion_degree is None else r.occlusion_degree  # sortable
        groups.setdefault((r.method, r.protocol, r.views, degree), []).append(r)
    rows = []
    for (method, protocol, views, degree), group in sorted(groups.items()):
        recs = [r for r in group if r.status != "error"]  # harness errors: retried, not counted
        if not recs:
            continue
        ok = [r for r in recs if r.ok]
        ref_ids, refs = references[protocol]
        missing = sorted(set(ref_ids) - {r.object_id for r in recs})
        gens = [read_cloud(out / r.pointcloud) for r in ok if r.pointcloud]
        norms = sorted({r.meta.get("normalization", "none") for r in ok})
        if len(norms) > 1:
            raise ValueError(f"{method} {protocol} views={views}: records with different COV/MMD "
                             f"normalizations {norms}; use a fresh --out")
        norm = norms[0] if norms else "none"
        cov, mmd = (coverage_mmd(gens, refs, normalization=norm) if refs
                    else (float("nan"), float("nan")))
        # P-FID: a generation without a cloud (failed, or rendered nothing) counts as a cloud
        # collapsed to the origin, the least plausible shape, so failing never flatters P-FID
        n_void = sum(1 for r in recs if r.failure == "method") + (len(ok) - len(gens))
        pfid, pkid, pkid_std = pointnet.scores(gens + [np.zeros_like(refs[0])] * n_void if refs
                                               else gens, refs)
        notes = [pointnet.missing] if pointnet.missing else []
        if missing:
            notes.append(f"incomplete: {len(missing)} of {len(ref_ids)} reference objects not attempted "
                         f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}), not ranked")
        if len(group) > len(recs):
            notes.append(f"{len(group) - len(recs)} harness error record(s) not counted (retried on resume)")
        if len(gens) < len(ok):
            notes.append(f"{len(ok) - len(gens)} generations rendered nothing in the eval rig "
                         "(excluded from COV/MMD and P-FID; in FID/KID as background-only renders)")
        # failed generations enter FID/KID as background-only renders: failing never flatters
        failed_scored = [r for r in recs if r.status == "failed" and r.failure == "method"
                         and r.features and r.meta.get("features_of") == "background"]
        if failed_scored:
            notes.append(f"fid/kid: {len(failed_scored)} failed generation(s) counted as "
                         "background-only renders")
        psnr, psnr_note = _mean_psnr(ok)
        if psnr_note:
            notes.append(psnr_note)
        aligned = [read_cloud(out / r.meta["alignment"]["pointcloud"]) for r in ok if r.pointcloud
                   and r.meta.get("alignment", {}).get("pointcloud")]
        alignments = sorted({r.meta.get("alignment", {}).get("method", "none") for r in ok})
        if norm != "none":
            notes.append(f"mmd_cd/cov_cd: on {norm} normalized clouds (pointcloud.normalization), "
                         "not PointFlow's raw clouds")
        cov_a, mmd_a = (coverage_mmd(aligned, refs, normalization=norm)
                        if aligned and refs and len(aligned) == len(gens)
                        else (float("nan"), float("nan")))
        image_cols, image_notes, n_images = _image_distribution(out, protocol, ok + failed_scored,
                                                                ref_ids)
        image_cols.update({m: _mean_metric(ok, m) for m in PER_RECORD_IMAGE_METRICS})
        # a failed generation's CLIP score is its background-only render's (bench.run.evaluate)
        image_cols["clip_score"] = _mean_metric(ok + failed_scored, "clip_score")
        image_cols["n_images"] = n_images
        pcs_cols, pcs_notes = _pcs(out, ok)
        image_cols.update(pcs_cols)
        image_notes += pcs_notes
        row = {
            "method": method, "protocol": protocol, "views": views,
            "occlusion_degree": np.nan if degree < 0 else degree, "n": len(recs),
            "n_reference": len(ref_ids), "complete": not missing,
            "success_rate": len(ok) / len(recs),
            "psnr_masked": psnr,
            "ssim_masked": float(np.mean([r.metrics["ssim_masked"] for r in ok])) if ok else np.nan,
            "mmd_cd": mmd * 1000, "cov_cd": cov * 100, "pfid_pointnet": pfid,
            "pkid_pointnet": pkid, "pkid_pointnet_std": pkid_std, "n_geometry": len(gens),
            "dataset": recs[0].dataset, "protocol_hash": recs[0].protocol_hash,
            "reference_set": reference_set_id(recs[0].dataset, recs[0].protocol_hash, ref_ids),
            "rasterizer": ",".join(sorted({r.rasterizer for r in ok})),
            # GT renderer / how the method's renders were made (bench.run.measure); "" if unrecorded
            "gt_renderer": ",".join(sorted({str(r.meta.get("gt_appearance", "")) for r in ok})),
            "appearance_render": ",".join(sorted({str(r.meta.get("appearance_render", "")) for r in ok})),
            "pointnet_sha256": pointnet.sha256, "mmd_cd_aligned": mmd_a * 1000,
            "cov_cd_aligned": cov_a * 100, "alignment": ",".join(alignments),
        }
        row.update(image_cols)
        if "raster-unlit" in row["gt_renderer"].split(","):
            image_notes.append(RASTER_UNLIT_NOTE)
        row["notes"] = "; ".join(notes + image_notes + _metric_notes(recs, row))
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def leaderboard_csv(out: str | Path, pointnet_weights: str | None = None) -> str:
    """The leaderboard of a run directory as CSV text (6 significant digits), written nowhere."""
    return aggregate(out, pointnet_weights).to_csv(index=False, float_format="%.6g")


def read_leaderboard(out: str | Path, pointnet_weights: str | None = None) -> pd.DataFrame:
    """The leaderboard exactly as `write_leaderboard` would write it, without writing (a check
    such as `drift` must work on a read-only run and must not change it)."""
    import io

    return pd.read_csv(io.StringIO(leaderboard_csv(out, pointnet_weights)))


def write_leaderboard(out: str | Path, pointnet_weights: str | None = None) -> Path:
    path = Path(out) / "leaderboard.csv"
    atomic_write_bytes(path, leaderboard_csv(out, pointnet_weights).encode())
    return path


def merge_runs(runs: list[Path]) -> pd.DataFrame:
    """One leaderboard from several run directories (each re-aggregated from its records).
    Raises ValueError naming the rows when two runs hold the same (method, protocol, views,
    occlusion degree). Each run's rows keep their own `reference_set`: rows of runs over other
    objects (or another protocol version) are never ranked together (bench.report.refset)."""
    frames = []
    for run in runs:
        if not (Path(run) / "records").is_dir():
            raise ValueError(f"{run} is not a run directory (no records/)")
        frames.append(aggregate(run).assign(run=str(run)))
    merged = pd.concat(frames, ignore_index=True)
    key = merged[["method", "protocol", "views"]].astype(object).assign(
        occ=merged.occlusion_degree.fillna(-1))
    dup = key.duplicated(keep=False)
    if dup.any():
        rows = merged.loc[dup, ["method", "protocol", "views", "occlusion_degree", "run"]]
        raise ValueError("the same rows come from several runs:\n" + rows.to_string(index=False))
    return merged
