"""Lit Blender Cycles ground-truth renders, as TRELLIS, Amodal3R and GENA3D made theirs.

Reproduces microsoft/TRELLIS @6b0d647 dataset_toolkits/blender_script/render.py (`init_render`,
`init_scene`, `init_lighting`, `normalize_scene`, `init_camera` and the view loop) and
GENAmodal3D's copy (Colezwhy/GENAmodal3D @c9e3af9, same path), written anew for Blender 5 as a
Python module (bpy): the factory startup scene with objects, materials, textures and images
deleted (its default World, grey 0.0509 at strength 1, stays and lights the object dimly), the
OBJ imported with Blender's default axes, scaled by 1/longest bbox side and centred, three lights,
film_transparent, 8-bit RGBA PNG. The camera is built from our `Camera` (OpenCV world-to-camera
extrinsics, pixel intrinsics), so any camera works; for a TRELLIS (yaw, pitch, r) camera it equals
upstream's TRACK_TO camera at blender_yaw = 90 deg - yaw (tests/test_render_cycles.py).

Beyond upstream: Blender 4+ renamed `filter_type` to `pixel_filter_type` and replaced
`import_scene.obj` by `wm.obj_import`; upstream sets no view transform, so it rendered with its
pinned Blender 3.0.1's default, Filmic (Blender 4+ defaults to AgX): we set Filmic. Upstream
renders on the GPU when there is one; we render on the CPU (denoised noise differs, not the
image). GSO's .mtl names `texture.png`, which lies in ../materials/textures/: the importer misses
it and Cycles would paint the object magenta, so missing images are resolved as our mesh loader
does (bench.inputs.assets) and a texture that cannot be found raises AssetError.

Frames: "blender-obj" keeps Blender's OBJ axes (file (x, y, z) -> (x, -z, y): a Z-up GSO mesh lies
on its back), as TRELLIS's and Amodal3R's scripts do; "upright" adds GENA3D's -90 deg turn about X
after import (render.py:436), which gives back the file's own Z-up frame.

Compositing: `rgb` is the straight-alpha "over" of the 8-bit PNG colour on the background in
sRGB space, rgb = c/255 * a/255 + bg * (1 - a/255), as compositing upstream's saved RGBA PNGs
on white does; `rgba8` holds the PNG bytes Blender wrote.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.inputs.assets import AssetError, _TextureResolver
from bench.inputs.cameras import Camera
from bench.inputs.protocol import background_rgb

BPY_MISSING = ("the Cycles GT renderer needs Blender as a Python module: "
               "pip install 'amodal-bench[cycles]' (bpy==5.0.1, CPython 3.11)")
FRAMES = ("blender-obj", "upright")
SENSOR_MM = 32.0  # upstream init_camera: sensor_width = sensor_height = 32


@dataclass(frozen=True)
class Light:
    """One light of upstream `init_lighting` (default orientation: area lights face -Z)."""

    kind: str  # "POINT" or "AREA"
    location: tuple[float, float, float]
    energy: float  # watts
    scale: float = 1.0  # object scale (an area light of size 1 scaled 100 is 100 x 100)


TRELLIS_LIGHTS = (Light("POINT", (4.0, 1.0, 6.0), 1000.0),
                  Light("AREA", (0.0, 0.0, 10.0), 10000.0, 100.0),
                  Light("AREA", (0.0, 0.0, -10.0), 1000.0))


@dataclass(frozen=True)
class CyclesSettings:
    """Every render setting upstream fixes (init_render, init_lighting), plus what it inherits.

    world: "startup" keeps the factory startup World (grey 0.0509, strength 1), as upstream
    does; "none" removes it (no ambient light; for ablations only).
    view_transform: Blender 3.0.1's default "Filmic" (upstream sets none).
    Resolution comes from the cameras; film_transparent, 8-bit RGBA PNG and the CPU device are
    fixed. Adaptive sampling, light tree, OpenImageDenoise and dithering keep Blender's defaults,
    as upstream does (the Blender version is part of `cache_key`).
    """

    name: str
    samples: int
    denoise: bool = True
    pixel_filter: str = "BOX"
    filter_width: float = 1.0
    diffuse_bounces: int = 1
    glossy_bounces: int = 1
    transparent_bounces: int = 3
    transmission_bounces: int = 3
    lights: tuple[Light, ...] = TRELLIS_LIGHTS
    world: str = "startup"
    view_transform: str = "Filmic"
    look: str = "None"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.world not in ("startup", "none"):
            raise ValueError(f"unknown world {self.world!r}; valid: startup, none")


PRESETS = {
    # microsoft/TRELLIS dataset_toolkits/blender_script/render.py init_render (geo_mode off)
    "cycles-trellis": CyclesSettings("cycles-trellis", samples=128),
    # Colezwhy/GENAmodal3D dataset_toolkits/blender_script/render.py: 32 samples and 1 (not 3)
    # transparent and transmission bounces; device CPU
    "cycles-gena3d": CyclesSettings("cycles-gena3d", samples=32, transparent_bounces=1,
                                    transmission_bounces=1),
}


@dataclass
class CyclesRender:
    """Cycles renders of one object from V cameras of resolution H x W.

    rgb: (V, H, W, 3) float32 sRGB in [0, 1], rgba8 composited on `background` (straight alpha).
    alpha: (V, H, W) float32 in [0, 1], the PNG alpha / 255.
    rgba8: (V, H, W, 4) uint8, the PNG upstream would have saved (straight alpha).
    """

    rgb: np.ndarray
    alpha: np.ndarray
    rgba8: np.ndarray
    background: str
    settings: CyclesSettings
    frame: str


def _bpy():
    if "bpy" not in sys.modules:  # a spawned child inherits its parent's sys.path, where importing
        # bpy added Blender's script folders, whose bpy/ package would shadow the compiled module
        sys.path[:] = [p for p in sys.path if f"{os.sep}bpy{os.sep}" not in p or "scripts" not in p]
    try:
        import bpy
    except ImportError:
        raise RuntimeError(BPY_MISSING) from None
    return bpy


def blender_version() -> str:  # e.g. '5.0.1'
    return _bpy().app.version_string


def _settings(preset: str | CyclesSettings) -> CyclesSettings:
    if isinstance(preset, CyclesSettings):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"unknown Cycles preset {preset!r}; valid: {', '.join(PRESETS)}")
    return PRESETS[preset]


def _check_frame(frame: str) -> None:
    if frame not in FRAMES:
        raise ValueError(f"unknown import frame {frame!r}; valid: {', '.join(FRAMES)}")


def cache_key(preset: str | CyclesSettings, frame: str) -> dict:
    """Everything that changes the pixels of `rgba8`, for a GT cache (the background only
    enters the compositing, and the cameras and mesh are the caller's part of the key)."""
    _check_frame(frame)
    key = asdict(_settings(preset))
    key.update(renderer="cycles", frame=frame, blender=blender_version(), device="CPU",
               film_transparent=True, output="png-rgba8", importer="wm.obj_import")
    return key


def camera_to_blender(camera: Camera) -> tuple[np.ndarray, float, float, float]:
    """(matrix_world 4x4, lens mm, shift_x, shift_y) of a Blender camera (-Z forward, +Y up,
    32 mm sensor, sensor fit AUTO) that sees what our OpenCV `camera` sees."""
    k = camera.intrinsics
    if not np.isclose(k[0, 0], k[1, 1], rtol=1e-9) or abs(k[0, 1]) > 1e-12:
        raise ValueError("Blender cameras need square pixels (fx == fy) and no skew")
    size = max(camera.width, camera.height)
    lens = float(k[0, 0]) * SENSOR_MM / size
    shift_x = (camera.width / 2 - float(k[0, 2])) / size
    shift_y = (float(k[1, 2]) - camera.height / 2) / size
    world = np.eye(4)
    world[:3, :3] = camera.extrinsics[:3, :3].T @ np.diag([1.0, -1.0, -1.0])  # OpenCV -> Blender axes
    world[:3, 3] = camera.position
    return world, lens, shift_x, shift_y


@contextlib.contextmanager
def _quiet_stdout():
    """Silence Blender's C-level progress lines on stdout (fd 1); stderr stays."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _reset_scene(bpy) -> None:
    """Factory startup, then upstream `init_scene`: delete objects, materials, textures, images."""
    bpy.ops.wm.read_factory_settings(use_empty=False)
    for collection in (bpy.data.objects, bpy.data.materials, bpy.data.textures, bpy.data.images):
        for item in list(collection):
            collection.remove(item, do_unlink=True)


def _configure(bpy, s: CyclesSettings, threads: int) -> None:
    scene = bpy.context.scene
    r = scene.render
    r.engine, r.resolution_percentage, r.film_transparent = "CYCLES", 100, True
    r.image_settings.file_format, r.image_settings.color_mode = "PNG", "RGBA"
    r.image_settings.color_depth = "8"
    r.threads_mode, r.threads = "FIXED", threads
    cycles = dict(device="CPU", samples=s.samples, pixel_filter_type=s.pixel_filter,
                  filter_width=s.filter_width, diffuse_bounces=s.diffuse_bounces,
                  glossy_bounces=s.glossy_bounces, transparent_max_bounces=s.transparent_bounces,
                  transmission_bounces=s.transmission_bounces, use_denoising=s.denoise, seed=s.seed,
                  use_animated_seed=False)
    for name, value in cycles.items():
        setattr(scene.cycles, name, value)
    scene.view_settings.view_transform, scene.view_settings.look = s.view_transform, s.look
    if s.world == "none":
        scene.world = None


def _resolve_textures(bpy, obj_path: Path, scratch: Path) -> None:
    """Point every image the importer could not find to the file our loader resolves
    (bench.inputs.assets._TextureResolver); its bytes are written to `scratch`."""
    resolver = _TextureResolver(obj_path)
    for k, image in enumerate(bpy.data.images):
        if image.source != "FILE" or Path(bpy.path.abspath(image.filepath)).is_file():
            continue
        wanted = Path(bpy.path.abspath(image.filepath))
        name = (os.path.relpath(wanted, obj_path.parent) if wanted.is_relative_to(obj_path.parent)
                else wanted.name)
        try:
            data = resolver.get(name)
        except FileNotFoundError:
            raise AssetError(f"texture missing: {name} not found in "
                             + " or ".join(str(d) for d in resolver.dirs)) from None
        if resolver.unreadable:
            raise AssetError(f"texture unreadable: {'; '.join(resolver.unreadable)}")
        found = scratch / f"texture{k}_{Path(name).name}"
        found.write_bytes(data)
        image.filepath = str(found)
        image.reload()


def _load_object(bpy, obj_path: Path, frame: str, scratch: Path) -> None:
    """Import (Blender's default OBJ axes), optionally turn upright, then `normalize_scene`."""
    from mathutils import Vector

    bpy.ops.wm.obj_import(filepath=str(obj_path))
    _resolve_textures(bpy, obj_path, scratch)
    meshes = [o for o in bpy.context.scene.objects if o.type == "MESH"]
    if not meshes:
        raise AssetError(f"Blender imported no mesh from {obj_path}")
    if frame == "upright":  # GENA3D render.py:432-435
        for obj in meshes:
            obj.rotation_euler.rotate_axis("X", -math.pi / 2)
    root = bpy.data.objects.new("ParentEmpty", None)
    bpy.context.scene.collection.objects.link(root)
    for obj in bpy.context.scene.objects:
        if obj.parent is None and obj is not root:
            obj.parent = root
    bpy.context.view_layer.update()
    corners = np.array([tuple(o.matrix_world @ Vector(c)) for o in meshes for c in o.bound_box])
    lo, hi = corners.min(0), corners.max(0)
    scale = 1.0 / float((hi - lo).max())
    root.scale = (scale, scale, scale)
    root.location = tuple(-(lo + hi) / 2 * scale)
    bpy.context.view_layer.update()


def _add_lights(bpy, lights: Sequence[Light]) -> None:
    for i, spec in enumerate(lights):
        light = bpy.data.objects.new(f"Light{i}", bpy.data.lights.new(f"Light{i}", type=spec.kind))
        bpy.context.collection.objects.link(light)
        light.data.energy = spec.energy
        light.location = spec.location
        light.scale = (spec.scale,) * 3


def _add_camera(bpy):
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    bpy.context.collection.objects.link(cam)
    bpy.context.scene.camera = cam
    cam.data.sensor_width = cam.data.sensor_height = SENSOR_MM
    return cam


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:  # as a PNG reader sees upstream's file
        return np.asarray(im.convert("RGBA"), dtype=np.uint8)


def composite(rgba8: np.ndarray, background: str) -> tuple[np.ndarray, np.ndarray]:
    """(..., 4) uint8 straight-alpha RGBA -> ((..., 3) float32 sRGB over the background,
    (...) float32 alpha), in sRGB space as compositing the PNG on a flat colour does."""
    alpha = rgba8[..., 3].astype(np.float32) / 255
    colour = rgba8[..., :3].astype(np.float32) / 255
    bg = background_rgb(background)
    return colour * alpha[..., None] + bg * (1 - alpha[..., None]), alpha


def render_cycles(obj_path: str | os.PathLike, cameras: Sequence[Camera],
                  preset: str | CyclesSettings = "cycles-trellis", frame: str = "blender-obj",
                  background: str = "white", threads: int | None = None,
                  progress: bool = True) -> CyclesRender:
    """Render an OBJ with Cycles from each camera, in the named import frame.

    preset: a name of PRESETS or a CyclesSettings (tests use few samples).
    threads: Blender's render threads, fixed; None = os.cpu_count().
    Each call starts from Blender's factory startup, so calls are independent.
    """
    from tqdm import tqdm

    settings = _settings(preset)
    _check_frame(frame)
    background_rgb(background)  # fail on an unknown name before rendering
    obj_path = Path(obj_path).resolve()
    if obj_path.suffix.lower() != ".obj":
        raise ValueError(f"render_cycles reads OBJ files, got {obj_path.name}")
    if not obj_path.is_file():
        raise AssetError(f"mesh file not found: {obj_path}")
    if len({(c.width, c.height) for c in cameras}) != 1:
        raise ValueError("render_cycles needs at least one camera, all of one resolution")
    bpy = _bpy()
    from mathutils import Matrix

    frames = []
    with tempfile.TemporaryDirectory(prefix="cycles_") as tmp, _quiet_stdout():
        scratch = Path(tmp)
        _reset_scene(bpy)
        _configure(bpy, settings, threads or os.cpu_count() or 1)
        _load_object(bpy, obj_path, frame, scratch)
        _add_lights(bpy, settings.lights)
        cam = _add_camera(bpy)
        scene = bpy.context.scene
        name = obj_path.parent.parent.name if obj_path.parent.name == "meshes" else obj_path.stem
        for i, camera in enumerate(tqdm(cameras, f"cycles {name}", unit="view", disable=not progress)):
            world, lens, shift_x, shift_y = camera_to_blender(camera)
            cam.matrix_world = Matrix(world.tolist())  # Matrix() takes rows
            cam.data.lens, cam.data.shift_x, cam.data.shift_y = lens, shift_x, shift_y
            scene.render.resolution_x, scene.render.resolution_y = camera.width, camera.height
            scene.render.filepath = str(scratch / f"{i:03d}.png")
            bpy.ops.render.render(write_still=True)
            frames.append(_read_png(scratch / f"{i:03d}.png"))
    rgba8 = np.stack(frames)
    rgb, alpha = composite(rgba8, background)
    return CyclesRender(rgb, alpha, rgba8, background, settings, frame)

