"""`visible`: lift the visible pixels of the input views back to 3D, nothing more.

The lower bound every amodal method must beat. Each view's visible pixels are unprojected with
their depth and camera; neighbouring pixels are joined into triangles (two per 2x2 block) unless
the depth jumps between them, so separate surfaces are never bridged. Vertex colours come from
the input RGB. Nothing is invented where the object is occluded.
"""

from __future__ import annotations

import numpy as np

from bench.cases.case import AmodalCase, InputView
from bench.inputs.assets import Mesh
from bench.methods.adapter import Adapter, Generation

# max depth difference between joined pixels, in object-frame units (the object spans 1)
MAX_DEPTH_JUMP = 0.01


def lift_view(view: InputView, max_jump: float = MAX_DEPTH_JUMP) -> Mesh:
    """Triangulate one view's visible pixels into a world-frame mesh with vertex colours."""
    depth = np.where(view.visibility_mask, view.depth, 0.0)
    h, w = depth.shape
    valid = depth > 0
    index = np.full((h, w), -1, np.int64)
    index[valid] = np.arange(valid.sum())
    points = view.camera.unproject(depth)  # row-major order of valid pixels, as `index`
    colors = view.rgb[valid]
    # the four corners of every 2x2 block: a=(i,j) b=(i,j+1) c=(i+1,j) d=(i+1,j+1)
    a, b = index[:-1, :-1], index[:-1, 1:]
    c, d = index[1:, :-1], index[1:, 1:]
    za, zb, zc, zd = depth[:-1, :-1], depth[:-1, 1:], depth[1:, :-1], depth[1:, 1:]

    def ok(*zs):
        zs = np.stack(zs)
        return (zs > 0).all(0) & (zs.max(0) - zs.min(0) <= max_jump)

    t1 = ok(za, zc, zb)
    t2 = ok(zb, zc, zd)
    faces = np.concatenate([np.stack([a[t1], c[t1], b[t1]], 1), np.stack([b[t2], c[t2], d[t2]], 1)])
    return Mesh(points.astype(np.float32), faces.astype(np.int32), vertex_colors=colors)


def merge_meshes(meshes: list[Mesh]) -> Mesh:
    offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
    return Mesh(np.concatenate([m.vertices for m in meshes]),
                np.concatenate([m.faces + o for m, o in zip(meshes, offsets)]),
                vertex_colors=np.concatenate([m.vertex_colors for m in meshes]))


class Visible(Adapter):
    name = "visible"

    def generate(self, case: AmodalCase) -> Generation:
        mesh = merge_meshes([lift_view(v) for v in case.views])
        if len(mesh.faces) == 0:
            return Generation(None, {"reason": "no visible pixels to lift"})
        return Generation(mesh, {"max_depth_jump": MAX_DEPTH_JUMP})
