"""bench.methods.normalize: outputs read from real files (written here by trimesh) into the Z-up object frame.

References: the Z-up source vertices a Y-up file was made from (exact up to float32), and
bench.inputs.assets.load_asset (the GT loader) for the rescale convention.
"""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from conftest import SMALL_GSO_OBJECT, gso_mesh_path
from PIL import Image

from bench.inputs.assets import Z_UP_TO_Y_UP, load_asset
from bench.methods.normalize import normalize_output, output_mesh

# an asymmetric tetrahedron: distinct extents along x (1), y (2), z (3), so any swapped or flipped
# axis changes the bbox; the apex is the only vertex with z > 0
TETRA_Z_UP = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 3]], dtype=np.float64)
TETRA_FACES = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])


def _y_up_glb(tmp_path, vertices_z_up, faces, colors=None, name="out.glb"):
    """Write a GLB the way TRELLIS `to_glb` does: vertices @ Z_UP_TO_Y_UP."""
    tm = trimesh.Trimesh(vertices_z_up @ Z_UP_TO_Y_UP, faces, process=False)
    if colors is not None:
        tm.visual.vertex_colors = colors
    path = tmp_path / name
    tm.export(path)
    return path


def test_y_up_glb_comes_back_z_up_exactly(tmp_path):
    colors = np.array([[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255], [9, 99, 199, 255]], np.uint8)
    path = _y_up_glb(tmp_path, TETRA_Z_UP, TETRA_FACES, colors)
    raw = trimesh.load(path, process=False, force="mesh")
    assert np.allclose(raw.bounds[1], [1, 3, 0])  # the file itself is Y-up: the apex is +Y
    mesh, record = normalize_output(path, up_axis="y")
    assert np.allclose(mesh.vertices, TETRA_Z_UP, atol=1e-6)
    assert np.array_equal(mesh.faces, TETRA_FACES)
    assert np.array_equal(mesh.vertex_colors, colors[:, :3])
    assert record == {"up_axis": "y", "rescale": False, "scale": 1.0, "offset": [0.0, 0.0, 0.0],
                      "source": str(path)}


def test_z_up_obj_is_left_alone(tmp_path):
    path = tmp_path / "out.obj"
    trimesh.Trimesh(TETRA_Z_UP, TETRA_FACES, process=False).export(path)
    mesh = output_mesh(path, up_axis="z")
    assert np.allclose(mesh.vertices, TETRA_Z_UP, atol=1e-6)


def test_rescale_centres_and_scales_like_the_ground_truth(tmp_path):
    path = _y_up_glb(tmp_path, TETRA_Z_UP * 0.37 + [5, -2, 1], TETRA_FACES)
    mesh, record = normalize_output(path, up_axis="y", rescale=True)
    lo, hi = mesh.bounds
    assert np.allclose((lo + hi) / 2, 0, atol=1e-6) and np.isclose((hi - lo).max(), 1, atol=1e-6)
    assert np.allclose(hi - lo, [1 / 3, 2 / 3, 1], atol=1e-6)  # axes kept, longest (z) = 1
    assert record["rescale"] and np.isclose(record["scale"], 1 / (3 * 0.37))
    back = (TETRA_Z_UP * 0.37 + [5, -2, 1] + record["offset"]) * record["scale"]
    assert np.allclose(mesh.vertices, back, atol=1e-6)


def test_real_textured_gso_mesh_matches_the_gt_loader(gso_root, tmp_path):
    """A GSO object written as a Y-up textured GLB, read back with rescale, equals the GT asset."""
    gt = load_asset(gso_mesh_path(gso_root, SMALL_GSO_OBJECT))
    assert gt.mesh.texture is not None
    # the GT geometry back in metres (Z-up, off-centre), rotated to Y-up as TRELLIS to_glb does
    metres = gt.mesh.vertices.astype(np.float64) / gt.scale - gt.offset
    visual = trimesh.visual.TextureVisuals(uv=gt.mesh.uv, material=trimesh.visual.material.PBRMaterial(
        baseColorTexture=Image.fromarray(gt.mesh.texture)))
    src = trimesh.Trimesh(metres @ Z_UP_TO_Y_UP, gt.mesh.faces, process=False, visual=visual)
    path = tmp_path / "gso.glb"
    src.export(path)
    mesh, record = normalize_output(path, up_axis="y", rescale=True)
    assert len(mesh.vertices) == len(gt.mesh.vertices) and len(mesh.faces) == len(gt.mesh.faces)
    assert np.allclose(mesh.vertices, gt.mesh.vertices, atol=1e-5)
    assert np.isclose(record["scale"], gt.scale, rtol=1e-6)
    assert np.array_equal(mesh.texture, gt.mesh.texture)
    assert np.allclose(mesh.uv, gt.mesh.uv, atol=1e-6)


