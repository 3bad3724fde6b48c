"""Rendering: the moderngl rasterizer against the numpy reference rasterizer and analytic scenes."""

from __future__ import annotations

import numpy as np
import pytest

from bench.inputs.assets import Mesh
from bench.inputs.cameras import Camera, Rig, camera_from_yaw_pitch, look_at_extrinsics
from bench.render import get_rasterizer, render
from bench.render.shading import shade

RIG4 = {"yaws_deg": [0, 90, 180, 270], "pitch_deg": 30, "radius": 2.0, "fov_deg": 40,
        "resolution": 128}


def _textured_quad() -> Mesh:
    """A unit square in the plane y = 0, with a 2x2-block checker texture (64^2 texels, so
    bilinear sampling away from block edges returns exact block colours). Its winding gives the
    geometric normal -Y: it faces away from the front camera at +Y (rasterizers do not cull)."""
    v = np.array([[-0.5, 0, -0.5], [0.5, 0, -0.5], [0.5, 0, 0.5], [-0.5, 0, 0.5]])
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    tex = np.zeros((2, 2, 3), np.uint8)
    tex[0, 0] = tex[1, 1] = 255
    tex = np.kron(tex, np.ones((32, 32, 1), np.uint8))
    return Mesh(v, [[0, 1, 2], [0, 2, 3]], uv=uv, texture=tex)


def _front_camera(res=64, fov=40.0) -> Camera:
    return camera_from_yaw_pitch(0.0, 0.0, 2.0, fov, res)


@pytest.fixture(params=["moderngl", "numpy"])
def rasterizer(request):
    return request.param


def test_depth_of_plane_is_analytic(rasterizer):
    # a plane facing the camera at distance 2: camera z = 2 exactly (float32 tolerance 1e-5)
    r = render(_textured_quad(), [_front_camera()], "white", rasterizer)
    d = r.depth[0][r.alpha[0] > 0]
    assert d.size > 0
    np.testing.assert_allclose(d, 2.0, atol=1e-5)


def test_silhouette_area_is_analytic(rasterizer):
    # the square projects to side f * 1 / 2 pixels; pixel-centre sampling: area within one
    # pixel row/column of the analytic value
    cam = _front_camera(res=128)
    side = cam.intrinsics[0, 0] * 1.0 / 2.0
    area = render(_textured_quad(), [cam], "white", rasterizer).alpha.sum()
    assert abs(area - side * side) <= 2 * side + 4


def test_checker_texture_orientation(rasterizer):
    # texture row 0 (top) is (white, black): v = 1 is the image top, so the quad's upper-left
    # quadrant (world -X.. seen from +Y camera it is image right) must be sampled correctly.
    cam = _front_camera(res=64)
    r = render(_textured_quad(), [cam], "black", rasterizer)
    uv_pix, _ = cam.project(np.array([[0.25, 0, 0.25], [-0.25, 0, 0.25]]))
    # world (+0.25, +0.25): u = 0.75, v = 0.75 -> texture row 0 col 1 = black
    # world (-0.25, +0.25): u = 0.25, v = 0.75 -> texture row 0 col 0 = white
    (u0, v0), (u1, v1) = uv_pix.astype(int)
    np.testing.assert_allclose(r.rgb[0, v0, u0], 0.0, atol=1e-6)
    np.testing.assert_allclose(r.rgb[0, v1, u1], 1.0, atol=1e-6)


def test_up_is_up_and_right_hand(rasterizer):
    # a point above the origin (+Z) lands in the upper half of the image
    mesh = Mesh(np.array([[-0.1, 0, 0.3], [0.1, 0, 0.3], [0, 0, 0.45]]), [[0, 1, 2]])
    r = render(mesh, [_front_camera()], "white", rasterizer)
    rows = np.nonzero(r.alpha[0])[0]
    assert rows.size and rows.max() < 32


def test_backgrounds_and_unknown_background():
    mesh = _textured_quad()
    for name, value in (("white", 1.0), ("black", 0.0)):
        r = render(mesh, [_front_camera()], name, "numpy")
        assert (r.rgb[0][r.alpha[0] == 0] == value).all()
    with pytest.raises(ValueError, match="white, black"):
        render(mesh, [_front_camera()], "green", "numpy")


