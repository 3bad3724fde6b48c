"""bench.inputs.manifest: pin files (ids, sha256, subsets), the hash cache, verification."""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest
import yaml
from conftest import SMALL_GSO_OBJECT

from bench.inputs.dataset import MANIFEST_DIR, open_dataset
from bench.inputs.manifest import HashCache, load_manifest, verify


def _write(path, data):
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_shipped_manifests_by_name():
    dev = load_manifest("gso-dev")
    assert len(dev.ids) == 52 and all(len(h) == 64 for h in dev.objects.values())
    full = load_manifest("gso")  # the dataset's own list: names, nothing pinned
    assert len(full.ids) == 1033 and set(full.objects.values()) == {None}
    assert dev.source.endswith("gso-dev.pins.yaml") and full.source == str(MANIFEST_DIR / "gso.yaml")


@pytest.mark.parametrize("data,expect", [
    ({"objects": {"a": "zz"}}, "sha256 \\(64 hex\\) or null"),
    ({"objects": "a"}, "list of ids or a mapping"),
    ({"ids": ["a"]}, "needs an `objects:`"),
    ({"objects": ["a"], "subsets": {"s": ["b"]}}, "subsets.s must list ids of `objects`"),
])
def test_malformed_manifests_are_one_line(tmp_path, data, expect):
    with pytest.raises(ValueError, match=expect):
        load_manifest(_write(tmp_path / "m.yaml", data))


def test_unknown_name_lists_the_shipped_ones(tmp_path):
    with pytest.raises(ValueError, match="not found: give a YAML file or one of gso-dev, gso"):
        load_manifest("nope")
    (tmp_path / "bad.yaml").write_text("objects: [a\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_manifest(str(tmp_path / "bad.yaml"))


def test_subsets_and_splits_and_case_of_hashes(tmp_path):
    h = "AB" * 32
    data = {"objects": {"a": h, "b": None, "c": None}, "subsets": {"two": ["c", "a"]},
            "splits": {"test": ["b"]}}
    m = load_manifest(_write(tmp_path / "m.yaml", data))
    assert m.ids == ["a", "b", "c"] and m.objects["a"] == h.lower()
    assert m.subsets == {"two": ["c", "a"], "test": ["b"]}


def test_hash_cache_matches_hashlib_and_keys_on_size_and_mtime(tmp_path):
    f = tmp_path / "f.bin"
    f.write_bytes(os.urandom(3_000_000))  # several read chunks
    cache = HashCache(tmp_path / "c.json")
    assert cache.sha256(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    cache.save()
    st = f.stat()
    f.write_bytes(b"\0" * st.st_size)  # same size; mtime restored: the cache cannot tell
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    reloaded = HashCache(tmp_path / "c.json")
    assert reloaded.sha256(f) != hashlib.sha256(f.read_bytes()).hexdigest()  # the cached value
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a touched file is re-read
    assert reloaded.sha256(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    (tmp_path / "c.json").write_text("{not json")
    assert HashCache(tmp_path / "c.json").entries == {}  # a damaged cache is rebuilt


@pytest.mark.gso
def test_verify_finds_missing_and_modified_objects(gso_root, tmp_path):
    shutil.copytree(gso_root / SMALL_GSO_OBJECT, tmp_path / "data" / SMALL_GSO_OBJECT)
    shutil.copytree(gso_root / "Android_Lego", tmp_path / "data" / "Android_Lego")
    ds = open_dataset("gso", tmp_path / "data")
    pins = load_manifest("gso-dev").objects
    cache = HashCache(tmp_path / "c.json")
    ids = [SMALL_GSO_OBJECT, "Android_Lego", "Wishbone_Pencil_Case"]
    bad = verify(ds, ids, pins, cache)
    assert list(bad) == ["Wishbone_Pencil_Case"] and "not found under" in bad["Wishbone_Pencil_Case"]
    obj = tmp_path / "data" / "Android_Lego" / "meshes" / "model.obj"
    obj.chmod(0o644)
    with open(obj, "ab") as f:  # a cut or appended byte that still parses: only the hash sees it
        f.write(b"\n")
    bad = verify(ds, ids, pins, HashCache(tmp_path / "c.json"))
    assert bad["Android_Lego"].startswith(f"sha256 mismatch: pinned {pins['Android_Lego'][:12]}")
    assert SMALL_GSO_OBJECT not in bad
