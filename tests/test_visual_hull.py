"""The `visual-hull` baseline: occlusion-aware carving, free space, priors, colours, real cases."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

from baselines.visual_hull import (
    VisualHull,
    apply_symmetry,
    carve,
    carve_view,
    clip_to_centred_box,
    vertex_colors,
    voxel_centres,
)
from bench.cases.case import AmodalCase, InputView
from bench.cases.occlusion import view_masks
from bench.inputs.assets import Mesh
from bench.inputs.cameras import camera_from_yaw_pitch
from bench.methods.registry import get_adapter
from bench.render import render

RES = 64  # voxels per side in the synthetic tests (the adapter's default is 128)
VOXEL = 1.0 / RES
SPHERE_RADIUS = 0.3
YAWS4 = [20.0, 110.0, 200.0, 290.0]


def _sphere(colors: np.ndarray | None = None) -> Mesh:
    s = trimesh.creation.icosphere(subdivisions=3, radius=SPHERE_RADIUS)
    if colors is None:
        colors = np.full((len(s.vertices), 3), 180, np.uint8)
    return Mesh(s.vertices, s.faces, vertex_colors=colors)


def _case(mesh: Mesh, yaws: list[float], occluded: np.ndarray | None = None,
          resolution: int = 160) -> AmodalCase:
    """An AmodalCase rendered as bench.cases.case builds one: occluded faces -> black pixels."""
    if occluded is None:
        occluded = np.zeros(len(mesh.faces), bool)
    cams = [camera_from_yaw_pitch(y, 30.0, 2.0, 40.0, resolution) for y in yaws]
    r = render(mesh, cams, "white")
    views = []
    for i, (cam, yaw) in enumerate(zip(cams, yaws)):
        vis, occ = view_masks(r.face_id[i], occluded)
        rgb = r.rgb[i].copy()
        rgb[occ] = 0.0
        views.append(InputView(cam, np.round(rgb * 255).astype(np.uint8), vis, occ,
                               np.where(vis, r.depth[i], 0).astype(np.float32), yaw, 30.0))
    return AmodalCase("synthetic", "test", "", len(views), 0, views, "white", 0.0)


def _gt_points(mesh: Mesh, n: int = 3000) -> np.ndarray:
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    return np.asarray(trimesh.sample.sample_surface(tm, n, seed=0)[0])


def _hull_distance(occ: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance of each point to the nearest occupied voxel centre, in voxels (0.5 or less: the
    point is inside an occupied voxel's sphere)."""
    c = voxel_centres(occ.shape[0])
    centres = c[np.argwhere(occ)]
    return cKDTree(centres).query(points)[0] * occ.shape[0]


def _occupancy(case: AmodalCase, **kw) -> np.ndarray:
    """The adapter's occupancy (carving plus its priors), for checks on the voxels."""
    from baselines.visual_hull import observed_surface

    hull = VisualHull(resolution=RES, **kw)
    occ = carve(case.views, RES, hull.free_space, hull.margin_voxels)
    if hull.symmetry != "none":
        occ = apply_symmetry(occ, observed_surface(case.views, occ, hull.surface_band_voxels),
                             hull.symmetry)
    return clip_to_centred_box(occ) if hull.centred else occ


def _mesh_volume(mesh: Mesh) -> float:
    v = mesh.vertices.astype(np.float64)
    f = mesh.faces
    return float(np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6)


@pytest.fixture(scope="module")
def sphere_case4() -> AmodalCase:
    return _case(_sphere(), YAWS4)


@pytest.mark.parametrize("kw", [{}, {"symmetry": "none", "centred": False}, {"free_space": False}])
def test_unoccluded_hull_contains_the_sphere_and_is_bounded(sphere_case4, kw):
    occ = _occupancy(sphere_case4, **kw)
    d = _hull_distance(occ, _gt_points(_sphere()))
    assert d.max() < 1.5  # every GT surface point lies in the hull (up to the centre test)
    sphere_volume = 4 / 3 * np.pi * SPHERE_RADIUS ** 3
    hull_volume = occ.sum() * VOXEL ** 3
    assert sphere_volume * 0.95 < hull_volume < sphere_volume * 2.0


def test_adapter_mesh_is_closed_outward_and_near_the_sphere(sphere_case4):
    gen = VisualHull(resolution=RES).generate(sphere_case4)
    gen.mesh.validate()
    assert gen.meta["resolution"] == RES and gen.meta["free_space"] is True
    assert "free_space_margin_voxels" in gen.meta
    sphere_volume = 4 / 3 * np.pi * SPHERE_RADIUS ** 3
    assert sphere_volume * 0.95 < _mesh_volume(gen.mesh) < sphere_volume * 2.0  # > 0: outward
    r = np.linalg.norm(gen.mesh.vertices, axis=1)
    assert r.min() > SPHERE_RADIUS - 2 * VOXEL  # nothing carved into the sphere
    assert np.abs(gen.mesh.vertices).max() <= 0.5 + VOXEL


