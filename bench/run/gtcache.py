"""The GT side of an object, cached by content across runs and methods: the rig point cloud and
the rig image features per extractor. The cache key holds the dataset, the mesh content, the
protocol, the rasterizer backend, the harness version and the object id; a feature file's name
also holds its extractor's weights sha256.

The cache lives in RunConfig.cache, else $AMODAL_BENCH_CACHE, else ~/.cache/amodal-bench, under gt/.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

import bench
from bench.inputs.assets import Mesh
from bench.inputs.protocol import Protocol
from bench.records.store import write_array
from bench.render import render
from bench.render.pointcloud import sample_point_cloud
from bench.run.appearance import AppearanceSuite


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
    protocol, backend, harness version[, extractor, weights sha256]). The rig is rendered only
    when something is not cached. config: bench.run.runner.RunConfig."""
    from bench.records.features import load_features, save_features

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
