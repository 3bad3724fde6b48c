"""The rasterization contract shared by every backend.

A rasterizer maps (vertices, faces, cameras) to one float32 array `rast` of shape (V, H, W, 4):
    rast[..., 0], rast[..., 1]: perspective-correct barycentric weights of the triangle's
        vertices 0 and 1 (vertex 2 gets 1 - b0 - b1), as nvdiffrast's `rasterize` returns them;
    rast[..., 2]: camera-space z of the surface in world units (OpenCV, > 0), 0 on background;
    rast[..., 3]: triangle index + 1, 0 on background (exact in float32 up to 2**24 faces).
Row 0 is the top of the image; pixel (i, j) samples the point (j + 0.5, i + 0.5) in pixels.
No culling, no antialiasing. Everything after this step (shading) is shared: see shading.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from bench.inputs.cameras import Camera

NEAR, FAR = 0.05, 100.0


class Rasterizer(Protocol):
    name: str

    def rasterize(self, vertices: np.ndarray, faces: np.ndarray,
                  cameras: Sequence[Camera]) -> np.ndarray:
        """(N, 3) float32 world vertices, (F, 3) int32 faces -> (V, H, W, 4) float32 rast."""
        ...


def check_cameras(cameras: Sequence[Camera]) -> tuple[int, int]:
    """All cameras of one call share a resolution; return (H, W)."""
    if not cameras:
        raise ValueError("no cameras to render")
    sizes = {(c.height, c.width) for c in cameras}
    if len(sizes) != 1:
        raise ValueError(f"cameras of one render call must share a resolution, got {sorted(sizes)}")
    return sizes.pop()


def clip_from_camera(camera: Camera) -> np.ndarray:
    """(4, 4) OpenGL clip matrix acting on OpenCV camera coordinates.

    NDC y = 2 v / H - 1 (v = image row coordinate, downwards), so that OpenGL's bottom-up row order
    equals the image's top-down order and no flip is needed on readback.
    """
    k, w, h = camera.intrinsics, camera.width, camera.height
    n, f = NEAR, FAR
    return np.array([
        [2 * k[0, 0] / w, 2 * k[0, 1] / w, 2 * k[0, 2] / w - 1, 0],
        [0, 2 * k[1, 1] / h, 2 * k[1, 2] / h - 1, 0],
        [0, 0, (f + n) / (f - n), -2 * f * n / (f - n)],
        [0, 0, 1, 0],
    ])
