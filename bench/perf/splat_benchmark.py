"""Splat benchmark: an 8-view 512^2 rig of 200k TRELLIS-like Gaussians, RGB + alpha + depth.

    python -m bench.perf.splat_benchmark [--gaussians 200000] [--repeats 3] [--ref-views 1]

Gaussians are flat discs on a surface (the render benchmark's mesh: the largest GSO object, else a
sphere), scales log-uniform in [0.005, 0.02] with the normal axis x0.3, opacities mixed, degree-0
colours. Times the numba backend of bench.render.splat against gsplat's CPU reference path on the
same input in the same run: gsplat's pure-PyTorch projection (`_fully_fused_projection`,
compensations for the 0.1 filter), SH, its Python tile intersection (`_isect_tiles`), and a
per-tile torch compositing with TRELLIS's thresholds (gsplat's own `_rasterize_to_pixels` needs
CUDA). The reference is slow, so it renders `--ref-views` views and its rig time is scaled to 8
views (printed as such), with the PSNR of the numba render against it.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch
import trimesh

from bench.inputs.cameras import Rig
from bench.inputs.gaussians import Gaussians, matrix_to_quaternion
from bench.inputs.protocol import background_rgb
from bench.perf.render_benchmark import RIG, benchmark_mesh
from bench.render.splat import C0, TILE, render_gaussians


def benchmark_gaussians(n: int, seed: int = 0) -> Gaussians:
    """n TRELLIS-like Gaussians on the benchmark mesh's surface, coloured by their normals."""
    mesh = benchmark_mesh()
    m = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    rng = np.random.default_rng(seed)
    pts, face = trimesh.sample.sample_surface(m, n, seed=seed)
    nrm = np.asarray(m.face_normals[face], np.float64)
    helper = np.where(np.abs(nrm[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
    t1 = np.cross(nrm, helper)
    t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
    frame = np.stack([t1, np.cross(nrm, t1), nrm], axis=2)
    scales = np.exp(rng.uniform(np.log(0.005), np.log(0.02), (n, 3)))
    scales[:, 2] *= 0.3
    opacity = np.where(rng.random(n) < 0.7, rng.uniform(0.8, 1.0, n), rng.uniform(0.05, 0.5, n))
    return Gaussians(pts, opacity, scales, matrix_to_quaternion(frame), (0.5 + 0.4 * nrm - 0.5) / C0)


def gsplat_reference_view(g: Gaussians, cam, background: str = "white", kernel_size: float = 0.1,
                          near: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """(rgb (H,W,3), alpha (H,W)) of one view by gsplat's CPU reference functions (module docstring)."""
    from gsplat.cuda._torch_impl import (
        _fully_fused_projection,
        _isect_offset_encode,
        _isect_tiles,
        _quat_scale_to_covar_preci,
    )

    w, h = cam.width, cam.height
    means = torch.tensor(g.xyz)
    covars, _ = _quat_scale_to_covar_preci(torch.tensor(g.rotations), torch.tensor(g.scales),
                                           compute_preci=False)
    radii, means2d, depths, conics, comp = _fully_fused_projection(
        means, covars, torch.tensor(cam.extrinsics, dtype=torch.float32)[None],
        torch.tensor(cam.intrinsics, dtype=torch.float32)[None], w, h, eps2d=kernel_size,
        near_plane=near, calc_compensations=True)
    colours = torch.clamp_min(C0 * torch.tensor(g.sh_dc) + 0.5, 0.0)  # degree 0: no direction
    opac = torch.tensor(g.opacity) * comp[0]
    tw, th = -(-w // TILE), -(-h // TILE)
    _, isect_ids, flat = _isect_tiles(means2d, radii, depths, TILE, tw, th)
    offsets = torch.cat([_isect_offset_encode(isect_ids, 1, tw, th).flatten(), torch.tensor([len(flat)])])
    means2d, conics, depths = means2d[0], conics[0], depths[0]
    bg = torch.tensor(background_rgb(background))
    rgb, alpha = torch.empty(h, w, 3), torch.empty(h, w)
    for t in range(tw * th):
        ids = flat[offsets[t]:offsets[t + 1]].long()
        ty, tx = divmod(t, tw)
        ys, xs = torch.meshgrid(torch.arange(ty * TILE, min(ty * TILE + TILE, h)),
                                torch.arange(tx * TILE, min(tx * TILE + TILE, w)), indexing="ij")
        ys, xs = ys.flatten(), xs.flatten()
        d = torch.stack([xs, ys], 1)[None] + 0.5 - means2d[ids][:, None]
        c = conics[ids][:, None]
        dx, dy = d[..., 0], d[..., 1]
        sigma = 0.5 * (c[..., 0] * dx * dx + c[..., 2] * dy * dy) + c[..., 1] * dx * dy
        al = torch.clamp_max(opac[ids][:, None] * torch.exp(-sigma), 0.99)
        al = torch.where((sigma >= 0) & (al >= 1 / 255), al, torch.zeros_like(al))
        t_after = torch.cumprod(1 - al, 0)
        wgt = al * torch.cat([torch.ones_like(al[:1]), t_after[:-1]]) * (t_after >= 1e-4)
        acc = wgt.sum(0)
        rgb[ys, xs] = ((wgt[..., None] * colours[ids][:, None]).sum(0) + (1 - acc)[:, None] * bg).clamp(0, 1)
        alpha[ys, xs] = acc
    return rgb.numpy(), alpha.numpy()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gaussians", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ref-views", type=int, default=1, help="views the gsplat reference renders")
    args = ap.parse_args(argv)
    g = benchmark_gaussians(args.gaussians)
    cams = Rig.from_spec("bench", RIG).cameras
    print(f"{len(g)} Gaussians; rig: {len(cams)} views at {RIG['resolution']}^2; "
          f"torch threads {torch.get_num_threads()}")
    render_gaussians(g, cams[:1], backend="numba")  # warm-up (JIT cache load)
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        ours = render_gaussians(g, cams, backend="numba")
        times.append(time.perf_counter() - t)
    t_ours = statistics.median(times)
    print(f"numba  backend: {t_ours:8.3f} s per 8-view rig (median of {args.repeats})")
    k = max(1, min(args.ref_views, len(cams)))
    t = time.perf_counter()
    refs = [gsplat_reference_view(g, cam) for cam in cams[:k]]
    t_ref = (time.perf_counter() - t) * len(cams) / k
    print(f"gsplat CPU reference: {t_ref:8.3f} s per 8-view rig "
          f"(measured on {k} view{'s' if k > 1 else ''}, scaled x{len(cams) / k:g})")
    for i, (rgb, alpha) in enumerate(refs):
        mse = float(np.mean((ours.rgb[i].astype(np.float64) - rgb) ** 2))
        psnr = math.inf if mse == 0 else 10 * math.log10(1 / mse)
        print(f"view {i}: PSNR numba vs reference {psnr:.2f} dB, alpha max abs diff "
              f"{np.abs(ours.alpha[i] - alpha).max():.4f}, coverage {(alpha > 0.5).mean():.3f}")
    print(f"ratio reference/numba: {t_ref / t_ours:.1f}x")


if __name__ == "__main__":
    main()
