"""The GT side of an object, cached by content across runs and methods: the rig point cloud and
the rig image features per extractor. The cache key holds the dataset, the mesh content, the
protocol, the rasterizer backend, the GT appearance renderer (with Blender's version and the
Cycles settings: appearance_key), the hash of the code that produces GT
data (GT_CODE_HASH) and the object id; a feature file's name also holds its extractor's weights
sha256. The image features are of the protocol's GT appearance renders (lit Cycles for the
paper protocols); the point cloud is of the rasterizer's depth.

GT appearance renders (PROTOCOLS.md 7), by the protocol's `gt_appearance`:
- `cycles-trellis` / `cycles-gena3d`: lit Blender Cycles as TRELLIS's / GENA3D's Blender script
  (bench.render.cycles), seconds per view on a CPU, so the RGBA renders are cached by content
  under gt-renders/, one file per view (eval rig and input views alike). The key holds the mesh
  files' sha256 (OBJ, MTL and texture bytes are what Blender reads), the loaded mesh, every
  Cycles setting that changes pixels and Blender's version (bench.render.cycles.cache_key), the
  hash of the renderer's source, the object id and the camera. Cached as 8-bit RGBA, what
  upstream's PNGs hold, composited on the background when read (not in the key). The input views
  of a case are rendered the same way (input_shader): the papers' inputs were their lit renders.
- `raster-unlit`: the fast unlit rasterizer (bench.render), never presented as a paper's protocol.
Generations are never rendered here: their appearance comes from their Gaussians when they have
them, else from their mesh, unlit (bench.run.measure).

GT_CODE_HASH is the sha256 of the source of every module that turns a mesh into GT data
(GT_CODE: loading and normalization, cameras, the rasterizers and shading, point sampling, image
resizing and feature extraction, this module): any change there, such as a fix of FPS's tie
rule, gives new keys, so GT data made by older code is never compared with generations made by
newer code. (It was `bench.__version__`, a constant "0.1.0".)

The cache lives in RunConfig.cache, else $AMODAL_BENCH_CACHE, else ~/.cache/amodal-bench, under gt/.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from bench.files import atomic_write_bytes
from bench.inputs.assets import Asset
from bench.inputs.protocol import Protocol
from bench.records.store import write_array
from bench.render import render
from bench.render.pointcloud import sample_point_cloud
from bench.run.appearance import AppearanceSuite

GT_CODE = ("bench.inputs.assets", "bench.inputs.cameras", "bench.render", "bench.render.raster",
           "bench.render.raster_moderngl", "bench.render.raster_numpy", "bench.render.raster_nvdiffrast",
           "bench.render.shading", "bench.render.pointcloud", "bench.metrics.resize",
           "bench.metrics.extractors", "bench.metrics.features", "bench.render.cycles",
           "bench.render.cycles_scene", "bench.inputs.blend", "bench.inputs.blender",
           "bench.inputs.dataset", "bench.run.gtcache")


# the code that turns a source file into a Cycles GT render (the key of cycles_rgba8's files)
CYCLES_CODE = ("bench.render.cycles", "bench.render.cycles_scene", "bench.inputs.blender")


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


CYCLES_RENDERERS = ("cycles-trellis", "cycles-gena3d")


def appearance_key(protocol: Protocol) -> list:
    """What a GT image feature depends on beyond the mesh and the protocol's content: for Cycles,
    its settings and Blender's version (a new Blender gives new keys)."""
    if protocol.gt_appearance not in CYCLES_RENDERERS:
        return [protocol.gt_appearance]
    from bench.render.cycles import cache_key

    return [protocol.gt_appearance, cache_key(protocol.gt_appearance, protocol.import_frame)]


def _source_files_sha256(asset: Asset) -> list[str]:
    """sha256 of the mesh file and of the files beside it that Blender's importer may read (the
    .mtl and the textures of a GSO folder; everything in a .blend's folder)."""
    from pathlib import Path

    src = Path(asset.source)
    files = [src, *sorted(src.parent.glob("*.mtl"))]
    if src.parent.name == "meshes":
        files += sorted((src.parent.parent / "materials" / "textures").glob("*"))
    if src.suffix.lower() == ".blend":  # external images a .blend may reference from its folder
        files += sorted(p for p in src.parent.rglob("*") if p.is_file() and p != src)
    return [hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()]


