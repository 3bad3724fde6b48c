"""Blender `.blend` objects (Toys4K) as assets, in the frame TRELLIS's render script gives them.

TRELLIS (dataset_toolkits/blender_script/render.py) opens a .blend as Blender's main file,
deletes its invisible objects and normalizes the scene; it neither imports nor turns anything,
so the object frame is the file's own Z-up world, scaled and centred. `load_blend` reads that:

- geometry: every object of the scene that survives upstream's `delete_invisible_objects`
  (bench.inputs.blender) and has surface geometry (mesh, curve, surface, text, metaball), as
  Blender evaluates it for the viewport (modifiers applied, as TRELLIS's `--save_mesh` export),
  triangulated, in world coordinates (after upstream's "ParentEmpty" parenting). Instances
  (particles, collection instances) are not read.
- normalization: upstream's `scene_bbox`, the box of the mesh objects' local bounding boxes
  moved to the world (bench.inputs.blender.scene_bbox), so the asset lies exactly where the
  Cycles render (bench.render.cycles) puts it; v_object = (v_world + offset) * scale. For an
  unrotated object this is the tight box of load_asset's `normalize_mesh`; for a rotated one it
  is upstream's larger box (the longest side is then below 1).
- appearance, per material: the colour reaching its surface shader's colour input ("Base
  Color" of a Principled BSDF, "Color" of Diffuse, Emission...; through Mix / Add shaders the
  first linked one, else the first "Base Color"), evaluated per triangle corner: an Image Texture
  gives its image at the UV map its node names (else the active render UV map; the image's
  bytes, packed or on disk, decoded by PIL, else Blender's own pixels); a Color Attribute /
  Attribute node gives that colour attribute; a colour Mix node (Mix or Multiply at a constant
  factor) combines its inputs, so glTF's "base colour factor x COLOR_0" (Toys4K's files)
  is exact; an image times a constant at factor 1 is tinted, an image mixed otherwise is taken
  alone; any other node passes on the first texture or attribute upstream of it, unchanged; an
  unlinked input gives its colour (linear, converted to sRGB). No material: Blender's grey 0.8.
  Then: one image on every face -> that texture and its UVs as they are; no image -> per-vertex
  colours; a mix -> one atlas: each image, and each plain colour or colour attribute (its mean,
  a 4 x 4 tile), stacked vertically with 2 edge pixels of padding, UVs moved into their tile (a
  face's UVs shifted by whole periods into [0, 1], the rest clamped: a texture repeating within
  one face is not kept). Nothing is baked: roughness, metal, normal maps, emission strength,
  alpha and mapping nodes' transforms are ignored; procedural textures are not evaluated.

import_frame: "blender-obj" and "upright" give the same frame for a .blend, the file's world:
both only concern how an OBJ importer turns a file (TRELLIS's and GENA3D's scripts render a
.blend without turning it). The value is recorded in the Asset.
"""

from __future__ import annotations

import io
import os
from functools import partial
from pathlib import Path

import numpy as np

from bench.inputs.assets import IMPORT_FRAMES, Asset, AssetError, Mesh
from bench.inputs.blender import (
    bpy_module,
    check_images,
    delete_invisible_objects,
    image_path,
    open_blend,
    parent_roots,
    quiet_stdout,
    scene_bbox,
)

GEOMETRY = ("MESH", "CURVE", "SURFACE", "FONT", "META")
DEFAULT_GREY = (0.8, 0.8, 0.8)  # Blender's surface without a material (linear)
PAD, SOLID = 2, 4  # atlas padding (pixels) and the size of a plain colour's tile


def load_blend(path: str | os.PathLike, object_id: str | None = None,
               import_frame: str = "blender-obj") -> Asset:
    """Load a .blend as TRELLIS's script sees it (see the module docstring); object_id defaults to
    the file's stem. Raises AssetError (one line) when the file is not a readable .blend, has no
    mesh or no faces, or misses a texture. Blender is left at its empty factory state."""
    if import_frame not in IMPORT_FRAMES:
        raise ValueError(f"import_frame must be one of {', '.join(IMPORT_FRAMES)}, got {import_frame!r}")
    path = Path(path)
    bpy = bpy_module()
    try:
        with quiet_stdout():
            open_blend(bpy, path)
            delete_invisible_objects(bpy)
            check_images(bpy)
            parent_roots(bpy)
            lo, hi = scene_bbox(bpy)
            mesh = _scene_mesh(bpy, path)
    finally:
        with quiet_stdout():
            bpy.ops.wm.read_factory_settings(use_empty=True)
    extent = float((hi - lo).max())
    if not extent > 0:
        raise AssetError(f"mesh is degenerate (zero bounding box): {path}")
    offset, scale = -(lo + hi) / 2, 1.0 / extent
    mesh = mesh.transformed(scale, offset)
    mesh.validate()
    return Asset(object_id or path.stem, mesh, str(path), scale, offset, "z", import_frame)


