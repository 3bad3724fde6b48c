"""The Cycles GT renderer (bench.render.cycles) against independent references: our rasterizer's
silhouette, Blender's own TRACK_TO camera and projection, PIL's compositing, and the importer
finding the texture itself. Renders use few samples at low resolution to stay fast; the
512^2/128-sample comparison with the upstream script is in the report, not here."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import SMALL_GSO_OBJECT, TEXTURED_GSO_OBJECT, gso_mesh_path
from PIL import Image

from bench.inputs.assets import AssetError, load_mesh, normalize_mesh
from bench.inputs.cameras import Camera, camera_from_yaw_pitch, look_at_extrinsics
from bench.render import render
from bench.render.cycles import BPY_MISSING, PRESETS, cache_key, camera_to_blender, render_cycles

SILHOUETTE_OBJECT = "Air_Hogs_Wind_Flyers_Set_Airplane_Red"  # thin wings; upright != on its back
FAST = replace(PRESETS["cycles-trellis"], name="test", samples=16, denoise=False)
# file (x, y, z) -> Blender (x, -z, y): Blender's default OBJ axes (Y-up file turned Z-up)
BLENDER_OBJ_AXES = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], np.float64)


@pytest.fixture(scope="module")
def bpy():
    return pytest.importorskip("bpy")


def _cams(res: int, yaws=(0.0, 135.0), pitch=30.0) -> list[Camera]:
    return [camera_from_yaw_pitch(y, pitch, 2.0, 40.0, res) for y in yaws]


def test_presets_follow_upstream_scripts():
    # TRELLIS init_render: 128 samples, 3/3 transparent/transmission bounces; GENA3D's copy:
    # 32 samples and 1/1 bounces; both: box filter 1, diffuse/glossy 1, denoising, same lights
    t, g = PRESETS["cycles-trellis"], PRESETS["cycles-gena3d"]
    assert (t.samples, t.transparent_bounces, t.transmission_bounces) == (128, 3, 3)
    assert (g.samples, g.transparent_bounces, g.transmission_bounces) == (32, 1, 1)
    for s in (t, g):
        assert (s.pixel_filter, s.filter_width, s.diffuse_bounces, s.glossy_bounces) == ("BOX", 1, 1, 1)
        assert s.denoise and s.world == "startup" and s.view_transform == "Filmic"
        assert [(li.kind, li.location, li.energy, li.scale) for li in s.lights] == [
            ("POINT", (4, 1, 6), 1000, 1), ("AREA", (0, 0, 10), 10000, 100), ("AREA", (0, 0, -10), 1000, 1)]


def test_camera_equals_upstream_track_to(bpy):
    # upstream init_camera + view loop: location r(cos b cos p, sin b cos p, sin p) with
    # b = 90 deg - TRELLIS yaw, TRACK_TO an empty at the origin (-Z, up Y), lens 16/tan(fov/2)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    bpy.context.collection.objects.link(cam)
    c = cam.constraints.new(type="TRACK_TO")
    c.track_axis, c.up_axis = "TRACK_NEGATIVE_Z", "UP_Y"
    target = bpy.data.objects.new("Empty", None)
    bpy.context.scene.collection.objects.link(target)
    c.target = target
    for yaw, pitch, fov in [(0, 30, 40), (135, 30, 40), (290, -20, 55), (45, 75, 30)]:
        b, p, r = np.deg2rad(90 - yaw), np.deg2rad(pitch), 2.0
        cam.location = (r * np.cos(b) * np.cos(p), r * np.sin(b) * np.cos(p), r * np.sin(p))
        bpy.context.view_layer.update()
        world, lens, sx, sy = camera_to_blender(camera_from_yaw_pitch(yaw, pitch, r, fov, 512))
        np.testing.assert_allclose(world, np.array(cam.matrix_world), atol=1e-6)
        assert lens == pytest.approx(16 / np.tan(np.deg2rad(fov) / 2), rel=1e-12)
        assert (sx, sy) == (0.0, 0.0)


def test_camera_projection_matches_blender_for_any_camera(bpy):
    # an off-centre principal point, a non-square image and a camera off the yaw/pitch rig:
    # Blender's own projection (world_to_camera_view) must land on our Camera.project pixels
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Matrix, Vector

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    cam.data.sensor_width = cam.data.sensor_height = 32
    for w, h, cx, cy in [(160, 120, 90.0, 50.0), (96, 128, 40.0, 70.0)]:
        ext = look_at_extrinsics(np.array([1.3, -0.7, 0.9]), np.array([0.1, 0.05, -0.1]),
                                 np.array([0.0, 0.0, 1.0]))
        camera = Camera(ext, np.array([[140.0, 0, cx], [0, 140.0, cy], [0, 0, 1]]), w, h)
        world, lens, sx, sy = camera_to_blender(camera)
        cam.matrix_world = Matrix(world.tolist())
        cam.data.lens, cam.data.shift_x, cam.data.shift_y = lens, sx, sy
        scene.render.resolution_x, scene.render.resolution_y = w, h
        bpy.context.view_layer.update()
        pts = np.random.default_rng(0).uniform(-0.5, 0.5, (20, 3))
        ours, _ = camera.project(pts)
        ndc = np.array([tuple(world_to_camera_view(scene, cam, Vector(p)))[:2] for p in pts])
        theirs = np.stack([ndc[:, 0] * w, (1 - ndc[:, 1]) * h], 1)  # Blender: y up from the bottom
        np.testing.assert_allclose(theirs, ours, atol=1e-3)  # Blender works in float32


@pytest.mark.gso
@pytest.mark.parametrize("frame", ["blender-obj", "upright"])
def test_silhouette_matches_our_rasterizer(bpy, gso_root, frame):
    # the same mesh in the same frame: Cycles alpha > 0.5 against our rasterizer's coverage
    path = gso_mesh_path(gso_root, SILHOUETTE_OBJECT)
    mesh = load_mesh(path)
    if frame == "blender-obj":
        mesh = mesh.transformed(1.0, np.zeros(3), BLENDER_OBJ_AXES)
    mesh, _, _ = normalize_mesh(mesh)
    cams = _cams(128, yaws=(30.0, 200.0), pitch=20.0)
    ours = render(mesh, cams).alpha > 0
    cyc = render_cycles(path, cams, FAST, frame, progress=False).alpha > 0.5
    for a, b in zip(ours, cyc):
        assert a.sum() > 500  # the object is in view (about 800 to 2300 pixels)
        assert (a & b).sum() / (a | b).sum() >= 0.98
    # the two frames really differ (a wrong frame would fail above, not pass by symmetry)
    other = mesh.transformed(1.0, np.zeros(3), BLENDER_OBJ_AXES if frame == "upright" else BLENDER_OBJ_AXES.T)
    wrong = render(normalize_mesh(other)[0], cams).alpha > 0
    assert max((w & b).sum() / (w | b).sum() for w, b in zip(wrong, cyc)) < 0.5


@pytest.fixture(scope="module")
def small_render(bpy, gso_root):
    path = gso_mesh_path(gso_root, SMALL_GSO_OBJECT)
    settings = replace(FAST, samples=8, denoise=True)
    return path, settings, render_cycles(path, _cams(64, yaws=(45.0,)), settings, progress=False)


@pytest.mark.gso
def test_same_seed_renders_are_byte_identical(small_render):
    path, settings, first = small_render
    cams = _cams(64, yaws=(45.0,))
    again = render_cycles(path, cams, settings, progress=False)
    assert np.array_equal(first.rgba8, again.rgba8)
    reseeded = render_cycles(path, cams, replace(settings, seed=1), progress=False)
    assert not np.array_equal(first.rgba8, reseeded.rgba8)  # the seed does reach Cycles


@pytest.mark.gso
def test_compositing_white_black_and_pil(small_render):
    path, settings, white = small_render
    from bench.render.cycles import composite

    black, alpha = composite(white.rgba8, "black")
    a = white.rgba8[..., 3].astype(np.float64) / 255
    assert 0 < a.mean() < 1 and ((a > 0) & (a < 1)).any()  # object, background and soft edges
    np.testing.assert_array_equal(alpha, white.alpha)
    # straight alpha over a flat colour: white - black = 1 - alpha in every channel
    np.testing.assert_allclose(white.rgb - black, np.repeat(1 - a[..., None], 3, -1), atol=1e-6)
    np.testing.assert_allclose(black, white.rgba8[..., :3] / 255 * a[..., None], atol=1e-6)
    # PIL compositing the RGBA PNG on white (it rounds to uint8)
    png = Image.fromarray(white.rgba8[0])
    pil = Image.alpha_composite(Image.new("RGBA", png.size, (255, 255, 255, 255)), png)
    np.testing.assert_allclose(white.rgb[0] * 255, np.asarray(pil)[..., :3], atol=0.51)


@pytest.mark.gso
def test_texture_is_found_as_if_beside_the_mtl(bpy, gso_root, tmp_path):
    path = gso_mesh_path(gso_root, TEXTURED_GSO_OBJECT)
    cams = _cams(64, yaws=(0.0,))
    ours = render_cycles(path, cams, FAST, progress=False)
    obj = ours.alpha[0] > 0.99
    colours = ours.rgb[0][obj]
    assert colours.std(0).mean() > 0.1  # texture detail (0.22 measured; 0.05 when magenta)
    magenta = (colours[:, 0] > 0.8) & (colours[:, 1] < 0.2) & (colours[:, 2] > 0.8)
    assert magenta.mean() < 0.01  # Cycles' missing-image colour
    # the same object laid out so Blender's importer finds texture.png by itself
    for f in ("model.obj", "material_0.mtl"):
        shutil.copy(path.parent / f, tmp_path / f)
    shutil.copy(path.parent.parent / "materials" / "textures" / "texture.png", tmp_path / "texture.png")
    found = render_cycles(tmp_path / "model.obj", cams, FAST, progress=False)
    assert np.abs(found.rgba8.astype(int) - ours.rgba8).max() <= 1
    # no texture anywhere: an error, not a magenta object
    (tmp_path / "texture.png").unlink()
    with pytest.raises(AssetError, match="texture missing"):
        render_cycles(tmp_path / "model.obj", cams, FAST, progress=False)


def test_cache_key_names_every_pixel_setting(bpy):
    k = cache_key("cycles-gena3d", "upright")
    assert k["blender"] == bpy.app.version_string and k["frame"] == "upright"
    assert k["samples"] == 32 and k["seed"] == 0 and k["view_transform"] == "Filmic"
    assert cache_key("cycles-trellis", "upright") != k != cache_key("cycles-gena3d", "blender-obj")
    with pytest.raises(ValueError, match="unknown import frame"):
        cache_key("cycles-trellis", "y-up")


def test_missing_bpy_is_one_clear_error(tmp_path):
    code = (
        "import sys; sys.modules['bpy'] = None\n"
        "import bench.render.cycles as c\n"
        "from bench.inputs.cameras import camera_from_yaw_pitch\n"
        "try:\n"
        "    c.render_cycles(sys.argv[1], [camera_from_yaw_pitch(0, 30, 2, 40, 8)], progress=False)\n"
        "except RuntimeError as e:\n"
        "    print('ERR', e)\n")
    obj = tmp_path / "tri.obj"
    obj.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    out = subprocess.run([sys.executable, "-c", code, str(obj)], capture_output=True, text=True,
                         cwd=Path(__file__).parents[1], timeout=120)
    assert out.stdout.strip() == f"ERR {BPY_MISSING}", out.stderr[-2000:]
