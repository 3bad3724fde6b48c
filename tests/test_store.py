"""Records: atomic JSON, round trip, clear errors on corrupt files."""

from __future__ import annotations

import json
import re

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


# -- validation on load (trust item 22): a record or cloud of the wrong shape is one error naming the file

def _damaged(tmp_path, change) -> tuple:
    """A valid record written by write_record, then its JSON changed by `change(dict)`."""
    path = record_path(tmp_path, "p", "oracle", 1, "o")
    write_record(path, _record(features={"mobilenet": "features/x.npz"},
                               meta={"fid_extractors": ["mobilenet"],
                                     "weights_sha256": {"mobilenet": "ab" * 32}}))
    assert read_record(path).ok  # the undamaged record loads
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("change, says", [
    (lambda d: d["metrics"].update(psnr_masked="oops"), "metric 'psnr_masked' must be a number"),
    (lambda d: d["metrics"].update(ssim_masked=True), "metric 'ssim_masked' must be a number"),
    (lambda d: d["metrics"].update(lpips_masked=None), "metric 'lpips_masked' must be a number"),
    (lambda d: d.update(metrics=[1, 2]), "field 'metrics' must be a JSON object"),
    (lambda d: d.update(views="1"), "field 'views' must be an integer"),
    (lambda d: d.update(views=0), "views must be >= 1"),
    (lambda d: d.update(occlusion_degree="half"), "field 'occlusion_degree' must be a number or null"),
    (lambda d: d.update(status="great"), "status must be one of ok, failed, error"),
    (lambda d: d.update(pointcloud=3), "field 'pointcloud' must be a string"),
    (lambda d: d.pop("object_id"), "field 'object_id' missing"),
    (lambda d: d.update(colour="red"), "unknown field(s) colour"),
    (lambda d: d["metrics"].pop("psnr_masked"), "an ok record needs metric 'psnr_masked'"),
    (lambda d: d["features"].update(mobilenet=7), "features['mobilenet'] must be a file path"),
    (lambda d: d["meta"].update(fid_extractors="mobilenet"), "meta.fid_extractors must be a list"),
    (lambda d: d["meta"].pop("weights_sha256"), "features['mobilenet'] without meta.weights_sha256"),
    (lambda d: d["meta"].update(alignment=[]), "meta.alignment must be an object"),
])
def test_wrong_type_is_an_error_naming_the_file(tmp_path, change, says):
    path = _damaged(tmp_path, change)
    with pytest.raises(ValueError) as e:
        load_records(tmp_path)
    message = str(e.value)
    assert str(path) in message and says in message and "\n" not in message


def test_json_that_is_not_an_object_names_the_file(tmp_path):
    path = record_path(tmp_path, "p", "oracle", 1, "o")
    path.parent.mkdir(parents=True)
    path.write_text("[1, 2, 3]")
    with pytest.raises(ValueError, match=re.escape(f"corrupt record {path}: expected a JSON object")):
        read_record(path)


def test_failed_and_error_records_validate(tmp_path):
    # a failure needs no metrics; "error" is a harness error (retried on resume)
    for status in ("failed", "error"):
        path = record_path(tmp_path, "p", "oracle", 1, status)
        write_record(path, _record(object_id=status, status=status, metrics={}, reason="boom"))
        assert read_record(path).status == status


def test_read_cloud_round_trip_and_damage_named(tmp_path):
    from bench.records.store import read_cloud

    cloud = np.random.default_rng(1).random((4096, 3)).astype(np.float32)
    path = tmp_path / "c.npy"
    write_array(path, cloud)
    assert np.array_equal(read_cloud(path), cloud)  # exact: same bytes back
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated, as a disk-full copy leaves it
    with pytest.raises(ValueError, match=re.escape(f"unreadable point cloud {path}")):
        read_cloud(path)
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=re.escape(f"unreadable point cloud {path}")):
        read_cloud(path)
    with pytest.raises(ValueError, match=re.escape(f"point cloud {tmp_path / 'gone.npy'} is missing")):
        read_cloud(tmp_path / "gone.npy")
    write_array(path, cloud[:, :2])
    with pytest.raises(ValueError, match=r"expected \(N, 3\) floats, got \(4096, 2\)"):
        read_cloud(path)
    bad = cloud.copy()
    bad[7, 1] = np.nan
    write_array(path, bad)
    with pytest.raises(ValueError, match="NaN or infinite"):
        read_cloud(path)