def _srgb8(linear) -> np.ndarray:
    c = np.clip(np.asarray(linear, np.float64), 0, 1)
    s = np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)
    return np.round(s * 255).astype(np.uint8)


def _source_node(socket):
    """The node feeding `socket`, through reroutes; None when unlinked."""
    while socket is not None and socket.is_linked:
        node = socket.links[0].from_node
        if node.bl_idname != "NodeReroute":
            return node
        socket = node.inputs[0]
    return None


def _colour_socket(material):
    """The colour input of a material's surface shader: "Base Color" (Principled) or "Color"
    (Diffuse, Emission...); through Mix / Add shaders the first linked one, else the first
    "Base Color", else the first. None when there is none."""
    tree = material.node_tree if material is not None else None
    out = tree.get_output_node("CYCLES") if tree is not None else None
    found, todo = [], [(_source_node(out.inputs["Surface"]) if out is not None else None, 0)]
    while todo:
        node, depth = todo.pop(0)
        if node is None or depth > 8:
            continue
        sockets = [node.inputs[n] for n in ("Base Color", "Color") if n in node.inputs]
        if sockets and sockets[0].type == "RGBA":
            found.append(sockets[0])
        else:
            todo += [(_source_node(i), depth + 1) for i in node.inputs if i.type == "SHADER"]
    return (next((c for c in found if c.is_linked), None)
            or next((c for c in found if c.name == "Base Color"), None) or next(iter(found), None))


def _mix_sockets(node):
    """(factor, a, b) of a colour Mix node (or a legacy MixRGB), else None."""
    if node.bl_idname == "ShaderNodeMix" and node.data_type == "RGBA":
        by_id = {s.identifier: s for s in node.inputs}
        return by_id["Factor_Float"], by_id["A_Color"], by_id["B_Color"]
    if node.bl_idname == "ShaderNodeMixRGB":
        return node.inputs["Fac"], node.inputs["Color1"], node.inputs["Color2"]
    return None


def _evaluate(socket, corners, depth: int = 0) -> tuple:
    """The colour reaching `socket`: ("const", linear rgb), ("corner", (C, 3) linear) or
    ("image", image, uv map name or "", linear tint). corners(name): a colour attribute at the
    triangle corners, linear, or None."""
    node = _source_node(socket)
    const = ("const", np.array(socket.default_value[:3], np.float64))
    if node is None or depth > 16:
        return const
    if node.bl_idname == "ShaderNodeTexImage" and node.image is not None:
        uv = _source_node(node.inputs["Vector"])
        name = uv.uv_map if uv is not None and uv.bl_idname == "ShaderNodeUVMap" else ""
        return ("image", node.image, name, np.ones(3))
    if node.bl_idname == "ShaderNodeVertexColor" or (
            node.bl_idname == "ShaderNodeAttribute" and node.attribute_type == "GEOMETRY"):
        values = corners(getattr(node, "layer_name", None) or getattr(node, "attribute_name", ""))
        return ("const", np.array(DEFAULT_GREY)) if values is None else ("corner", values)
    mix = _mix_sockets(node)
    if mix is not None and not mix[0].is_linked and node.blend_type in ("MIX", "MULTIPLY"):
        f = float(np.clip(mix[0].default_value, 0, 1))
        return _combine(_evaluate(mix[1], corners, depth + 1), _evaluate(mix[2], corners, depth + 1),
                        f, node.blend_type)
    for s in mix[1:] if mix is not None else node.inputs:  # else: the first texture or attribute
        if s.is_linked and (value := _evaluate(s, corners, depth + 1))[0] != "const":
            return value
    return const


