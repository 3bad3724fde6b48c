"""The Blender scene of a Cycles GT render (bench.render.cycles): reset, render settings, the
object (an OBJ imported, or a .blend opened as TRELLIS's script opens it), lights and camera.

Split from bench.render.cycles to keep each module short; the OBJ steps are unchanged.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.inputs.assets import AssetError, _TextureResolver
from bench.inputs.blender import check_images, delete_invisible_objects, parent_roots, scene_bbox

SENSOR_MM = 32.0  # upstream init_camera: sensor_width = sensor_height = 32


def reset_scene(bpy) -> None:
    """Factory startup, then upstream `init_scene`: delete objects, materials, textures, images."""
    bpy.ops.wm.read_factory_settings(use_empty=False)
    for collection in (bpy.data.objects, bpy.data.materials, bpy.data.textures, bpy.data.images):
        for item in list(collection):
            collection.remove(item, do_unlink=True)


def configure(bpy, s, threads: int, colour_management: bool = True) -> None:
    """Upstream `init_render` with the CyclesSettings `s`. colour_management=False keeps the
    scene's own view transform and look (a .blend's: upstream sets none)."""
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
    if colour_management:
        scene.view_settings.view_transform, scene.view_settings.look = s.view_transform, s.look
    if s.world == "none":
        scene.world = None


def resolve_textures(bpy, obj_path: Path, scratch: Path) -> None:
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


def load_object(bpy, obj_path: Path, frame: str, scratch: Path) -> None:
    """Import (Blender's default OBJ axes), optionally turn upright, then `normalize_scene`."""
    from mathutils import Vector

    bpy.ops.wm.obj_import(filepath=str(obj_path))
    resolve_textures(bpy, obj_path, scratch)
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


def load_blend_scene(bpy, blend_path: Path) -> None:
    """The opened .blend as upstream renders it: `delete_invisible_objects`, `normalize_scene`
    (scale the root, measure again, move it: bench.inputs.blender, shared with the asset
    loader), and `init_lighting`'s deletion of the file's lights. The file's materials, World,
    colour management and other render settings stay. Missing images raise AssetError."""
    from mathutils import Vector

    delete_invisible_objects(bpy)
    check_images(bpy)
    root = parent_roots(bpy)
    lo, hi = scene_bbox(bpy)
    extent = float((hi - lo).max())
    if not extent > 0:
        raise AssetError(f"mesh is degenerate (zero bounding box): {blend_path}")
    root.scale = root.scale * (1.0 / extent)
    bpy.context.view_layer.update()
    lo, hi = scene_bbox(bpy)
    world = root.matrix_world.copy()
    world.translation += Vector(tuple(-(lo + hi) / 2))
    root.matrix_world = world
    for light in [o for o in bpy.context.scene.objects if o.type == "LIGHT"]:
        bpy.data.objects.remove(light, do_unlink=True)
    bpy.context.view_layer.update()


def add_lights(bpy, lights: Sequence) -> None:
    for i, spec in enumerate(lights):
        light = bpy.data.objects.new(f"Light{i}", bpy.data.lights.new(f"Light{i}", type=spec.kind))
        bpy.context.collection.objects.link(light)
        light.data.energy = spec.energy
        light.location = spec.location
        light.scale = (spec.scale,) * 3


def add_camera(bpy):
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    bpy.context.collection.objects.link(cam)
    bpy.context.scene.camera = cam
    cam.data.sensor_width = cam.data.sensor_height = SENSOR_MM
    return cam
