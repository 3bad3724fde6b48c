"""Shading shared by every rasterizer: interpolate attributes, sample the texture, composite.

Unlit albedo (the texture colour itself). This is NOT how the papers rendered their ground truth:
TRELLIS's, Amodal3R's and GENA3D's GT renders are lit Blender Cycles renders (bench.render.cycles,
PROTOCOLS.md 7). The rasterizer serves depth, point clouds, masks and occlusion, unlit views of a
generation's mesh (the analogue of the papers' unlit Gaussian renders), and the fast `raster-unlit`
GT path, which tables mark as non-standard. Colours are sRGB in [0, 1].
"""

from __future__ import annotations

import numba
import numpy as np

from bench.inputs.assets import Mesh
from bench.inputs.protocol import BACKGROUNDS, background_rgb  # noqa: F401  (re-exported for renderers)

DEFAULT_GREY = 0.5


@numba.njit(cache=True, boundscheck=False)
def _shade_kernel(rast, hits, faces, uv, texture, colors, mode, rgb):
    """Colour of the covered pixels `hits` of rast (P, 4), in float32.

    mode 0: bilinear texture lookup at the interpolated OpenGL uv (v = 0 is the image bottom,
    wrap: repeat; texel centres at integer + 0.5); mode 1: interpolated vertex colours;
    mode 2: uniform grey."""
    th, tw = texture.shape[0], texture.shape[1]
    one, half, inv255 = np.float32(1.0), np.float32(0.5), np.float32(1.0 / 255.0)
    for p in hits:
        f = np.int64(rast[p, 3]) - 1
        b0, b1 = rast[p, 0], rast[p, 1]
        b2 = one - b0 - b1
        i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
        for c in range(3):
            rgb[p, c] = DEFAULT_GREY
        if mode == 0:
            u = b0 * uv[i0, 0] + b1 * uv[i1, 0] + b2 * uv[i2, 0]
            v = b0 * uv[i0, 1] + b1 * uv[i1, 1] + b2 * uv[i2, 1]
            x = (u - np.floor(u)) * tw - half
            y = (one - (v - np.floor(v))) * th - half
            xf, yf = np.floor(x), np.floor(y)
            fx, fy = x - xf, y - yf
            x0, y0 = np.int64(xf), np.int64(yf)
            x0 = x0 + tw if x0 < 0 else x0
            y0 = y0 + th if y0 < 0 else y0
            x1 = x0 + 1 if x0 + 1 < tw else 0
            y1 = y0 + 1 if y0 + 1 < th else 0
            w00, w10 = (one - fx) * (one - fy), fx * (one - fy)
            w01, w11 = (one - fx) * fy, fx * fy
            for c in range(3):
                val = (w00 * texture[y0, x0, c] + w10 * texture[y0, x1, c]
                       + w01 * texture[y1, x0, c] + w11 * texture[y1, x1, c]) * inv255
                rgb[p, c] = min(max(val, np.float32(0.0)), one)
        elif mode == 1:
            for c in range(3):
                val = (b0 * colors[i0, c] + b1 * colors[i1, c] + b2 * colors[i2, c]) * inv255
                rgb[p, c] = min(max(val, np.float32(0.0)), one)


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F, 3) unit geometric normals (right-hand winding), world frame; 0 for degenerate faces."""
    v = vertices.astype(np.float64)
    n = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, norm, out=np.zeros_like(n), where=norm > 0).astype(np.float32)


def shade(mesh: Mesh, rast: np.ndarray, background: str) -> dict[str, np.ndarray]:
    """rast (V, H, W, 4) -> rgb (V,H,W,3) composited on the background, depth (V,H,W) camera z
    (0 = background), face_id (V,H,W) (-1 = background). Alpha and normals derive from face_id
    (bench.render.Render), so they cost nothing unless used."""
    shape = rast.shape[:3]
    flat = np.ascontiguousarray(rast.reshape(-1, 4))
    n = flat.shape[0]
    face_id = flat[:, 3].astype(np.int32) - 1
    hits = np.flatnonzero(face_id >= 0)
    depth = np.where(face_id >= 0, flat[:, 2], np.float32(0))
    rgb = np.empty((n, 3), np.float32)
    rgb[:] = background_rgb(background)
    empty2 = np.zeros((1, 2), np.float32)
    empty3 = np.zeros((1, 1, 3), np.uint8)
    if mesh.texture is not None and mesh.uv is not None:
        mode, uv, tex, col = 0, mesh.uv, mesh.texture, empty3[0]
    elif mesh.vertex_colors is not None:
        mode, uv, tex, col = 1, empty2, empty3, mesh.vertex_colors
    else:
        mode, uv, tex, col = 2, empty2, empty3, empty3[0]
    _shade_kernel(flat, hits, mesh.faces, np.ascontiguousarray(uv, np.float32),
                  np.ascontiguousarray(tex, np.uint8), np.ascontiguousarray(col, np.uint8),
                  mode, rgb)
    return {"rgb": rgb.reshape(shape + (3,)), "depth": depth.reshape(shape),
            "face_id": face_id.reshape(shape)}
