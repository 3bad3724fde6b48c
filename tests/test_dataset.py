"""bench.inputs.dataset: manifests, data roots, loading and sha256 verification."""

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


def test_manifest_lists_52_objects():
    objects = MANIFEST["objects"]
    assert len(objects) == 52
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in objects.values())  # sha256 hex
    assert "gso" in list_datasets()
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
def test_real_root_has_every_manifest_object(gso_root):
    ds = open_dataset("gso", root=gso_root)
    assert ds.object_ids == list(MANIFEST["objects"])
    missing = [o for o in ds.object_ids if not ds.mesh_path(o).is_file()]
    assert not missing


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
def test_verify_real_files(gso_root):
    ds = open_dataset("gso", root=gso_root)
    for object_id in ds.object_ids[:5] + [SMALL_GSO_OBJECT]:
        assert ds.verify(object_id), object_id
    # reference: hashlib over the file, compared with the manifest by hand
    digest = hashlib.sha256(ds.mesh_path(SMALL_GSO_OBJECT).read_bytes()).hexdigest()
    assert digest == MANIFEST["objects"][SMALL_GSO_OBJECT]


@pytest.mark.gso
def test_verify_detects_modified_copy(gso_root, tmp_path):
    shutil.copytree(gso_root / SMALL_GSO_OBJECT, tmp_path / SMALL_GSO_OBJECT)
    copy = open_dataset("gso", root=tmp_path)
    assert copy.verify(SMALL_GSO_OBJECT)  # an untouched copy verifies
    obj = tmp_path / SMALL_GSO_OBJECT / "meshes" / "model.obj"
    obj.chmod(0o644)  # the shared data may be read-only
    with open(obj, "ab") as f:
        f.write(b"\n")
    assert not copy.verify(SMALL_GSO_OBJECT)
    # the modified copy still loads: verify() is what catches it
    assert len(copy.load(SMALL_GSO_OBJECT).mesh.faces) > 0
