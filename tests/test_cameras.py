"""bench.inputs.cameras: TRELLIS yaw/pitch convention, OpenCV extrinsics, pixel intrinsics, rigs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.inputs.cameras import (
    Camera,
    Rig,
    camera_from_yaw_pitch,
    input_view_pool,
    intrinsics_from_fov,
    sphere_hammersley,
)

RIG_SPEC = {"yaws_deg": [0, 90, 180, 270], "pitch_deg": 30, "radius": 2.0, "fov_deg": 40,
            "resolution": 512}

ANGLES = [(0, 0), (0, 30), (90, 30), (180, -20), (270, 30), (37.5, 15), (123, 80)]


# ---------------------------------------------------------------------------- position


@pytest.mark.parametrize(("yaw", "pitch", "expected"), [
    # Analytic: r * (sin yaw cos pitch, cos yaw cos pitch, sin pitch), r = 2,
    # cos 30 = sqrt(3)/2, sin 30 = 1/2.
    (0, 30, (0.0, np.sqrt(3), 1.0)),
    (90, 30, (np.sqrt(3), 0.0, 1.0)),
    (180, 30, (0.0, -np.sqrt(3), 1.0)),
    (270, 30, (-np.sqrt(3), 0.0, 1.0)),
    (0, 0, (0.0, 2.0, 0.0)),
])
def test_camera_position_trellis_convention(yaw, pitch, expected):
    cam = camera_from_yaw_pitch(yaw, pitch, 2.0, 40, 512)
    # reference: analytic value; tolerance 1e-12 absolute (float64 trig)
    np.testing.assert_allclose(cam.position, expected, atol=1e-12)


@pytest.mark.parametrize(("yaw", "pitch"), ANGLES)
def test_position_matches_formula_for_any_angle(yaw, pitch):
    r = 1.7
    cam = camera_from_yaw_pitch(yaw, pitch, r, 40, 64)
    y, p = np.deg2rad(yaw), np.deg2rad(pitch)
    expected = r * np.array([np.sin(y) * np.cos(p), np.cos(y) * np.cos(p), np.sin(p)])
    # reference: TRELLIS formula evaluated here; tolerance 1e-12 absolute
    np.testing.assert_allclose(cam.position, expected, atol=1e-12)
    # the camera centre maps to the camera-frame origin (tolerance 1e-12)
    np.testing.assert_allclose(cam.world_to_camera(cam.position[None])[0], 0.0, atol=1e-12)


def test_yaw0_pitch0_rotation_analytic():
    # Camera on +Y looking at the origin with +Z up: OpenCV x (right) = world -X,
    # y (down) = world -Z, z (forward) = world -Y. Reference: analytic; tolerance 1e-12.
    cam = camera_from_yaw_pitch(0, 0, 2.0, 40, 512)
    expected = np.array([[-1, 0, 0], [0, 0, -1], [0, -1, 0]], float)
    np.testing.assert_allclose(cam.extrinsics[:3, :3], expected, atol=1e-12)
    np.testing.assert_allclose(cam.extrinsics[:3, 3], [0, 0, 2.0], atol=1e-12)
    np.testing.assert_array_equal(cam.extrinsics[3], [0, 0, 0, 1])


@pytest.mark.parametrize(("yaw", "pitch"), ANGLES)
def test_camera_looks_at_origin(yaw, pitch):
    cam = camera_from_yaw_pitch(yaw, pitch, 2.0, 40, 512)
    forward = cam.extrinsics[2, :3]  # camera +z in world coordinates
    # reference: analytic (forward = -position / |position|); tolerance 1e-12
    np.testing.assert_allclose(forward, -cam.position / np.linalg.norm(cam.position), atol=1e-12)


# ---------------------------------------------------------------------------- projection


@pytest.mark.parametrize(("yaw", "pitch"), ANGLES)
@pytest.mark.parametrize("res", [512, 64, 37])
def test_origin_projects_to_image_centre(yaw, pitch, res):
    cam = camera_from_yaw_pitch(yaw, pitch, 2.0, 40, res)
    uv, z = cam.project(np.zeros((1, 3)))
    # reference: analytic (W/2, H/2) and depth r; tolerance 1e-9
    np.testing.assert_allclose(uv[0], [res / 2, res / 2], atol=1e-9)
    np.testing.assert_allclose(z[0], 2.0, atol=1e-12)


@pytest.mark.parametrize(("yaw", "pitch"), ANGLES)
def test_world_up_projects_upward(yaw, pitch):
    cam = camera_from_yaw_pitch(yaw, pitch, 2.0, 40, 512)
    uv, _ = cam.project(np.array([[0, 0, 0], [0, 0, 0.2]], float))
    # +Z is above the origin in the image: smaller v (v points down)
    assert uv[1, 1] < uv[0, 1] - 1.0
    # the point lies in the vertical plane through the camera and the origin: same column
    # (reference: analytic, u = W/2; tolerance 1e-9 px)
    np.testing.assert_allclose(uv[1, 0], 256.0, atol=1e-9)


def test_world_minus_x_is_right_at_yaw0():
    # Camera at +Y looking towards -Y with +Z up: world -X is on the image's right (larger u).
    cam = camera_from_yaw_pitch(0, 30, 2.0, 40, 512)
    uv, _ = cam.project(np.array([[-0.2, 0, 0], [0.2, 0, 0]], float))
    assert uv[0, 0] > 256 + 1 and uv[1, 0] < 256 - 1
    np.testing.assert_allclose(uv[0, 0] - 256, 256 - uv[1, 0], atol=1e-9)  # symmetric


@pytest.mark.parametrize(("yaw", "pitch"), ANGLES)
def test_rotation_is_proper_orthonormal(yaw, pitch):
    r = camera_from_yaw_pitch(yaw, pitch, 2.0, 40, 512).extrinsics[:3, :3]
    # reference: identity / +1; tolerance 1e-12
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(("yaw", "pitch"), [(0, 30), (90, 30), (200, -10), (37.5, 15)])
def test_project_unproject_round_trip(yaw, pitch):
    """Render-free round trip: points placed on pixel centres, a depth map built from them."""
    res = 48
    cam = camera_from_yaw_pitch(yaw, pitch, 2.0, 40, res)
    rng = np.random.default_rng(0)
    # 200 distinct pixels with random depths around the object
    flat = rng.choice(res * res, 200, replace=False)
    v, u = np.divmod(np.sort(flat), res)  # row-major order, as np.nonzero returns
    z = rng.uniform(1.2, 2.8, len(u))
    k = cam.intrinsics
    pc = np.stack([(u + 0.5 - k[0, 2]) / k[0, 0] * z, (v + 0.5 - k[1, 2]) / k[1, 1] * z, z], 1)
    world = (np.c_[pc, np.ones(len(pc))] @ np.linalg.inv(cam.extrinsics).T)[:, :3]

    uv, depth = cam.project(world)
    # world points project onto the pixel centres with their depth (reference: construction;
    # tolerance 1e-9 px, 1e-12 depth)
    np.testing.assert_allclose(uv, np.c_[u + 0.5, v + 0.5], atol=1e-9)
    np.testing.assert_allclose(depth, z, atol=1e-12)

    dmap = np.zeros((res, res))
    dmap[v, u] = depth
    back = cam.unproject(dmap)
    # unproject returns the same world points, row-major (tolerance 1e-12 absolute)
    assert back.shape == (200, 3)
    np.testing.assert_allclose(back, world, atol=1e-12)


def test_unproject_ignores_empty_pixels():
    cam = camera_from_yaw_pitch(0, 30, 2.0, 40, 16)
    assert cam.unproject(np.zeros((16, 16))).shape == (0, 3)


# ---------------------------------------------------------------------------- intrinsics


def test_intrinsics_focal_fov40_512():
    k = intrinsics_from_fov(40, 512, 512)
    f = 256 / np.tan(np.deg2rad(20))  # reference: W/2/tan(fov/2) = 703.3542...
    # tolerance 1e-9 absolute (pixels)
    np.testing.assert_allclose(k, [[f, 0, 256], [0, f, 256], [0, 0, 1]], atol=1e-9)
    assert k[0, 0] == pytest.approx(703.3542, abs=1e-4)


def test_fov_spans_the_image():
    # A point 20 deg off axis (half of FoV 40) lands on the image border u = W.
    cam = camera_from_yaw_pitch(0, 0, 2.0, 40, 512)
    pc = np.array([np.tan(np.deg2rad(20)) * 1.5, 0, 1.5])
    world = cam.extrinsics[:3, :3].T @ (pc - cam.extrinsics[:3, 3])
    uv, _ = cam.project(world[None])
    np.testing.assert_allclose(uv[0], [512, 256], atol=1e-9)  # analytic; 1e-9 px


# ---------------------------------------------------------------------------- rigs and JSON


def test_rig_from_spec_scalar_pitch():
    rig = Rig.from_spec("r", RIG_SPEC)
    assert len(rig) == 4 and len(rig.cameras) == 4
    assert rig.yaws_deg == (0.0, 90.0, 180.0, 270.0)
    assert rig.pitches_deg == (30.0,) * 4
    for cam, yaw in zip(rig.cameras, rig.yaws_deg):
        ref = camera_from_yaw_pitch(yaw, 30, 2.0, 40, 512)
        np.testing.assert_array_equal(cam.extrinsics, ref.extrinsics)
        np.testing.assert_array_equal(cam.intrinsics, ref.intrinsics)
        assert (cam.width, cam.height) == (512, 512)


def test_rig_from_spec_pitch_list():
    spec = dict(RIG_SPEC, yaws_deg=[0, 90], pitch_deg=[10, 20])
    rig = Rig.from_spec("r", spec)
    assert len(rig) == 2 and rig.pitches_deg == (10.0, 20.0)
    assert rig.cameras[1].position[2] == pytest.approx(2 * np.sin(np.deg2rad(20)), abs=1e-12)


def test_rig_from_spec_mismatched_pitch_list_raises():
    spec = dict(RIG_SPEC, pitch_deg=[30, 30, 30])
    with pytest.raises(ValueError, match="4 yaws but 3 pitches"):
        Rig.from_spec("bad", spec)


def test_camera_json_round_trip():
    cam = camera_from_yaw_pitch(37.5, 15, 2.0, 40, 320)
    d = json.loads(json.dumps(cam.to_json()))
    assert d["convention"] == "opencv_world_to_camera"
    back = Camera.from_json(d)
    # exact: JSON floats round-trip float64 bit for bit
    np.testing.assert_array_equal(back.extrinsics, cam.extrinsics)
    np.testing.assert_array_equal(back.intrinsics, cam.intrinsics)
    assert (back.width, back.height) == (320, 320)
    assert back.extrinsics.dtype == np.float64 and back.extrinsics.shape == (4, 4)


# ---------------------------------------------------------------------------- view pools

def test_sphere_hammersley_equals_trellis_upstream():
    """Against values produced by TRELLIS's own sphere_hammersley_sequence, run outside this
    repository (tests/data/trellis_hammersley.json names the commit): same positions to 1e-12."""

    ref = json.loads((Path(__file__).parent / "data" / "trellis_hammersley.json").read_text())
    for case in ref["cases"]:
        phi_theta = np.asarray(case["phi_theta"])
        yaws, pitches = sphere_hammersley(case["num"], tuple(case["offset"]))
        # upstream's Blender camera: r (cos phi cos theta, sin phi cos theta, sin theta)
        up = np.stack([np.cos(phi_theta[:, 0]) * np.cos(phi_theta[:, 1]),
                       np.sin(phi_theta[:, 0]) * np.cos(phi_theta[:, 1]), np.sin(phi_theta[:, 1])], 1)
        ours = np.stack([camera_from_yaw_pitch(y, p, 1.0, 40, 8).position
                         for y, p in zip(yaws, pitches)])
        np.testing.assert_allclose(ours, up, atol=1e-12)
        np.testing.assert_allclose(pitches, np.rad2deg(phi_theta[:, 1]), atol=1e-12)
        assert ((yaws >= 0) & (yaws < 360)).all()


def test_hammersley_pool_covers_the_sphere_and_depends_on_the_seed():
    spec = {"pool": {"kind": "hammersley", "views": 150}}
    yaws, pitches = input_view_pool(spec, seed=1)
    assert len(yaws) == 150
    # TRELLIS's warp sends u < 1/4 to the lower hemisphere and the rest to the upper one, each
    # area-uniform: a quarter of the views below the horizon, E[sin pitch] = (-1/2 + 3 * 1/2) / 4
    s = np.sin(np.deg2rad(pitches))
    assert abs((s < 0).mean() - 0.25) <= 1 / 150 and abs(s.mean() - 0.25) < 0.01
    again, _ = input_view_pool(spec, seed=1)
    other, _ = input_view_pool(spec, seed=2)
    np.testing.assert_array_equal(yaws, again)
    assert not np.allclose(yaws, other)


def test_fixed_and_uniform_pools():
    yaws, pitches = input_view_pool({"pool": {"kind": "fixed", "yaws_deg": [0, 45, 90],
                                              "pitch_deg": 30}}, seed=0)
    np.testing.assert_array_equal(yaws, [0, 45, 90])
    np.testing.assert_array_equal(pitches, [30, 30, 30])
    assert input_view_pool({"yaw_deg": [0, 360], "pitch_deg": [30, 30]}, seed=0) is None
