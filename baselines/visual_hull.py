"""`visual-hull`: occlusion-aware space carving from the input views, on the CPU.

The classical amodal baseline: the object is whatever the input views cannot rule out.

Grid: RESOLUTION^3 voxels tiling the object cube [-0.5, 0.5]^3 (TRELLIS frame); a voxel is tested
by its centre only (the centre's projection picks one pixel of each view), which places the
surface within half a voxel of where a full-footprint test would, and is a few numpy operations
per view (no loop over voxels).

Carving rules, per view, for a voxel whose centre projects inside the image and in front of the
camera (a voxel projecting outside an image is not carved by that view):
  - background pixel (neither visibility_mask nor occlusion_mask): the ray meets no object, carve;
  - occluded pixel (occlusion_mask): never carved by that view - the occluder hides what is there
    (with the harness's 3D-consistent occlusion these pixels are still object silhouette);
  - visible pixel, free-space carving (`free_space`, on by default): the ray's first surface is
    at the observed depth d, so a voxel with camera z < d - margin lies in front of it and is
    empty; voxels at or behind d - margin are kept. The margin (FREE_SPACE_MARGIN voxels) absorbs
    the centre test: the voxel centre's ray and its pixel's centre ray differ by under a pixel.

The kept voxels are meshed by marching cubes on the zero-padded occupancy at level 0.5 (so the
surface is closed and lies half-way between kept and carved voxel centres). Vertex colours come
from the views that see the vertex: its pixel is visible and |camera z - observed depth| is within
COLOR_DEPTH_TOLERANCE voxels; the accepted colours are averaged. A vertex no view sees (occluded,
the back, the bottom) gets the mean visible colour of the case.
"""

from __future__ import annotations

import numpy as np

from bench.adapter import Adapter, Generation
from bench.assets import Mesh
from bench.cases import AmodalCase, InputView

RESOLUTION = 128  # voxels per side of the [-0.5, 0.5]^3 cube
FREE_SPACE_MARGIN = 2.0  # voxels: carve only voxels this far in front of the observed depth
COLOR_DEPTH_TOLERANCE = 4.0  # voxels: a vertex is seen by a view when its depth matches this well
CENTRED = True  # clip to the origin-centred box the hull allows (see clip_to_centred_box)
HALF_EXTENT = 0.5  # the object cube of the TRELLIS frame


def voxel_centres(resolution: int) -> np.ndarray:
    """(R,) voxel centre coordinates along one axis of [-0.5, 0.5]."""
    return (-HALF_EXTENT + (np.arange(resolution) + 0.5) / resolution * 2 * HALF_EXTENT)


def _project_cells(view: InputView, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 3) world points -> (flat pixel index (N,), camera z (N,), inside (N,) bool).

    inside: in front of the camera and the projection falls in the image; pixel index is 0 where
    not inside."""
    cam = view.camera
    uv, z = cam.project(points)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = np.floor(uv[:, 0])
        v = np.floor(uv[:, 1])
    inside = (z > 0) & (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)
    iu = np.where(inside, u, 0).astype(np.int64)
    iv = np.where(inside, v, 0).astype(np.int64)
    return iv * cam.width + iu, z, inside


def touches_border(view: InputView) -> bool:
    """Whether the object's silhouette (visible or occluded pixels) reaches the image border,
    i.e. part of the object may lie outside the frame."""
    sil = view.visibility_mask | view.occlusion_mask
    return bool(sil[0].any() or sil[-1].any() or sil[:, 0].any() or sil[:, -1].any())


def carve_view(view: InputView, points: np.ndarray, free_space: bool = True,
               margin: float = FREE_SPACE_MARGIN / RESOLUTION) -> np.ndarray:
    """(N,) bool: which of the (N, 3) world points this view proves empty.

    Background pixel -> empty; occluded pixel -> kept; visible pixel -> empty only when
    `free_space` and the point's camera z < observed depth - margin (world units)."""
    pix, z, inside = _project_cells(view, points)
    vis = view.visibility_mask.reshape(-1)[pix]
    occ = view.occlusion_mask.reshape(-1)[pix]
    empty = inside & ~vis & ~occ
    if not touches_border(view):  # the whole object is in the frame: outside it is empty
        empty |= ~inside
    if free_space:
        depth = view.depth.reshape(-1)[pix]
        empty |= inside & vis & (depth > 0) & (z < depth - margin)
    return empty


def carve(views: list[InputView], resolution: int = RESOLUTION, free_space: bool = True,
          margin_voxels: float = FREE_SPACE_MARGIN) -> np.ndarray:
    """(R, R, R) bool occupancy, indexed [x, y, z], after carving with every view.

    Only voxels still occupied are projected into the next view, so later views cost less."""
    c = voxel_centres(resolution).astype(np.float32)
    grid = np.stack(np.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)
    alive = np.arange(len(grid))
    margin = margin_voxels * 2 * HALF_EXTENT / resolution
    for view in views:
        empty = carve_view(view, grid[alive].astype(np.float64), free_space, margin)
        alive = alive[~empty]
        if len(alive) == 0:
            break
    occ = np.zeros(len(grid), bool)
    occ[alive] = True
    return occ.reshape(resolution, resolution, resolution)