def _combine(a: tuple, b: tuple, f: float, mode: str) -> tuple:
    """Mix (a (1 - f) + b f) or Multiply (a (1 - f) + a b f) of two evaluated colours. An image
    stays an image: times a constant at f = 1 it is tinted, else it is taken alone."""
    if f == 0 or (mode == "MIX" and f == 1):
        return a if f == 0 else b
    if a[0] == "image" or b[0] == "image":
        image, other = (a, b) if a[0] == "image" else (b, a)
        if mode == "MULTIPLY" and f == 1 and other[0] == "const":
            return (*image[:3], image[3] * other[1])
        return image
    x, y = a[1], b[1]
    value = x * (1 - f) + (y * f if mode == "MIX" else x * y * f)
    return ("corner" if "corner" in (a[0], b[0]) else "const", value)


def _attribute_linear(me, name: str, tri_v, tri_l) -> np.ndarray | None:
    """(C, 3) linear colour attribute at the triangle corners (None: no such colour attribute)."""
    attrs = me.color_attributes
    attr = attrs.get(name or attrs.default_color_name or "")
    if attr is None:
        return None
    values = np.empty(4 * len(attr.data), np.float32)
    attr.data.foreach_get("color", values)
    return values.reshape(-1, 4)[:, :3].astype(np.float64)[tri_l if attr.domain == "CORNER" else tri_v]


def _linear(srgb8: np.ndarray) -> np.ndarray:
    c = srgb8.astype(np.float64) / 255
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _texture(bpy, look: tuple) -> np.ndarray:
    rgb = _image_rgb(bpy, look[1])
    return rgb if np.allclose(look[2], 1) else _srgb8(_linear(rgb) * np.array(look[2]))


def _image_rgb(bpy, image) -> np.ndarray:
    """(H, W, 3) uint8 sRGB of an image: its file's (or packed) bytes decoded by PIL, else
    Blender's pixels (bottom-up floats; linear for float images)."""
    from PIL import Image

    if image.source == "FILE":
        data = image.packed_file.data if image.packed_file else image_path(bpy, image).read_bytes()
        try:
            with Image.open(io.BytesIO(bytes(data))) as im:
                return np.asarray(im.convert("RGB"), dtype=np.uint8)
        except Exception:  # a format PIL cannot read (EXR, HDR...): Blender's decoding below
            pass
    w, h = image.size
    if not (w and h and image.has_data):
        raise AssetError(f"texture unreadable: {image.name} ({image.filepath})")
    px = np.empty(w * h * image.channels, np.float32)
    image.pixels.foreach_get(px)
    px = px.reshape(h, w, image.channels)[::-1, :, :3]
    if px.shape[2] == 1:
        px = np.repeat(px, 3, 2)
    return _srgb8(px) if image.is_float else np.round(np.clip(px, 0, 1) * 255).astype(np.uint8)


def _scene_mesh(bpy, path: Path) -> Mesh:
    depsgraph = bpy.context.evaluated_depsgraph_get()
    pos, key, uv, rgb, look_of = [], [], [], [], []  # per triangle corner
    looks: list[tuple] = []  # ("image", image, linear tint) | ("attribute",) | ("colour", linear rgb)
    n_vertices = 0
    for obj in bpy.context.scene.objects:
        if obj.type not in GEOMETRY:
            continue
        ev = obj.evaluated_get(depsgraph)
        me = ev.to_mesh()
        try:
            if me is None or not len(me.polygons):
                continue
            me.calc_loop_triangles()
            n = len(me.loop_triangles)
            tri_v, tri_l, mat = (np.empty(k * n, np.int32) for k in (3, 3, 1))
            me.loop_triangles.foreach_get("vertices", tri_v)
            me.loop_triangles.foreach_get("loops", tri_l)
            me.loop_triangles.foreach_get("material_index", mat)
            co = np.empty(3 * len(me.vertices), np.float32)
            me.vertices.foreach_get("co", co)
            m = np.array(ev.matrix_world, np.float64)
            world = co.reshape(-1, 3).astype(np.float64) @ m[:3, :3].T + m[:3, 3]
            slots = [s.material for s in ev.material_slots] or [None]
            slot = np.repeat(np.clip(mat, 0, len(slots) - 1), 3)
            corner_uv, corner_rgb = np.zeros((3 * n, 2), np.float32), np.zeros((3 * n, 3), np.uint8)
            corner_look = np.empty(3 * n, np.int64)
            for i, material in enumerate(slots):
                socket, sel = _colour_socket(material), slot == i
                value = (_evaluate(socket, partial(_attribute_linear, me, tri_v=tri_v, tri_l=tri_l))
                         if socket is not None else ("const", np.array(
                             material.diffuse_color[:3] if material is not None else DEFAULT_GREY)))
                if value[0] == "image":
                    layer = (me.uv_layers.get(value[2]) if value[2] else None) or next(
                        (u for u in me.uv_layers if u.active_render), None)
                    if layer is not None:
                        loop_uv = np.empty(2 * len(me.loops), np.float32)
                        layer.uv.foreach_get("vector", loop_uv)
                        corner_uv[sel] = loop_uv.reshape(-1, 2)[tri_l[sel]]
                    lk = ("image", value[1], tuple(value[3]))
                elif value[0] == "corner":
                    corner_rgb[sel] = _srgb8(value[1][sel])
                    lk = ("attribute",)
                else:
                    lk = ("colour", tuple(value[1]))
                if lk not in looks:
                    looks.append(lk)
                corner_look[sel] = looks.index(lk)
            pos.append(world[tri_v])
            key.append(tri_v + n_vertices)
            uv.append(corner_uv)
            rgb.append(corner_rgb)
            look_of.append(corner_look)
            n_vertices += len(world)
        finally:
            ev.to_mesh_clear()
    if not pos:
        raise AssetError(f"no mesh faces in {path}")
    pos, key, uv, rgb, look_of = (np.concatenate(a) for a in (pos, key, uv, rgb, look_of))
    return _assemble(bpy, pos, key, uv, rgb, look_of, looks)


