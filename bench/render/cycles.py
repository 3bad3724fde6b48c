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

A .blend (Toys4K) is rendered as upstream's script renders one (`blender file.blend -b -P
render.py`): the file is opened as the main file (its scripts not run), `init_render`'s settings
are set, invisible objects deleted, `normalize_scene` applied (bench.inputs.blender: the same
steps bench.inputs.blend takes, so the asset mesh and these renders share one frame), the file's
lights deleted and ours added. Its materials, World and colour management (view transform,
look) stay the file's own, as upstream touches none of them; `world="none"` still removes the
World. No frame turns a .blend (both scripts leave it as it is).

Compositing: `rgb` is the straight-alpha "over" of the 8-bit PNG colour on the background in
sRGB space, rgb = c/255 * a/255 + bg * (1 - a/255), as compositing upstream's saved RGBA PNGs
on white does; `rgba8` holds the PNG bytes Blender wrote.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.inputs.assets import AssetError
from bench.inputs.blender import BPY_MISSING as BPY_MISSING
from bench.inputs.blender import bpy_module as _bpy
from bench.inputs.blender import open_blend
from bench.inputs.blender import quiet_stdout as _quiet_stdout
from bench.inputs.cameras import Camera
from bench.inputs.protocol import background_rgb
from bench.render.cycles_scene import (
    SENSOR_MM,
    add_camera,
    add_lights,
    configure,
    load_blend_scene,
    load_object,
    reset_scene,
)

FRAMES = ("blender-obj", "upright")


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
    does (a .blend keeps its own World, as upstream); "none" removes it (ablations only).
    view_transform: Blender 3.0.1's default "Filmic" (upstream sets none; a .blend keeps its own).
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
    """Render an OBJ or a .blend with Cycles from each camera, in the named import frame.

    A .blend is opened as upstream opens it (see the module docstring); `frame` does not turn it.
    preset: a name of PRESETS or a CyclesSettings (tests use few samples).
    threads: Blender's render threads, fixed; None = os.cpu_count().
    Each call starts from Blender's factory startup or the .blend, so calls are independent.
    """
    from tqdm import tqdm

    settings = _settings(preset)
    _check_frame(frame)
    background_rgb(background)  # fail on an unknown name before rendering
    obj_path = Path(obj_path).resolve()
    blend = obj_path.suffix.lower() == ".blend"
    if obj_path.suffix.lower() != ".obj" and not blend:
        raise ValueError(f"render_cycles reads OBJ and .blend files, got {obj_path.name}")
    if not obj_path.is_file():
        raise AssetError(f"mesh file not found: {obj_path}")
    if len({(c.width, c.height) for c in cameras}) != 1:
        raise ValueError("render_cycles needs at least one camera, all of one resolution")
    bpy = _bpy()
    from mathutils import Matrix

    frames = []
    with tempfile.TemporaryDirectory(prefix="cycles_") as tmp, _quiet_stdout():
        scratch = Path(tmp)
        if blend:  # upstream: init_render, delete_invisible_objects, normalize_scene
            open_blend(bpy, obj_path)
            configure(bpy, settings, threads or os.cpu_count() or 1, colour_management=False)
            load_blend_scene(bpy, obj_path)
        else:
            reset_scene(bpy)
            configure(bpy, settings, threads or os.cpu_count() or 1)
            load_object(bpy, obj_path, frame, scratch)
        add_lights(bpy, settings.lights)
        cam = add_camera(bpy)
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

