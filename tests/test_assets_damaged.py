"""Damaged inputs are input failures with a reason, never scored (trust issue, items 14-15).
References: the untouched real GSO object loads; the same file cut or corrupted does not, and
trimesh alone (the reference behaviour we guard against) would have loaded it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import trimesh
from conftest import SMALL_GSO_OBJECT, TEXTURED_GSO_OBJECT

from bench.inputs.assets import AssetError, check_obj, load_mesh


def _copy(gso_root, tmp_path, object_id):
    dst = tmp_path / object_id
    shutil.copytree(gso_root / object_id, dst)
    return dst / "meshes" / "model.obj"


def test_corrupt_texture_is_an_input_failure(gso_root, tmp_path):
    obj = _copy(gso_root, tmp_path, TEXTURED_GSO_OBJECT)
    assert load_mesh(obj).texture is not None  # the intact copy loads with its texture
    tex = obj.parent.parent / "materials" / "textures" / "texture.png"
    good = tex.read_bytes()
    tex.write_bytes(good[:8] + np.random.default_rng(0).bytes(len(good) - 8))  # PNG signature + noise
    # trimesh on its own drops the unreadable image and returns an untextured mesh
    tm = trimesh.load(str(obj), process=False, force="mesh")
    assert getattr(tm.visual.material, "image", None) is None
    with pytest.raises(AssetError, match=r"texture unreadable: .*texture\.png"):
        load_mesh(obj)


def test_truncated_texture_is_an_input_failure(gso_root, tmp_path):
    obj = _copy(gso_root, tmp_path, TEXTURED_GSO_OBJECT)
    tex = obj.parent.parent / "materials" / "textures" / "texture.png"
    tex.write_bytes(tex.read_bytes()[: tex.stat().st_size // 2])
    with pytest.raises(AssetError, match="texture unreadable"):
        load_mesh(obj)


def _cut(obj, marker: bytes, keep_of_line: int):
    """Cut the file `keep_of_line` bytes into the first line after the middle of its `marker` block."""
    data = obj.read_bytes()
    starts = [i for i in range(len(data)) if data.startswith(marker, i) and (i == 0 or data[i - 1] == 10)]
    start = starts[len(starts) // 2]
    obj.write_bytes(data[: start + keep_of_line])
    return len(starts)


@pytest.mark.parametrize("keep,reason", [
    (len("f "), "a face needs 3 corners"),
    (len("f 1/1 2/2"), "a face needs 3 corners"),
])
def test_obj_cut_inside_its_face_block(gso_root, tmp_path, keep, reason):
    obj = _copy(gso_root, tmp_path, SMALL_GSO_OBJECT)
    n_faces = len(load_mesh(obj).faces)
    _cut(obj, b"f ", keep)
    tm = trimesh.load(str(obj), process=False, force="mesh")  # trimesh scores what is left
    assert 0 < len(tm.faces) < n_faces
    with pytest.raises(AssetError, match=reason):
        load_mesh(obj)


def test_obj_cut_inside_its_vertex_block_says_what_is_wrong(gso_root, tmp_path):
    obj = _copy(gso_root, tmp_path, SMALL_GSO_OBJECT)
    _cut(obj, b"v ", len("v 0.1"))
    with pytest.raises(AssetError, match=r"line \d+: a vertex needs 3 numbers"):
        load_mesh(obj)


def test_face_referencing_a_missing_vertex(tmp_path):
    obj = tmp_path / "m.obj"
    obj.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\nf 1 2 4\n")
    with pytest.raises(AssetError, match=r"line 5: a face references vertex 4 but only 3 vertices"):
        check_obj(obj)
    obj.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf -1 -2 -3\n")
    check_obj(obj)  # relative indices in range are fine
    obj.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf -1 -2 -4\n")
    with pytest.raises(AssetError, match="references vertex -4"):
        check_obj(obj)


def test_every_real_gso_obj_passes(gso_root):
    objs = sorted(gso_root.glob("*/meshes/model.obj"))
    assert objs
    for obj in objs:
        check_obj(obj)
