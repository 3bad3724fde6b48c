"""Splatting renderer for 3D Gaussians, as TRELLIS / Amodal3R / GENA3D render them for appearance.

    render_gaussians(g, cameras, background="white", backend="auto", kernel_size=0.1,
                     near=0.2, far=inf) -> SplatRender

Reproduces TRELLIS `GaussianRenderer` (trellis/renderers/gaussian_render.py, driven by
trellis/utils/render_utils.py `render_frames`; Amodal3R's copy is identical), which runs the
mip-splatting fork of diff-gaussian-rasterization (autonomousvision/mip-splatting
submodules/diff-gaussian-rasterization, cuda_rasterizer/forward.cu):
  * EWA projection: Sigma = R S S^T R^T, Sigma_2D = J W Sigma W^T J^T with the Jacobian of the
    perspective projection at the centre, whose x/z and y/z are clamped to 1.3 tan(fov/2)
    (written here as gsplat does, (W - cx)/fx + 0.3 tan(fov/2), equal for a centred principal point).
  * the 2D filter `kernel_size` (TRELLIS 0.1, pixels^2) is added to the diagonal of Sigma_2D, with
    mip-splatting's opacity compensation: opacity *= sqrt(det0 / (det1 + 1e-6) + 1e-6), det0/det1
    the determinants before/after (each floored at 1e-6), and 0 when either is <= 1e-6.
  * culling: only centres with camera z <= 0.2 are culled (`in_frustum`, hard-coded). TRELLIS's
    near = 0.8 / far = 1.6 options only fill the unused z row of its projection matrix and cull
    nothing; our defaults (near 0.2, far inf) reproduce that; a Gaussian is kept iff near < z < far.
  * extent: radius = ceil(3 sqrt(lambda_max)), lambda_max = mid + sqrt(max(0.1, mid^2 - det)) of
    the filtered Sigma_2D; the Gaussian is binned to the 16x16-pixel tiles of that square
    (`getRect`, integer truncation) and every pixel of those tiles evaluates it (no per-pixel
    3-sigma cut). Each tile's Gaussians are sorted by camera z (stable in the index).
  * compositing, front to back per pixel centre: alpha = min(0.99, opacity * exp(power)), skipped
    when power > 0 or alpha < 1/255; a pixel stops (without that Gaussian) when T * (1 - alpha)
    < 1e-4; rgb = C + T_final * background.
  * colour: 3DGS real SH of degree 0-3 (degree from sh_rest: K = 0, 3, 8, 15 coefficients, other
    K raise ValueError) at dir = normalize(centre - camera position), + 0.5, clamped at 0 and not
    above (TRELLIS generations are degree 0: colour = 0.5 + C0 * f_dc).
Outputs: rgb clipped to [0, 1] (TRELLIS `render_frames` then stores np.clip(255 x).astype(uint8),
a floor to 8 bits that we do not apply); alpha = 1 - T_final; depth = alpha-weighted expected
camera z of the centres, sum(w_i z_i) / sum(w_i), 0 where alpha = 0 (TRELLIS renders no depth).
The numba backend projects in parallel over Gaussians and composites in parallel over 16x16
tiles (numba prange, all cores). Differences: it computes in float64 (CUDA: float32) and uses the pixel-centre
convention of bench.inputs.cameras (identical geometry to TRELLIS's ndc2Pix). The "gsplat"
backend (CUDA only; gsplat JIT-compiles its kernels on first use) runs gsplat.rasterization with
eps2d = kernel_size, rasterize_mode "antialiased" (the same compensation without the 1e-6 terms),
near/far planes; it differs from TRELLIS by its alpha cap 0.999 (not 0.99), its stop test
T <= 1e-4, and its tile extents (3.33 sigma per axis, shrunk for faint Gaussians).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np

from bench.inputs.cameras import Camera
from bench.inputs.gaussians import Gaussians
from bench.inputs.protocol import background_rgb

BACKENDS = ("auto", "numba", "gsplat")
TILE = 16  # diff-gaussian-rasterization BLOCK_X = BLOCK_Y = 16
NEAR = 0.2  # in_frustum: p_view.z <= 0.2 is culled
ALPHA_MAX, ALPHA_MIN, T_MIN = 0.99, 1.0 / 255.0, 1e-4
SH_DEGREE_OF_K = {0: 0, 3: 1, 8: 2, 15: 3}  # sh_rest coefficients -> SH degree
C0, C1 = 0.28209479177387814, 0.4886025119029199
C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792,
      0.5462742152960396)
C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
      -0.4570457994644658, 1.445305721320277, -0.5900435899266435)


@dataclass
class SplatRender:
    """Renders of Gaussians from V cameras of H x W pixels.

    rgb: (V, H, W, 3) float32 in [0, 1], C + T_final * background. alpha: (V, H, W) float32,
    1 - T_final. depth: (V, H, W) float32 alpha-weighted expected camera z, 0 where alpha = 0.
    """

    rgb: np.ndarray
    alpha: np.ndarray
    depth: np.ndarray
    background: str = "white"
    backend: str = ""


def sh_degree(g: Gaussians) -> int:
    """SH degree of g (0 without sh_rest); ValueError for a coefficient count of no degree <= 3."""
    k = 0 if g.sh_rest is None else g.sh_rest.shape[1]
    if k not in SH_DEGREE_OF_K:
        raise ValueError(f"sh_rest holds {k} coefficients per channel; supported: 0, 3, 8, 15 "
                         "(SH degrees 0-3)")
    return SH_DEGREE_OF_K[k]


@numba.njit(cache=True, inline="always")
def _sh_colour(sh, i, c, deg, x, y, z):
    """3DGS computeColorFromSH for channel c of Gaussian i, before the + 0.5."""
    r = C0 * sh[i, 0, c]
    if deg > 0:
        r += -C1 * y * sh[i, 1, c] + C1 * z * sh[i, 2, c] - C1 * x * sh[i, 3, c]
    if deg > 1:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        r += (C2[0] * xy * sh[i, 4, c] + C2[1] * yz * sh[i, 5, c]
              + C2[2] * (2.0 * zz - xx - yy) * sh[i, 6, c] + C2[3] * xz * sh[i, 7, c]
              + C2[4] * (xx - yy) * sh[i, 8, c])
        if deg > 2:
            r += (C3[0] * y * (3.0 * xx - yy) * sh[i, 9, c] + C3[1] * xy * z * sh[i, 10, c]
                  + C3[2] * y * (4.0 * zz - xx - yy) * sh[i, 11, c]
                  + C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy) * sh[i, 12, c]
                  + C3[4] * x * (4.0 * zz - xx - yy) * sh[i, 13, c]
                  + C3[5] * z * (xx - yy) * sh[i, 14, c] + C3[6] * x * (xx - 3.0 * yy) * sh[i, 15, c])
    return r


@numba.njit(cache=True, parallel=True, boundscheck=False)
def _preprocess(xyz, opacity, scales, rots, sh, deg, view, campos, k, width, height, kernel_size,
                near, far, gauss, rect):
    """Per Gaussian: gauss[i] = (u, v, conic_a, conic_b, conic_c, opacity * coef, log-threshold,
    r, g, b, camera z, x and y half-widths of the alpha >= 1/255 ellipse) and rect[i] = its tile
    box (x0, y0, x1, y1); an empty box marks it culled."""
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    lim_xp = (width - cx) / fx + 0.3 * 0.5 * width / fx
    lim_xn = cx / fx + 0.3 * 0.5 * width / fx
    lim_yp = (height - cy) / fy + 0.3 * 0.5 * height / fy
    lim_yn = cy / fy + 0.3 * 0.5 * height / fy
    gx, gy = (width + TILE - 1) // TILE, (height + TILE - 1) // TILE
    for i in numba.prange(xyz.shape[0]):
        for j in range(4):
            rect[i, j] = 0
        p = np.empty(3)
        for a in range(3):
            p[a] = view[a, 0] * xyz[i, 0] + view[a, 1] * xyz[i, 1] + view[a, 2] * xyz[i, 2] + view[a, 3]
        z = p[2]
        if not (z > near and z < far):
            continue
        w, x, y, q = rots[i, 0], rots[i, 1], rots[i, 2], rots[i, 3]  # q: the quaternion's z
        rq = np.empty((3, 3))
        rq[0, 0], rq[0, 1], rq[0, 2] = 1 - 2 * (y * y + q * q), 2 * (x * y - w * q), 2 * (x * q + w * y)
        rq[1, 0], rq[1, 1], rq[1, 2] = 2 * (x * y + w * q), 1 - 2 * (x * x + q * q), 2 * (y * q - w * x)
        rq[2, 0], rq[2, 1], rq[2, 2] = 2 * (x * q - w * y), 2 * (y * q + w * x), 1 - 2 * (x * x + y * y)
        m = np.empty((3, 3))  # camera-frame axes of the Gaussian, scaled: Sigma_cam = M M^T
        for a in range(3):
            for b in range(3):
                m[a, b] = scales[i, b] * (view[a, 0] * rq[0, b] + view[a, 1] * rq[1, b]
                                          + view[a, 2] * rq[2, b])
        tx = z * min(lim_xp, max(-lim_xn, p[0] / z))
        ty = z * min(lim_yp, max(-lim_yn, p[1] / z))
        j00, j02, j11, j12 = fx / z, -fx * tx / (z * z), fy / z, -fy * ty / (z * z)
        a2, b2, c2 = 0.0, 0.0, 0.0  # Sigma_2D = (J M) (J M)^T
        for b in range(3):
            t0, t1 = j00 * m[0, b] + j02 * m[2, b], j11 * m[1, b] + j12 * m[2, b]
            a2 += t0 * t0
            b2 += t0 * t1
            c2 += t1 * t1
        det0 = max(1e-6, a2 * c2 - b2 * b2)
        det1 = max(1e-6, (a2 + kernel_size) * (c2 + kernel_size) - b2 * b2)
        coef = 0.0 if det0 <= 1e-6 or det1 <= 1e-6 else math.sqrt(det0 / (det1 + 1e-6) + 1e-6)
        a2 += kernel_size
        c2 += kernel_size
        det = a2 * c2 - b2 * b2
        o = opacity[i] * coef
        if det == 0.0 or o < ALPHA_MIN:  # alpha <= o would always be skipped
            continue
        mid = 0.5 * (a2 + c2)
        radius = int(math.ceil(3.0 * math.sqrt(mid + math.sqrt(max(0.1, mid * mid - det)))))
        u, v = fx * p[0] / z + cx, fy * p[1] / z + cy
        pu, pv = u - 0.5, v - 0.5  # ndc2Pix: pixel centres at integers
        x0, y0 = min(gx, max(0, int((pu - radius) / TILE))), min(gy, max(0, int((pv - radius) / TILE)))
        x1 = min(gx, max(0, int((pu + radius + TILE - 1) / TILE)))
        y1 = min(gy, max(0, int((pv + radius + TILE - 1) / TILE)))
        if (x1 - x0) * (y1 - y0) == 0:
            continue
        rect[i, 0], rect[i, 1], rect[i, 2], rect[i, 3] = x0, y0, x1, y1
        d = xyz[i] - campos
        d = d / math.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
        gauss[i, 0], gauss[i, 1] = u, v
        gauss[i, 2], gauss[i, 3], gauss[i, 4] = c2 / det, -b2 / det, a2 / det
        gauss[i, 5], gauss[i, 6] = o, math.log(ALPHA_MIN / o)
        for c in range(3):
            gauss[i, 7 + c] = max(_sh_colour(sh, i, c, deg, d[0], d[1], d[2]) + 0.5, 0.0)
        gauss[i, 10] = z
        gauss[i, 11] = math.sqrt(-2.0 * gauss[i, 6] * a2) + 1e-3  # half-widths of the ellipse
        gauss[i, 12] = math.sqrt(-2.0 * gauss[i, 6] * c2) + 1e-3  # where alpha >= 1/255, + margin


@numba.njit(cache=True, boundscheck=False)
def _bin(order, rect, gx, n_tiles):
    """Tile lists: ids[offsets[t]:offsets[t + 1]] are tile t's Gaussians in `order` (by depth)."""
    offsets = np.zeros(n_tiles + 1, np.int64)
    for i in order:
        for ty in range(rect[i, 1], rect[i, 3]):
            for tx in range(rect[i, 0], rect[i, 2]):
                offsets[ty * gx + tx + 1] += 1
    offsets = np.cumsum(offsets)
    fill = offsets[:-1].copy()
    ids = np.empty(offsets[-1], np.int64)
    for i in order:
        for ty in range(rect[i, 1], rect[i, 3]):
            for tx in range(rect[i, 0], rect[i, 2]):
                ids[fill[ty * gx + tx]] = i
                fill[ty * gx + tx] += 1
    return offsets, ids


