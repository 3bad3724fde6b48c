"""`visual-hull`: occlusion-aware space carving from the input views, on the CPU.

The classical amodal baseline: the object is whatever the input views cannot rule out, plus two
documented priors (centred box, symmetry) for the space no view observes.

Grid: RESOLUTION^3 voxels tiling the object cube [-0.5, 0.5]^3 (TRELLIS frame). A voxel is tested
by its centre only: the centre's projection picks one pixel of each view (pixel j covers
[j, j + 1)), which places the surface within half a voxel of a full-footprint test; each view is a
few vectorized numpy operations over the voxels still occupied (no Python loop over voxels).

1. Carving, per view (carve_view). A voxel whose centre projects inside the image:
   - background pixel (neither visibility_mask nor occlusion_mask): the ray meets no object, carve;
   - occluded pixel (occlusion_mask): never carved by that view, the occluder hides what is there;
   - visible pixel, free-space carving (`free_space`, on by default): the ray's first surface is
     at the observed depth d, so a voxel with camera z < d - margin is in front of it and empty;
     voxels at or behind d - margin are kept. The margin (FREE_SPACE_MARGIN voxels) absorbs the
     centre test (the voxel centre's ray and its pixel centre's ray differ by under a pixel).
   A voxel projecting outside the image is not carved by that view, unless the view's silhouette
   (visible | occluded) does not touch the image border: then the whole object is in the frame
   and everything projecting outside it is empty.
2. Centred box (`centred`, on by default): the harness's frame centres the object's bounding box
   at the origin (bench.inputs.assets.normalize_mesh), so the object's half-extent along an axis is at
   most min(-lo, hi) of the hull's extent [lo, hi]; voxels beyond it are removed.
3. Symmetry (`symmetry`, "rot180z" by default): a voxel that no view observes (every view has it
   behind a visible surface, under an occluded pixel or out of frame: it is not within
   SURFACE_BAND voxels of any observed depth) is removed when its counterpart under the symmetry
   was carved by observation in step 1. "rot180z" is the half-turn about the vertical axis through
   the box centre, (x, y, z) -> (-x, -y, z), independent of the object's yaw; "mirror-xy" removes
   it when its mirror image in x = 0 or in y = 0 was carved (stronger: assumes an axis-aligned,
   two-plane symmetric object); "none" keeps every unobserved voxel (the plain hull).

The kept voxels are meshed by marching cubes on the zero-padded occupancy at level 0.5 (closed,
outward-facing, half-way between kept and carved voxel centres). Vertex colours come from the views
that see the vertex: its pixel is visible and |camera z - observed depth| is within
COLOR_DEPTH_TOLERANCE voxels; the accepted colours are averaged. A vertex no view sees (occluded,
the back, the bottom) gets the mean visible colour of the case.
"""

from __future__ import annotations

import numpy as np

from bench.cases.case import AmodalCase, InputView
from bench.inputs.assets import Mesh
from bench.methods.adapter import Adapter, Generation

RESOLUTION = 128  # voxels per side of the [-0.5, 0.5]^3 cube
FREE_SPACE_MARGIN = 2.0  # voxels: carve only voxels this far in front of the observed depth
SURFACE_BAND = 3.0  # voxels: a voxel this close to an observed depth is observed (kept by symmetry)
COLOR_DEPTH_TOLERANCE = 4.0  # voxels: a vertex is seen by a view when its depth matches this well
CENTRED = True  # clip to the origin-centred box the hull allows (clip_to_centred_box)
SYMMETRY = "rot180z"  # prior for unobserved voxels: "none", "rot180z" or "mirror-xy"
SYMMETRIES = ("none", "rot180z", "mirror-xy")
HALF_EXTENT = 0.5  # the object cube of the TRELLIS frame


def voxel_centres(resolution: int) -> np.ndarray:
    """(R,) voxel centre coordinates along one axis of [-0.5, 0.5]."""
    return -HALF_EXTENT + (np.arange(resolution) + 0.5) / resolution * 2 * HALF_EXTENT


def _grid(resolution: int) -> np.ndarray:
    """(R^3, 3) float64 voxel centres, flattened in [x, y, z] index order."""
    c = voxel_centres(resolution)
    return np.stack(np.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)


def _project_cells(view: InputView, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 3) world points -> (flat pixel index (N,), camera z (N,), inside (N,) bool).

    inside: in front of the camera and the projection falls in the image; pixel index is 0 where
    not inside."""
    cam = view.camera
    with np.errstate(invalid="ignore", divide="ignore"):
        uv, z = cam.project(points)
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
    `free_space` and the point's camera z < observed depth - margin (world units); outside the
    image -> empty only when the silhouette does not touch the border."""
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
    grid = _grid(resolution)
    alive = np.arange(len(grid))
    margin = margin_voxels * 2 * HALF_EXTENT / resolution
    for view in views:
        empty = carve_view(view, grid[alive], free_space, margin)
        alive = alive[~empty]
        if len(alive) == 0:
            break
    occ = np.zeros(len(grid), bool)
    occ[alive] = True
    return occ.reshape(resolution, resolution, resolution)