def test_moderngl_agrees_with_numpy_reference(gso_root):
    # two independent rasterizers on a real textured GSO mesh, 4-view rig:
    # mask IoU >= 0.999, same triangle on >= 99.5 % of shared pixels, colour mean abs diff < 1e-3
    from bench.inputs.dataset import open_dataset

    mesh = open_dataset("gso", gso_root).load("Android_Lego").mesh
    cams = Rig.from_spec("t", RIG4).cameras
    a = render(mesh, cams, "white", "moderngl")
    b = render(mesh, cams, "white", "numpy")
    ma, mb = a.alpha > 0, b.alpha > 0
    assert (ma & mb).sum() / (ma | mb).sum() >= 0.999
    both = ma & mb & (a.face_id == b.face_id)
    assert both.sum() / (ma & mb).sum() >= 0.995
    np.testing.assert_allclose(a.depth[both], b.depth[both], atol=1e-4)
    assert np.abs(a.rgb[both] - b.rgb[both]).mean() < 1e-3


def test_moderngl_is_deterministic(gso_root):
    from bench.inputs.dataset import open_dataset

    mesh = open_dataset("gso", gso_root).load("Android_Lego").mesh
    cams = Rig.from_spec("t", RIG4).cameras
    r = get_rasterizer("moderngl")
    first = r.rasterize(mesh.vertices, mesh.faces, cams)
    for _ in range(2):
        assert np.array_equal(first, r.rasterize(mesh.vertices, mesh.faces, cams))


def _cube(h: float = 0.3) -> Mesh:
    """The cube [-h, h]^3 as 12 triangles wound counter-clockwise seen from outside, built by
    hand: the face x_k = s*h spans e_u, e_v with (k, u, v) cyclic, so e_u x e_v = e_k; its corners
    in the order (-,-), (+,-), (+,+), (-,+) of (u, v) turn around +e_k, reversed for s = -1."""
    verts, faces = [], []
    for k in range(3):
        u, v = (k + 1) % 3, (k + 2) % 3
        for s in (1.0, -1.0):
            quad = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
            if s < 0:
                quad = quad[::-1]
            base = len(verts)
            for a, b in quad:
                p = np.zeros(3)
                p[k], p[u], p[v] = s * h, a * h, b * h
                verts.append(p)
            faces += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    return Mesh(np.array(verts), faces)


def test_normals_face_the_camera(rasterizer):
    # analytic scene: the cube [-h, h]^3 seen from 6 cameras (4 yaws at pitch +30, 2 at -30, so
    # all 6 faces are seen). A surface point X lies on the face k = argmax |X_k|, whose outward
    # normal is sign(X_k) e_k; every visible face of a convex closed mesh faces the camera:
    # n . (C - X) > 0, C the camera centre. X is unprojected from the rendered depth; pixels
    # within 2 % of h of a cube edge (where argmax |X_k| is ambiguous) are left out.
    h = 0.3
    cams = Rig.from_spec("t", {**RIG4, "resolution": 96}).cameras + tuple(
        camera_from_yaw_pitch(y, -30.0, 2.0, 40.0, 96) for y in (45.0, 225.0))
    r = render(_cube(h), list(cams), "white", rasterizer)
    seen = set()
    for i, cam in enumerate(cams):
        hit = r.depth[i] > 0
        x = cam.unproject(r.depth[i])  # same row-major pixel order as n below
        n = r.normals[i][hit].astype(np.float64)
        a = np.sort(np.abs(x), axis=1)
        clear = a[:, 2] - a[:, 1] > 0.02 * h
        assert clear.sum() > 500
        k = np.abs(x).argmax(1)
        expected = np.zeros_like(x)
        expected[np.arange(len(x)), k] = np.sign(x[np.arange(len(x)), k])
        np.testing.assert_allclose(n[clear], expected[clear], atol=1e-6)
        facing = np.einsum("ij,ij->i", n, cam.position - x)
        assert (facing > 0).all(), (i, facing.min())
        seen |= {tuple(e) for e in expected[clear].astype(int)}
    assert len(seen) == 6

    # the sign is the winding's, not forced towards the viewer: the quad (normal -Y) faces away
    # from the camera at +Y (dot product -2 exactly: C - X = (x, 2, z), n = -Y) and towards the
    # camera at -Y (yaw 180)
    quad = _textured_quad()
    for yaw, sign in ((0.0, -1.0), (180.0, 1.0)):
        cam = camera_from_yaw_pitch(yaw, 0.0, 2.0, 40.0, 64)
        rq = render(quad, [cam], "white", rasterizer)
        xq = cam.unproject(rq.depth[0])
        nq = rq.normals[0][rq.depth[0] > 0].astype(np.float64)
        np.testing.assert_allclose(nq, np.tile([0.0, -1.0, 0.0], (len(nq), 1)), atol=1e-6)
        np.testing.assert_allclose(np.einsum("ij,ij->i", nq, cam.position - xq), sign * 2.0,
                                   atol=1e-5)


