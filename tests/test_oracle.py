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