def test_occluded_region_is_not_carved():
    # a cap of the sphere (x > 0.1) is occluded in every view (3D-consistent occlusion): the hull
    # still covers the GT points of the cap, with one view and with two
    mesh = _sphere()
    centres = mesh.vertices[mesh.faces].mean(1)
    occluded = centres[:, 0] > 0.1
    cap = _gt_points(mesh)
    cap = cap[cap[:, 0] > 0.12]
    for yaws in ([60.0], [60.0, 130.0]):
        case = _case(mesh, yaws, occluded)
        assert any(v.occlusion_mask.sum() > 500 for v in case.views)
        for kw in ({}, {"symmetry": "none", "centred": False}):
            assert _hull_distance(_occupancy(case, **kw), cap).max() < 1.5


def _flat_view(res: int = 64) -> InputView:
    """A camera at yaw 0 (on +y, looking at the origin), all background."""
    cam = camera_from_yaw_pitch(0.0, 0.0, 2.0, 40.0, res)
    z = np.zeros((res, res), bool)
    return InputView(cam, np.full((res, res, 3), 255, np.uint8), z.copy(), z.copy(),
                     np.zeros((res, res), np.float32), 0.0, 0.0)


def _ray_points(view: InputView, pixel: tuple[int, int], depths: np.ndarray) -> np.ndarray:
    """World points on the ray through the centre of pixel (row, col), at the given camera z."""
    k = view.camera.intrinsics
    v, u = pixel
    pc = np.stack([(u + 0.5 - k[0, 2]) / k[0, 0] * depths, (v + 0.5 - k[1, 2]) / k[1, 1] * depths,
                   depths], 1)
    r, t = view.camera.extrinsics[:3, :3], view.camera.extrinsics[:3, 3]
    return (pc - t) @ r