def observed_surface(views: list[InputView], occ: np.ndarray,
                     band_voxels: float = SURFACE_BAND) -> np.ndarray:
    """(R, R, R) bool: occupied voxels within band_voxels of the observed depth of some view whose
    pixel at the voxel is visible, i.e. voxels some view actually sees."""
    r = occ.shape[0]
    idx = np.flatnonzero(occ.reshape(-1))
    pts = voxel_centres(r)[np.stack(np.unravel_index(idx, occ.shape), 1)]
    band = band_voxels * 2 * HALF_EXTENT / r
    seen = np.zeros(len(idx), bool)
    for view in views:
        pix, z, inside = _project_cells(view, pts)
        vis = view.visibility_mask.reshape(-1)[pix]
        depth = view.depth.reshape(-1)[pix]
        seen |= inside & vis & (depth > 0) & (np.abs(z - depth) <= band)
    out = np.zeros(occ.size, bool)
    out[idx] = seen
    return out.reshape(occ.shape)


def apply_symmetry(occ: np.ndarray, observed: np.ndarray, symmetry: str = SYMMETRY) -> np.ndarray:
    """Remove the unobserved voxels (occupied, not `observed`) whose symmetric counterpart is
    empty in `occ` (carved by observation). The grid is symmetric about 0, so the counterpart of
    index i along a flipped axis is R - 1 - i."""
    if symmetry not in SYMMETRIES:
        raise ValueError(f"unknown symmetry {symmetry!r}; valid: {', '.join(SYMMETRIES)}")
    if symmetry == "none":
        return occ
    empty = ~occ
    if symmetry == "rot180z":
        counterpart_empty = empty[::-1, ::-1, :]
    else:  # mirror-xy
        counterpart_empty = empty[::-1, :, :] | empty[:, ::-1, :]
    return occ & ~(~observed & counterpart_empty)


def clip_to_centred_box(occ: np.ndarray, max_iterations: int = 8) -> np.ndarray:
    """Remove voxels outside the largest origin-centred box the object can fill.

    The harness's frame centres the object's bounding box at the origin (TRELLIS normalization,
    bench.inputs.assets.normalize_mesh), and the hull contains the object, so along each axis the object
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
        ok = inside & vis & (depth > 0) & (np.abs(z - depth) < tolerance)
        total[ok] += view.rgb.reshape(-1, 3)[pix[ok]]
        count[ok] += 1
    seen = [v.rgb[v.visibility_mask] for v in views if v.visibility_mask.any()]
    fallback = np.concatenate(seen).mean(0) if seen else np.full(3, 127.5)
    colors = np.where(count[:, None] > 0, total / np.maximum(count, 1)[:, None], fallback)
    return np.clip(np.round(colors), 0, 255).astype(np.uint8)


class VisualHull(Adapter):
    """Occlusion-aware visual hull with free-space carving from visible depth, a centred-box clip
    and a symmetry prior for unobserved space (see the module docstring)."""

    name = "visual-hull"

    def __init__(self, resolution: int = RESOLUTION, free_space: bool = True,
                 margin_voxels: float = FREE_SPACE_MARGIN, centred: bool = CENTRED,
                 symmetry: str = SYMMETRY, surface_band_voxels: float = SURFACE_BAND,
                 color_tolerance_voxels: float = COLOR_DEPTH_TOLERANCE):
        if symmetry not in SYMMETRIES:
            raise ValueError(f"unknown symmetry {symmetry!r}; valid: {', '.join(SYMMETRIES)}")
        self.resolution = int(resolution)
        self.free_space = bool(free_space)
        self.margin_voxels = float(margin_voxels)
        self.centred = bool(centred)
        self.symmetry = symmetry
        self.surface_band_voxels = float(surface_band_voxels)
        self.color_tolerance_voxels = float(color_tolerance_voxels)

    def generate(self, case: AmodalCase) -> Generation:
        meta = {"resolution": self.resolution, "free_space": self.free_space,
                "free_space_margin_voxels": self.margin_voxels, "centred": self.centred,
                "symmetry": self.symmetry, "surface_band_voxels": self.surface_band_voxels,
                "color_tolerance_voxels": self.color_tolerance_voxels}
        views = list(case.views)
        if not any((v.visibility_mask | v.occlusion_mask).any() for v in views):
            return Generation(None, {**meta, "reason": "no object pixels in any view"})
        occ = carve(views, self.resolution, self.free_space, self.margin_voxels)
        if not occ.any():
            return Generation(None, {**meta, "reason": "every voxel was carved: empty hull"})
        if occ.all():
            return Generation(None, {**meta, "reason": "no view carves anything (no background, no "
                                                       "visible depth): the hull is the whole cube"})
        if self.symmetry != "none":
            observed = observed_surface(views, occ, self.surface_band_voxels)
            occ = apply_symmetry(occ, observed, self.symmetry)
        if self.centred:
            occ = clip_to_centred_box(occ)
        if not occ.any():
            return Generation(None, {**meta, "reason": "the priors removed every voxel: empty hull"})
        verts, faces = mesh_occupancy(occ)
        tol = self.color_tolerance_voxels * 2 * HALF_EXTENT / self.resolution
        colors = vertex_colors(verts, views, tol)
        meta["occupied_voxels"] = int(occ.sum())
        return Generation(Mesh(verts, faces, vertex_colors=colors), meta)
