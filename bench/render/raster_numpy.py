"""Reference CPU rasterizer in plain numpy: a vectorized z-buffer over triangle bounding boxes.

Slow (seconds per rig) but dependency-free and easy to read: it is the independent reference the
fast rasterizers are tested against, and the baseline the render benchmark prints its ratio to.
Memory grows with the summed screen-space bbox area of a chunk of triangles: chunks are bounded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.inputs.cameras import Camera
from bench.render.raster import NEAR, check_cameras

_MAX_CANDIDATES = 4_000_000  # (triangle, pixel) pairs per chunk


def _rasterize_view(vertices: np.ndarray, faces: np.ndarray, cam: Camera) -> np.ndarray:
    h, w = cam.height, cam.width
    uv, z = cam.project(vertices.astype(np.float64))
    tri_uv, tri_z = uv[faces], z[faces]  # (F, 3, 2), (F, 3)
    keep = (tri_z > NEAR).all(1)
    lo = np.floor(tri_uv.min(1) - 0.5).astype(np.int64) + 1  # first pixel centre >= min
    hi = np.floor(tri_uv.max(1) - 0.5).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [w - 1, h - 1])
    keep &= (hi >= lo).all(1)
    fids = np.nonzero(keep)[0]
    nx, ny = (hi - lo + 1)[fids, 0], (hi - lo + 1)[fids, 1]
    counts = nx * ny

    best_z = np.full(h * w, np.inf)
    out = np.zeros((h * w, 4), dtype=np.float32)
    start = 0
    cum = np.cumsum(counts)
    while start < len(fids):
        base = cum[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(cum, base + _MAX_CANDIDATES, side="right")))
        f_sel, c = fids[start:stop], counts[start:stop]
        rep = np.repeat(np.arange(len(f_sel)), c)
        local = np.arange(c.sum()) - np.repeat(np.cumsum(c) - c, c)
        px = lo[f_sel, 0][rep] + local % nx[start:stop][rep]
        py = lo[f_sel, 1][rep] + local // nx[start:stop][rep]
        p = np.stack([px + 0.5, py + 0.5], 1)
        a, b, cc = (tri_uv[f_sel][rep, k] for k in range(3))
        area = (b[:, 0] - a[:, 0]) * (cc[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (cc[:, 0] - a[:, 0])
        # screen-space barycentrics from edge functions
        l0 = ((b[:, 0] - p[:, 0]) * (cc[:, 1] - p[:, 1]) - (b[:, 1] - p[:, 1]) * (cc[:, 0] - p[:, 0]))
        l1 = ((cc[:, 0] - p[:, 0]) * (a[:, 1] - p[:, 1]) - (cc[:, 1] - p[:, 1]) * (a[:, 0] - p[:, 0]))
        with np.errstate(divide="ignore", invalid="ignore"):
            l0, l1 = l0 / area, l1 / area
        l2 = 1 - l0 - l1
        inside = (area != 0) & (l0 >= 0) & (l1 >= 0) & (l2 >= 0)
        rep, px, py = rep[inside], px[inside], py[inside]
        l = np.stack([l0[inside], l1[inside], l2[inside]], 1)
        zz = tri_z[f_sel][rep]
        inv = (l / zz).sum(1)  # perspective correction: depth is harmonic in screen space
        depth = 1.0 / inv
        bary = (l / zz) / inv[:, None]
        pix = py * w + px
        # z-buffer: nearest candidate per pixel, then merge with earlier chunks
        order = np.lexsort((depth, pix))
        pix_s = pix[order]
        first = np.ones(len(order), bool)
        first[1:] = pix_s[1:] != pix_s[:-1]
        win = order[first]
        pw = pix[win]
        better = depth[win] < best_z[pw]
        win, pw = win[better], pw[better]
        best_z[pw] = depth[win]
        out[pw, 0] = bary[win, 0]
        out[pw, 1] = bary[win, 1]
        out[pw, 2] = depth[win]
        out[pw, 3] = f_sel[rep[win]] + 1
        start = stop
    return out.reshape(h, w, 4)


class NumpyRasterizer:
    name = "numpy"

    def rasterize(self, vertices: np.ndarray, faces: np.ndarray,
                  cameras: Sequence[Camera]) -> np.ndarray:
        check_cameras(cameras)
        return np.stack([_rasterize_view(vertices, faces, c) for c in cameras])