def test_scene_input_applies_node_transforms():
    a = trimesh.Trimesh(TETRA_Z_UP, TETRA_FACES, process=False)
    scene = trimesh.Scene()
    scene.add_geometry(a, geom_name="a")
    shift = trimesh.transformations.translation_matrix([10, 0, 0])
    scene.add_geometry(a.copy(), geom_name="b", transform=shift)
    mesh, record = normalize_output(scene, up_axis="z")
    assert len(mesh.faces) == 8 and np.allclose(mesh.bounds, [[0, 0, 0], [11, 2, 3]])
    assert record["source"] == "<trimesh.scene.scene.Scene>"


def test_textured_glb_keeps_its_texture(tmp_path):
    tex = np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    tm = trimesh.Trimesh(TETRA_Z_UP @ Z_UP_TO_Y_UP, TETRA_FACES, process=False)
    tm.visual = trimesh.visual.TextureVisuals(
        uv=np.array([[0, 0], [1, 0], [0, 1], [1, 1]], float),
        material=trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(tex)))
    tm.export(tmp_path / "tex.glb")
    mesh = output_mesh(tmp_path / "tex.glb")
    assert np.array_equal(mesh.texture, tex)
    assert np.allclose(mesh.uv, [[0, 0], [1, 0], [0, 1], [1, 1]])


def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("name, content, message", [
    ("nan.obj", "v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n", "1 of 3 vertices are NaN or infinite"),
    ("inf.ply", "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
                "property float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n"
                "0 0 0\n1 0 0\ninf 1 0\n3 0 1 2\n", "NaN or infinite"),
    ("empty.obj", "", "empty, no geometry with faces"),
    ("points.obj", "v 0 0 0\nv 1 0 0\n", "a point cloud \\(2 points\\), not a triangle mesh"),
])
def test_bad_text_files_raise_naming_the_file(tmp_path, name, content, message):
    path = _write(tmp_path / name, content)
    with pytest.raises(ValueError, match=message) as e:
        normalize_output(path, up_axis="z")
    assert str(path) in str(e.value)


def test_non_mesh_files_raise_naming_the_file(tmp_path):
    cloud = tmp_path / "cloud.ply"
    trimesh.PointCloud(np.random.default_rng(1).random((10, 3))).export(cloud)
    with pytest.raises(ValueError, match=f"{cloud}: a point cloud"):
        normalize_output(cloud, up_axis="z")
    points_glb = tmp_path / "points.glb"
    trimesh.Scene([trimesh.PointCloud(np.random.default_rng(1).random((10, 3)))]).export(points_glb)
    with pytest.raises(ValueError, match=f"{points_glb}: holds only PointCloud"):
        normalize_output(points_glb)
    junk = tmp_path / "junk.glb"
    junk.write_bytes(b"not a glb at all")
    with pytest.raises(ValueError, match=f"cannot read {junk}"):
        normalize_output(junk)
    with pytest.raises(ValueError, match="output file not found"):
        normalize_output(tmp_path / "missing.glb")
    with pytest.raises(ValueError, match="unsupported mesh format 'stl'"):
        normalize_output(_write(tmp_path / "x.stl", "solid x\nendsolid x\n"))
    with pytest.raises(ValueError, match="up_axis must be one of"):
        normalize_output(junk, up_axis="x")


def test_degenerate_mesh_cannot_be_rescaled(tmp_path):
    path = tmp_path / "flat.obj"
    path.write_text("v 0 0 0\nv 0 0 0\nv 0 0 0\nf 1 2 3\n")
    assert len(output_mesh(path, up_axis="z").faces) == 1  # readable as is
    with pytest.raises(ValueError, match=f"{path}: mesh is degenerate"):
        normalize_output(path, up_axis="z", rescale=True)
