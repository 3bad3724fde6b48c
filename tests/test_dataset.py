"""bench.inputs.dataset: definitions, data roots (folders, zips), discovery by layout, loading."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
import yaml
from conftest import SMALL_GSO_OBJECT

from bench.inputs.dataset import (
    MANIFEST_DIR,
    REPO_ROOT,
    DataMissing,
    default_root,
    list_datasets,
    open_dataset,
)

MANIFEST = yaml.safe_load((MANIFEST_DIR / "gso.yaml").read_text())
DEV_PINS = yaml.safe_load((MANIFEST_DIR / "gso-dev.pins.yaml").read_text())


def test_definition_lists_the_full_release_and_pins_the_52_dev_objects():
    names = MANIFEST["objects"]
    assert len(names) == len(set(names)) == 1033  # Kubric's listing of GoogleResearch on Fuel
    assert names == sorted(names)
    pins = DEV_PINS["objects"]
    assert len(pins) == 52
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in pins.values())  # sha256 hex
    # every dev object is a GSO name but aloha_sim's renamed headset
    assert sorted(set(pins) - set(names)) == ["Razer_Kraken_Pro_headset_Full_size_Black_with_cable"]
    assert list_datasets() == sorted(set(list_datasets()))
    assert "gso" in list_datasets() and "gso-dev.pins" not in list_datasets()
    assert MANIFEST["env_var"] == "AMODAL_BENCH_GSO"


def test_default_root_env_var_and_manifest_default(monkeypatch, tmp_path):
    monkeypatch.setenv("AMODAL_BENCH_GSO", str(tmp_path))
    assert default_root("gso") == tmp_path
    monkeypatch.delenv("AMODAL_BENCH_GSO")
    assert default_root("gso") == (REPO_ROOT / "../shared/data/gso").resolve()


def test_unknown_dataset_raises():
    with pytest.raises(ValueError, match="unknown dataset 'nope'.*gso"):
        open_dataset("nope")


def test_missing_root_raises_data_missing_naming_env_var(tmp_path):
    with pytest.raises(DataMissing, match="AMODAL_BENCH_GSO") as err:
        open_dataset("gso", root=tmp_path / "absent")
    assert isinstance(err.value, FileNotFoundError)
    assert str(tmp_path / "absent") in str(err.value)


def test_missing_default_root_raises(monkeypatch, tmp_path):
    monkeypatch.setenv("AMODAL_BENCH_GSO", str(tmp_path / "absent"))
    with pytest.raises(DataMissing, match="AMODAL_BENCH_GSO"):
        open_dataset("gso")


@pytest.mark.gso
def test_real_root_objects_are_the_folders_found_there(gso_root):
    ds = open_dataset("gso", root=gso_root)
    # independent reference: the sub-folders holding meshes/model.obj, sorted (README, LICENSE and
    # INDEX.csv lie there too)
    expect = sorted(p.name for p in gso_root.iterdir() if (p / "meshes" / "model.obj").is_file())
    assert ds.object_ids == expect == list(DEV_PINS["objects"])
    assert all(ds.mesh_path(o).is_file() for o in ds.object_ids)


def _fake_object(root, name, body=b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"):
    (root / name / "meshes").mkdir(parents=True)
    (root / name / "meshes" / "model.obj").write_bytes(body)


def test_discovery_ignores_hidden_and_incomplete_folders(tmp_path):
    for name in ("B_obj", "A_obj", "a_lower"):
        _fake_object(tmp_path, name)
    _fake_object(tmp_path / ".partial", "C_obj")  # a download in progress
    (tmp_path / "D_no_mesh" / "meshes").mkdir(parents=True)  # no model.obj
    (tmp_path / "README.md").write_text("x")
    ds = open_dataset("gso", root=tmp_path)
    assert ds.object_ids == ["A_obj", "B_obj", "a_lower"]  # byte order, as sorted() sorts
    assert ds.category("A_obj") is None
    assert not ds.mesh_path("nope").exists()


def test_layout_patterns_with_repeats_and_categories():
    from bench.inputs.dataset import layout_regex

    rx = layout_regex("{category}/{object_id}/{object_id}.blend")
    m = rx.match("car/car_001/car_001.blend")
    assert m and m.group("object_id") == "car_001" and m.group("category") == "car"
    assert rx.match("car/car_001/car_002.blend") is None  # a repeat must match the same text
    assert rx.match("car/x/car_001/car_001.blend") is None  # no '/' inside a placeholder
    assert layout_regex("{object_id}/meshes/model.obj").match("A/meshes/model.obj.bak") is None
    with pytest.raises(ValueError, match="object_id"):
        layout_regex("{category}/model.obj")


def test_zip_root_is_read_in_place_and_extracted_once(tmp_path, monkeypatch):
    import zipfile

    monkeypatch.setenv("AMODAL_BENCH_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "src"
    _fake_object(src, "Z_obj")
    (src / "Z_obj" / "materials" / "textures").mkdir(parents=True)
    (src / "Z_obj" / "materials" / "textures" / "texture.png").write_bytes(b"png")
    with zipfile.ZipFile(tmp_path / "gso.zip", "w") as z:
        for f in sorted(src.rglob("*")):
            if f.is_file():
                z.write(f, f.relative_to(src).as_posix())
    ds = open_dataset("gso", root=tmp_path / "gso.zip")
    assert ds.is_zip and ds.object_ids == ["Z_obj"]
    path = ds.mesh_path("Z_obj")
    assert path.read_bytes() == (src / "Z_obj/meshes/model.obj").read_bytes()
    assert (path.parents[1] / "materials/textures/texture.png").read_bytes() == b"png"  # its folder
    mtime = path.stat().st_mtime_ns
    assert ds.mesh_path("Z_obj") == path and path.stat().st_mtime_ns == mtime  # not extracted again


@pytest.mark.gso
def test_open_real_root_loads_one_object(gso_root):
    ds = open_dataset("gso", root=gso_root)
    assert ds.root == gso_root
    asset = ds.load(SMALL_GSO_OBJECT)
    assert asset.object_id == SMALL_GSO_OBJECT and asset.up_axis == "z"
    assert asset.source == str(gso_root / SMALL_GSO_OBJECT / "meshes" / "model.obj")
    assert asset.mesh.texture is not None and len(asset.mesh.faces) > 0
    lo, hi = asset.mesh.bounds.astype(np.float64)
    assert (hi - lo).max() == pytest.approx(1.0, abs=1e-6)  # TRELLIS frame; 1e-6


@pytest.mark.gso
def test_dev_pins_match_the_real_files(gso_root):
    ds = open_dataset("gso", root=gso_root)
    # reference: hashlib over the file, compared with the pin file by hand
    for object_id in ds.object_ids[:5] + [SMALL_GSO_OBJECT]:
        digest = hashlib.sha256(ds.mesh_path(object_id).read_bytes()).hexdigest()
        assert digest == DEV_PINS["objects"][object_id], object_id


@pytest.mark.gso
def test_a_modified_copy_still_loads(gso_root, tmp_path):
    shutil.copytree(gso_root / SMALL_GSO_OBJECT, tmp_path / SMALL_GSO_OBJECT)
    obj = tmp_path / SMALL_GSO_OBJECT / "meshes" / "model.obj"
    obj.chmod(0o644)  # the shared data may be read-only
    with open(obj, "ab") as f:
        f.write(b"\n")
    # the loader does not judge content: the manifest's sha256 does (tests/test_selection.py)
    assert len(open_dataset("gso", root=tmp_path).load(SMALL_GSO_OBJECT).mesh.faces) > 0
