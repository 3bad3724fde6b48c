"""The oracle returns the GT mesh exactly (the harness's upper bound)."""

from __future__ import annotations

import numpy as np

from baselines.oracle import Oracle
from bench.cases.case import build_case
from bench.inputs.protocol import load_protocol


def test_oracle_returns_ground_truth(gso_root):
    from bench.inputs.dataset import open_dataset

    asset = open_dataset("gso", gso_root).load("Android_Lego")
    case = build_case(asset, load_protocol("amodal3r-gso"), 1)
    gen = Oracle().generate(case)
    assert np.array_equal(gen.mesh.vertices, asset.mesh.vertices)
    assert np.array_equal(gen.mesh.faces, asset.mesh.faces)
    assert np.array_equal(gen.mesh.texture, asset.mesh.texture)


def test_oracle_returns_the_ground_truth_in_the_case_frame(gso_root):
    """amodal3r-code imports GSO as TRELLIS's script does (Blender's default OBJ axes: the object
    lies on its back); the oracle's mesh is in that frame too, not the file's upright one."""
    from bench.inputs.dataset import open_dataset

    protocol = load_protocol("amodal3r-code+raster-unlit")
    asset = open_dataset("gso", gso_root).load("Android_Lego", protocol.import_frame)
    case = build_case(asset, protocol, 1)
    gen = Oracle().generate(case)
    assert case.meta["import_frame"] == "blender-obj"
    np.testing.assert_array_equal(gen.mesh.vertices, asset.mesh.vertices)
    upright = open_dataset("gso", gso_root).load("Android_Lego").mesh.vertices
    assert not np.allclose(gen.mesh.vertices, upright)
