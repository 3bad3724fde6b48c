"""Run an evaluation: objects x input-view settings x methods -> records, then the leaderboard.

Objects are spread over worker processes (one EGL context each); every (method, object, setting)
ends as one record, success or failure. Existing records are skipped, so a killed run resumes.
The GT side (rig point cloud and rig image features per extractor) is cached by content hash
across runs and methods; the feature cache key also holds the extractor's weights sha256.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

import bench
from bench.cases.case import AmodalCase, CaseError, build_case
from bench.inputs.assets import AssetError, Mesh
from bench.inputs.dataset import open_dataset
from bench.inputs.protocol import Protocol, load_protocol
from bench.methods.adapter import get_adapter
from bench.metrics.image import psnr_masked, ssim_masked
from bench.records.store import (
    Record,
    cloud_path,
    features_path,
    gt_cloud_path,
    gt_features_path,
    provenance,
    record_path,
    renders_dir,
    traceback_digest,
    write_array,
    write_record,
)
from bench.render import render
from bench.render.pointcloud import sample_point_cloud
from bench.run.appearance import AppearanceConfig, AppearanceSuite


@dataclass
class RunConfig:
    out: str
    protocol: str
    methods: list[str]
    dataset: str = "gso"
    data: str | None = None
    limit: int | None = None
    jobs: int = 2
    rasterizer: str = "auto"
    cache: str | None = None  # GT cache dir; default $AMODAL_BENCH_CACHE or ~/.cache/amodal-bench
    sheets: int = 3  # contact sheets for the first N objects
    object_ids: list[str] = field(default_factory=list)
    cases: str | None = None  # exported CASES dir: methods are outputs found there (import)
    appearance: AppearanceConfig = field(default_factory=AppearanceConfig)
    alignment: str = "none"  # bench.metrics.alignment: "none" | "yaw" | "yaw+icp" (aligned COV/MMD beside)
    generation_timeout_s: float | None = None  # per generate() call, in-process adapters
    save_renders: bool = False  # eval-rig renders as PNG per generation (input of the PCS judge)
    require_metrics: bool = False  # a metric network without weights is an error, not a NaN


def cache_dir(config: RunConfig) -> Path:
    if config.cache:
        return Path(config.cache)
    return Path(os.environ.get("AMODAL_BENCH_CACHE", Path.home() / ".cache" / "amodal-bench"))


def _sampler(protocol: Protocol) -> str:
    return protocol.spec["pointcloud"].get("sampling", "fps")


_SUITES: dict[str, AppearanceSuite] = {}


def appearance_suite(config: RunConfig) -> AppearanceSuite:
    """The metric networks of this process, loaded once per configuration."""
    key = repr(config.appearance)
    if key not in _SUITES:
        _SUITES[key] = AppearanceSuite(config.appearance)
    return _SUITES[key]


def _gt_side(config: RunConfig, protocol: Protocol, mesh: Mesh, object_id: str, dataset: str,
             backend: str, suite: AppearanceSuite) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The GT rig point cloud and rig image features, each cached by (dataset, mesh content,
    protocol, backend, harness version[, extractor, weights sha256]). The rig is rendered only
    when something is not cached."""
    from bench.metrics.features import load_features, save_features

    key = hashlib.sha256(json.dumps([dataset, mesh.content_hash(), protocol.content_hash, backend,
                                     bench.__version__, object_id]).encode()).hexdigest()[:24]
    root = cache_dir(config) / "gt"
    cloud_file = root / f"{key}.npy"
    feat_files = {n: root / f"{key}.{n}.{e.weights_sha256[:16]}.npz"
                  for n, e in suite.extractors.items()}
    rig, rig_render = protocol.eval_rig(), None
    if not cloud_file.is_file() or not all(f.is_file() for f in feat_files.values()):
        rig_render = render(mesh, rig.cameras, protocol.background, config.rasterizer)
    if cloud_file.is_file():
        cloud = np.load(cloud_file)
    else:
        cloud = sample_point_cloud(rig_render.depth, rig.cameras, protocol.spec["pointcloud"]["points"],
                                   protocol.seed_for(object_id), _sampler(protocol))
        write_array(cloud_file, cloud)
    feats = {}
    for name, f in feat_files.items():
        ext = suite.extractors[name]
        if f.is_file():
            feats[name] = load_features(f, name, ext.weights_sha256)
        else:
            feats[name] = suite.features(name, rig_render.rgb)
            save_features(f, feats[name], ext)
    return cloud, feats