def _assemble(bpy, pos, key, uv, rgb, look_of, looks) -> Mesh:
    """Split vertices by (vertex, uv, colour) and build the Mesh's appearance."""
    texture = colours = None
    if not any(lk[0] == "image" for lk in looks):  # colours only: per-vertex colours
        for i, lk in enumerate(looks):
            if lk[0] == "colour":
                rgb[look_of == i] = _srgb8(lk[1])
        colours, uv = rgb, None
    elif len(looks) == 1:  # one image everywhere: as it is
        texture = _texture(bpy, looks[0])
    else:
        texture, uv = _atlas(bpy, looks, uv, rgb, look_of)
    cols = [key[:, None]]
    if uv is not None:
        cols.append(np.ascontiguousarray(uv, np.float32).view(np.int32))
    if colours is not None:
        cols.append(colours.astype(np.int32))
    _, first, inverse = np.unique(np.concatenate(cols, 1), axis=0, return_index=True,
                                  return_inverse=True)
    return Mesh(pos[first], inverse.reshape(-1, 3), None if uv is None else uv[first], texture,
                None if colours is None else colours[first])


def _atlas(bpy, looks, uv, rgb, look_of) -> tuple[np.ndarray, np.ndarray]:
    def tile(i, lk):
        if lk[0] == "image":
            return _texture(bpy, lk)
        colour = (rgb[look_of == i].mean(0).round().astype(np.uint8) if lk[0] == "attribute"
                  else _srgb8(lk[1]))
        return np.broadcast_to(colour, (SOLID, SOLID, 3))

    tiles = [tile(i, lk) for i, lk in enumerate(looks)]
    width = max(t.shape[1] for t in tiles) + 2 * PAD
    rows, tops, top = [], [], 0
    for t in tiles:
        padded = np.pad(t, ((PAD, PAD), (PAD, PAD + width - 2 * PAD - t.shape[1]), (0, 0)), mode="edge")
        rows.append(padded)
        tops.append(top + PAD)
        top += padded.shape[0]
    atlas = np.concatenate(rows)
    face_uv = uv.reshape(-1, 3, 2).astype(np.float64)
    face_uv = np.clip(face_uv - np.floor(face_uv.min(1, keepdims=True)), 0, 1).reshape(-1, 2)
    out = np.empty_like(uv)
    for i, (lk, t) in enumerate(zip(looks, tiles)):
        sel = look_of == i
        local = face_uv[sel] if lk[0] == "image" else np.full((sel.sum(), 2), 0.5)
        h, w = t.shape[:2]
        out[sel, 0] = (PAD + local[:, 0] * w) / width
        out[sel, 1] = 1 - (tops[i] + (1 - local[:, 1]) * h) / atlas.shape[0]
    return np.ascontiguousarray(atlas), out
