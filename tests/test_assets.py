"""bench.inputs.assets: loading, texture resolution, normalization to the TRELLIS frame, failures."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import trimesh
from conftest import SMALL_GSO_OBJECT, TEXTURED_GSO_OBJECT, gso_mesh_path
from PIL import Image

from bench.inputs.assets import (
    Z_UP_TO_Y_UP,
    AssetError,
    Mesh,
    load_asset,
    load_mesh,
    normalize_mesh,
    y_up_to_z_up,
)

# TRELLIS postprocessing_utils.to_glb: vertices = vertices @ this matrix (Z-up -> Y-up).
TRELLIS_TO_GLB = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=np.float64)


def _raw_obj_vertices(path: Path) -> np.ndarray:
    """The `v x y z` lines of an OBJ, parsed independently of trimesh."""
    rows = [line.split()[1:4] for line in path.read_text().splitlines() if line.startswith("v ")]
    return np.asarray(rows, dtype=np.float64)


# ---------------------------------------------------------------------------- real GSO


@pytest.fixture(scope="module")
def lego(gso_root):
    path = gso_mesh_path(gso_root, TEXTURED_GSO_OBJECT)
    return path, load_asset(path, TEXTURED_GSO_OBJECT)


@pytest.mark.gso
def test_gso_texture_found_in_materials_textures(lego):
    path, asset = lego
    mesh = asset.mesh
    # the .mtl says `map_Kd texture.png`; the file lies in ../materials/textures/
    assert not (path.parent / "texture.png").exists()
    assert mesh.texture is not None and mesh.uv is not None
    assert mesh.uv.shape == (len(mesh.vertices), 2)
    assert mesh.texture.dtype == np.uint8 and mesh.texture.ndim == 3 and mesh.texture.shape[2] == 3
    # reference: the PNG decoded by PIL; exact
    png = np.asarray(Image.open(path.parent.parent / "materials" / "textures" / "texture.png")
                     .convert("RGB"))
    np.testing.assert_array_equal(mesh.texture, png)
    assert mesh.vertex_colors is None
    assert asset.object_id == TEXTURED_GSO_OBJECT and asset.up_axis == "z"


@pytest.mark.gso
def test_gso_normalized_bounds(lego):
    _, asset = lego
    lo, hi = asset.mesh.bounds.astype(np.float64)
    # reference: TRELLIS normalize_scene (longest side 1, bbox centred); tolerance 1e-6
    assert (hi - lo).max() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-6)
    assert lo.min() >= -0.5 - 1e-6 and hi.max() <= 0.5 + 1e-6


@pytest.mark.gso
def test_gso_z_up_kept(lego):
    path, asset = lego
    raw = _raw_obj_vertices(path)
    rlo, rhi = raw.min(0), raw.max(0)
    # reference: the OBJ's own `v` lines parsed here (float64); scale / offset as TRELLIS
    # normalize_scene. Tolerance: the mesh stores float32 vertices, so 1e-6 relative on the scale
    # and 1e-7 m on the offset (raw coordinates are ~0.05 m).
    assert asset.scale == pytest.approx(1 / (rhi - rlo).max(), rel=1e-6)
    np.testing.assert_allclose(asset.offset, -(rlo + rhi) / 2, atol=1e-7)
    # per-axis extents are the raw ones times the scale: no axis was swapped (tolerance 1e-6)
    lo, hi = asset.mesh.bounds.astype(np.float64)
    np.testing.assert_allclose(hi - lo, (rhi - rlo) * asset.scale, atol=1e-6)
    # the standing figure is tallest along Z (Z-up kept)
    assert np.argmax(hi - lo) == 2
    # every loaded vertex is a raw vertex mapped by v -> (v + offset) * scale (tolerance 1e-6)
    mapped = ((raw + asset.offset) * asset.scale).astype(np.float32)
    sample = asset.mesh.vertices[:: max(1, len(asset.mesh.vertices) // 200)]
    d = np.abs(sample[:, None, :] - mapped[None]).max(-1).min(1)
    assert d.max() < 1e-6


# ---------------------------------------------------------------------------- failures


def test_missing_file_raises(tmp_path):
    with pytest.raises(AssetError, match="not found"):
        load_mesh(tmp_path / "nope.obj")
    with pytest.raises(AssetError, match="not found"):
        load_asset(tmp_path / "nope.obj")


def test_obj_without_faces_raises(tmp_path):
    p = tmp_path / "nofaces.obj"
    p.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    with pytest.raises(AssetError, match="no faces"):
        load_mesh(p)


def test_obj_with_nan_vertex_raises(tmp_path):
    p = tmp_path / "nan.obj"
    p.write_text("v 0 0 0\nv nan 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 3\nf 1 3 4\n")
    with pytest.raises(AssetError, match="NaN"):
        load_mesh(p)


def test_obj_with_valid_vertices_loads(tmp_path):
    # positive control for the two tests above: the same file, finite and with faces, loads
    p = tmp_path / "ok.obj"
    p.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 3\nf 1 3 4\n")
    mesh = load_mesh(p)
    assert mesh.faces.shape == (2, 3) and mesh.vertices.shape == (4, 3)
    assert mesh.uv is None and mesh.texture is None


def _copy_gso_obj(gso_root: Path, dst: Path, with_texture: bool) -> Path:
    src = gso_mesh_path(gso_root, SMALL_GSO_OBJECT).parent
    (dst / "meshes").mkdir(parents=True)
    for f in src.iterdir():  # model.obj and its .mtl
        shutil.copy(f, dst / "meshes" / f.name)
    if with_texture:
        (dst / "materials" / "textures").mkdir(parents=True)
        shutil.copy(src.parent / "materials" / "textures" / "texture.png",
                    dst / "materials" / "textures" / "texture.png")
    return dst / "meshes" / "model.obj"


@pytest.mark.gso
def test_obj_with_missing_texture_raises(gso_root, tmp_path):
    obj = _copy_gso_obj(gso_root, tmp_path / "obj", with_texture=False)
    with pytest.raises(AssetError, match=r"texture missing: texture\.png"):
        load_mesh(obj)


@pytest.mark.gso
def test_obj_copy_with_texture_loads(gso_root, tmp_path):
    # positive control: the same copy plus materials/textures/texture.png loads with its texture
    obj = _copy_gso_obj(gso_root, tmp_path / "obj", with_texture=True)
    mesh = load_mesh(obj)
    assert mesh.texture is not None and mesh.uv.shape == (len(mesh.vertices), 2)


@pytest.mark.gso
def test_texture_next_to_mesh_is_found(gso_root, tmp_path):
    obj = _copy_gso_obj(gso_root, tmp_path / "obj", with_texture=False)
    src = gso_mesh_path(gso_root, SMALL_GSO_OBJECT).parent.parent
    shutil.copy(src / "materials" / "textures" / "texture.png", obj.parent / "texture.png")
    assert load_mesh(obj).texture is not None


def test_textured_obj_round_trip(tmp_path, quad_mesh):
    tm = trimesh.Trimesh(quad_mesh.vertices, quad_mesh.faces, process=False,
                         visual=trimesh.visual.TextureVisuals(
                             uv=quad_mesh.uv, image=Image.fromarray(quad_mesh.texture)))
    tm.export(tmp_path / "quad.obj")
    mesh = load_mesh(tmp_path / "quad.obj")
    # exact: PNG is lossless; UVs are written with enough digits for 0/1
    np.testing.assert_array_equal(mesh.texture, quad_mesh.texture)
    np.testing.assert_allclose(mesh.uv, quad_mesh.uv, atol=1e-6)
    np.testing.assert_allclose(mesh.vertices, quad_mesh.vertices, atol=1e-6)


# ---------------------------------------------------------------------------- PLY / GLB


def test_ply_with_vertex_colors(tmp_path):
    box = trimesh.creation.box(extents=(1, 2, 3))
    colors = np.random.default_rng(0).integers(0, 256, (len(box.vertices), 4), dtype=np.uint8)
    colors[:, 3] = 255
    box.visual.vertex_colors = colors
    box.export(tmp_path / "c.ply")
    mesh = load_mesh(tmp_path / "c.ply")
    assert mesh.vertex_colors is not None and mesh.vertex_colors.dtype == np.uint8
    np.testing.assert_array_equal(mesh.vertex_colors, colors[:, :3])  # exact (uint8)
    np.testing.assert_allclose(mesh.vertices, box.vertices, atol=1e-6)
    assert mesh.uv is None and mesh.texture is None


def test_y_up_to_z_up_inverts_trellis_to_glb():
    v = np.random.default_rng(1).normal(size=(100, 3))
    # reference: TRELLIS to_glb applies v @ [[1,0,0],[0,0,-1],[0,1,0]]; exact (entries 0/+-1)
    np.testing.assert_array_equal(Z_UP_TO_Y_UP, TRELLIS_TO_GLB)
    np.testing.assert_array_equal(y_up_to_z_up(v @ TRELLIS_TO_GLB), v)
    # Y-up "up" (0, 1, 0) becomes Z-up "up" (0, 0, 1)
    np.testing.assert_array_equal(y_up_to_z_up(np.array([[0.0, 1, 0]])), [[0, 0, 1]])


def _asymmetric_mesh() -> trimesh.Trimesh:
    s = trimesh.creation.icosphere(subdivisions=1)
    v = s.vertices * [0.3, 0.5, 0.9] + [0.1, -0.2, 0.4]
    v = v + np.random.default_rng(2).normal(scale=0.02, size=v.shape)
    return trimesh.Trimesh(v, s.faces, process=False)


def test_glb_y_up_loads_into_z_up_frame(tmp_path):
    zmesh = _asymmetric_mesh()
    v = np.asarray(zmesh.vertices)
    trimesh.Trimesh(v @ TRELLIS_TO_GLB, zmesh.faces, process=False).export(tmp_path / "y.glb")
    asset = load_asset(tmp_path / "y.glb", "gen", up_axis="y")
    assert asset.up_axis == "y"
    # reference: the Z-up original normalized here (TRELLIS normalize_scene); tolerance 1e-6
    lo, hi = v.min(0), v.max(0)
    expected = (v - (lo + hi) / 2) / (hi - lo).max()
    assert asset.mesh.vertices.shape == v.shape
    np.testing.assert_allclose(asset.mesh.vertices, expected, atol=1e-6)
    np.testing.assert_array_equal(asset.mesh.faces, zmesh.faces)


def test_glb_loaded_as_z_up_is_not_rotated(tmp_path):
    # control: the same GLB read with up_axis='z' keeps the file's axes (tallest along Y)
    zmesh = _asymmetric_mesh()
    trimesh.Trimesh(np.asarray(zmesh.vertices) @ TRELLIS_TO_GLB, zmesh.faces,
                    process=False).export(tmp_path / "y.glb")
    lo, hi = load_asset(tmp_path / "y.glb", up_axis="z").mesh.bounds
    assert np.argmax(hi - lo) == 1


def test_load_asset_rejects_x_up(tmp_path):
    with pytest.raises(ValueError, match="up_axis"):
        load_asset(tmp_path / "whatever.glb", up_axis="x")


# ---------------------------------------------------------------------------- Mesh helpers


def test_validate_reasons(quad_mesh):
    quad_mesh.validate()  # a good mesh passes
    with pytest.raises(AssetError, match="texture is missing"):
        replace(quad_mesh, texture=None).validate()
    with pytest.raises(AssetError, match="do not exist"):
        replace(quad_mesh, faces=np.array([[0, 1, 4]])).validate()
    with pytest.raises(AssetError, match="no faces"):
        replace(quad_mesh, faces=np.zeros((0, 3))).validate()


def test_normalize_mesh_analytic(quad_mesh):
    mesh = replace(quad_mesh, vertices=quad_mesh.vertices * [2, 4, 0] + [1, 1, 3])
    norm, scale, offset = normalize_mesh(mesh)
    # analytic: bbox [1,3]x[1,5]x{3}: longest side 4 -> scale 0.25, offset -(2, 3, 3)
    assert scale == 0.25
    np.testing.assert_array_equal(offset, [-2, -3, -3])
    np.testing.assert_allclose(norm.bounds, [[-0.25, -0.5, 0], [0.25, 0.5, 0]], atol=0)
    with pytest.raises(AssetError, match="degenerate"):
        normalize_mesh(replace(quad_mesh, vertices=np.zeros((4, 3))))


def test_content_hash_covers_appearance(quad_mesh):
    h = quad_mesh.content_hash()
    assert h == Mesh(quad_mesh.vertices.copy(), quad_mesh.faces.copy(), quad_mesh.uv.copy(),
                     quad_mesh.texture.copy()).content_hash()
    tex = quad_mesh.texture.copy()
    tex[0, 0, 0] ^= 1
    assert replace(quad_mesh, texture=tex).content_hash() != h
    assert replace(quad_mesh, vertices=quad_mesh.vertices + 1e-3).content_hash() != h


def test_glb_with_uvs_and_plain_colour_material_keeps_its_colour(tmp_path):
    # a material with a colour but no image is not a missing texture: the colour is kept
    box = trimesh.creation.box()
    uv = np.random.default_rng(0).random((len(box.vertices), 2))
    material = trimesh.visual.material.SimpleMaterial(diffuse=[200, 30, 40, 255])
    box.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    path = tmp_path / "plain.glb"
    box.export(path)
    mesh = load_asset(path, up_axis="y").mesh
    assert mesh.texture is None and mesh.uv is None
    assert mesh.vertex_colors is not None and tuple(mesh.vertex_colors[0]) == (200, 30, 40)


def test_object_id_defaults_to_the_gso_folder(small_gso_path):
    assert load_asset(small_gso_path).object_id == small_gso_path.parent.parent.name