@numba.njit(cache=True, parallel=True, boundscheck=False)
def _composite(offsets, ids, gauss, width, height, bg, rgb, alpha, depth):
    """Front-to-back compositing of each tile's depth-sorted Gaussians at its pixel centres.

    Gaussian-major like the CUDA kernel's batches: each pixel sees the tile's Gaussians in depth
    order; pixels outside a Gaussian's alpha >= 1/255 ellipse box (where it is always skipped)
    are not visited, which changes nothing but the time."""
    gx = (width + TILE - 1) // TILE
    for t in numba.prange(offsets.shape[0] - 1):
        x0, y0 = (t % gx) * TILE, (t // gx) * TILE
        tw, th = min(TILE, width - x0), min(TILE, height - y0)
        acc = np.zeros((th, tw, 4))  # r, g, b, depth
        tr = np.ones((th, tw))
        done = np.zeros((th, tw), np.bool_)
        n_done = 0
        for k in range(offsets[t], offsets[t + 1]):
            if n_done == th * tw:
                break
            j = ids[k]
            u, v, rx, ry = gauss[j, 0], gauss[j, 1], gauss[j, 11], gauss[j, 12]
            ya, yb = max(0, math.ceil(v - ry - 0.5) - y0), min(th, math.floor(v + ry - 0.5) - y0 + 1)
            xa, xb = max(0, math.ceil(u - rx - 0.5) - x0), min(tw, math.floor(u + rx - 0.5) - x0 + 1)
            for py in range(ya, yb):
                dy = v - (y0 + py + 0.5)
                for px in range(xa, xb):
                    if done[py, px]:
                        continue
                    dx = u - (x0 + px + 0.5)
                    power = -0.5 * (gauss[j, 2] * dx * dx + gauss[j, 4] * dy * dy) - gauss[j, 3] * dx * dy
                    if power > 0.0 or power < gauss[j, 6] - 1e-9:
                        continue
                    a = min(ALPHA_MAX, gauss[j, 5] * math.exp(power))
                    if a < ALPHA_MIN:
                        continue
                    test_t = tr[py, px] * (1.0 - a)
                    if test_t < T_MIN:
                        done[py, px] = True
                        n_done += 1
                        continue
                    w = a * tr[py, px]
                    for c in range(3):
                        acc[py, px, c] += w * gauss[j, 7 + c]
                    acc[py, px, 3] += w * gauss[j, 10]
                    tr[py, px] = test_t
        for py in range(th):
            for px in range(tw):
                t_end = tr[py, px]
                for c in range(3):
                    rgb[y0 + py, x0 + px, c] = min(max(acc[py, px, c] + t_end * bg[c], 0.0), 1.0)
                alpha[y0 + py, x0 + px] = 1.0 - t_end
                depth[y0 + py, x0 + px] = acc[py, px, 3] / (1.0 - t_end) if t_end < 1.0 else 0.0


def _sh_table(g: Gaussians) -> np.ndarray:
    """(N, K + 1, 3) float64 SH coefficients, DC first."""
    parts = [g.sh_dc[:, None, :]] + ([] if g.sh_rest is None else [g.sh_rest])
    return np.ascontiguousarray(np.concatenate(parts, axis=1), np.float64)


def _render_numba(g, cameras, bg, kernel_size, near, far):
    v, h, w = len(cameras), cameras[0].height, cameras[0].width
    rgb = np.empty((v, h, w, 3), np.float32)
    alpha = np.empty((v, h, w), np.float32)
    depth = np.empty((v, h, w), np.float32)
    xyz, opacity = g.xyz.astype(np.float64), g.opacity.astype(np.float64)
    scales, rots, sh = g.scales.astype(np.float64), g.rotations.astype(np.float64), _sh_table(g)
    rots /= np.maximum(np.linalg.norm(rots, axis=1, keepdims=True), 1e-30)
    gx, gy = -(-w // TILE), -(-h // TILE)
    gauss, rect = np.zeros((len(g), 13)), np.zeros((len(g), 4), np.int64)
    for i, cam in enumerate(cameras):
        _preprocess(xyz, opacity, scales, rots, sh, sh_degree(g), np.asarray(cam.extrinsics, np.float64),
                    np.asarray(cam.position, np.float64), np.asarray(cam.intrinsics, np.float64),
                    w, h, float(kernel_size), float(near), float(far), gauss, rect)
        kept = np.flatnonzero(rect[:, 2] > rect[:, 0])
        order = kept[np.argsort(gauss[kept, 10], kind="stable")]
        offsets, ids = _bin(order, rect, gx, gx * gy)
        with numba.parallel_chunksize(4):  # tiles differ in cost: hand them out in small chunks
            _composite(offsets, ids, gauss, w, h, bg.astype(np.float64), rgb[i], alpha[i], depth[i])
    return rgb, alpha, depth


def _render_gsplat(g, cameras, bg, kernel_size, near, far):
    import torch
    from gsplat import rasterization

    dev = torch.device("cuda")

    def t(a):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=dev)

    out, alphas, _ = rasterization(
        t(g.xyz), t(g.rotations), t(g.scales), t(g.opacity), t(_sh_table(g)),
        t(np.stack([c.extrinsics for c in cameras])), t(np.stack([c.intrinsics for c in cameras])),
        cameras[0].width, cameras[0].height, near_plane=float(near), far_plane=float(far),
        eps2d=float(kernel_size), sh_degree=sh_degree(g), packed=False, tile_size=TILE,
        backgrounds=t(np.tile(bg, (len(cameras), 1))), render_mode="RGB+ED",
        rasterize_mode="antialiased")
    out, alphas = out.float().cpu().numpy(), alphas.float().cpu().numpy()[..., 0]
    return np.clip(out[..., :3], 0, 1), alphas, np.where(alphas > 0, out[..., 3], 0).astype(np.float32)


def render_gaussians(g: Gaussians, cameras: Sequence[Camera], background: str = "white",
                     backend: str = "auto", kernel_size: float = 0.1, near: float = NEAR,
                     far: float = math.inf) -> SplatRender:
    """Render g from each camera (module docstring). backend: "numba" (CPU), "gsplat" (CUDA),
    "auto" (gsplat when torch sees CUDA, else numba). All cameras must share one resolution."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown splat backend {backend!r}; valid: {', '.join(BACKENDS)}")
    cameras = list(cameras)
    if not cameras:
        raise ValueError("no cameras to render from")
    if len({(c.width, c.height) for c in cameras}) != 1:
        raise ValueError("all cameras of one render_gaussians call must share a resolution")
    if not 0 < near < far:
        raise ValueError(f"need 0 < near < far, got near={near}, far={far}")
    if kernel_size < 0:
        raise ValueError(f"kernel_size must be >= 0, got {kernel_size}")
    g.validate()
    sh_degree(g)
    bg = background_rgb(background)
    if backend != "numba":
        try:
            import torch
        except ImportError:  # no torch: no gsplat either
            torch = None
        if torch is not None and torch.cuda.is_available():
            backend = "gsplat"
        elif backend == "gsplat":
            raise RuntimeError("splat backend 'gsplat' needs CUDA (torch.cuda.is_available() is False)")
        else:
            backend = "numba"
    v, h, w = len(cameras), cameras[0].height, cameras[0].width
    if len(g) == 0:
        rgb = np.broadcast_to(bg, (v, h, w, 3)).astype(np.float32)
        zeros = np.zeros((v, h, w), np.float32)
        return SplatRender(rgb, zeros, zeros.copy(), background, backend)
    fn = _render_gsplat if backend == "gsplat" else _render_numba
    rgb, alpha, depth = fn(g, cameras, bg, kernel_size, near, far)
    return SplatRender(rgb, alpha, depth, background, backend)
