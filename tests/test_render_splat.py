"""Gaussian splatting (bench.render.splat) against gsplat's pure-PyTorch functions and analytic cases.

The reference image is built in this file from gsplat's CPU reference functions
(gsplat/cuda/_torch_impl.py: `_quat_scale_to_covar_preci`, `_fully_fused_projection` with
eps2d = kernel_size and compensations, `_spherical_harmonics`, `_isect_tiles`,
`_isect_offset_encode`; its `_rasterize_to_pixels` needs CUDA) and a brute-force front-to-back
compositing of each tile's depth-sorted Gaussians at every pixel centre, in float64, with TRELLIS's
thresholds (alpha <= 0.99, skip alpha < 1/255, stop at T < 1e-4). With gsplat's tile lists
(3.33 sigma per axis) the truncation of the footprints differs from TRELLIS's (3 sigma of the
major axis, tile-rounded): PSNR >= 40 dB, alpha within 0.05. With TRELLIS's tile lists (getRect of
diff-gaussian-rasterization, re-derived here from gsplat's projected covariance) the images agree
to float precision (1e-5).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh
from gsplat.cuda._torch_impl import (
    _fully_fused_projection,
    _isect_offset_encode,
    _isect_tiles,
    _quat_scale_to_covar_preci,
    _spherical_harmonics,
)

from bench.inputs.cameras import camera_from_yaw_pitch
from bench.inputs.gaussians import Gaussians, matrix_to_quaternion, read_gaussian_ply, write_gaussian_ply
from bench.inputs.protocol import background_rgb
from bench.render.splat import C0, render_gaussians

TILE = 16


def _reference(g: Gaussians, cam, background="white", kernel_size=0.1, near=0.2, far=1e10,
               tiles="gsplat"):
    """(rgb (H,W,3), alpha (H,W), depth (H,W)) float64 from gsplat's torch projection + brute force."""
    w, h = cam.width, cam.height
    f64 = torch.float64
    means = torch.tensor(g.xyz, dtype=f64)
    covars, _ = _quat_scale_to_covar_preci(torch.tensor(g.rotations, dtype=f64),
                                           torch.tensor(g.scales, dtype=f64), compute_preci=False)
    viewmat = torch.tensor(cam.extrinsics, dtype=f64)[None]
    radii, means2d, depths, conics, comp = _fully_fused_projection(
        means, covars, viewmat, torch.tensor(cam.intrinsics, dtype=f64)[None], w, h,
        eps2d=kernel_size, near_plane=near, far_plane=far, calc_compensations=True)
    coeffs = [g.sh_dc[:, None]] + ([] if g.sh_rest is None else [g.sh_rest])
    coeffs = torch.tensor(np.concatenate(coeffs, 1), dtype=f64)
    degree = int(round(math.sqrt(coeffs.shape[1]))) - 1
    campos = torch.linalg.inv(viewmat[0])[:3, 3]
    colors = torch.clamp_min(_spherical_harmonics(degree, means - campos, coeffs) + 0.5, 0.0)
    opac = torch.tensor(g.opacity, dtype=f64) * comp[0]
    means2d, depths, conics, radii = means2d[0], depths[0], conics[0], radii[0]
    tw, th = -(-w // TILE), -(-h // TILE)
    if tiles == "gsplat":
        _, isect_ids, flatten_ids = _isect_tiles(means2d[None], radii[None], depths[None], TILE, tw, th)
        offsets = torch.cat([_isect_offset_encode(isect_ids, 1, tw, th).flatten(),
                             torch.tensor([len(flatten_ids)])])
        lists = [flatten_ids[offsets[t]:offsets[t + 1]].long() for t in range(tw * th)]
    else:  # diff-gaussian-rasterization: ceil(3 sqrt(lambda_max)) square, getRect on 16^2 tiles
        det_c = conics[:, 0] * conics[:, 2] - conics[:, 1] ** 2
        a, b, c = conics[:, 2] / det_c, -conics[:, 1] / det_c, conics[:, 0] / det_c  # covariance
        mid = 0.5 * (a + c)
        lam = mid + torch.sqrt(torch.clamp_min(mid * mid - (a * c - b * b), 0.1))
        r = torch.ceil(3 * torch.sqrt(lam))
        p = means2d - 0.5
        lo = [torch.clamp(torch.trunc((p[:, i] - r) / TILE), 0, n) for i, n in ((0, tw), (1, th))]
        hi = [torch.clamp(torch.trunc((p[:, i] + r + TILE - 1) / TILE), 0, n) for i, n in ((0, tw), (1, th))]
        live = (radii > 0).all(1) & (opac >= 1 / 255)
        order = torch.tensor(np.argsort(depths.numpy(), kind="stable"))
        lists = []
        for t in range(tw * th):
            ty, tx = divmod(t, tw)
            m = live & (lo[0] <= tx) & (tx < hi[0]) & (lo[1] <= ty) & (ty < hi[1])
            lists.append(order[m[order]])
    bg = torch.tensor(background_rgb(background), dtype=f64)
    rgb = torch.zeros(h, w, 3, dtype=f64)
    alpha, depth = torch.zeros(h, w, dtype=f64), torch.zeros(h, w, dtype=f64)
    for t, ids in enumerate(lists):
        ty, tx = divmod(t, tw)
        ys, xs = torch.meshgrid(torch.arange(ty * TILE, min(ty * TILE + TILE, h)),
                                torch.arange(tx * TILE, min(tx * TILE + TILE, w)), indexing="ij")
        pix = torch.stack([xs.flatten(), ys.flatten()], 1).to(f64) + 0.5  # [P, 2]
        d = pix[None] - means2d[ids][:, None]  # [n, P, 2]
        cn = conics[ids][:, None]
        dx, dy = d[..., 0], d[..., 1]
        sigma = 0.5 * (cn[..., 0] * dx * dx + cn[..., 2] * dy * dy) + cn[..., 1] * dx * dy
        al = torch.clamp_max(opac[ids][:, None] * torch.exp(-sigma), 0.99)
        al = torch.where((sigma >= 0) & (al >= 1 / 255), al, torch.zeros_like(al))
        t_after = torch.cumprod(1 - al, 0)
        t_before = torch.cat([torch.ones_like(al[:1]), t_after[:-1]])
        wgt = al * t_before * (t_after >= 1e-4)  # the Gaussian that would push T below 1e-4 and all after
        acc = wgt.sum(0)
        col = (wgt[..., None] * colors[ids][:, None]).sum(0) + (1 - acc)[:, None] * bg
        dz = (wgt * depths[ids][:, None]).sum(0)
        rgb[ys.flatten(), xs.flatten()] = col.clamp(0, 1)
        alpha[ys.flatten(), xs.flatten()] = acc
        depth[ys.flatten(), xs.flatten()] = torch.where(acc > 0, dz / acc.clamp_min(1e-300), 0)
    return rgb.numpy(), alpha.numpy(), depth.numpy()


def _psnr(a, b) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def _random_splats(n=300, sh_rest_k=15, seed=0) -> Gaussians:
    """n Gaussians in the unit cube (10% fully opaque: the 0.99 alpha cap) and n / 10 big ones on a
    shell of radius 1-1.4, partly outside the view (the clamped Jacobian of the projection)."""
    rng = np.random.default_rng(seed)
    m = n // 10
    shell = rng.normal(size=(m, 3))
    shell *= rng.uniform(1.0, 1.4, (m, 1)) / np.linalg.norm(shell, axis=1, keepdims=True)
    xyz = np.concatenate([rng.uniform(-0.5, 0.5, (n, 3)), shell])
    scales = np.concatenate([rng.uniform(0.01, 0.08, (n, 3)), rng.uniform(0.1, 0.3, (m, 3))])
    opacity = np.where(rng.random(n + m) < 0.1, 1.0, rng.uniform(0.05, 1.0, n + m))
    q = rng.normal(size=(n + m, 4))
    return Gaussians(xyz, opacity, scales, q / np.linalg.norm(q, axis=1, keepdims=True),
                     rng.normal(0, 0.8, (n + m, 3)),
                     rng.normal(0, 0.3, (n + m, sh_rest_k, 3)) if sh_rest_k else None)


def _surface_splats(points, normals, colours, seed=0) -> Gaussians:
    """TRELLIS-like splats: flat discs on the surface (thin axis along the normal), scales around
    1/64 of the unit cube, degree-0 SH, opacities mixed (60% nearly opaque, 40% faint)."""
    rng = np.random.default_rng(seed)
    n = len(points)
    helper = np.where(np.abs(normals[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
    t1 = np.cross(normals, helper)
    t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
    frame = np.stack([t1, np.cross(normals, t1), normals], axis=2)  # columns: axes 0, 1, 2
    s = np.exp(rng.uniform(np.log(0.3 / 64), np.log(1 / 64), (n, 1))) * np.ones((n, 3))
    s[:, 2] *= 0.2
    opacity = np.where(rng.random(n) < 0.6, rng.uniform(0.8, 1.0, n), rng.uniform(0.05, 0.5, n))
    return Gaussians(points, opacity, s, matrix_to_quaternion(frame), (colours - 0.5) / C0)


def _sphere_splats(n=4000) -> Gaussians:
    rng = np.random.default_rng(1)
    nrm = rng.normal(size=(n, 3))
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    return _surface_splats(0.35 * nrm, nrm, 0.5 + 0.4 * nrm)


def _compare(g, cams, min_psnr=40.0, max_alpha=0.05, **kw):
    ours = render_gaussians(g, cams, backend="numba", **kw)
    for i, cam in enumerate(cams):
        rgb, alpha, depth = _reference(g, cam, **kw)
        p, da = _psnr(ours.rgb[i], rgb), np.abs(ours.alpha[i] - alpha).max()
        assert p >= min_psnr and da <= max_alpha, f"view {i}: PSNR {p:.1f} dB, alpha max diff {da:.4f}"
        assert alpha.max() > 0.5  # the scene is in view
        rgb, alpha, depth = _reference(g, cam, tiles="trellis", **kw)
        np.testing.assert_allclose(ours.rgb[i], rgb, atol=1e-5)
        np.testing.assert_allclose(ours.alpha[i], alpha, atol=1e-5)
        np.testing.assert_allclose(ours.depth[i], depth, atol=1e-4)


def test_random_splats_with_sh3_match_gsplat_reference():
    cams = [camera_from_yaw_pitch(y, 30, 2.0, 40, 64) for y in (0, 135)]
    _compare(_random_splats(), cams)


def test_random_splats_on_black_without_filter_match_gsplat_reference():
    cams = [camera_from_yaw_pitch(200, -20, 2.0, 40, 64)]
    _compare(_random_splats(seed=3, sh_rest_k=3), cams, background="black", kernel_size=0.0)


def test_trellis_like_sphere_matches_gsplat_reference():
    cams = [camera_from_yaw_pitch(y, 30, 2.0, 40, 96) for y in (45, 270)]
    _compare(_sphere_splats(), cams)


def test_trellis_like_gso_surface_matches_gsplat_reference(small_gso_mesh):
    m = trimesh.Trimesh(small_gso_mesh.vertices, small_gso_mesh.faces, process=False)
    pts, face = trimesh.sample.sample_surface(m, 3000, seed=2)
    nrm = m.face_normals[face]
    _compare(_surface_splats(pts, nrm, 0.5 + 0.45 * nrm), [camera_from_yaw_pitch(30, 20, 2.0, 40, 96)])


@pytest.mark.parametrize("kernel_size", [0.0, 0.1])
def test_isotropic_gaussian_head_on_is_analytic(kernel_size):
    # 65 px: the principal point 32.5 is pixel 32's centre. Seen head-on at z = 2 an isotropic
    # Gaussian projects to an isotropic 2D Gaussian of variance s^2 = (sigma f / z)^2, plus the
    # filter: alpha(d) = o sqrt(det0 / det1) exp(-d^2 / (2 (s^2 + k))), det0 = s^4, det1 = (s^2 + k)^2.
    cam = camera_from_yaw_pitch(0, 0, 2.0, 40, 65)
    sigma, o = 0.03, 0.8
    g = Gaussians([[0, 0, 0]], [o], [[sigma] * 3], [[1, 0, 0, 0]], [[0.3, 0.1, -0.2]])
    r = render_gaussians(g, [cam], backend="numba", kernel_size=kernel_size)
    s2 = (sigma * cam.intrinsics[0, 0] / 2.0) ** 2
    peak = o * s2 / (s2 + kernel_size)
    assert np.unravel_index(r.alpha[0].argmax(), r.alpha[0].shape) == (32, 32)
    assert r.alpha[0, 32, 32] == pytest.approx(peak, abs=2e-6)  # = opacity when kernel_size = 0
    row = r.alpha[0, 32, 32:37].astype(np.float64)
    d = np.arange(1, 5)
    var = d ** 2 / (2 * np.log(row[0] / row[1:]))  # per-pixel estimate of the 2D variance
    np.testing.assert_allclose(np.sqrt(var - kernel_size), sigma * cam.intrinsics[0, 0] / 2.0, rtol=1e-4)
    # the 1/e radius of the unfiltered footprint is sqrt(2) sigma f / z
    np.testing.assert_allclose(r.depth[0][r.alpha[0] > 0], 2.0, atol=1e-6)
    colour = np.clip(0.5 + C0 * np.array([0.3, 0.1, -0.2]), 0, 1)
    np.testing.assert_allclose(r.rgb[0, 32, 32], peak * colour + (1 - peak), atol=1e-6)


def test_opaque_gaussian_is_capped_at_alpha_099():
    # diff-gaussian-rasterization: alpha = min(0.99, opacity * coef * exp(power)); T = 0.01 remains
    cam = camera_from_yaw_pitch(0, 0, 2.0, 40, 65)
    g = Gaussians([[0, 0, 0]], [1.0], [[0.1] * 3], [[1, 0, 0, 0]], [[0, 0, 0]])
    r = render_gaussians(g, [cam], "black", backend="numba", kernel_size=0.0)
    assert r.alpha.max() == pytest.approx(0.99, abs=1e-6)
    np.testing.assert_allclose(r.rgb[0, 32, 32], 0.99 * 0.5, atol=1e-6)


def test_background_compositing():
    g = _sphere_splats(1500)
    g.sh_dc[:] = np.clip(g.sh_dc, (0.1 - 0.5) / C0, (0.9 - 0.5) / C0)  # colours in [0.1, 0.9]: no clip
    cams = [camera_from_yaw_pitch(0, 10, 2.0, 40, 48)]
    white = render_gaussians(g, cams, "white", backend="numba")
    black = render_gaussians(g, cams, "black", backend="numba")
    np.testing.assert_array_equal(white.alpha, black.alpha)
    assert 0 < white.alpha.max() <= 1 - 1e-4 + 1e-7 and (white.alpha == 0).any()
    # C + T bg: the difference is exactly T in every channel
    np.testing.assert_allclose(white.rgb - black.rgb, np.repeat((1 - white.alpha)[..., None], 3, -1),
                               atol=1e-6)
    assert (white.rgb[white.alpha == 0] == 1).all() and (black.rgb[black.alpha == 0] == 0).all()


def test_culling_behind_camera_and_outside_near_far():
    cam = camera_from_yaw_pitch(0, 0, 2.0, 40, 32)  # at (0, 2, 0), looking along -Y

    def one(y):  # a big Gaussian on the optical axis at camera z = 2 - y
        return Gaussians([[0, y, 0]], [0.9], [[0.2] * 3], [[1, 0, 0, 0]], [[0, 0, 0]])

    assert render_gaussians(one(3.0), [cam], backend="numba").alpha.max() == 0  # behind: z = -1
    assert render_gaussians(one(1.85), [cam], backend="numba").alpha.max() == 0  # z = 0.15 < 0.2
    assert render_gaussians(one(1.85), [cam], backend="numba", near=0.1).alpha.max() > 0.5
    assert render_gaussians(one(0.0), [cam], backend="numba", far=1.5).alpha.max() == 0  # z = 2
    assert render_gaussians(one(0.0), [cam], backend="numba", far=2.5).alpha.max() > 0.5
    r = render_gaussians(one(3.0), [cam], "white", backend="numba")
    assert (r.rgb == 1).all() and (r.depth == 0).all()


def test_empty_input_renders_the_background():
    g = Gaussians(np.zeros((0, 3)), np.zeros(0), np.zeros((0, 3)), np.zeros((0, 4)), np.zeros((0, 3)))
    r = render_gaussians(g, [camera_from_yaw_pitch(0, 30, 2, 40, 24)] * 2, "black", backend="numba")
    assert r.rgb.shape == (2, 24, 24, 3) and r.backend == "numba"
    assert (r.rgb == 0).all() and (r.alpha == 0).all() and (r.depth == 0).all()


def test_ply_round_trip_renders_identically(tmp_path):
    g = _random_splats(200, sh_rest_k=3, seed=5)
    cams = [camera_from_yaw_pitch(y, 30, 2.0, 40, 48) for y in (0, 180)]
    a = render_gaussians(g, cams, backend="numba")
    b = render_gaussians(read_gaussian_ply(write_gaussian_ply(tmp_path / "g.ply", g)), cams, backend="numba")
    assert a.alpha.max() > 0.5
    np.testing.assert_allclose(b.rgb, a.rgb, atol=1e-5)  # float32 logit / log storage
    np.testing.assert_allclose(b.alpha, a.alpha, atol=1e-5)


def test_view_dependent_sh_is_evaluated_not_ignored():
    g = _random_splats(200, sh_rest_k=8, seed=7)
    cams = [camera_from_yaw_pitch(0, 30, 2.0, 40, 32)]
    with_sh = render_gaussians(g, cams, backend="numba").rgb
    g.sh_rest = None
    assert np.abs(render_gaussians(g, cams, backend="numba").rgb - with_sh).max() > 0.05


def test_bad_arguments_raise():
    g = _random_splats(10, sh_rest_k=5)
    cam = camera_from_yaw_pitch(0, 30, 2.0, 40, 16)
    with pytest.raises(ValueError, match="SH degrees 0-3"):
        render_gaussians(g, [cam], backend="numba")
    g = _random_splats(10)
    with pytest.raises(ValueError, match="unknown splat backend"):
        render_gaussians(g, [cam], backend="cycles")
    with pytest.raises(ValueError, match="share a resolution"):
        render_gaussians(g, [cam, camera_from_yaw_pitch(0, 30, 2.0, 40, 32)], backend="numba")
    with pytest.raises(ValueError, match="near < far"):
        render_gaussians(g, [cam], backend="numba", near=2.0, far=1.0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_gsplat_backend_needs_cuda_and_auto_falls_back_to_numba():
    g = _random_splats(10)
    cam = camera_from_yaw_pitch(0, 30, 2.0, 40, 16)
    with pytest.raises(RuntimeError, match="needs CUDA"):
        render_gaussians(g, [cam], backend="gsplat")
    assert render_gaussians(g, [cam]).backend == "numba"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gsplat_backend_matches_numba_on_cuda():
    # gsplat caps alpha at 0.999 (TRELLIS 0.99) and truncates footprints per axis at 3.33 sigma
    cams = [camera_from_yaw_pitch(y, 30, 2.0, 40, 96) for y in (45, 270)]
    g = _sphere_splats()
    a = render_gaussians(g, cams, backend="numba")
    b = render_gaussians(g, cams, backend="gsplat")
    assert b.backend == "gsplat"
    assert _psnr(a.rgb, b.rgb) >= 35 and np.abs(a.alpha - b.alpha).max() <= 0.05