def test_occluded_pixels_are_never_carved_background_always_is():
    view = _flat_view()
    view.occlusion_mask[20:44, 20:44] = True  # the occluder covers the middle of the image
    depths = np.linspace(1.5, 2.5, 11)
    inside = _ray_points(view, (30, 30), depths)
    outside = _ray_points(view, (5, 5), depths)
    assert not carve_view(view, inside).any()  # whatever the depth: the occluder hides it
    assert carve_view(view, outside).all()
    # with every view occluding the same region, voxels projecting there survive all views
    occ = carve([view], RES)
    c = voxel_centres(RES)
    centre = np.array([[c[RES // 2], c[RES // 2], c[RES // 2]]])
    assert carve_view(view, centre).sum() == 0 and occ[RES // 2, RES // 2, RES // 2]


def test_out_of_frame_points_are_carved_only_when_the_object_is_in_frame():
    view = _flat_view()
    view.occlusion_mask[20:44, 20:44] = True
    far_side = np.array([[1.5, 0.0, 0.0]])  # projects outside the 40 degree frame
    assert carve_view(view, far_side).all()  # silhouette inside the frame: outside is empty
    view.occlusion_mask[:, 0] = True  # the silhouette touches the border: may continue outside
    assert not carve_view(view, far_side).any()


def test_free_space_carves_in_front_of_the_depth_never_behind():
    view = _flat_view()
    view.visibility_mask[20:44, 20:44] = True
    view.depth[20:44, 20:44] = 2.0
    margin = 2.0 / RES
    depths = np.array([1.5, 2.0 - 1.5 * margin, 2.0 - 0.5 * margin, 2.0, 2.1, 2.5])
    pts = _ray_points(view, (30, 30), depths)
    assert carve_view(view, pts, free_space=True, margin=margin).tolist() == [
        True, True, False, False, False, False]
    assert not carve_view(view, pts, free_space=False).any()
    # on the sphere: free-space carving only removes voxels, and none on or inside the surface
    case = _case(_sphere(), [45.0])
    with_fs = carve(case.views, RES, free_space=True)
    without = carve(case.views, RES, free_space=False)
    assert with_fs.sum() < without.sum() and not (with_fs & ~without).any()
    assert _hull_distance(with_fs, _gt_points(_sphere())).max() < 1.5


def test_symmetry_removes_only_unobserved_voxels_with_an_empty_counterpart():
    occ = np.zeros((4, 4, 4), bool)
    occ[0, 0, 1] = occ[3, 3, 1] = True  # a pair of half-turn counterparts, both kept
    occ[0, 1, 2] = True  # counterpart [3, 2, 2] is empty: removed unless observed
    occ[1, 0, 3] = True  # counterpart [2, 3, 3] is empty but the voxel is observed: kept
    observed = np.zeros_like(occ)
    observed[1, 0, 3] = True
    out = apply_symmetry(occ, observed, "rot180z")
    assert out[0, 0, 1] and out[3, 3, 1] and out[1, 0, 3] and not out[0, 1, 2]
    assert (apply_symmetry(occ, observed, "none") == occ).all()
    with pytest.raises(ValueError, match="rot180z"):
        apply_symmetry(occ, observed, "spin")


def test_centred_box_clip_uses_the_hull_extent():
    occ = np.zeros((8, 8, 8), bool)
    occ[2:8, 3:5, 3:5] = True  # x extent [-0.25, 0.5]: the object spans at most [-0.25, 0.25]
    out = clip_to_centred_box(occ)
    # the first carved centre (-0.3125) bounds the object: |x| <= 0.3125 is kept (centre test)
    assert out[2:7, 3:5, 3:5].all() and not out[7:].any()
    assert (clip_to_centred_box(out) == out).all()


def test_colours_come_from_the_visible_pixels():
    s = trimesh.creation.icosphere(subdivisions=3, radius=SPHERE_RADIUS)
    colors = np.where(s.vertices[:, :1] > 0, [[230, 20, 20]], [[20, 20, 230]]).astype(np.uint8)
    case = _case(_sphere(colors), YAWS4)
    mesh = VisualHull(resolution=RES).generate(case).mesh
    assert mesh.vertex_colors.dtype == np.uint8 and mesh.vertex_colors.shape == mesh.vertices.shape
    v, col = mesh.vertices, mesh.vertex_colors.astype(int)
    upper = v[:, 2] > -0.1  # the views look down at 30 degrees: the bottom is never seen
    red = col[upper & (v[:, 0] > 0.1)]
    blue = col[upper & (v[:, 0] < -0.1)]
    assert (red[:, 0] > red[:, 2] + 100).mean() > 0.95
    assert (blue[:, 2] > blue[:, 0] + 100).mean() > 0.95


def test_unseen_vertices_get_the_mean_visible_colour():
    view = _flat_view()
    view.visibility_mask[20:44, 20:44] = True
    view.depth[20:44, 20:44] = 2.0
    view.rgb[20:44, 20:32] = [240, 0, 0]  # left half red, right half blue: the mean is purple
    view.rgb[20:44, 32:44] = [0, 0, 240]
    pts = np.concatenate([_ray_points(view, (30, 25), np.array([2.0, 2.3])),
                          _ray_points(view, (30, 40), np.array([2.0]))])
    col = vertex_colors(pts.astype(np.float32), [view], 2.0 / RES)
    assert col.tolist() == [[240, 0, 0], [120, 0, 120], [0, 0, 240]]  # behind the surface: mean


def test_empty_inputs_yield_no_mesh():
    background = AmodalCase("empty", "test", "", 1, 0, [_flat_view()], "white", 0.0)
    gen = VisualHull(resolution=RES).generate(background)
    assert gen.mesh is None and "no object pixels" in gen.meta["reason"]
    occluded = _flat_view()
    occluded.occlusion_mask[:] = True  # no visible pixel and no background: nothing to carve
    gen = VisualHull(resolution=RES).generate(
        AmodalCase("occluded", "test", "", 1, 0, [occluded], "white", 0.0))
    assert gen.mesh is None and "no view carves anything" in gen.meta["reason"]


def test_unknown_symmetry_is_rejected_and_registered():
    with pytest.raises(ValueError, match="valid: none, rot180z, mirror-xy"):
        VisualHull(symmetry="spin")
    assert isinstance(get_adapter("visual-hull"), VisualHull)


def test_real_gso_case(gso_root):
    import time

    from conftest import SMALL_GSO_OBJECT

    from bench.cases.case import build_case
    from bench.inputs.dataset import open_dataset
    from bench.inputs.protocol import load_protocol

    asset = open_dataset("gso", gso_root).load(SMALL_GSO_OBJECT)
    case = build_case(asset, load_protocol("amodal3r-gso"), 2)
    t0 = time.perf_counter()
    gen = VisualHull().generate(case)
    assert time.perf_counter() - t0 < 20  # a few seconds at 128^3 (generous for slow CI)
    gen.mesh.validate()
    assert gen.meta["resolution"] == 128 and gen.meta["occupied_voxels"] > 0
    assert np.abs(gen.mesh.vertices).max() <= 0.5 + 1 / 128
    # the hull rendered from the input cameras covers the input silhouettes
    r = render(gen.mesh, [v.camera for v in case.views], case.background)
    for i, v in enumerate(case.views):
        sil = v.visibility_mask | v.occlusion_mask
        assert (r.face_id[i][sil] >= 0).mean() > 0.97
