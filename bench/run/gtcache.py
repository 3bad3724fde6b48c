"""The GT side of an object, cached by content across runs and methods: the rig point cloud and
the rig image features per extractor. The cache key holds the dataset, the mesh content, the
protocol, the rasterizer backend, the hash of the code that produces GT data (GT_CODE_HASH) and
the object id; a feature file's name also holds its extractor's weights sha256.

GT_CODE_HASH is the sha256 of the source of every module that turns a mesh into GT data
(GT_CODE: loading and normalization, cameras, the rasterizers and shading, point sampling, image
resizing and feature extraction, this module): any change there, such as a fix of FPS's tie
rule, gives new keys, so GT data made by older code is never compared with generations made by
newer code. (It was `bench.__version__`, a constant "0.1.0".)

The cache lives in RunConfig.cache, else $AMODAL_BENCH_CACHE, else ~/.cache/amodal-bench, under gt/.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from bench.inputs.assets import Mesh
from bench.inputs.protocol import Protocol
from bench.records.store import write_array
from bench.render import render
from bench.render.pointcloud import sample_point_cloud
from bench.run.appearance import AppearanceSuite

GT_CODE = ("bench.inputs.assets", "bench.inputs.cameras", "bench.render", "bench.render.raster",
           "bench.render.raster_moderngl", "bench.render.raster_numpy", "bench.render.raster_nvdiffrast",
           "bench.render.shading", "bench.render.pointcloud", "bench.metrics.resize",
           "bench.metrics.extractors", "bench.metrics.features", "bench.run.gtcache")


def code_hash(modules=GT_CODE) -> str:
    """sha256 over the source files of `modules` (read from disk, in the given order)."""
    import importlib.util

    h = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            raise ValueError(f"GT code module {name} not found")
        h.update(name.encode() + b"\0" + Path(spec.origin).read_bytes() + b"\0")
    return h.hexdigest()


GT_CODE_HASH = code_hash()


def cache_dir(config) -> Path:
    """The GT cache directory of a run (config: bench.run.runner.RunConfig)."""
    if config.cache:
        return Path(config.cache)
    return Path(os.environ.get("AMODAL_BENCH_CACHE", Path.home() / ".cache" / "amodal-bench"))


def _sampler(protocol: Protocol) -> str:
    return protocol.spec["pointcloud"].get("sampling", "fps")


def _gt_side(config, protocol: Protocol, mesh: Mesh, object_id: str, dataset: str,
             backend: str, suite: AppearanceSuite) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The GT rig point cloud and rig image features, each cached by (dataset, mesh content,
    protocol, backend, GT code hash[, extractor, weights sha256]). The rig is rendered only
    when something is not cached. config: bench.run.runner.RunConfig."""
    from bench.records.features import load_features, save_features

    key = hashlib.sha256(json.dumps([dataset, mesh.content_hash(), protocol.content_hash, backend,
                                     GT_CODE_HASH, object_id]).encode()).hexdigest()[:24]
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
