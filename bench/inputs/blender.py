"""Blender as a Python module (bpy): the lazy import, and the steps that the .blend loader
(bench.inputs.blend) and the Cycles GT renderer (bench.render.cycles) must take identically, so
that a .blend's asset mesh and its Cycles renders lie in one frame.

The steps follow microsoft/TRELLIS @6b0d647 dataset_toolkits/blender_script/render.py for a
`.blend` (Blender is started with the file as its main file; `delete_invisible_objects`, then
`normalize_scene` over the mesh objects' bounding boxes; no `init_scene`, no `load_object`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import numpy as np

from bench.inputs.assets import AssetError

BPY_MISSING = ("the Cycles GT renderer needs Blender as a Python module: "
               "pip install 'amodal-bench[cycles]' (bpy==5.0.1, CPython 3.11)")
BLEND_MAGIC = (b"BLENDER", b"\x1f\x8b", b"\x28\xb5\x2f\xfd")  # plain, gzip, zstd (Blender >= 3.0)


def bpy_module():
    """Import bpy (RuntimeError BPY_MISSING when it is not installed)."""
    if "bpy" not in sys.modules:  # a spawned child inherits its parent's sys.path, where importing
        # bpy added Blender's script folders, whose bpy/ package would shadow the compiled module
        sys.path[:] = [p for p in sys.path if f"{os.sep}bpy{os.sep}" not in p or "scripts" not in p]
    try:
        import bpy
    except ImportError:
        raise RuntimeError(BPY_MISSING) from None
    return bpy


@contextlib.contextmanager
def quiet_stdout():
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


def open_blend(bpy, path: Path) -> None:
    """Open `path` as Blender's main file, its embedded Python scripts not run (as `blender
    file.blend -b` does by default); AssetError (one line) when it is not a readable .blend."""
    if not path.is_file():
        raise AssetError(f"blend file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(7)
    if path.suffix.lower() != ".blend" or not head.startswith(BLEND_MAGIC):
        raise AssetError(f"not a Blender .blend file: {path}")
    try:
        bpy.ops.wm.open_mainfile(filepath=str(path), load_ui=False, use_scripts=False)
    except RuntimeError as e:
        why = " ".join(str(e).split())
        raise AssetError(f"cannot open {path.name}: {why}") from None


def delete_invisible_objects(bpy) -> None:
    """Upstream `delete_invisible_objects`: delete the scene's objects disabled in viewports or
    renders (`hide_viewport`, `hide_render`; the eye icon does not count) and remove the
    collections disabled in viewports (their objects leave the scene with them)."""
    for obj in [o for o in bpy.context.scene.objects if o.hide_viewport or o.hide_render]:
        bpy.data.objects.remove(obj, do_unlink=True)
    for col in [c for c in bpy.data.collections if c.hide_viewport]:
        bpy.data.collections.remove(col)
    bpy.context.view_layer.update()


def parent_roots(bpy):
    """Upstream `normalize_scene`'s first step: with several root objects, parent them all to a
    new empty "ParentEmpty" (a child's matrix_parent_inverse then applies, as upstream); returns
    the one root that normalization scales and moves."""
    roots = [o for o in bpy.context.scene.objects if not o.parent]
    if len(roots) == 1:
        return roots[0]
    root = bpy.data.objects.new("ParentEmpty", None)
    bpy.context.scene.collection.objects.link(root)
    for obj in roots:
        obj.parent = root
    bpy.context.view_layer.update()
    return root


def mesh_objects(bpy) -> list:
    """The scene's objects whose data is a mesh: the ones upstream's `scene_bbox` measures."""
    return [o for o in bpy.context.scene.objects if isinstance(o.data, bpy.types.Mesh)]


def scene_bbox(bpy) -> tuple[np.ndarray, np.ndarray]:
    """Upstream `scene_bbox`: the world-space min and max of the 8 corners of every mesh object's
    (evaluated, local) bounding box moved by its matrix_world. For a rotated object this box is
    larger than the tight box of its vertices, as upstream's is. AssetError when there is no mesh."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    corners = []
    for obj in mesh_objects(bpy):
        ev = obj.evaluated_get(depsgraph)
        m = np.array(ev.matrix_world, np.float64)
        local = np.array([tuple(c) for c in ev.bound_box], np.float64)
        corners.append(local @ m[:3, :3].T + m[:3, 3])
    if not corners:
        raise AssetError(f"no mesh object in {Path(bpy.data.filepath).name or 'the scene'}")
    every = np.concatenate(corners)
    return every.min(0), every.max(0)


def node_images(tree, seen=None) -> list:
    """Every image of the Image / Environment Texture nodes of a node tree and its groups."""
    seen = set() if seen is None else seen
    if tree is None or tree.name_full in seen:
        return []
    seen.add(tree.name_full)
    found = []
    for node in tree.nodes:
        if getattr(node, "image", None) is not None:
            found.append(node.image)
        if node.bl_idname == "ShaderNodeGroup":
            found += node_images(node.node_tree, seen)
    return found


def image_path(bpy, image) -> Path:
    """The file an unpacked image reads (relative paths resolved against its .blend)."""
    return Path(bpy.path.abspath(image.filepath, library=image.library))


def check_images(bpy) -> None:
    """AssetError naming the first image a render would miss (Cycles paints it magenta): one
    used by the materials of the scene's objects or by the World, neither packed nor on disk."""
    trees = [bpy.context.scene.world.node_tree] if bpy.context.scene.world else []
    for obj in bpy.context.scene.objects:
        trees += [s.material.node_tree for s in obj.material_slots if s.material]
    for tree in trees:
        for image in node_images(tree):
            if image.source in ("FILE", "SEQUENCE", "MOVIE") and not image.packed_file:
                if not image_path(bpy, image).is_file():
                    raise AssetError(f"texture missing: {image.filepath} ({image.name}) not found "
                                     f"at {image_path(bpy, image)}")
