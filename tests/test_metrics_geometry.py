"""bench.metrics.geometry: Chamfer L2 and PointFlow's COV / MMD."""

from __future__ import annotations

import numpy as np
import pytest

from bench.metrics.geometry import chamfer_l2, coverage_mmd, distance_matrix


def _brute_chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Chamfer L2 from the full pairwise squared-distance matrix (float64)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return float(d.min(1).mean() + d.min(0).mean())


def _brute_cov_mmd(gen, ref) -> tuple[float, float]:
    """PointFlow (metrics/evaluation_metrics.py) written out: M[i, j] = CD(gen i, ref j);
    COV = |unique(argmin_j M[i, j])| / N_ref; MMD = mean_j min_i M[i, j]."""
    m = np.array([[_brute_chamfer(g, r) for r in ref] for g in gen])
    matched = {int(np.argmin(m[i])) for i in range(len(gen))}
    return len(matched) / len(ref), float(np.mean([m[:, j].min() for j in range(len(ref))]))


def _cloud(rng, n, scale=1.0):
    return (rng.normal(size=(n, 3)) * scale).astype(np.float32)


# ---------------------------------------------------------------------------- Chamfer


@pytest.mark.parametrize(("n", "m", "seed"), [(1, 1, 0), (5, 300, 1), (257, 128, 2),
                                               (1000, 1000, 3)])
def test_chamfer_matches_brute_force(n, m, seed):
    rng = np.random.default_rng(seed)
    a, b = _cloud(rng, n), _cloud(rng, m, 0.8) + 0.3
    # reference: numpy pairwise distances; tolerance 1e-9 relative
    assert chamfer_l2(a, b) == pytest.approx(_brute_chamfer(a, b), rel=1e-9)
    assert chamfer_l2(b, a) == pytest.approx(chamfer_l2(a, b), rel=1e-12)  # symmetric


def test_chamfer_with_itself_is_zero():
    a = _cloud(np.random.default_rng(4), 500)
    assert chamfer_l2(a, a) == 0.0  # exact
    assert chamfer_l2(a, a[::-1].copy()) == 0.0  # order does not matter


def test_chamfer_analytic():
    # single points 0 and (t, 0, 0): t^2 each way -> 2 t^2 (analytic; tolerance 1e-15)
    t = 0.3
    assert chamfer_l2(np.zeros((1, 3)), np.array([[t, 0, 0]])) == pytest.approx(2 * t * t,
                                                                               abs=1e-15)
    # A = {0, (1,0,0)}, B = {0}: A->B mean(0, 1) = 0.5, B->A 0 -> 0.5 (analytic, exact)
    a = np.array([[0.0, 0, 0], [1, 0, 0]])
    assert chamfer_l2(a, np.zeros((1, 3))) == 0.5
    # a cloud and its translate by t along x, with spacing >> t: every NN is the shifted copy,
    # so CD = 2 |t|^2 (analytic; tolerance 1e-12)
    grid = np.stack(np.meshgrid(*[np.arange(3.0)] * 3), -1).reshape(-1, 3)
    assert chamfer_l2(grid, grid + [0.1, 0, 0]) == pytest.approx(0.02, abs=1e-12)
    assert chamfer_l2(grid, grid + [0.1, 0.2, 0]) == pytest.approx(2 * 0.05, abs=1e-12)


def test_chamfer_accepts_prebuilt_trees():
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(5)
    a, b = _cloud(rng, 100), _cloud(rng, 80)
    assert chamfer_l2(a, b, cKDTree(a), cKDTree(b)) == chamfer_l2(a, b)


def test_distance_matrix_matches_brute_force():
    rng = np.random.default_rng(6)
    gen = [_cloud(rng, 50 + 10 * i) for i in range(3)]
    ref = [_cloud(rng, 64, 1 + i) for i in range(4)]
    m = distance_matrix(gen, ref)
    assert m.shape == (3, 4)
    expected = np.array([[_brute_chamfer(g, r) for r in ref] for g in gen])
    np.testing.assert_allclose(m, expected, rtol=1e-9)  # brute force; 1e-9 relative


# ---------------------------------------------------------------------------- COV / MMD


@pytest.mark.parametrize(("n_gen", "n_ref", "seed"), [(5, 5, 0), (8, 3, 1), (3, 7, 2), (1, 4, 3)])
def test_coverage_mmd_matches_pointflow_reference(n_gen, n_ref, seed):
    rng = np.random.default_rng(seed)
    gen = [_cloud(rng, 64, rng.uniform(0.5, 2)) + rng.normal(size=3) for _ in range(n_gen)]
    ref = [_cloud(rng, 64, rng.uniform(0.5, 2)) + rng.normal(size=3) for _ in range(n_ref)]
    cov, mmd = coverage_mmd(gen, ref)
    ref_cov, ref_mmd = _brute_cov_mmd(gen, ref)
    # reference: PointFlow's definition written out above; COV exact, MMD 1e-9 relative
    assert cov == ref_cov
    assert mmd == pytest.approx(ref_mmd, rel=1e-9)
    assert 0 < cov <= 1