def _evaluate_generation(mesh: Mesh, case: AmodalCase, gt_inputs, protocol: Protocol,
                         config: RunConfig, suite: AppearanceSuite):
    """Masked PSNR/SSIM/LPIPS at the input views, the rig render and rig point cloud of one
    generation."""
    mesh.validate()
    cams = [v.camera for v in case.views]
    pred = render(mesh, cams, protocol.background, config.rasterizer)
    psnr = [psnr_masked(pred.rgb[i], gt_inputs.rgb[i], v.visibility_mask)
            for i, v in enumerate(case.views)]
    ssim = [ssim_masked(pred.rgb[i], gt_inputs.rgb[i], v.visibility_mask)
            for i, v in enumerate(case.views)]
    rig = protocol.eval_rig()
    rig_render = render(mesh, rig.cameras, protocol.background, config.rasterizer)
    try:
        cloud, geometry_error = sample_point_cloud(
            rig_render.depth, rig.cameras, protocol.spec["pointcloud"]["points"], case.seed,
            _sampler(protocol)), ""
    except ValueError as e:  # nothing rendered: a failure for the geometry metrics only
        cloud, geometry_error = None, str(e)
    metrics = {"psnr_masked": float(np.mean(psnr)), "ssim_masked": float(np.mean(ssim))}
    metrics.update(suite.lpips_masked(pred.rgb, gt_inputs.rgb, [v.visibility_mask for v in case.views]))
    return metrics, cloud, geometry_error, rig_render


def _image_features(suite: AppearanceSuite, rig_render, gt_feats: dict, out: Path, paths) -> tuple:
    """Rig features of one generation written next to its record; the CLIP score against the GT.
    Returns (metrics, {extractor: relative path})."""
    from bench.metrics.features import save_features
    from bench.run.appearance import CLIP_EXTRACTOR

    metrics, files = {}, {}
    for name, ext in suite.extractors.items():
        feats = suite.features(name, rig_render.rgb)
        path = paths(name)
        save_features(path, feats, ext)
        files[name] = str(path.relative_to(out))
        if name == CLIP_EXTRACTOR:
            metrics["clip_score"] = suite.clip_score(feats, gt_feats[name])
    return metrics, files


def _save_renders(directory: Path, rgb: np.ndarray) -> None:
    """(V, H, W, 3) float renders -> view_<k>.png (8-bit, rounded), written atomically."""
    import io

    from PIL import Image

    from bench.files import atomic_write_bytes

    for k, img in enumerate(rgb):
        buf = io.BytesIO()
        Image.fromarray(np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8)).save(buf, "PNG")
        atomic_write_bytes(directory / f"view_{k}.png", buf.getvalue())


def _scalars(meta: dict) -> dict:
    """The JSON-scalar entries of a method's meta (what records keep of it)."""
    return {k: v for k, v in meta.items() if isinstance(v, (int, float, str, bool))}


