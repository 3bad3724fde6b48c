"""Shading shared by every rasterizer: interpolate attributes, sample the texture, composite.

Unlit albedo (the texture colour itself), as the evaluation renders of Amodal3R/GENA3D compare
appearance without relighting. Colours are sRGB in [0, 1].
"""

from __future__ import annotations

import numba
import numpy as np

from bench.assets import Mesh

BACKGROUNDS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}
DEFAULT_GREY = 0.5


def background_rgb(name: str) -> np.ndarray:
    if name not in BACKGROUNDS:
        raise ValueError(f"unknown background {name!r}; valid: {', '.join(BACKGROUNDS)}")
    return np.asarray(BACKGROUNDS[name], dtype=np.float32)


@numba.njit(cache=True)
def _bilinear(texture: np.ndarray, u: float, v: float, out: np.ndarray) -> None:
    """Sample a (Ht, Wt, C) uint8 texture at OpenGL (u, v) (wrap: repeat) into out[:C] in [0, 1]."""
    th, tw = texture.shape[0], texture.shape[1]
    x = (u - np.floor(u)) * tw - 0.5
    y = (1.0 - (v - np.floor(v))) * th - 0.5  # v = 0 is the image bottom
    x0f, y0f = np.floor(x), np.floor(y)
    fx, fy = x - x0f, y - y0f
    x0, y0 = int(x0f) % tw, int(y0f) % th
    x1, y1 = (x0 + 1) % tw, (y0 + 1) % th
    for c in range(texture.shape[2]):
        top = texture[y0, x0, c] * (1 - fx) + texture[y0, x1, c] * fx
        bottom = texture[y1, x0, c] * (1 - fx) + texture[y1, x1, c] * fx
        out[c] = (top * (1 - fy) + bottom * fy) / 255.0


@numba.njit(cache=True)
def _shade_kernel(rast, hits, faces, uv, texture, colors, fnormals, mode, rgb, normals):
    """Colour and normal of the covered pixels `hits` of rast (P, 4).
    mode: 0 texture, 1 vertex colours, 2 grey."""
    px = np.empty(3, dtype=np.float64)
    for p in hits:
        f = int(rast[p, 3]) - 1
        b0, b1 = rast[p, 0], rast[p, 1]
        b2 = 1.0 - b0 - b1
        i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
        if mode == 0:
            u = b0 * uv[i0, 0] + b1 * uv[i1, 0] + b2 * uv[i2, 0]
            v = b0 * uv[i0, 1] + b1 * uv[i1, 1] + b2 * uv[i2, 1]
            _bilinear(texture, u, v, px)
        elif mode == 1:
            for c in range(3):
                px[c] = (b0 * colors[i0, c] + b1 * colors[i1, c] + b2 * colors[i2, c]) / 255.0
        else:
            px[0] = px[1] = px[2] = DEFAULT_GREY
        for c in range(3):
            rgb[p, c] = min(max(px[c], 0.0), 1.0)
            normals[p, c] = fnormals[f, c]


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F, 3) unit geometric normals (right-hand winding), world frame; 0 for degenerate faces."""
    v = vertices.astype(np.float64)
    n = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, norm, out=np.zeros_like(n), where=norm > 0).astype(np.float32)


def shade(mesh: Mesh, rast: np.ndarray, background: str) -> dict[str, np.ndarray]:
    """rast (V, H, W, 4) -> rgb (V,H,W,3) composited on the background, alpha (V,H,W),
    depth (V,H,W) camera z (0 = background), normals (V,H,W,3) world, face_id (V,H,W) (-1 = bg)."""
    shape = rast.shape[:3]
    flat = np.ascontiguousarray(rast.reshape(-1, 4))
    n = flat.shape[0]
    face_id = flat[:, 3].astype(np.int32) - 1
    hits = np.flatnonzero(face_id >= 0)
    depth = np.where(face_id >= 0, flat[:, 2], np.float32(0))
    rgb = np.empty((n, 3), np.float32)
    rgb[:] = background_rgb(background)
    normals = np.zeros((n, 3), np.float32)
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
                  face_normals(mesh.vertices, mesh.faces), mode, rgb, normals)
    return {"rgb": rgb.reshape(shape + (3,)), "alpha": (face_id >= 0).astype(np.float32)
            .reshape(shape), "depth": depth.reshape(shape), "normals": normals.reshape(shape + (3,)),
            "face_id": face_id.reshape(shape)}