def test_coverage_mmd_identical_sets():
    rng = np.random.default_rng(7)
    shapes = [_cloud(rng, 64) + 3 * i for i in range(5)]
    cov, mmd = coverage_mmd(shapes, [s.copy() for s in shapes])
    assert cov == 1.0 and mmd == 0.0  # exact


def test_coverage_mmd_analytic_single_points():
    # Single-point clouds: CD(p, q) = 2 |p - q|^2.
    # gen = {0.1 x, 0.2 x}, ref = {0, 1.0 x}:
    #   M = [[2*0.01, 2*0.81], [2*0.04, 2*0.64]] = [[0.02, 1.62], [0.08, 1.28]]
    #   argmin per row: 0, 0 -> COV = 1/2; MMD = mean(min col 0, min col 1) = (0.02 + 1.28)/2
    gen = [np.array([[0.1, 0, 0]]), np.array([[0.2, 0, 0]])]
    ref = [np.zeros((1, 3)), np.array([[1.0, 0, 0]])]
    cov, mmd = coverage_mmd(gen, ref)
    assert cov == 0.5  # exact
    assert mmd == pytest.approx(0.65, abs=1e-12)  # analytic; 1e-12
    np.testing.assert_allclose(distance_matrix(gen, ref), [[0.02, 1.62], [0.08, 1.28]],
                               atol=1e-12)


def test_coverage_mmd_shifted_copies():
    # ref = K clouds far apart; gen = the same clouds translated by t (|t| << spacing, and the
    # cloud's own spacing >> |t|): each gen i matches ref i with CD = 2|t|^2, so COV = 1 and
    # MMD = 2|t|^2 (analytic; tolerance 1e-12)
    grid = np.stack(np.meshgrid(*[np.arange(3.0)] * 3), -1).reshape(-1, 3)
    ref = [grid + [10.0 * k, 0, 0] for k in range(4)]
    t = np.array([0.05, -0.1, 0.0])
    gen = [r + t for r in ref]
    cov, mmd = coverage_mmd(gen, ref)
    assert cov == 1.0
    assert mmd == pytest.approx(2 * (t @ t), abs=1e-12)
    # all generated shapes collapse on one reference: COV = 1/4
    cov, _ = coverage_mmd([ref[0] + t] * 4, ref)
    assert cov == 0.25


def test_coverage_mmd_edge_cases():
    ref = [np.zeros((4, 3))]
    with pytest.raises(ValueError, match="reference"):
        coverage_mmd([np.zeros((4, 3))], [])
    cov, mmd = coverage_mmd([], ref)
    assert cov == 0.0 and np.isnan(mmd)


# ---------------------------------------------------------------------------- exact pruning