def cycles_threads(config) -> int:
    """Cycles threads of one worker process: the machine's cores shared by the run's jobs."""
    return max(1, (os.cpu_count() or 1) // max(1, int(getattr(config, "jobs", 1))))


def cycles_rgba8(config, protocol: Protocol, asset: Asset, dataset: str, cameras) -> np.ndarray:
    """(V, H, W, 4) uint8 Cycles RGBA of `cameras`, one cache file per view (the eval rig and the
    input views of every setting share them); the views not cached are rendered in one call."""
    from bench.render.cycles import render_cycles

    base = [dataset, asset.object_id, _source_files_sha256(asset), asset.mesh.content_hash(),
            appearance_key(protocol), code_hash(CYCLES_CODE)]
    paths = [cache_dir(config) / "gt-renders" / (hashlib.sha256(json.dumps(
        [*base, c.to_json()], sort_keys=True).encode()).hexdigest()[:24] + ".npz") for c in cameras]
    views: list[np.ndarray | None] = []
    for path, cam in zip(paths, cameras):
        try:
            with np.load(path, allow_pickle=False) as z:
                rgba = z["rgba8"]
            views.append(rgba if rgba.shape == (cam.height, cam.width, 4) else None)
        except (OSError, ValueError, KeyError):  # missing or damaged: rendered again
            views.append(None)
    todo = [i for i, v in enumerate(views) if v is None]
    if todo:
        out = render_cycles(asset.source, [cameras[i] for i in todo], preset=protocol.gt_appearance,
                            frame=protocol.import_frame, background=protocol.background,
                            threads=cycles_threads(config))
        for i, rgba in zip(todo, out.rgba8):
            buf = io.BytesIO()
            np.savez_compressed(buf, rgba8=rgba)
            atomic_write_bytes(paths[i], buf.getvalue())
            views[i] = rgba
    return np.stack(views)


def appearance_rgb(config, protocol: Protocol, asset: Asset, dataset: str, cameras) -> np.ndarray:
    """(V, H, W, 3) float32 renders of the GT at `cameras` by the protocol's GT appearance
    renderer, on its background (Cycles cached by content; the rasterizer otherwise)."""
    if protocol.gt_appearance in CYCLES_RENDERERS:
        from bench.render.cycles import composite

        return composite(cycles_rgba8(config, protocol, asset, dataset, cameras), protocol.background)[0]
    return render(asset.mesh, cameras, protocol.background, config.rasterizer).rgb


def input_shader(config, protocol: Protocol, asset: Asset, dataset: str):
    """What build_case renders its selected input views' RGB with (bench.cases.case): the
    protocol's GT appearance renderer, as the papers' inputs were their lit Cycles renders; None
    (the rasterizer's unlit RGB) for raster-unlit."""
    if protocol.gt_appearance not in CYCLES_RENDERERS:
        return None
    return lambda cameras: appearance_rgb(config, protocol, asset, dataset, cameras)


def gt_appearance_rgb(config, protocol: Protocol, asset: Asset, dataset: str) -> np.ndarray:
    """(V, H, W, 3) float32 GT renders of the eval rig by the protocol's GT appearance renderer."""
    return appearance_rgb(config, protocol, asset, dataset, protocol.eval_rig().cameras)


def _gt_side(config, protocol: Protocol, asset: Asset, dataset: str,
             backend: str, suite: AppearanceSuite) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The GT rig point cloud and rig image features, each cached by (dataset, mesh content,
    protocol, backend, GT appearance renderer, GT code hash[, extractor, weights sha256]).
    Nothing is rendered when all is cached. config: bench.run.runner.RunConfig."""
    from bench.records.features import load_features, save_features

    mesh, object_id = asset.mesh, asset.object_id
    key = hashlib.sha256(json.dumps([dataset, mesh.content_hash(), protocol.content_hash, backend,
                                     appearance_key(protocol), GT_CODE_HASH, object_id]
                                    ).encode()).hexdigest()[:24]
    root = cache_dir(config) / "gt"
    cloud_file = root / f"{key}.npy"
    feat_files = {n: root / f"{key}.{n}.{e.weights_sha256[:16]}.npz"
                  for n, e in suite.extractors.items()}
    rig, rgb = protocol.eval_rig(), None
    if cloud_file.is_file():
        cloud = np.load(cloud_file)
    else:
        depth = render(mesh, rig.cameras, protocol.background, config.rasterizer).depth
        cloud = sample_point_cloud(depth, rig.cameras, protocol.spec["pointcloud"]["points"],
                                   protocol.seed_for(object_id), _sampler(protocol))
        write_array(cloud_file, cloud)
    feats = {}
    for name, f in feat_files.items():
        ext = suite.extractors[name]
        if f.is_file():
            feats[name] = load_features(f, name, ext.weights_sha256)
        else:
            if rgb is None:
                rgb = gt_appearance_rgb(config, protocol, asset, dataset)
            feats[name] = suite.features(name, rgb)
            save_features(f, feats[name], ext)
    return cloud, feats
