"""Records: atomic JSON, round trip, clear errors on corrupt files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.records.store import (
    Record,
    load_records,
    provenance,
    read_record,
    record_path,
    write_array,
    write_record,
)


def _record(**kw) -> Record:
    base = dict(method="oracle", protocol="p", protocol_hash="h", dataset="gso", object_id="o",
                views=1, status="ok", metrics={"psnr_masked": float("inf"), "ssim_masked": 1.0})
    return Record(**{**base, **kw})


def test_round_trip_keeps_inf(tmp_path):
    path = record_path(tmp_path, "p", "oracle", 1, "o")
    write_record(path, _record())
    back = read_record(path)
    assert back == _record() and back.metrics["psnr_masked"] == float("inf")


def test_write_leaves_no_temp_files(tmp_path):
    path = record_path(tmp_path, "p", "oracle", 1, "o")
    for _ in range(3):
        write_record(path, _record())
    assert [p.name for p in path.parent.iterdir()] == ["o.json"]


def test_corrupt_record_names_the_file(tmp_path):
    path = record_path(tmp_path, "p", "oracle", 1, "o")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="o.json"):
        load_records(tmp_path)


def test_records_are_sorted(tmp_path):
    for oid in ("b", "a", "c"):
        write_record(record_path(tmp_path, "p", "oracle", 1, oid), _record(object_id=oid))
    assert [r.object_id for r in load_records(tmp_path)] == ["a", "b", "c"]


def test_write_array_round_trip(tmp_path):
    a = np.random.default_rng(0).random((10, 3)).astype(np.float32)
    write_array(tmp_path / "x" / "a.npy", a)
    assert np.array_equal(np.load(tmp_path / "x" / "a.npy"), a)


def test_provenance_names_versions():
    p = provenance()
    assert p["harness"] and p["packages"]["numpy"]
    json.dumps(p)