def _shapes(rng, n, pts=600):
    """n dissimilar shapes: anisotropic Gaussian blobs at different offsets."""
    return [rng.normal(size=(pts, 3)) * rng.uniform(0.05, 0.4, 3) + rng.uniform(-0.2, 0.2, 3)
            for _ in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pruned_equals_full_matrix_exactly(seed):
    # reference: the unpruned full matrix (itself checked against brute force above);
    # pruning must not change COV or MMD at all (exact equality)
    rng = np.random.default_rng(seed)
    ref = _shapes(rng, 12)
    gen = [r * rng.uniform(0.8, 1.2, 3) + rng.normal(0, 0.02, r.shape) for r in ref[:9]]
    gen += _shapes(rng, 4)
    assert coverage_mmd(gen, ref, prune=True) == coverage_mmd(gen, ref, prune=False)
    assert coverage_mmd(gen, ref) == pytest.approx(_brute_cov_mmd(gen, ref), rel=1e-12)


def test_bounds_enclose_exact_chamfer():
    from bench.metrics.geometry import _Cloud, chamfer_bounds

    rng = np.random.default_rng(3)
    clouds = [_Cloud.build(c) for c in _shapes(rng, 6, pts=700)]
    lower, upper = chamfer_bounds(clouds[:3], clouds[3:])
    exact = distance_matrix([c.points for c in clouds[:3]], [c.points for c in clouds[3:]])
    assert (lower <= exact * (1 + 1e-12)).all() and (exact <= upper * (1 + 1e-12)).all()


def test_torch_backend_matches_kdtree():
    # reference: float64 torch.cdist brute force (PointFlow style); relative 1e-9
    from bench.metrics.geometry import chamfer_matrix_torch

    rng = np.random.default_rng(4)
    gen, ref = _shapes(rng, 5, 300), _shapes(rng, 4, 300)
    np.testing.assert_allclose(chamfer_matrix_torch(gen, ref), distance_matrix(gen, ref),
                               rtol=1e-9)
    assert coverage_mmd(gen, ref, backend="torch") == pytest.approx(coverage_mmd(gen, ref),
                                                                     rel=1e-9)


def test_permutation_invariance():
    rng = np.random.default_rng(5)
    gen, ref = _shapes(rng, 7), _shapes(rng, 6)
    base = coverage_mmd(gen, ref)
    perm_points = [g[rng.permutation(len(g))] for g in gen]
    assert coverage_mmd(perm_points, ref) == pytest.approx(base, rel=1e-12)
    assert coverage_mmd([gen[i] for i in rng.permutation(7)],
                        [ref[i] for i in rng.permutation(6)]) == pytest.approx(base, rel=1e-12)


def test_two_parallel_planes_analytic():
    # two identical dense grids 0.1 apart along z: every NN distance is exactly 0.1
    # -> Chamfer L2 = 2 * 0.1^2 = 0.02, Chamfer L1 = 2 * 0.1 (analytic, 1e-12)
    from bench.metrics.geometry import chamfer_l1

    g = np.stack(np.meshgrid(np.linspace(0, 1, 40), np.linspace(0, 1, 40)), -1).reshape(-1, 2)
    a = np.c_[g, np.zeros(len(g))]
    b = np.c_[g, np.full(len(g), 0.1)]
    assert chamfer_l2(a, b) == pytest.approx(0.02, rel=1e-12)
    assert chamfer_l1(a, b) == pytest.approx(0.2, rel=1e-12)


def test_translated_sphere_analytic():
    # dense sphere samples S and S + t, |t| = 0.03 << radius 0.5: each NN distance tends to
    # the normal offset |t cos(theta)|, so Chamfer L2 -> 2 mean(t^2 cos^2) = 2 t^2 / 3.
    # Sampling spacing (~0.007 at 60k points) adds a positive bias: tolerance 10 %
    rng = np.random.default_rng(6)
    s = rng.normal(size=(60000, 3))
    s = 0.5 * s / np.linalg.norm(s, axis=1, keepdims=True)
    t = np.array([0.03, 0.0, 0.0])
    assert chamfer_l2(s, s + t) == pytest.approx(2 * 0.03**2 / 3, rel=0.10)


def test_lion_box_normalization():
    # LION norm_box: each shape's bbox to [-1, 1], then x 0.5; a scaled, shifted copy of a
    # shape becomes identical to it -> MMD 0, COV 1
    from bench.metrics.geometry import lion_box_normalize

    rng = np.random.default_rng(7)
    ref = _shapes(rng, 3)
    gen = [r * 1.7 + 0.3 for r in ref]
    cov, mmd = coverage_mmd(gen, ref, normalization="lion_box")
    assert cov == 1.0 and mmd == pytest.approx(0.0, abs=1e-20)
    n = lion_box_normalize(ref[0])
    assert (n.max(0) - n.min(0)).max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="lion_box"):
        coverage_mmd(gen, ref, normalization="pointflow")


@pytest.mark.parametrize("bad", [np.zeros((0, 3)), np.array([[0.0, np.nan, 0.0]]),
                                 np.zeros((4, 2))])
def test_bad_clouds_raise_clear_errors(bad):
    with pytest.raises(ValueError, match="NaN|non-empty"):
        coverage_mmd([bad], [np.zeros((4, 3))])
    with pytest.raises(ValueError, match="NaN|non-empty"):
        chamfer_l2(bad, np.zeros((4, 3)))


def test_real_gso_clouds_pruned_equals_full(gso_root):
    # real surface samples of 6 GSO objects and perturbed copies: exact agreement
    import trimesh

    from bench.inputs.dataset import open_dataset

    ds = open_dataset("gso", gso_root)
    ref = []
    for oid in ds.object_ids[:6]:
        m = ds.load(oid).mesh
        pts, _ = trimesh.sample.sample_surface(trimesh.Trimesh(m.vertices, m.faces), 1024, seed=1)
        ref.append(np.asarray(pts))
    rng = np.random.default_rng(8)
    gen = [r * rng.uniform(0.9, 1.1, 3) for r in ref][::-1]
    assert coverage_mmd(gen, ref) == coverage_mmd(gen, ref, prune=False)
