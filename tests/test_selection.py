"""bench.inputs.selection: which objects a run evaluates (found / pinned, --objects, --subset,
--limit) and the seeded random subset."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import yaml
from scipy import stats

from bench.inputs.dataset import DataMissing, open_dataset
from bench.inputs.manifest import load_manifest
from bench.inputs.selection import parse_subset, random_subset, select_objects

NAMES = load_manifest("gso").ids  # 1,033 real GSO names


def test_random_subset_is_the_n_smallest_hash_ranks_in_input_order():
    got = random_subset(NAMES, 500, seed=7)
    # brute force: every name's rank by sha256("7:<name>") computed here, the 500 first kept
    ranked = sorted((hashlib.sha256(("7:" + n).encode()).digest(), n) for n in NAMES)
    assert set(got) == {n for _, n in ranked[:500]}
    assert got == [n for n in NAMES if n in set(got)] and len(got) == 500
    assert random_subset(NAMES, 500, seed=7) == got  # deterministic
    assert random_subset(NAMES, 500, seed=8) != got
    assert random_subset(list(reversed(NAMES)), 500, seed=7) == list(reversed(got))  # order-free draw


def test_random_subset_is_uniform_over_seeds():
    # each of the 1,033 names drawn in 500 of 1,033 places: over 300 seeds its count is
    # Binomial(300, p=500/1033); the counts' chi-square against that must not be extreme
    n, seeds = 500, 300
    counts = dict.fromkeys(NAMES, 0)
    for s in range(seeds):
        for name in random_subset(NAMES, n, seed=s):
            counts[name] += 1
    c = np.array(list(counts.values()), float)
    p = n / len(NAMES)
    chi2 = (((c - seeds * p) ** 2) / (seeds * p * (1 - p))).sum()
    # with ~1,032 degrees of freedom (sampling without replacement makes it slightly smaller)
    assert stats.chi2.sf(chi2, len(NAMES) - 1) > 1e-3, chi2
    assert abs(c.mean() - seeds * p) < 1e-9  # exactly n per seed


@pytest.mark.parametrize("spec,expect", [("random:5", ("random", 5, 0)), ("random:5:3", ("random", 5, 3)),
                                         ("dev", ("named", "dev"))])
def test_parse_subset(spec, expect):
    assert parse_subset(spec) == expect


@pytest.mark.parametrize("spec", ["random:0", "random:x", "random:5:y", "random:1:2:3", ""])
def test_parse_subset_rejects(spec):
    with pytest.raises(ValueError):
        parse_subset(spec)


def _folder(tmp_path, names):
    for n in names:
        (tmp_path / n / "meshes").mkdir(parents=True)
        (tmp_path / n / "meshes" / "model.obj").write_text(f"# {n}\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    return open_dataset("gso", tmp_path)


def test_order_found_then_objects_then_subset_then_limit(tmp_path):
    ds = _folder(tmp_path / "d", ["c", "a", "b", "e", "d"])
    assert select_objects(ds).ids == ["a", "b", "c", "d", "e"]
    assert select_objects(ds, limit=2).ids == ["a", "b"]
    assert select_objects(ds, objects=["d", "a", "d"]).ids == ["d", "a"]
    sel = select_objects(ds, subset="random:3:1", limit=2)
    assert sel.ids == random_subset(["a", "b", "c", "d", "e"], 3, 1)[:2]
    assert sel.spec["subset"]["seed"] == 1 and sel.spec["found"] == 5 and sel.spec["selected"] == 2
    missing = select_objects(ds, objects=["a", "zz"])
    assert missing.ids == ["a", "zz"] and list(missing.bad) == ["zz"]


def test_manifest_selection_pins_and_subsets(tmp_path):
    ds = _folder(tmp_path / "d", ["a", "b", "c"])
    sha = {n: hashlib.sha256((tmp_path / "d" / n / "meshes" / "model.obj").read_bytes()).hexdigest()
           for n in "abc"}
    m = tmp_path / "m.yaml"
    m.write_text(yaml.safe_dump({"objects": {"a": sha["a"], "b": "0" * 64, "x": None},
                                 "subsets": {"ab": ["b", "a"]}}))
    sel = select_objects(ds, manifest=str(m), hash_cache=tmp_path / "h.json")
    assert sel.ids == ["a", "b", "x"]  # the manifest's ids, not the folder's: c is not evaluated
    assert set(sel.bad) == {"b", "x"} and "sha256 mismatch" in sel.bad["b"] and "not found" in sel.bad["x"]
    assert "2 of 3 objects cannot be evaluated as pinned" in sel.problem()
    assert select_objects(ds, manifest=str(m), subset="ab").ids == ["b", "a"]
    assert (tmp_path / "h.json").is_file()
    with pytest.raises(ValueError, match="not in manifest"):
        select_objects(ds, manifest=str(m), objects=["c"])
    with pytest.raises(ValueError, match="'zz' is not a subset of .*subsets: ab"):
        select_objects(ds, manifest=str(m), subset="zz")
    with pytest.raises(ValueError, match="pass --manifest"):
        select_objects(ds, subset="ab")
    with pytest.raises(ValueError, match="more objects than the 3 available"):
        select_objects(ds, subset="random:4")


def test_an_empty_folder_is_one_line(tmp_path):
    (tmp_path / "d" / "notes").mkdir(parents=True)
    with pytest.raises(DataMissing, match="no gso objects found under .* layout '.object_id./meshes/"):
        select_objects(open_dataset("gso", tmp_path / "d"))
