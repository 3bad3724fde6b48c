"""The `visible` baseline: lifts visible pixels only and never bridges depth jumps."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.visible import Visible, lift_view
from bench.cases.case import InputView, build_case
from bench.inputs.cameras import camera_from_yaw_pitch
from bench.inputs.protocol import load_protocol
from bench.render import render


def _view(depth: np.ndarray, vis: np.ndarray) -> InputView:
    cam = camera_from_yaw_pitch(0, 0, 2.0, 40, depth.shape[0])
    rgb = np.full(depth.shape + (3,), 100, np.uint8)
    return InputView(cam, rgb, vis, np.zeros_like(vis), np.where(vis, depth, 0).astype(np.float32),
                     0.0, 0.0)


def test_plane_lifts_to_grid_of_triangles():
    # a fully visible 4x4 plane at depth 2 -> 3x3 blocks x 2 triangles, all points at z = 2
    depth = np.full((4, 4), 2.0, np.float32)
    mesh = lift_view(_view(depth, np.ones((4, 4), bool)))
    assert len(mesh.vertices) == 16 and len(mesh.faces) == 18
    cam = camera_from_yaw_pitch(0, 0, 2.0, 40, 4)
    np.testing.assert_allclose(cam.world_to_camera(mesh.vertices.astype(np.float64))[:, 2], 2.0,
                               atol=1e-6)


def test_depth_jump_is_not_bridged():
    # left half at depth 1.5, right half at depth 2.5: no triangle may join the two halves
    depth = np.full((6, 6), 1.5, np.float32)
    depth[:, 3:] = 2.5
    mesh = lift_view(_view(depth, np.ones((6, 6), bool)))
    cam = camera_from_yaw_pitch(0, 0, 2.0, 40, 6)
    z = cam.world_to_camera(mesh.vertices.astype(np.float64))[:, 2]
    zf = z[mesh.faces]
    assert (zf.max(1) - zf.min(1) < 1e-6).all()
    assert len(mesh.faces) == 2 * 2 * 5 * 2  # two 6x3 halves, 2x5 blocks each, 2 triangles


def test_occluded_pixels_are_never_lifted():
    depth = np.full((5, 5), 2.0, np.float32)
    vis = np.ones((5, 5), bool)
    vis[2] = False
    mesh = lift_view(_view(depth, vis))
    assert len(mesh.vertices) == 20


def test_visible_reproduces_visible_pixels(gso_root):
    # rendered back from its own input camera, the lifted mesh matches the input inside the
    # visible region, except on a boundary band of one pixel (pixel centres are its vertices)
    from scipy.ndimage import binary_dilation, binary_erosion

    from bench.inputs.dataset import open_dataset

    asset = open_dataset("gso", gso_root).load("Android_Lego")
    case = build_case(asset, load_protocol("amodal3r-gso"), 1)
    gen = Visible().generate(case)
    v = case.views[0]
    r = render(gen.mesh, [v.camera], case.background)
    inner = binary_erosion(v.visibility_mask, iterations=2)
    assert inner.sum() > 100
    covered = r.alpha[0][inner] > 0
    assert covered.mean() > 0.97
    np.testing.assert_allclose(r.depth[0][inner][covered], v.depth[inner][covered], rtol=1e-4)
    # nothing is generated away from the visible region (2-pixel margin for edge pixels)
    far = ~binary_dilation(v.visibility_mask, iterations=2)
    assert r.alpha[0][far].sum() == 0


def test_no_visible_pixels_yields_no_mesh():
    gen = Visible().generate(type("C", (), {"views": [_view(np.zeros((4, 4), np.float32),
                                                           np.zeros((4, 4), bool))]})())
    assert gen.mesh is None and "no visible" in gen.meta["reason"]


@pytest.mark.parametrize("jump", [0.0])
def test_jump_parameter_zero_allows_only_flat(jump):
    depth = np.full((3, 3), 2.0, np.float32)
    depth[0, 0] = 2.001
    mesh = lift_view(_view(depth, np.ones((3, 3), bool)), max_jump=jump)
    assert len(mesh.faces) < 8
