"""Evaluating the (method, object, setting) items of one object: every item ends as one record,
success or failure (failures are data).

    evaluate_object(config, object_id, index)  # -> number of records written

Per object: the items whose record is missing, the asset, the GT side (bench.run.gtcache), its
copy in the run directory. Per setting: the case and the GT renders at its input views. Per item:
the method's generation within the run's time limit, its measurement (masked PSNR/SSIM/LPIPS at
the input views, rig point cloud, rig image features, CLIP score), its files and its record.
Contact sheets for the first RunConfig.sheets objects.

`config` is a bench.run.runner.RunConfig throughout.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from bench.cases.case import AmodalCase, CaseError, build_case
from bench.inputs.assets import AssetError
from bench.inputs.dataset import open_dataset
from bench.inputs.protocol import Protocol, Setting, load_protocol
from bench.records.store import (
    Record,
    cloud_path,
    features_path,
    gt_cloud_path,
    gt_features_path,
    provenance,
    read_record,
    record_path,
    renders_dir,
    traceback_digest,
    write_array,
    write_record,
)
from bench.run.generate import generate
from bench.run.gtcache import _gt_side, input_shader
from bench.run.measure import Measurement, Reference, appearance_suite, background_features, measure
from bench.run.renders import write_pngs
from bench.run.shard import Shard, log_items


@dataclass(frozen=True)
class ObjectJob:
    """What the items of one object share: the run, its protocol, where the files go and the
    record fields common to all of them."""

    config: object  # bench.run.runner.RunConfig
    protocol: Protocol
    out: Path
    object_id: str
    labels: dict[str, str]  # method as configured -> the name its records are kept under
    base: dict  # Record fields of every record of this object

    def path(self, where, method: str, st: Setting, *extra) -> Path:
        """`where` (bench.records.store.record_path, cloud_path, features_path, renders_dir) of
        one item; `extra`: what follows the degree (features_path's extractor)."""
        return where(self.out, self.protocol.name, self.labels[method], st.views, self.object_id,
                     st.degree, *extra)

    def pending(self) -> list[tuple[str, Setting]]:
        """The (method, setting) items without a final record yet, settings first: a missing
        record, or a harness error (status "error"), which is retried and never kept."""
        return [(m, st) for st in self.protocol.settings for m in self.config.methods
                if not _final(self.path(record_path, m, st))]


def _final(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        return read_record(path).status != "error"
    except ValueError:  # a corrupt record is redone
        return False


def _file_sha256(path: Path) -> str:
    """sha256 of a file, "" when it cannot be read (the load then fails with the reason)."""
    import hashlib

    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def object_job(config, protocol: Protocol, dataset: str, object_id: str,
                mesh_sha256: str = "") -> ObjectJob:
    prov = provenance()
    from bench.methods.registry import method_name

    labels = {m: method_name(m) for m in config.methods}  # the name records are kept under
    base = dict(protocol=protocol.name, protocol_hash=protocol.content_hash, dataset=dataset,
                object_id=object_id, seed=protocol.seed_for(object_id), mesh_sha256=mesh_sha256,
                provenance=prov)
    return ObjectJob(config, protocol, Path(config.out), object_id, labels, base)


def _scalars(meta: dict) -> dict:
    """The JSON-scalar entries of a method's meta (what records keep of it)."""
    return {k: v for k, v in meta.items() if isinstance(v, (int, float, str, bool))}


def write_failure(job: ObjectJob, method: str, st: Setting, reason: str, tb: str = "",
                  backend: str = "", meta: dict | None = None, failure: str = "method",
                  features: dict[str, str] | None = None, extra_meta: dict | None = None,
                  metrics: dict | None = None) -> None:
    """The failure record of one item: its reason, its kind (bench.records.store.FAILURES), the
    digest of its traceback, the method's meta; `features`: the background-only render's feature
    files a failed generation contributes to the set-level image metrics. A harness error is
    written with status "error" (retried on resume, never counted against the method)."""
    write_record(job.path(record_path, method, st),
                 Record(method=job.labels[method], views=st.views, occlusion_degree=st.degree,
                        status="error" if failure == "harness" else "failed", reason=reason,
                        failure=failure, traceback_digest=traceback_digest(tb) if tb else "",
                        features=features or {}, metrics=metrics or {},
                        rasterizer=backend, meta={"generation": _scalars(meta or {}),
                                                  **({"features_of": "background"} if features else {}),
                                                  **(extra_meta or {})},
                        **job.base))


def _write_features(job: ObjectJob, ref: Reference, method: str, st: Setting,
                    features: dict[str, np.ndarray]) -> dict[str, str]:
    """Rig features of one generation next to its record; {extractor: path relative to the run}."""
    from bench.records.features import save_features

    files = {}
    for name, feats in features.items():
        path = job.path(features_path, method, st, name)
        save_features(path, feats, ref.suite.extractors[name])
        files[name] = str(path.relative_to(job.out))
    return files


def _write_cloud(job: ObjectJob, ref: Reference, method: str, st: Setting,
                 cloud: np.ndarray | None) -> tuple[str, dict]:
    """The generation's point cloud and, when the run aligns, its aligned copy. Returns (its path
    relative to the run directory, "" without a cloud; the record's alignment entry)."""
    cpath = job.path(cloud_path, method, st)
    alignment = {"method": job.config.alignment}
    if cloud is None:
        return "", alignment
    write_array(cpath, cloud)
    if job.config.alignment != "none":
        from bench.metrics.alignment import align, apply

        a = align(cloud, ref.cloud, job.config.alignment)
        apath = cpath.with_name(cpath.stem + ".aligned.npy")
        write_array(apath, apply(a.transform, cloud))
        alignment = {**a.record(), "pointcloud": str(apath.relative_to(job.out))}
    return str(cpath.relative_to(job.out)), alignment


def write_success(job: ObjectJob, ref: Reference, method: str, st: Setting, case: AmodalCase,
                  gen_meta: dict, m: Measurement, t0: float) -> None:
    """The files of one measured generation (renders if asked, point clouds) and its record;
    `seconds` counts from t0 (perf_counter) to the record."""
    if job.config.save_renders:
        write_pngs(job.path(renders_dir, method, st), m.rig_rgb)
    feature_files = _write_features(job, ref, method, st, m.features)
    pointcloud, alignment = _write_cloud(job, ref, method, st, m.cloud)
    write_record(job.path(record_path, method, st),
                 Record(method=job.labels[method], views=st.views, occlusion_degree=st.degree,
                        status="ok", metrics=m.metrics,
                        pointcloud=pointcloud,
                        features=feature_files,
                        rasterizer=ref.backend,
                        seconds=round(time.perf_counter() - t0, 3),
                        meta={"occlusion_ratio": case.occlusion_ratio,
                              "geometry_error": m.geometry_error,
                              "view_yaws_deg": [v.yaw_deg for v in case.views],
                              "visible_fractions": [v.visible_fraction for v in case.views],
                              "generation": _scalars(gen_meta),
                              "alignment": alignment,
                              "appearance_render": m.appearance_render,
                              "appearance_backend": m.appearance_backend,
                              "gt_appearance": job.protocol.gt_appearance,
                              "normalization": job.protocol.spec["pointcloud"].get("normalization",
                                                                                   "none"),
                              "fid_extractors": ref.suite.fid_names,
                              "weights_sha256": ref.suite.weights_sha256(),
                              "missing_metrics": ref.suite.missing},
                        **job.base))


def evaluate_item(job: ObjectJob, ref: Reference, method: str, st: Setting, case: AmodalCase,
                  gt_inputs):
    """Generate, measure and record one (method, object, setting): its record is written either
    way. Returns the generation's rig appearance render (V, H, W, 3) when it was recorded ok,
    else None."""
    t0 = time.perf_counter()
    try:
        gen = generate(job.config, method, case)
    except Exception as e:  # the method failed: failures are data, record and go on
        _method_failure(job, ref, method, st, f"{type(e).__name__}: {e}", traceback.format_exc())
        return None
    if gen.mesh is None:  # the method's own reason and its log (workers) are kept
        _method_failure(job, ref, method, st, gen.meta.get("reason", "method returned no mesh"),
                        meta=gen.meta)
        return None
    try:
        gen.mesh.validate()
    except AssetError as e:  # a degenerate output is the method's failure
        _method_failure(job, ref, method, st, f"invalid mesh: {e}", meta=gen.meta)
        return None
    try:
        m = measure(job.protocol, job.config, ref, case, gt_inputs, gen.mesh, gen.gaussians)
        write_success(job, ref, method, st, case, gen.meta, m, t0)
    except Exception as e:  # the harness failed, not the method: retried on resume
        write_failure(job, method, st, f"harness: {type(e).__name__}: {e}", traceback.format_exc(),
                      ref.backend, gen.meta, failure="harness")
        return None
    return m.rig_rgb


def _method_failure(job: ObjectJob, ref: Reference, method: str, st: Setting, reason: str,
                    tb: str = "", meta: dict | None = None) -> None:
    """A method failure record; it carries the features of a background-only rig render, so a
    method that fails often cannot get a better FID/KID by leaving its failures out."""
    try:
        files = _write_features(job, ref, method, st, background_features(job.protocol, ref))
    except Exception as e:  # the harness failed while scoring the failure: retried on resume
        write_failure(job, method, st, f"harness: {type(e).__name__}: {e}", traceback.format_exc(),
                      ref.backend, meta, failure="harness")
        return
    from bench.run.appearance import CLIP_EXTRACTOR

    extra = {"fid_extractors": ref.suite.fid_names, "weights_sha256": ref.suite.weights_sha256()}
    metrics = {}
    if CLIP_EXTRACTOR in files:  # its background-only render's CLIP score enters the mean
        metrics["clip_score"] = ref.suite.clip_score(
            background_features(job.protocol, ref)[CLIP_EXTRACTOR], ref.features[CLIP_EXTRACTOR])
    write_failure(job, method, st, reason, tb, ref.backend, meta, features=files,
                  extra_meta=extra if files else None, metrics=metrics)


def evaluate_setting(job: ObjectJob, ref: Reference, asset, st: Setting, methods: list[str],
                     keep_renders: bool) -> None:
    """Every method of `methods` on one setting of the object (one record each). keep_renders:
    the rig renders of the items recorded ok go to the contact-sheet folder."""
    try:
        case = build_case(asset, job.protocol, st.views, st.degree,
                          input_shader(job.config, job.protocol, asset, job.base["dataset"]))
    except CaseError as e:
        for m in methods:
            write_failure(job, m, st, f"case: {e}", backend=ref.backend, failure="input")
        return
    gt_inputs = SimpleNamespace(rgb=case.gt_rgb)  # the GT at the input views, as the case shows it
    for method in methods:
        rig_rgb = evaluate_item(job, ref, method, st, case, gt_inputs)
        if rig_rgb is not None and keep_renders:
            write_pngs(_sheet_renders_dir(job, job.labels[method], st), rig_rgb)


def _sheet_renders_dir(job: ObjectJob, label: str, st: Setting) -> Path:
    return job.out / "sheets" / "renders" / job.protocol.name / label / st.label / job.object_id


def _reference(job: ObjectJob, asset, dataset: str) -> Reference:
    """The object's GT side (cached by content), also written into the run directory."""
    from bench.records.features import save_features
    from bench.render import get_rasterizer

    config, protocol = job.config, job.protocol
    backend = get_rasterizer(config.rasterizer).name
    suite = appearance_suite(config)
    gt, gt_feats = _gt_side(config, protocol, asset, dataset, backend, suite)
    write_array(gt_cloud_path(job.out, protocol.name, job.object_id), gt)
    for name, feats in gt_feats.items():
        save_features(gt_features_path(job.out, protocol.name, job.object_id, name), feats,
                      suite.extractors[name])
    return Reference(backend, suite, gt, gt_feats)


def write_object_sheet(job: ObjectJob, asset) -> None:
    """The object's contact sheet from every item whose rig renders are on disk, so a resumed run
    shows the settings done before the restart too (cases are rebuilt: they are seeded)."""
    from PIL import Image

    from bench.run.sheets import write_contact_sheet

    protocol, config = job.protocol, job.config
    generations = {}
    for st in protocol.settings:
        found = {job.labels[m]: _sheet_renders_dir(job, job.labels[m], st) for m in config.methods}
        found = {label: d for label, d in found.items() if (d / "view_0.png").is_file()}
        if not found:
            continue
        case = build_case(asset, protocol, st.views, st.degree,
                          input_shader(config, protocol, asset, job.base["dataset"]))
        for label, d in found.items():
            views = sorted(d.glob("view_*.png"), key=lambda p: int(p.stem.split("_")[1]))
            rgb = np.stack([np.asarray(Image.open(p).convert("RGB"), np.float32) / 255 for p in views])
            generations[(label, st.label)] = (case, SimpleNamespace(rgb=rgb))
    if not generations:
        return
    from bench.run.gtcache import gt_appearance_rgb

    gt_rig = SimpleNamespace(rgb=gt_appearance_rgb(config, protocol, asset, job.base["dataset"]))
    write_contact_sheet(job.out / "sheets" / protocol.name / f"{job.object_id}.png", gt_rig,
                        generations, f"ground truth rig ({protocol.gt_appearance})")


def evaluate_object(config, object_id: str, index: int) -> int:
    """Evaluate every method and setting on one object; returns the number of records written."""
    protocol = load_protocol(config.protocol)
    ds = open_dataset(config.dataset, config.data)
    job = object_job(config, protocol, ds.name, object_id, _file_sha256(ds.mesh_path(object_id)))
    todo = job.pending()
    if config.active_shard:  # this process's items only (bench.run.shard)
        shard = Shard(*config.active_shard)
        todo = [(m, st) for m, st in todo if shard.owns(job.labels[m], object_id, st.views, st.degree)]
        log_items(job.out, shard, [(job.labels[m], st.label, object_id) for m, st in todo])
    if not todo:
        return 0
    if object_id in config.unusable:  # missing, or not as its manifest pins it (--bad-objects record)
        for m, st in todo:
            write_failure(job, m, st, f"asset: {config.unusable[object_id]}", failure="input")
        return len(todo)
    try:
        asset = ds.load(object_id, protocol.import_frame)
    except AssetError as e:
        for m, st in todo:
            write_failure(job, m, st, f"asset: {e}", failure="input")
        return len(todo)
    try:
        ref = _reference(job, asset, ds.name)
    except ValueError as e:  # e.g. the GT renders nothing in the eval rig: no reference
        for m, st in todo:
            write_failure(job, m, st, f"asset: the ground truth cannot be measured: {e}",
                          traceback.format_exc(), failure="input")
        return len(todo)
    written = 0
    for st in job.protocol.settings:
        methods = [m for m, s in todo if s == st]
        if not methods:
            continue
        evaluate_setting(job, ref, asset, st, methods, index < config.sheets)
        written += len(methods)
    if index < config.sheets and not config.active_shard:  # sharded: once, at the end (sharded.py)
        write_object_sheet(job, asset)
    return written
