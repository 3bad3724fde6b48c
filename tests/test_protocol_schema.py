"""Protocol YAML is validated against its schema before any work (trust issue, item 21): each
malformed file the fault campaign tried gives one ProtocolError line naming the file, the key
path and what was expected; through the CLI, one stderr line, rc 2 and no run directory."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from bench.inputs.protocol import PROTOCOL_DIR, ProtocolError, list_protocols, load_protocol

BASE = (PROTOCOL_DIR / "amodal3r-gso.yaml").read_text()


def _write(tmp_path, text: str):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def _edited(tmp_path, section, key, value, drop=None):
    spec = yaml.safe_load(BASE)
    if drop:
        del spec[section][drop]
    if key is not None:
        spec[section][key] = value
    return _write(tmp_path, yaml.safe_dump(spec))


def test_every_shipped_protocol_passes():
    for name in list_protocols():
        assert load_protocol(name).name == name


@pytest.mark.parametrize("section,key,value,drop,expect", [
    ("eval_rig", "resolutoin", 512, "resolution", r"eval_rig\.resolutoin: expected no such key; valid here: "
                                                  r"yaws_deg, pitch_deg, radius, fov_deg, resolution"),
    ("input", "visible_fracton", [0.3, 0.7], None, r"input\.visible_fracton: expected no such key"),
    ("input", "views", 2, None, r"input\.views: expected a non-empty list of integers >= 1, got 2"),
    ("pointcloud", "points", "lots", None, r"pointcloud\.points: expected an integer >= 1, got 'lots'"),
    ("occlusion", "ratio", 0.5, None, r"occlusion\.ratio: expected a list \[low, high\] of numbers >= 0 "
                                      r"<= 1, low <= high, got 0.5"),
    ("occlusion", "ratio", [0.6, 0.4], None, r"occlusion\.ratio: expected a list \[low, high\]"),
    ("eval_rig", None, None, "radius",
     r"eval_rig\.radius: expected a value \(the protocol lacks eval_rig\.radius\)"),
    ("occlusion", "by", "volume", None, r"occlusion\.by: expected one of faces, area, got 'volume'"),
    ("input", "views", [1, True], None, r"input\.views: expected a non-empty list of integers"),
    ("input", "pool", {"kind": "hammersley"}, None,
     r"input\.pool\.views: expected a value \(a hammersley pool needs input\.pool\.views\)"),
    ("input", "pool", {"kind": "fixed", "yaws_deg": [0, 90]}, None,
     r"input\.pool\.pitch_deg: expected a value"),
    ("input", "pool", {"kind": "sobol"}, None,
     r"input\.pool\.kind: expected one of uniform, hammersley, fixed"),
    ("input", None, None, "yaw_deg", r"input\.yaw_deg: expected a value \(a uniform pool needs"),
    ("occlusion", "adjacency", "positions", None,
     r"occlusion\.adjacency: expected one of merged, mesh-vertices"),
])
def test_schema_errors_name_file_key_and_expectation(tmp_path, section, key, value, drop, expect):
    path = _edited(tmp_path, section, key, value, drop)
    with pytest.raises(ProtocolError, match=expect) as err:
        load_protocol(str(path))
    msg = str(err.value)
    assert msg.startswith(f"protocol {path}: ") and "\n" not in msg


@pytest.mark.parametrize("key,value,expect", [
    ("import_frame", "y-up", r"import_frame: expected one of upright, blender-obj, got 'y-up'"),
    ("gt_appearance", "eevee", r"gt_appearance: expected one of cycles-trellis, cycles-gena3d, raster-unlit"),
])
def test_top_level_renderer_and_frame_keys(tmp_path, key, value, expect):
    spec = yaml.safe_load(BASE)
    spec[key] = value
    with pytest.raises(ProtocolError, match=expect):
        load_protocol(str(_write(tmp_path, yaml.safe_dump(spec))))


def test_paper_protocols_name_their_gt_renderer_and_frame():
    expect = {"amodal3r-gso": ("cycles-trellis", "upright"),
              "amodal3r-code": ("cycles-trellis", "blender-obj"),
              "gena3d-gso": ("cycles-gena3d", "upright"), "gena3d-code": ("cycles-gena3d", "upright"),
              "gena3d-occlusion-sweep": ("cycles-gena3d", "upright")}
    for name, (renderer, frame) in expect.items():
        p = load_protocol(name)
        assert (p.gt_appearance, p.import_frame) == (renderer, frame)
    # the public 3d_mask_render.py: one start face, uniform(0.2, 0.5), the mesh's own vertex indices
    for name in ("amodal3r-code", "gena3d-code"):
        occ = load_protocol(name).spec["occlusion"]
        assert occ["ratio"] == [0.2, 0.5] and occ.get("seed_faces", 1) == 1
        assert occ["adjacency"] == "mesh-vertices"


def test_malformed_and_empty_yaml(tmp_path):
    path = _write(tmp_path, "name: x\neval_rig: [1, 2\n")
    with pytest.raises(ProtocolError, match=r"p\.yaml: not valid YAML: line \d+, column \d+:"):
        load_protocol(str(path))
    for text in ("", "# only a comment\n"):
        path = _write(tmp_path, text)
        with pytest.raises(ProtocolError, match=r"p\.yaml: the file is empty"):
            load_protocol(str(path))
    path = _write(tmp_path, "- a list\n- not a mapping\n")
    with pytest.raises(ProtocolError, match=r"\(top level\): expected a mapping of keys"):
        load_protocol(str(path))


def test_cli_one_line_before_any_work(tmp_path):
    path = _edited(tmp_path, "eval_rig", "resolutoin", 512, "resolution")
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "bench", "run", "--protocol", str(path), "--methods",
                        "visible", "--limit", "1", "--out", str(out)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "eval_rig.resolutoin" in lines[0] and str(path) in lines[0], r.stderr
    assert not (out / "run.json").exists()
