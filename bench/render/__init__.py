"""Rendering: one rasterization contract (raster.py), several backends, shared shading.

    render(mesh, cameras, background="white", rasterizer="auto") -> Render

Backends: "moderngl" (CPU, EGL/llvmpipe, the default), "numpy" (CPU reference), "nvdiffrast"
(CUDA, optional). "auto" picks moderngl and falls back to numpy with a warning when EGL is absent;
the backend used is recorded in every result record.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bench.inputs.assets import Mesh
from bench.inputs.cameras import Camera
from bench.render.raster import Rasterizer
from bench.render.shading import face_normals, shade

RASTERIZERS = ("auto", "moderngl", "numpy", "nvdiffrast")
_CACHE: dict[str, Rasterizer] = {}


@dataclass
class Render:
    """Renders of one mesh from V cameras of resolution H x W.

    rgb: (V, H, W, 3) float32 sRGB in [0, 1], composited on `background`.
    depth: (V, H, W) float32 camera z in object-frame units, 0 on background.
    face_id: (V, H, W) int32 visible triangle index, -1 on background.
    mesh: the rendered mesh (alpha and normals are derived from it and face_id on access,
    since most metrics never need them).
    """

    rgb: np.ndarray
    depth: np.ndarray
    face_id: np.ndarray
    mesh: Mesh = field(repr=False)
    background: str = "white"
    backend: str = ""

    @property
    def alpha(self) -> np.ndarray:
        """(V, H, W) float32 in {0, 1} (no antialiasing)."""
        return (self.face_id >= 0).astype(np.float32)

    @property
    def normals(self) -> np.ndarray:
        """(V, H, W, 3) float32 world-frame unit face normals, 0 on background."""
        n = np.zeros(self.face_id.shape + (3,), np.float32)
        hit = self.face_id >= 0
        n[hit] = face_normals(self.mesh.vertices, self.mesh.faces)[self.face_id[hit]]
        return n


def get_rasterizer(name: str = "auto") -> Rasterizer:
    """Return a (per-process cached) rasterizer by name."""
    if name not in RASTERIZERS:
        raise ValueError(f"unknown rasterizer {name!r}; valid: {', '.join(RASTERIZERS)}")
    if name == "auto":
        try:
            return get_rasterizer("moderngl")
        except RuntimeError as e:
            warnings.warn(f"{e}; falling back to the slow numpy rasterizer", stacklevel=2)
            return get_rasterizer("numpy")
    if name not in _CACHE:
        if name == "moderngl":
            from bench.render.raster_moderngl import ModernGLRasterizer as cls
        elif name == "numpy":
            from bench.render.raster_numpy import NumpyRasterizer as cls
        else:
            from bench.render.raster_nvdiffrast import NvdiffrastRasterizer as cls
        _CACHE[name] = cls()
    return _CACHE[name]


def render(mesh: Mesh, cameras: Sequence[Camera], background: str = "white",
           rasterizer: str = "auto") -> Render:
    """Rasterize with the named backend, then shade (shared by all backends)."""
    r = get_rasterizer(rasterizer)
    rast = r.rasterize(mesh.vertices, mesh.faces, cameras)
    return Render(**shade(mesh, rast, background), mesh=mesh, background=background,
                  backend=r.name)
