"""The on-disk case format: exact round trips, readable without the harness, outputs imported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from bench.cases.casefile import (
    case_dirs,
    export_case,
    export_cases,
    output_path,
    read_case,
    read_manifest,
)
from bench.inputs.assets import Z_UP_TO_Y_UP
from bench.inputs.protocol import load_protocol
from bench.methods.precomputed import ImportedMethod, import_output


@pytest.fixture(scope="module")
def protocol():
    return load_protocol("amodal3r-gso")


@pytest.fixture(scope="module")
def case(gso_root, protocol):
    from bench.cases.case import build_case
    from bench.inputs.dataset import open_dataset

    return build_case(open_dataset("gso", gso_root).load("Android_Lego"), protocol, 2)


@pytest.fixture
def exported(case, protocol, tmp_path) -> Path:
    export_cases([case], tmp_path / "CASES", protocol, "gso")
    return tmp_path / "CASES" / "amodal3r-gso" / "views-2" / "Android_Lego"


def _zup_mesh() -> trimesh.Trimesh:
    """An asymmetric tetrahedron-ish mesh, so a wrong axis cannot pass by symmetry."""
    v = np.array([[0.1, -0.2, 0.3], [0.4, 0.05, -0.1], [-0.3, 0.25, 0.2], [0.0, 0.1, -0.45]])
    f = np.array([[0, 1, 2], [0, 3, 1], [1, 3, 2], [2, 3, 0]])
    return trimesh.Trimesh(v, f, process=False)


def test_round_trip_is_exact(case, exported):
    back = read_case(exported)
    for attr in ("object_id", "protocol", "protocol_hash", "n_views", "seed", "background",
                 "occlusion_ratio", "degree", "meta"):
        assert getattr(back, attr) == getattr(case, attr), attr
    assert back.source == ""  # the GT path is never exported
    assert len(back.views) == len(case.views) == 2
    for a, b in zip(case.views, back.views):
        for attr in ("rgb", "visibility_mask", "occlusion_mask", "depth"):
            x, y = getattr(a, attr), getattr(b, attr)
            assert x.dtype == y.dtype and np.array_equal(x, y), attr
        assert np.allclose(a.camera.extrinsics, b.camera.extrinsics, atol=1e-12, rtol=0)
        assert np.allclose(a.camera.intrinsics, b.camera.intrinsics, atol=1e-12, rtol=0)
        assert (a.camera.width, a.camera.height) == (b.camera.width, b.camera.height)
        assert (a.yaw_deg, a.pitch_deg, a.visible_fraction) == (b.yaw_deg, b.pitch_deg,
                                                                 b.visible_fraction)


def test_case_json_and_manifest(case, exported, protocol):
    d = json.loads((exported / "case.json").read_text())
    assert d["format_version"] == 1 and d["protocol_hash"] == protocol.content_hash
    for v in d["views"]:
        assert v["camera"]["convention"] == "opencv_world_to_camera"
        assert np.asarray(v["camera"]["extrinsics"]).shape == (4, 4)
    assert d["expected_output"]["path"] == "output/<method>/mesh.glb"
    assert d["expected_output"]["up_axis_default"] == {"glb": "y", "obj": "z", "ply": "z"}
    m = read_manifest(exported.parents[2])
    assert m["protocol"] == {"name": "amodal3r-gso", "content_hash": protocol.content_hash}
    assert m["dataset"] == "gso" and "opencv_world_to_camera" in m["conventions"]["camera"]
    assert m["cases"] == [{"object_id": "Android_Lego", "n_views": 2, "degree": None,
                           "path": "amodal3r-gso/views-2/Android_Lego"}]
    assert case_dirs(exported.parents[2]) == [exported]
    # re-exporting extends the manifest idempotently; another protocol hash is refused
    export_cases([case], exported.parents[2], protocol, "gso")
    assert len(read_manifest(exported.parents[2])["cases"]) == 1
    other = load_protocol("gena3d-gso")
    with pytest.raises(ValueError, match="manifest.json"):
        export_cases([], exported.parents[2], other, "gso")
    with pytest.raises(ValueError, match="protocol hash"):
        export_cases([case], exported.parents[2].parent / "OTHER", other, "gso")


def _plain_loader(case_dir: Path) -> dict:
    """What a cluster job would write: numpy + PIL + json, no harness."""
    d = json.loads((case_dir / "case.json").read_text())
    views = []
    for v in d["views"]:
        views.append({
            "rgb": np.asarray(Image.open(case_dir / v["rgb"]).convert("RGB")),
            "mask": np.asarray(Image.open(case_dir / v["visibility_mask"])) > 127,
            "occ": np.asarray(Image.open(case_dir / v["occlusion_mask"])) > 127,
            "depth": np.load(case_dir / v["depth"]),
            "E": np.asarray(v["camera"]["extrinsics"]), "K": np.asarray(v["camera"]["intrinsics_pixels"]),
            "convention": v["camera"]["convention"],
        })
    return {"views": views, "out": d["expected_output"]["path"]}


def test_readable_without_the_harness(case, exported):
    import subprocess
    import sys

    loaded = _plain_loader(exported)
    for v, ref in zip(loaded["views"], case.views):
        assert v["rgb"].shape == (512, 512, 3) and v["depth"].dtype == np.float32
        assert v["convention"] == "opencv_world_to_camera" and v["K"].shape == (3, 3)
        assert np.array_equal(v["mask"], ref.visibility_mask)
        assert np.array_equal(v["occ"], ref.occlusion_mask)
        # the documented conventions are enough to project a visible pixel's 3D point back onto it
        vv, uu = np.argwhere(v["mask"])[len(np.argwhere(v["mask"])) // 2]
        z = v["depth"][vv, uu]
        pc = np.array([(uu + 0.5 - v["K"][0, 2]) / v["K"][0, 0] * z,
                       (vv + 0.5 - v["K"][1, 2]) / v["K"][1, 1] * z, z])
        world = v["E"][:3, :3].T @ (pc - v["E"][:3, 3])
        uv, _ = ref.camera.project(world[None])
        assert np.allclose(uv[0], [uu + 0.5, vv + 0.5], atol=1e-6)
        assert np.abs(world).max() <= 0.5 + 1e-6  # inside the object frame's unit cube
    # and in a fresh interpreter, no bench module is imported by that loader
    code = (f"import sys, json, numpy as np; from PIL import Image; from pathlib import Path\n"
            f"d = json.loads(Path({str(exported)!r}, 'case.json').read_text())\n"
            f"a = np.asarray(Image.open(Path({str(exported)!r}, d['views'][0]['rgb'])))\n"
            f"assert a.shape == (512, 512, 3)\n"
            f"assert not [m for m in sys.modules if m == 'bench' or m.startswith('bench.')]\n")
    subprocess.run([sys.executable, "-I", "-c", code], check=True, cwd="/")


def test_import_obj_is_z_up(exported):
    tm = _zup_mesh()
    path = output_path(exported, "m", "obj")
    path.parent.mkdir(parents=True)
    tm.export(path)
    gen = import_output(exported, "m")
    assert gen.mesh is not None and gen.meta["up_axis"] == "z" and gen.meta["source"] == str(path)
    assert np.allclose(gen.mesh.vertices, tm.vertices, atol=1e-6)


def test_import_glb_is_y_up(exported):
    tm = _zup_mesh()
    y_up = trimesh.Trimesh(tm.vertices @ Z_UP_TO_Y_UP, tm.faces, process=False)
    path = output_path(exported, "trellis", "glb")
    path.parent.mkdir(parents=True)
    y_up.export(path)
    gen = import_output(exported, "trellis")
    assert gen.mesh is not None and gen.meta["up_axis"] == "y"
    assert np.allclose(gen.mesh.vertices, tm.vertices, atol=1e-6)
    # a sidecar overrides the default and its other keys are recorded
    (path.parent / "output.json").write_text(json.dumps({"up_axis": "z", "steps": 25}))
    gen = import_output(exported, "trellis")
    assert gen.meta["up_axis"] == "z" and gen.meta["steps"] == 25
    assert np.allclose(gen.mesh.vertices, y_up.vertices, atol=1e-6)
    (path.parent / "output.json").write_text(json.dumps({"up_axis": "x"}))
    assert "up_axis" in import_output(exported, "trellis").meta["reason"]


def test_import_gaussians_in_trellis_save_ply_frame(exported):
    """gaussians.ply beside the mesh becomes Generation.gaussians: read in TRELLIS save_ply's frame
    (xyz' = (x, -z, y), undone here) unless output.json says z-up; a damaged PLY is a failure."""
    from bench.inputs.gaussians import Gaussians, write_gaussian_ply

    path = output_path(exported, "gs", "obj")
    path.parent.mkdir(parents=True)
    _zup_mesh().export(path)
    zup = np.array([[0.1, 0.2, 0.3], [-0.2, 0.0, 0.4]], np.float32)
    as_saved = np.c_[zup[:, 0], -zup[:, 2], zup[:, 1]]  # TRELLIS save_ply: xyz' = T xyz
    ones = np.ones(2, np.float32)
    quats = np.tile(np.array([1, 0, 0, 0], np.float32), (2, 1))
    write_gaussian_ply(path.parent / "gaussians.ply",
                       Gaussians(as_saved, 0.5 * ones, np.full((2, 3), 0.01, np.float32), quats,
                                 np.zeros((2, 3), np.float32)))
    gen = import_output(exported, "gs")
    assert gen.mesh is not None and gen.meta["gaussians_frame"] == "trellis"
    np.testing.assert_allclose(gen.gaussians.xyz, zup, atol=1e-6)
    (path.parent / "output.json").write_text(json.dumps({"gaussians_frame": "z-up"}))
    np.testing.assert_allclose(import_output(exported, "gs").gaussians.xyz, as_saved, atol=1e-6)
    (path.parent / "output.json").write_text(json.dumps({"gaussians_frame": "y-up"}))
    assert "gaussians_frame" in import_output(exported, "gs").meta["reason"]
    (path.parent / "output.json").unlink()
    (path.parent / "gaussians.ply").write_bytes(b"ply\nformat ascii 1.0\nend_header\n")
    gen = import_output(exported, "gs")
    assert gen.mesh is None and "gaussians.ply" in gen.meta["reason"]


def test_missing_several_and_corrupt_outputs(exported):
    gen = import_output(exported, "nothing")
    assert gen.mesh is None and str(exported / "output" / "nothing") in gen.meta["reason"]
    base = output_path(exported, "two", "obj")
    base.parent.mkdir(parents=True)
    _zup_mesh().export(base)
    _zup_mesh().export(output_path(exported, "two", "ply"))
    with pytest.raises(ValueError, match=r"mesh\.obj.*mesh\.ply"):
        import_output(exported, "two")
    bad = output_path(exported, "bad", "glb")
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"glTF not really")
    gen = import_output(exported, "bad")
    assert gen.mesh is None and "mesh.glb" in gen.meta["reason"]
    with pytest.raises(ValueError, match="output format"):
        output_path(exported, "m", "stl")


