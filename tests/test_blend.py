""".blend objects (bench.inputs.blend, the .blend path of bench.render.cycles) against independent
references: real .blend files are written by Blender in a subprocess from a real GSO OBJ, then
read back and compared with the OBJ as trimesh reads it (bench.inputs.assets.load_asset), with
the texture PNG as PIL decodes it, and with the objects' transforms composed in numpy."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import SMALL_GSO_OBJECT, gso_mesh_path
from PIL import Image
from scipy.spatial import cKDTree

from bench.inputs.assets import AssetError, load_asset, load_mesh
from bench.inputs.cameras import camera_from_yaw_pitch

pytestmark = pytest.mark.gso  # every .blend here is made from a GSO OBJ (skipped without the data)
TOL = 1e-5  # of the unit box; measured 3.0e-8 (one object), 6.8e-8 (two, rotated)
COLOUR = (0.2, 0.5, 0.05)  # linear base colour of the plain cube
FACES = [(1, 1, 1), (0.5, 0.25, 1), (0, 0.8, 0.3), (1, 0, 0), (0.1, 0.1, 0.1), (0.6, 0.6, 0)]
# two copies of the OBJ: (location, XYZ Euler radians, uniform scale); a third is render-hidden
PLACED = [((0.1, -0.05, 0.02), (math.pi / 2, 0.0, 0.5), 1.0), ((0.3, 0.1, 0.0), (0.3, 0.2, 1.0), 0.5)]

BUILD = r"""
import json, sys
import bpy
out, obj, tex = sys.argv[1:4]
placed, colour, faces = (json.loads(a) for a in sys.argv[4:7])

def fresh():
    bpy.ops.wm.read_factory_settings(use_empty=False)
    for c in (bpy.data.objects, bpy.data.materials, bpy.data.images):
        for item in list(c):
            c.remove(item)
    bpy.context.scene.view_settings.view_transform = "Filmic"  # a Blender 2.8x file's default

def imp():
    bpy.ops.wm.obj_import(filepath=obj)
    for image in bpy.data.images:  # the .mtl names texture.png beside the OBJ; it lies elsewhere
        image.filepath = tex
        image.reload()
    return bpy.context.selected_objects[0]

saved = {}

def save(name):
    bpy.ops.wm.save_as_mainfile(filepath=f"{out}/{name}.blend")
    saved[name] = [[o.type, o.hide_render] for o in bpy.context.scene.objects] + [
        ["IMAGE", bool(i.packed_file)] for i in bpy.data.images]

def cube(location):
    bpy.ops.mesh.primitive_cube_add(size=0.2, location=location)
    c = bpy.context.object
    m = bpy.data.materials.new("plain")
    m.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = (*colour, 1.0)
    c.data.materials.append(m)
    return c

fresh(); imp(); save("single")
fresh(); imp()
for image in bpy.data.images:
    image.pack()
    image.filepath = "//nowhere/texture.png"  # the loader must read the packed bytes
save("packed")
fresh()
first = imp()
for i, (loc, rot, s) in enumerate(placed + [[(5, 5, 5), (0, 0, 0), 1.0]]):
    o = first if i == 0 else first.copy()
    if i:
        bpy.context.collection.objects.link(o)
    o.location, o.rotation_euler, o.scale = loc, rot, (s, s, s)
    o.hide_render = i == 2
save("two")
fresh(); cube((0, 0, 0)); save("plain")
fresh(); imp(); cube((1.0, 0, 0)); save("mixed")
fresh(); c = cube((0, 0, 0))  # glTF's pattern (Toys4K): base colour factor x COLOR_0
attr = c.data.color_attributes.new("COLOR_0", "FLOAT_COLOR", "CORNER")
for poly in c.data.polygons:
    for corner in poly.loop_indices:
        attr.data[corner].color = (*faces[poly.index], 1.0)