def clip_to_centred_box(occ: np.ndarray, max_iterations: int = 8) -> np.ndarray:
    """Remove voxels outside the largest origin-centred box the object can fill.

    The harness's frame centres the object's bounding box at the origin (TRELLIS normalization,
    bench.assets.normalize_mesh), and the hull contains the object, so along each axis the object
    spans [-e, e] with e <= min(-lo, hi) for the hull's extent [lo, hi]: voxels with |centre| > e
    (plus half a voxel of slack for the centre test) cannot be object. Clipping one axis can
    shrink the others' extents, so this repeats until nothing changes."""
    r = occ.shape[0]
    c = voxel_centres(r)
    half = HALF_EXTENT / r  # half a voxel
    for _ in range(max_iterations):
        changed = False
        for axis in range(3):
            profile = occ.any(axis=tuple(a for a in range(3) if a != axis))
            idx = np.flatnonzero(profile)
            if len(idx) == 0:
                return occ
            lo, hi = c[idx[0]] - half, c[idx[-1]] + half
            keep = np.abs(c) <= min(-lo, hi) + half
            if not keep[profile].all():
                shape = [1, 1, 1]
                shape[axis] = r
                occ = occ & keep.reshape(shape)
                changed = True
        if not changed:
            break
    return occ


def mesh_occupancy(occ: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes of an (R, R, R) occupancy over [-0.5, 0.5]^3 -> (vertices, faces) in the
    world frame, outward-facing (right-hand winding), closed (the grid is zero-padded)."""
    from skimage.measure import marching_cubes

    r = occ.shape[0]
    size = 2 * HALF_EXTENT / r
    padded = np.pad(occ.astype(np.float32), 1)
    verts, faces, _, _ = marching_cubes(padded, level=0.5, spacing=(size, size, size))
    # padded index p is voxel p - 1, whose centre is -0.5 + (p - 1 + 0.5) * size
    verts = verts - (HALF_EXTENT + 0.5 * size)
    # skimage winds faces so the normal points to decreasing values; we want outward (towards 0)
    return verts.astype(np.float32), faces[:, ::-1].astype(np.int32)


def vertex_colors(vertices: np.ndarray, views: list[InputView],
                  tolerance: float = COLOR_DEPTH_TOLERANCE / RESOLUTION) -> np.ndarray:
    """(N, 3) uint8 colours: the mean over the views whose visible pixel at the vertex's
    projection has a depth within `tolerance` of the vertex; the case's mean visible colour for
    vertices no view sees."""
    total = np.zeros((len(vertices), 3))
    count = np.zeros(len(vertices))
    pts = vertices.astype(np.float64)
    for view in views:
        pix, z, inside = _project_cells(view, pts)
        vis = view.visibility_mask.reshape(-1)[pix]
        depth = view.depth.reshape(-1)[pix]
        ok = inside & vis & (np.abs(z - depth) < tolerance)
        total[ok] += view.rgb.reshape(-1, 3)[pix[ok]]
        count[ok] += 1
    seen = [v.rgb[v.visibility_mask] for v in views if v.visibility_mask.any()]
    fallback = np.concatenate(seen).mean(0) if seen else np.full(3, 127.5)
    colors = np.where(count[:, None] > 0, total / np.maximum(count, 1)[:, None], fallback)
    return np.clip(np.round(colors), 0, 255).astype(np.uint8)


class VisualHull(Adapter):
    """Occlusion-aware visual hull with free-space carving from visible depth (see module doc)."""

    name = "visual-hull"

    def __init__(self, resolution: int = RESOLUTION, free_space: bool = True,
                 margin_voxels: float = FREE_SPACE_MARGIN,
                 color_tolerance_voxels: float = COLOR_DEPTH_TOLERANCE, centred: bool = CENTRED):
        self.resolution = int(resolution)
        self.centred = bool(centred)
        self.free_space = bool(free_space)
        self.margin_voxels = float(margin_voxels)
        self.color_tolerance_voxels = float(color_tolerance_voxels)

    def generate(self, case: AmodalCase) -> Generation:
        meta = {"resolution": self.resolution, "free_space": self.free_space,
                "free_space_margin_voxels": self.margin_voxels,
                "color_tolerance_voxels": self.color_tolerance_voxels, "centred": self.centred}
        views = list(case.views)
        if not any((v.visibility_mask | v.occlusion_mask).any() for v in views):
            return Generation(None, {**meta, "reason": "no object pixels in any view"})
        occ = carve(views, self.resolution, self.free_space, self.margin_voxels)
        if self.centred:
            occ = clip_to_centred_box(occ)
        if not occ.any():
            return Generation(None, {**meta, "reason": "every voxel was carved: empty hull"})
        if occ.all():
            return Generation(None, {**meta, "reason": "no view carves anything (no background, "
                                                       "no visible depth): the hull is the cube"})
        verts, faces = mesh_occupancy(occ)
        if len(faces) == 0:
            return Generation(None, {**meta, "reason": "marching cubes found no surface"})
        tol = self.color_tolerance_voxels * 2 * HALF_EXTENT / self.resolution
        colors = vertex_colors(verts, views, tol)
        meta["occupied_voxels"] = int(occ.sum())
        return Generation(Mesh(verts, faces, vertex_colors=colors), meta)
