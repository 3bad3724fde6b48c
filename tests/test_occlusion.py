"""bench.cases.occlusion: face adjacency, region growing to a target ratio, per-view masks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import trimesh
from scipy.sparse.csgraph import connected_components

from bench.cases.occlusion import face_adjacency, face_areas, grow_occlusion, view_masks
from bench.inputs.assets import Mesh


def _mesh(tm: trimesh.Trimesh) -> Mesh:
    return Mesh(np.asarray(tm.vertices), np.asarray(tm.faces))


@pytest.fixture(scope="module")
def ico() -> Mesh:
    return _mesh(trimesh.creation.icosphere(subdivisions=3))  # 1280 faces, closed, connected


def _adjacency_matrix(mesh: Mesh) -> sp.csr_matrix:
    indptr, nbrs = face_adjacency(mesh)
    n = len(mesh.faces)
    return sp.csr_matrix((np.ones(len(nbrs)), nbrs, indptr), shape=(n, n))


def _n_components(adj: sp.csr_matrix, faces: np.ndarray) -> int:
    sub = adj[faces][:, faces]
    return connected_components(sub, directed=False)[0]


RATIOS = [0.0, 0.1, 0.4, 0.5, 0.55, 0.6, 1 / 3, 0.999, 1.0]


# ---------------------------------------------------------------------------- ratio, by faces


def _check_faces_ratio(mesh: Mesh, ratio: float, seed: int) -> np.ndarray:
    occ = grow_occlusion(mesh, ratio, np.random.default_rng(seed), by="faces")
    assert occ.dtype == bool and occ.shape == (len(mesh.faces),)
    covered, target = int(occ.sum()), ratio * len(mesh.faces)
    # reference: 3d_mask_render.py's count, num_black_faces = int(num_faces * mask_ratio)
    assert covered <= target < covered + 1
    assert covered == int(len(mesh.faces) * ratio)
    return occ


@pytest.mark.parametrize("ratio", RATIOS)
def test_faces_ratio_exact_icosphere(ico, ratio):
    _check_faces_ratio(ico, ratio, seed=7)


@pytest.mark.gso
@pytest.mark.parametrize("ratio", [0.05, 0.4, 0.6, 0.9])
def test_faces_ratio_exact_real_mesh(small_gso_mesh, ratio):
    _check_faces_ratio(small_gso_mesh, ratio, seed=3)


# ---------------------------------------------------------------------------- ratio, by area


def _check_area_ratio(mesh: Mesh, ratio: float, seed: int) -> None:
    occ = grow_occlusion(mesh, ratio, np.random.default_rng(seed), by="area")
    areas = face_areas(mesh)
    covered, target = areas[occ].sum(), ratio * areas.sum()
    # reference: face areas recomputed here; covered >= target up to summation-order rounding
    # (1e-12 relative), and over by less than one face's area (the last face added)
    assert covered >= target * (1 - 1e-12)
    if ratio > 0:
        assert covered - target < areas[occ].max()
    else:
        assert not occ.any()


@pytest.mark.parametrize("ratio", RATIOS)
def test_area_ratio_icosphere(ico, ratio):
    _check_area_ratio(ico, ratio, seed=11)


@pytest.mark.gso
@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.6])
def test_area_ratio_real_mesh(small_gso_mesh, ratio):
    _check_area_ratio(small_gso_mesh, ratio, seed=5)


def test_face_areas_analytic(quad_mesh):
    # unit quad split in two right triangles: 0.5 each (analytic; tolerance 1e-12)
    np.testing.assert_allclose(face_areas(quad_mesh), [0.5, 0.5], atol=1e-12)


# ---------------------------------------------------------------------------- determinism


def test_same_seed_same_mask_different_seed_different(ico):
    a = grow_occlusion(ico, 0.5, np.random.default_rng(123))
    b = grow_occlusion(ico, 0.5, np.random.default_rng(123))
    c = grow_occlusion(ico, 0.5, np.random.default_rng(124))
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    assert a.sum() == c.sum()  # both hit the same exact count


# ---------------------------------------------------------------------------- connectivity


@pytest.mark.parametrize("ratio", [0.05, 0.4, 0.6, 0.95])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_region_connected_icosphere(ico, ratio, seed):
    occ = grow_occlusion(ico, ratio, np.random.default_rng(seed))
    # reference: scipy connected_components on the adjacency restricted to occluded faces
    assert _n_components(_adjacency_matrix(ico), np.flatnonzero(occ)) == 1


@pytest.mark.gso
@pytest.mark.parametrize("ratio", [0.4, 0.6])
def test_region_connected_real_mesh(small_gso_mesh, ratio):
    adj = _adjacency_matrix(small_gso_mesh)
    assert connected_components(adj, directed=False)[0] == 1  # precondition: mesh is connected
    for seed in range(3):
        occ = grow_occlusion(small_gso_mesh, ratio, np.random.default_rng(seed))
        assert _n_components(adj, np.flatnonzero(occ)) == 1


def test_growth_restarts_on_disconnected_mesh():
    # two disjoint spheres of 320 faces each; 75 % of faces must exhaust one sphere and
    # continue on the other (restart from a new random seed face)
    s = trimesh.creation.icosphere(subdivisions=2)
    two = Mesh(np.r_[s.vertices, s.vertices + [3, 0, 0]], np.r_[s.faces, s.faces + len(s.vertices)])
    nf = len(s.faces)
    for seed in range(4):
        occ = grow_occlusion(two, 0.75, np.random.default_rng(seed))
        assert occ.sum() == int(0.75 * 2 * nf)  # exact (480: no rounding)
        per_sphere = sorted([occ[:nf].sum(), occ[nf:].sum()])
        assert per_sphere == [0.75 * 2 * nf - nf, nf]
        adj = _adjacency_matrix(two)
        half = slice(0, nf) if occ[:nf].sum() < nf else slice(nf, 2 * nf)
        part = np.flatnonzero(occ[half]) + half.start
        assert _n_components(adj, part) == 1


# ---------------------------------------------------------------------------- adjacency


def test_icosphere_adjacency_three_neighbours(ico):
    indptr, nbrs = face_adjacency(ico)
    counts = np.diff(indptr)
    assert len(indptr) == len(ico.faces) + 1
    np.testing.assert_array_equal(counts, 3)
    adj = _adjacency_matrix(ico)
    assert (adj != adj.T).nnz == 0  # symmetric
    assert adj.diagonal().sum() == 0  # no face is its own neighbour
    # reference: trimesh.graph.face_adjacency on the same (merged) mesh; exact pair sets
    ref = trimesh.Trimesh(ico.vertices, ico.faces, process=False).face_adjacency
    ref = {tuple(p) for p in np.sort(ref, axis=1)}
    rows = np.repeat(np.arange(len(ico.faces)), counts)
    ours = {tuple(p) for p in np.sort(np.c_[rows, nbrs], axis=1)}
    assert ours == ref


def test_adjacency_merges_uv_seam_duplicates():
    box = trimesh.creation.box()
    # every face gets its own three vertices, as UV seams do in OBJ files
    v = box.vertices[box.faces].reshape(-1, 3)
    f = np.arange(len(v)).reshape(-1, 3)
    split = Mesh(v, f)
    # control: by vertex index, no two faces share an edge at all
    assert len(np.unique(f)) == 3 * len(f)
    indptr, nbrs = face_adjacency(split)
    np.testing.assert_array_equal(np.diff(indptr), 3)
    # same neighbour lists as the merged cube (exact)
    indptr_m, nbrs_m = face_adjacency(_mesh(box))
    np.testing.assert_array_equal(indptr, indptr_m)
    np.testing.assert_array_equal(nbrs, nbrs_m)


def test_mesh_vertex_adjacency_stops_at_uv_seams():
    # the public script's adjacency (vertex indices of the exported mesh): a cube whose faces
    # are all split apart has no neighbours, so every chosen face is a new start face
    box = trimesh.creation.box()
    v = box.vertices[box.faces].reshape(-1, 3)
    split = Mesh(v, np.arange(len(v)).reshape(-1, 3))
    indptr, _ = face_adjacency(split, "mesh-vertices")
    np.testing.assert_array_equal(np.diff(indptr), 0)
    # the unsplit cube: same pairs either way
    for kind in ("merged", "mesh-vertices"):
        np.testing.assert_array_equal(np.diff(face_adjacency(_mesh(box), kind)[0]), 3)
    with pytest.raises(ValueError, match="adjacency"):
        face_adjacency(split, "positions")


def test_one_start_face_gives_one_region_until_the_piece_is_used_up(ico):
    # the public script grows from ONE start face: on a connected mesh the region is connected
    for seed in range(5):
        occ = grow_occlusion(ico, 0.37, np.random.default_rng(seed), adjacency="mesh-vertices")
        assert occ.sum() == int(0.37 * len(ico.faces))
        assert _n_components(_adjacency_matrix(ico), np.flatnonzero(occ)) == 1


def test_region_grows_across_uv_seams():
    box = trimesh.creation.box()
    v = box.vertices[box.faces].reshape(-1, 3)
    split = Mesh(v, np.arange(len(v)).reshape(-1, 3))
    occ = grow_occlusion(split, 0.5, np.random.default_rng(0))
    assert occ.sum() == 6
    assert _n_components(_adjacency_matrix(split), np.flatnonzero(occ)) == 1


# ---------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("ratio", [-0.1, 1.0001, 2.0, float("nan")])
def test_bad_ratio_raises(ico, ratio):
    with pytest.raises(ValueError, match="ratio"):
        grow_occlusion(ico, ratio, np.random.default_rng(0))


@pytest.mark.parametrize("by", ["volume", "Faces", ""])
def test_bad_by_raises(ico, by):
    with pytest.raises(ValueError, match="'by'"):
        grow_occlusion(ico, 0.5, np.random.default_rng(0), by=by)


# ---------------------------------------------------------------------------- view masks


def test_view_masks_hand_made():
    face_id = np.array([[-1, 0, 1], [2, 2, -1]])
    occluded = np.array([False, True, True])
    vis, occ = view_masks(face_id, occluded)
    np.testing.assert_array_equal(vis, [[False, True, False], [False, False, False]])
    np.testing.assert_array_equal(occ, [[False, False, True], [True, True, False]])


@pytest.mark.parametrize("shape", [(16, 24), (3, 16, 24)])
def test_view_masks_partition_silhouette(shape):
    rng = np.random.default_rng(0)
    face_id = rng.integers(-1, 50, size=shape)
    occluded = rng.random(50) < 0.4
    vis, occ = view_masks(face_id, occluded)
    sil = face_id >= 0
    assert vis.dtype == bool and occ.dtype == bool and vis.shape == shape
    assert not (vis & occ).any()  # disjoint
    np.testing.assert_array_equal(vis | occ, sil)  # union is the silhouette
    # occlusion is exactly the pixels whose front-most face is occluded (reference: lookup here)
    expected = np.zeros(shape, bool)
    expected[sil] = occluded[face_id[sil]]
    np.testing.assert_array_equal(occ, expected)
    assert vis.any() and occ.any()