def test_imported_method_adapter(case, exported):
    root = exported.parents[2]
    path = output_path(exported, "m", "ply")
    path.parent.mkdir(parents=True)
    _zup_mesh().export(path)
    assert ImportedMethod(root, "m").generate(case).mesh is not None
    other = read_case(exported)
    other.seed += 1
    assert "seed" in ImportedMethod(root, "m").generate(other).meta["reason"]


def _copy(exported: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(exported, tmp_path / "copy"))


def test_validation_names_the_file(exported, tmp_path):
    d = _copy(exported, tmp_path)
    (d / "view_1_rgb.png").write_bytes(b"\x89PNG\r\n\x1a\n corrupted")
    with pytest.raises(ValueError, match="view_1_rgb.png"):
        read_case(d)
    d = _copy(exported, tmp_path / "a")
    m = np.asarray(Image.open(d / "view_0_visibility.png")).copy()
    m[0, 0] = 128
    Image.fromarray(m).save(d / "view_0_visibility.png")
    with pytest.raises(ValueError, match="view_0_visibility.png.*0 or 255"):
        read_case(d)
    d = _copy(exported, tmp_path / "b")
    (d / "view_0_occlusion.png").unlink()
    with pytest.raises(ValueError, match="missing file .*view_0_occlusion.png"):
        read_case(d)
    d = _copy(exported, tmp_path / "c")
    meta = json.loads((d / "case.json").read_text())
    (d / "case.json").write_text(json.dumps({**meta, "format_version": 2}))
    with pytest.raises(ValueError, match="case.json: format_version 2"):
        read_case(d)
    del meta["views"][1]["camera"]["convention"]
    (d / "case.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="case.json: view 1 camera convention"):
        read_case(d)
    d = _copy(exported, tmp_path / "d")
    np.save(d / "view_0_depth.npy", np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="view_0_depth.npy"):
        read_case(d)


def test_sweep_setting_has_its_own_folder(case, protocol, tmp_path):
    import dataclasses

    swept = dataclasses.replace(case, degree=0.3)
    export_cases([case, swept], tmp_path, protocol, "gso")
    assert [p.relative_to(tmp_path).as_posix() for p in case_dirs(tmp_path)] == [
        "amodal3r-gso/views-2-occ30/Android_Lego", "amodal3r-gso/views-2/Android_Lego"]
    assert read_case(case_dirs(tmp_path)[0]).degree == 0.3
    assert read_case(case_dirs(tmp_path)[1]).degree is None


def test_export_refuses_unsafe_names(case, tmp_path):
    import dataclasses

    with pytest.raises(ValueError, match="object id"):
        export_case(dataclasses.replace(case, object_id="../evil"), tmp_path)