@contextlib.contextmanager
def _time_limit(seconds: float | None):
    """Raise TimeoutError in the main thread after `seconds` (SIGALRM). Code that holds the GIL
    in C (a long numpy / torch call) is interrupted when it returns; a worker adapter
    (bench.methods.worker) kills a hung process instead."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise TimeoutError(f"generate() did not return within {seconds:g} s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _adapter(config: RunConfig, method: str):
    if config.cases:  # outputs computed elsewhere, read from the exported case folders
        from bench.cases.casefile import ImportedMethod

        return ImportedMethod(Path(config.cases), method)
    return get_adapter(method)


def evaluate_object(config: RunConfig, object_id: str, index: int) -> int:
    """Evaluate every method and setting on one object; returns the number of records written."""
    protocol = load_protocol(config.protocol)
    ds = open_dataset(config.dataset, config.data)
    out = Path(config.out)
    prov = provenance()
    from bench.methods.worker import method_name

    label = {m: method_name(m) for m in config.methods}  # the name records are kept under
    todo = [(m, st) for st in protocol.settings for m in config.methods
            if not record_path(out, protocol.name, label[m], st.views, object_id,
                               st.degree).is_file()]
    if not todo:
        return 0
    base = dict(protocol=protocol.name, protocol_hash=protocol.content_hash, dataset=ds.name,
                object_id=object_id, seed=protocol.seed_for(object_id), provenance=prov)

    def fail(method, st, reason, tb="", backend="", meta=None):
        write_record(record_path(out, protocol.name, label[method], st.views, object_id,
                                 st.degree),
                     Record(method=label[method], views=st.views, occlusion_degree=st.degree,
                            status="failed", reason=reason,
                            traceback_digest=traceback_digest(tb) if tb else "",
                            rasterizer=backend, meta={"generation": _scalars(meta or {})}, **base))

    try:
        asset = ds.load(object_id)
    except AssetError as e:
        for m, st in todo:
            fail(m, st, f"asset: {e}")
        return len(todo)
    from bench.metrics.features import save_features
    from bench.render import get_rasterizer

    backend = get_rasterizer(config.rasterizer).name
    suite = appearance_suite(config)
    gt, gt_feats = _gt_side(config, protocol, asset.mesh, object_id, ds.name, backend, suite)
    write_array(gt_cloud_path(out, protocol.name, object_id), gt)
    for name, feats in gt_feats.items():
        save_features(gt_features_path(out, protocol.name, object_id, name), feats,
                      suite.extractors[name])
    sheet_renders = {}
    written = 0
    for st in protocol.settings:
        methods = [m for m, s in todo if s == st]
        if not methods:
            continue
        try:
            case = build_case(asset, protocol, st.views, st.degree)
        except CaseError as e:
            for m in methods:
                fail(m, st, f"case: {e}", backend=backend)
            written += len(methods)
            continue
        gt_inputs = render(asset.mesh, [v.camera for v in case.views], protocol.background,
                           config.rasterizer)
        for method in methods:
            t0 = time.perf_counter()
            try:
                with _time_limit(config.generation_timeout_s):
                    gen = _adapter(config, method).generate(case)
                if gen.mesh is None:  # the method's own reason and its log (workers) are kept
                    fail(method, st, gen.meta.get("reason", "method returned no mesh"),
                         backend=backend, meta=gen.meta)
                    written += 1
                    continue
                metrics, cloud, geometry_error, rig_render = _evaluate_generation(
                    gen.mesh, case, gt_inputs, protocol, config, suite)
                feature_files = {}
                if cloud is not None:  # an empty render has no image features either
                    image_metrics, feature_files = _image_features(
                        suite, rig_render, gt_feats, out,
                        lambda n, m=label[method], s=st: features_path(out, protocol.name, m, s.views,
                                                                object_id, s.degree, n))
                    metrics.update(image_metrics)
            except Exception as e:  # failures are data: record and go on
                fail(method, st, f"{type(e).__name__}: {e}", traceback.format_exc(), backend)
                written += 1
                continue
            if config.save_renders and rig_render is not None:
                _save_renders(renders_dir(out, protocol.name, label[method], st.views, object_id,
                                          st.degree), rig_render.rgb)
            cpath = cloud_path(out, protocol.name, label[method], st.views, object_id, st.degree)
            alignment = {"method": config.alignment}
            if cloud is not None:
                write_array(cpath, cloud)
                if config.alignment != "none":
                    from bench.metrics.alignment import align, apply

                    a = align(cloud, gt, config.alignment)
                    apath = cpath.with_name(cpath.stem + ".aligned.npy")
                    write_array(apath, apply(a.transform, cloud))
                    alignment = {**a.record(), "pointcloud": str(apath.relative_to(out))}
            write_record(record_path(out, protocol.name, label[method], st.views, object_id,
                                     st.degree),
                         Record(method=label[method], views=st.views, occlusion_degree=st.degree,
                                status="ok", metrics=metrics,
                                pointcloud=str(cpath.relative_to(out)) if cloud is not None else "",
                                features=feature_files,
                                rasterizer=backend,
                                seconds=round(time.perf_counter() - t0, 3),
                                meta={"occlusion_ratio": case.occlusion_ratio,
                                      "geometry_error": geometry_error,
                                      "view_yaws_deg": [v.yaw_deg for v in case.views],
                                      "visible_fractions": [v.visible_fraction for v in case.views],
                                      "generation": _scalars(gen.meta),
                                      "alignment": alignment,
                                      "fid_extractors": suite.fid_names,
                                      "weights_sha256": suite.weights_sha256(),
                                      "missing_metrics": suite.missing},
                                **base))
            written += 1
            if index < config.sheets:
                sheet_renders[(label[method], st.label)] = (case, rig_render)
    if sheet_renders:
        from bench.run.sheets import write_contact_sheet

        rig = protocol.eval_rig()
        gt_rig = render(asset.mesh, rig.cameras, protocol.background, config.rasterizer)
        write_contact_sheet(out / "sheets" / protocol.name / f"{object_id}.png", gt_rig,
                            sheet_renders)
    return written


def run(config: RunConfig, progress: bool = True) -> Path:
    """Evaluate, write records and the leaderboard; returns the leaderboard path."""
    from bench.report.aggregate import write_leaderboard

    protocol = load_protocol(config.protocol)
    ds = open_dataset(config.dataset, config.data)
    if not config.cases:
        from bench.methods.adapter import check_method

        names = [check_method(m) for m in config.methods]  # fail fast on an unknown method
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"several methods are recorded as {', '.join(dup)}; rename one")
    from bench.metrics.alignment import ALIGNMENTS

    if config.alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {', '.join(ALIGNMENTS)}, got {config.alignment!r}")
    suite = appearance_suite(config)  # load (or find missing) metric networks before any work
    if config.require_metrics:
        suite.require()
    ids = config.object_ids or ds.object_ids
    ids = ids[: config.limit] if config.limit else ids
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps(
        {"config": asdict(config), "protocol_hash": protocol.content_hash,
         "data_root": str(ds.root), "objects": ids, "provenance": provenance(),
         "missing_metrics": suite.missing, "weights_sha256": suite.weights_sha256()}, indent=1))
    bar = tqdm(total=len(ids), desc=f"{protocol.name}", unit="obj", disable=not progress)
    if config.jobs <= 1:
        for i, oid in enumerate(ids):
            evaluate_object(config, oid, i)
            bar.update()
    else:
        ctx = mp.get_context("spawn")  # never fork a process that may hold a GL context
        saved = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = "1"  # workers already fill the cores: one BLAS thread each
        try:
            with ProcessPoolExecutor(config.jobs, mp_context=ctx) as pool:
                futures = [pool.submit(evaluate_object, config, oid, i)
                           for i, oid in enumerate(ids)]
                for f in as_completed(futures):
                    f.result()
                    bar.update()
        finally:
            if saved is None:
                os.environ.pop("OMP_NUM_THREADS")
            else:
                os.environ["OMP_NUM_THREADS"] = saved
    bar.close()
    return write_leaderboard(out)
