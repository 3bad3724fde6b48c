"""AmodalCase construction: seeded, protocol-faithful, and failing clearly when unmeetable."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bench.cases import CaseError, build_case
from bench.protocol import Protocol, load_protocol


@pytest.fixture(scope="module")
def asset(gso_root):
    from bench.dataset import open_dataset

    return open_dataset("gso", gso_root).load("Android_Lego")


def _with(protocol: Protocol, **input_overrides) -> Protocol:
    spec = {**protocol.spec, "input": {**protocol.spec["input"], **input_overrides}}
    return dataclasses.replace(protocol, spec=spec)


def test_case_is_deterministic(asset):
    p = load_protocol("amodal3r-gso")
    a, b = build_case(asset, p, 1), build_case(asset, p, 1)
    assert a.seed == b.seed and a.occlusion_ratio == b.occlusion_ratio
    for va, vb in zip(a.views, b.views):
        assert np.array_equal(va.rgb, vb.rgb)
        assert np.array_equal(va.visibility_mask, vb.visibility_mask)


def test_case_follows_protocol(asset):
    p = load_protocol("gena3d-gso")
    case = build_case(asset, p, 2)
    lo, hi = p.spec["occlusion"]["ratio"]
    assert lo <= case.occlusion_ratio <= hi
    # the grown region reaches the sampled ratio of faces (one face of slack)
    assert abs(case.meta["occluded_faces"] - case.occlusion_ratio * case.meta["faces"]) <= 1
    assert len(case.views) == 2
    vlo, vhi = p.spec["input"]["visible_fraction"]
    for v in case.views:
        assert vlo <= v.visible_fraction <= vhi
        assert not (v.visibility_mask & v.occlusion_mask).any()
        assert v.pitch_deg == 15.0
        # occluded pixels carry the occluder colour (black); depth only where visible
        assert (v.rgb[v.occlusion_mask] == 0).all()
        assert (v.depth[~v.visibility_mask] == 0).all() and (v.depth[v.visibility_mask] > 0).all()
        # the object's silhouette: everything outside it is the white background
        sil = v.visibility_mask | v.occlusion_mask
        assert (v.rgb[~sil] == 255).all()


def test_occlusion_is_3d_consistent(asset):
    # the same surface is occluded in every view: a world point seen occluded in one view and
    # visible in another would contradict a per-object face set. Check via face ids.
    from bench.occlusion import view_masks
    from bench.render import render

    p = load_protocol("amodal3r-gso")
    case = build_case(asset, p, 1)
    r = render(asset.mesh, [v.camera for v in case.views], p.background)
    occluded_faces = set(np.unique(r.face_id[0][case.views[0].occlusion_mask]).tolist())
    visible_faces = set(np.unique(r.face_id[0][case.views[0].visibility_mask]).tolist())
    assert occluded_faces and visible_faces and not occluded_faces & visible_faces
    vis, occ = view_masks(r.face_id[0], np.isin(np.arange(len(asset.mesh.faces)),
                                                 list(occluded_faces)))
    assert np.array_equal(occ, case.views[0].occlusion_mask)


def test_unmeetable_visibility_is_a_case_error(asset):
    p = _with(load_protocol("amodal3r-gso"), visible_fraction=[0.999, 1.0], max_tries=3)
    with pytest.raises(CaseError, match="visible fraction"):
        build_case(asset, p, 1)


def test_settings_share_the_occlusion(asset):
    p = load_protocol("amodal3r-gso")
    one, four = build_case(asset, p, 1), build_case(asset, p, 4)
    assert one.occlusion_ratio == four.occlusion_ratio and len(four.views) == 4