def test_vertex_colours_interpolate():
    mesh = Mesh(np.array([[-0.5, 0, -0.5], [0.5, 0, -0.5], [0.5, 0, 0.5], [-0.5, 0, 0.5]]),
                [[0, 1, 2], [0, 2, 3]], vertex_colors=np.full((4, 3), 51, np.uint8))
    r = render(mesh, [_front_camera()], "white", "numpy")
    np.testing.assert_allclose(r.rgb[0][r.alpha[0] > 0], 0.2, atol=1e-6)  # 51/255


def test_cameras_of_one_call_share_resolution():
    cams = [_front_camera(64), _front_camera(32)]
    with pytest.raises(ValueError, match="share a resolution"):
        render(_textured_quad(), cams, "white", "numpy")


def test_unknown_rasterizer_names_choices():
    with pytest.raises(ValueError, match="moderngl"):
        get_rasterizer("pytorch3d")


def test_nvdiffrast_missing_gives_clear_error():
    # no GPU and no nvdiffrast here: the error says what to install
    with pytest.raises(RuntimeError, match="nvdiffrast|CUDA"):
        get_rasterizer("nvdiffrast")


def test_shade_background_pixels_untouched():
    rast = np.zeros((1, 4, 4, 4), np.float32)
    out = shade(_textured_quad(), rast, "white")
    assert (out["face_id"] == -1).all() and (out["rgb"] == 1).all() and (out["depth"] == 0).all()


def test_look_at_handles_offset_target():
    ext = look_at_extrinsics(np.array([0.0, 3.0, 0.0]), np.array([0.0, 1.0, 0.0]),
                             np.array([0.0, 0.0, 1.0]))
    cam = Camera(ext, np.array([[10.0, 0, 8], [0, 10.0, 8], [0, 0, 1]]), 16, 16)
    uv, z = cam.project(np.array([[0.0, 1.0, 0.0]]))
    np.testing.assert_allclose(uv[0], [8, 8], atol=1e-9)
    np.testing.assert_allclose(z, [2.0], atol=1e-12)


def test_texture_sampling_matches_scipy_bilinear():
    # reference: scipy.ndimage.map_coordinates(order=1, mode='grid-wrap') at texel coordinates
    # x = u W - 0.5, y = (1 - v) H - 0.5 (OpenGL uv, texel centres at +0.5); tolerance 1e-5
    from scipy.ndimage import map_coordinates

    rng = np.random.default_rng(0)
    tex = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    mesh = Mesh(np.zeros((3, 3)), [[0, 1, 2]], uv=np.array([[0, 0], [1, 0], [0, 1]], np.float32),
                texture=tex)
    b = rng.dirichlet([1, 1, 1], size=200).astype(np.float32)
    rast = np.zeros((1, 1, 200, 4), np.float32)
    rast[0, 0, :, 0], rast[0, 0, :, 1], rast[0, 0, :, 3] = b[:, 0], b[:, 1], 1
    rgb = shade(mesh, rast, "white")["rgb"][0, 0]
    u = b[:, 1].astype(np.float64)  # uv = b0 (0,0) + b1 (1,0) + b2 (0,1)
    v = (1 - b[:, 0] - b[:, 1]).astype(np.float64)
    coords = [(1 - v) * 16 - 0.5, u * 24 - 0.5]
    ref = np.stack([map_coordinates(tex[..., c].astype(np.float64), coords, order=1,
                                    mode="grid-wrap") for c in range(3)], 1) / 255
    np.testing.assert_allclose(rgb, ref, atol=1e-5)


def test_torchvision_imports_after_the_egl_context():
    # regression: Mesa's llvmpipe and triton both carry LLVM; importing triton (via torchvision
    # or clean-fid) after the EGL context existed segfaulted. A fresh process proves it.
    import subprocess
    import sys

    code = ("from bench.render import get_rasterizer; get_rasterizer('moderngl');"
            "import torchvision; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