tree = c.data.materials[0].node_tree
node, mix = tree.nodes.new("ShaderNodeAttribute"), tree.nodes.new("ShaderNodeMix")
node.attribute_name, mix.data_type, mix.blend_type = "COLOR_0", "RGBA", "MULTIPLY"
sockets = {s.identifier: s for s in mix.inputs}
sockets["Factor_Float"].default_value, sockets["A_Color"].default_value = 1.0, (*colour, 1.0)
tree.links.new(node.outputs["Color"], sockets["B_Color"])
result = next(s for s in mix.outputs if s.identifier == "Result_Color")
tree.links.new(result, tree.nodes["Principled BSDF"].inputs["Base Color"])
save("attribute")
fresh(); bpy.ops.object.camera_add(); save("camera")
print(json.dumps(saved))
"""


@pytest.fixture(scope="module")
def blends(tmp_path_factory, gso_root):
    pytest.importorskip("bpy")
    obj = gso_mesh_path(gso_root, SMALL_GSO_OBJECT)
    out = tmp_path_factory.mktemp("blends")
    (out / "tex").mkdir()
    tex = shutil.copy(obj.parent.parent / "materials" / "textures" / "texture.png", out / "tex")
    run = subprocess.run([sys.executable, "-c", BUILD, str(out), str(obj), str(tex),
                          json.dumps(PLACED), json.dumps(COLOUR), json.dumps(FACES)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    saved = json.loads(run.stdout.strip().splitlines()[-1])  # what each file holds, as Blender saw it
    assert saved["packed"][-1] == ["IMAGE", True] and saved["single"][-1] == ["IMAGE", False]
    assert sorted(saved["two"]) == [["IMAGE", False], ["MESH", False], ["MESH", False], ["MESH", True]]
    assert [t for t, _ in saved["camera"]] == ["CAMERA"]
    return out, obj, Path(tex)


def _corners(mesh, attr=None) -> np.ndarray:
    return (mesh.vertices if attr is None else attr)[mesh.faces].astype(np.float64)


def _match(ours, ref) -> tuple[np.ndarray, np.ndarray, float]:
    """Pair each triangle of `ours` (F, 3, 3) with the one of `ref` of nearest centroid (a
    bijection), rolled to the same first corner; returns (indices into ref, rolls, max error)."""
    assert ours.shape == ref.shape
    d, j = cKDTree(ref.mean(1)).query(ours.mean(1))
    assert len(np.unique(j)) == len(j) and d.max() < TOL
    errs = np.stack([np.abs(ours - np.roll(ref[j], k, axis=1)).max((1, 2)) for k in range(3)])
    return j, errs.argmin(0), float(errs.min(0).max())


def test_single_object_equals_the_obj_and_its_png(blends):
    from bench.inputs.blend import load_blend

    out, obj, tex = blends
    ref = load_asset(obj, "x", import_frame="blender-obj")  # the .blend holds Blender's OBJ import
    for name in ("single", "packed"):
        asset = load_blend(out / f"{name}.blend", "x")
        j, roll, err = _match(_corners(asset.mesh), _corners(ref.mesh))
        assert err < TOL, (name, err)
        assert asset.scale == pytest.approx(ref.scale, rel=1e-6)
        np.testing.assert_allclose(asset.offset, ref.offset, atol=1e-7)
        uv_ref = np.stack([np.roll(t, r, axis=0) for t, r in zip(_corners(ref.mesh, ref.mesh.uv)[j], roll)])
        np.testing.assert_allclose(_corners(asset.mesh, asset.mesh.uv), uv_ref, atol=1e-6)
        np.testing.assert_array_equal(asset.mesh.texture, np.asarray(Image.open(tex).convert("RGB")))
        assert asset.source == str(out / f"{name}.blend") and asset.up_axis == "z"
    # the external texture is required: the same file where //tex/texture.png does not exist
    moved = out / "elsewhere"
    moved.mkdir(exist_ok=True)
    shutil.copy(out / "single.blend", moved / "single.blend")
    with pytest.raises(AssetError, match="texture missing"):
        load_blend(moved / "single.blend")


def _euler_xyz(rx, ry, rz) -> np.ndarray:
    (cx, cy, cz), (sx, sy, sz) = np.cos([rx, ry, rz]), np.sin([rx, ry, rz])
    x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return z @ y @ x  # Blender's XYZ Euler: X first


def test_two_objects_equal_their_transformed_concatenation(blends):
    from bench.inputs.blend import load_blend

    out, obj, tex = blends
    mesh = load_mesh(obj)  # the OBJ file's own coordinates = the Blender mesh's local ones
    parts, boxes = [], []
    lo, hi = mesh.vertices.min(0).astype(np.float64), mesh.vertices.max(0).astype(np.float64)
    box = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    for loc, rot, s in PLACED:
        m = _euler_xyz(*rot) * s
        parts.append(mesh.vertices[mesh.faces].astype(np.float64) @ m.T + loc)
        boxes.append(box @ m.T + loc)  # upstream's scene_bbox: local box corners moved to the world
    corners = np.concatenate(boxes)
    centre, scale = (corners.min(0) + corners.max(0)) / 2, 1 / (corners.max(0) - corners.min(0)).max()
    ref = (np.concatenate(parts) - centre) * scale
    asset = load_blend(out / "two.blend")  # the hidden third copy (at 5, 5, 5) must not count
    _, _, err = _match(_corners(asset.mesh), ref)
    assert err < TOL and asset.scale == pytest.approx(scale, rel=1e-6)
    assert asset.object_id == "two"
    np.testing.assert_array_equal(asset.mesh.texture, np.asarray(Image.open(tex).convert("RGB")))


def _srgb(linear) -> np.ndarray:
    c = np.asarray(linear, np.float64)
    return np.round(np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055) * 255)


def test_plain_attribute_and_mixed_materials(blends):
    from bench.inputs.blend import PAD, load_blend

    out, _, tex = blends
    srgb = _srgb(COLOUR)
    plain = load_blend(out / "plain.blend").mesh
    assert plain.texture is None and plain.uv is None and len(plain.faces) == 12
    assert (plain.vertex_colors == srgb).all()
    # base colour = COLOUR x a per-face colour attribute (Multiply at factor 1), in linear space
    attr = load_blend(out / "attribute.blend").mesh
    assert attr.texture is None and len(attr.faces) == 12
    got = {tuple(c) for c in attr.vertex_colors[attr.faces].reshape(-1, 3)}
    assert got == {tuple(_srgb(np.array(f) * COLOUR)) for f in FACES}
    # an image and a plain colour: one atlas; the PNG is in it pixel for pixel, and the cube's
    # UVs land on texels of its colour
    mixed = load_blend(out / "mixed.blend").mesh
    png = np.asarray(Image.open(tex).convert("RGB"))
    h, w = png.shape[:2]
    np.testing.assert_array_equal(mixed.texture[PAD:PAD + h, PAD:PAD + w], png)
    cube = np.argsort(mixed.vertices[mixed.faces].mean(1)[:, 0])[-12:]  # the cube lies at x = 1 m
    uv = mixed.uv[mixed.faces[cube]].reshape(-1, 2)
    th, tw = mixed.texture.shape[:2]
    texels = mixed.texture[((1 - uv[:, 1]) * th).astype(int), (uv[:, 0] * tw).astype(int)]
    assert (texels == srgb).all()


def test_not_a_blend_and_no_mesh_are_one_line_errors(blends, tmp_path):
    from bench.inputs.blend import load_blend
    from bench.render.cycles import render_cycles

    out, _, _ = blends
    text = tmp_path / "x.blend"
    text.write_text("not a blend file\n")
    cams = [camera_from_yaw_pitch(0, 30, 2.0, 40, 16)]
    for path, why in [(text, "not a Blender .blend file"), (out / "camera.blend", "no mesh object"),
                      (tmp_path / "absent.blend", "not found")]:
        for load in (lambda p: load_blend(p), lambda p: render_cycles(p, cams, progress=False)):
            with pytest.raises(AssetError, match=why) as e:
                load(path)
            assert "\n" not in str(e.value)


def _fast():
    from bench.render.cycles import PRESETS

    return replace(PRESETS["cycles-trellis"], name="test", samples=16, denoise=False)


def test_cycles_renders_the_blend_as_the_obj(blends):
    from bench.render.cycles import render_cycles

    out, obj, _ = blends
    cams = [camera_from_yaw_pitch(y, 30, 2.0, 40, 64) for y in (0.0, 135.0)]
    a = render_cycles(out / "single.blend", cams, _fast(), progress=False)
    b = render_cycles(obj, cams, _fast(), "blender-obj", progress=False)
    on = (a.alpha > 0) | (b.alpha > 0)
    mse = ((a.rgba8.astype(np.float64) - b.rgba8)[on] ** 2).mean()
    psnr = 10 * np.log10(255**2 / max(mse, 1e-12))
    assert on.sum() > 1000 and psnr > 40, psnr  # measured 86.5 dB (at most 1 level apart)


def test_cycles_frame_equals_the_assets_frame(blends):
    # the rotated two-object scene: Cycles' silhouette against our rasterizer's of load_blend
    from bench.inputs.blend import load_blend
    from bench.render import render
    from bench.render.cycles import render_cycles

    out, _, _ = blends
    cams = [camera_from_yaw_pitch(y, p, 2.0, 40, 96) for y, p in ((30.0, 20.0), (200.0, 60.0))]
    ours = render(load_blend(out / "two.blend").mesh, cams).alpha > 0
    cyc = render_cycles(out / "two.blend", cams, _fast(), progress=False).alpha > 0.5
    for a, b in zip(ours, cyc):
        # measured IoU 0.997 and 0.996; the tight-box frame (normalize_mesh) would give 0.95
        assert a.sum() > 300 and (a & b).sum() / (a | b).sum() >= 0.985


def test_a_toys4k_run_from_the_zip_itself(blends, tmp_path, monkeypatch):
    """The release's layout, read from the zip in place: `amodal3r-toys4k` evaluates the objects
    found there, and the oracle (which reloads each GT .blend) is perfect on geometry."""
    import zipfile

    import pandas as pd

    from bench.inputs.dataset import open_dataset
    from bench.run.appearance import AppearanceConfig
    from bench.run.runner import RunConfig, run

    monkeypatch.setenv("AMODAL_BENCH_CACHE", str(tmp_path / "cache"))
    out, _, _ = blends
    archive = tmp_path / "toys4k_blend_files.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for src, oid in [("packed", "can_000"), ("attribute", "cube_007")]:
            category = oid.split("_")[0]
            z.write(out / f"{src}.blend", f"toys4k_blend_files/{category}/{oid}/{oid}.blend")
            z.writestr(f"toys4k_blend_files/{category}/{oid}/{oid}_attribution.txt", "test asset")
    ds = open_dataset("toys4k", archive)
    assert ds.object_ids == ["can_000", "cube_007"] and ds.category("cube_007") == "cube"
    quiet = AppearanceConfig(fid_extractors=[], clip_score=False, lpips_nets=[])
    board = pd.read_csv(run(RunConfig(out=str(tmp_path / "run"), protocol="amodal3r-toys4k+raster-unlit",
                                      methods=["oracle", "visible"], dataset="toys4k", data=str(archive),
                                      jobs=1, cache=str(tmp_path / "cache"), sheets=0, appearance=quiet),
                               progress=False))
    oracle = board[board.method == "oracle"]
    assert (oracle.success_rate == 1).all() and (oracle.n == 2).all()
    assert (oracle.cov_cd == 100).all() and (oracle.mmd_cd.abs() < 1e-9).all()
    assert (board.dataset == "toys4k").all()
