"""bench.metrics.parts: HoloPart part-completion metrics (seeds/holopart.txt 4.1, PROTOCOLS.md 4)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import trimesh

from bench.inputs.assets import Mesh
from bench.metrics.geometry import chamfer_l1, chamfer_l2
from bench.metrics.parts import (
    MeshError,
    PartMetricsConfig,
    aggregate_part_metrics,
    chamfer,
    f_score,
    part_metrics,
    sample_surface,
    voxel_centers,
    voxel_iou,
    voxelize,
)

FAST = PartMetricsConfig(n_points=20_000)


def _mesh(tm: trimesh.Trimesh, offset=(0.0, 0.0, 0.0), scale: float = 1.0) -> Mesh:
    return Mesh((np.asarray(tm.vertices) + offset) * scale, np.asarray(tm.faces))


def _sphere(radius: float = 0.25, subdivisions: int = 5) -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)


def _square(z: float = 0.0) -> Mesh:
    """The unit square [-0.5, 0.5]^2 at height z, two triangles split along a diagonal."""
    v = np.array([[-0.5, -0.5, z], [0.5, -0.5, z], [0.5, 0.5, z], [-0.5, 0.5, z]])
    return Mesh(v, np.array([[0, 1, 2], [0, 2, 3]]))


def _brute_nn(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour distances a->b and b->a from the full numpy pairwise matrix (float64)."""
    d = np.sqrt(((a[:, None, :].astype(np.float64) - b[None, :, :]) ** 2).sum(-1))
    return d.min(1), d.min(0)


def _sigma3(p: float, n: int) -> float:
    return 3 * math.sqrt(p * (1 - p) / n)


# ---------------------------------------------------------------------------- sampling


def test_sample_surface_cube_on_surface_and_area_uniform():
    n = 60_000
    pts = sample_surface(_mesh(trimesh.creation.box()), n, seed=0)
    assert pts.shape == (n, 3) and pts.dtype == np.float64
    a = np.abs(pts)
    # on the surface: one coordinate at |0.5|, none beyond (reference: the cube; tolerance 1e-9)
    assert np.all(np.abs(a.max(1) - 0.5) <= 1e-9)
    assert a.max() <= 0.5 + 1e-9
    # area-uniform: the six equal faces each get 1/6 (reference: binomial; tolerance 3 sigma)
    axis = a.argmax(1)
    face = axis * 2 + (pts[np.arange(n), axis] > 0)
    frac = np.bincount(face, minlength=6) / n
    assert np.all(np.abs(frac - 1 / 6) <= _sigma3(1 / 6, n)), frac


def test_sample_surface_weights_by_area():
    # a 1 x 2 x 3 box: faces normal to x have area 6, y 3, z 2, of 22 in all
    # (reference: area ratios; tolerance 3 sigma binomial)
    n = 60_000
    pts = sample_surface(_mesh(trimesh.creation.box(extents=(1, 2, 3))), n, seed=1)
    half = np.array([0.5, 1.0, 1.5])
    axis = np.abs(np.abs(pts) - half).argmin(1)
    for k, area in enumerate((6, 3, 2)):
        p = 2 * area / 22
        assert abs(np.mean(axis == k) - p) <= _sigma3(p, n)


def test_sample_surface_uniform_inside_triangles():
    # the unit square split along its diagonal: uniform points fall 1/4 in each quadrant
    # (reference: area; tolerance 3 sigma). Without the sqrt trick points bunch at vertex 0.
    n = 60_000
    pts = sample_surface(_square(), n, seed=2)
    assert np.all(np.abs(pts[:, :2]) <= 0.5 + 1e-12) and np.all(pts[:, 2] == 0)
    quadrant = (pts[:, 0] > 0) * 2 + (pts[:, 1] > 0)
    frac = np.bincount(quadrant, minlength=4) / n
    assert np.all(np.abs(frac - 0.25) <= _sigma3(0.25, n)), frac
    # mean of a uniform square is its centre (reference: 0; tolerance 3 sigma, sd 1/sqrt(12 n))
    assert np.all(np.abs(pts[:, :2].mean(0)) <= 3 / math.sqrt(12 * n))


def test_sample_surface_deterministic_per_seed():
    mesh = _mesh(_sphere(subdivisions=3))
    a = sample_surface(mesh, 5000, seed=7)
    assert np.array_equal(a, sample_surface(mesh, 5000, seed=7))  # exact
    assert not np.array_equal(a, sample_surface(mesh, 5000, seed=8))


def test_sample_surface_never_picks_zero_area_faces():
    # a unit square plus a zero-area sliver far away: no sample there (exact)
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [5, 5, 5], [6, 6, 6], [7, 7, 7]])
    pts = sample_surface(Mesh(v, np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6]])), 10_000, seed=0)
    assert pts.max() <= 1 + 1e-12


@pytest.mark.parametrize("faces", [np.array([[0, 1, 2]]), np.array([[0, 0, 1]]), np.zeros((0, 3))])
def test_sample_surface_degenerate_raises(faces):
    v = np.array([[0.0, 0, 0], [1, 1, 1], [2, 2, 2]])  # collinear: zero area
    with pytest.raises(ValueError):
        sample_surface(Mesh(v, faces), 10, seed=0)


def test_sample_surface_rejects_bad_n():
    with pytest.raises(ValueError):
        sample_surface(_square(), 0, seed=0)


# ---------------------------------------------------------------------------- Chamfer


@pytest.mark.parametrize(("n", "m", "seed"), [(1, 1, 0), (5, 300, 1), (257, 128, 2), (1000, 1000, 3)])
@pytest.mark.parametrize("norm", ["l1", "l2"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_chamfer_matches_brute_force(n, m, seed, norm, reduction):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(n, 3)), rng.normal(size=(m, 3)) * 0.8 + 0.3
    d_ab, d_ba = _brute_nn(a, b)
    p = 1 if norm == "l1" else 2
    ref = np.mean(d_ab**p) + np.mean(d_ba**p)
    ref = ref if reduction == "sum" else ref / 2
    # reference: numpy pairwise distances; tolerance 1e-9 relative
    assert chamfer(a, b, norm, reduction) == pytest.approx(ref, rel=1e-9)
    assert chamfer(b, a, norm, reduction) == pytest.approx(ref, rel=1e-9)  # symmetric


def test_chamfer_l2_is_geometry_chamfer_l2_and_l1_alias():
    rng = np.random.default_rng(5)
    a, b = rng.random((400, 3)).astype(np.float32), rng.random((300, 3)).astype(np.float32)
    # reference: bench.metrics.geometry.chamfer_l2 (same definition); tolerance 1e-12 relative
    assert chamfer(a, b, "l2", "sum") == pytest.approx(chamfer_l2(a, b), rel=1e-12)
    assert chamfer_l1(a, b) == chamfer(a, b, "l1", "sum")  # exact: the same computation
    assert chamfer(a, b, "l1", "mean") == pytest.approx(chamfer_l1(a, b) / 2, rel=1e-15)


def test_chamfer_with_itself_is_zero():
    a = np.random.default_rng(4).normal(size=(500, 3))
    for norm in ("l1", "l2"):
        assert chamfer(a, a, norm) == 0.0  # exact
        assert chamfer(a, a[::-1].copy(), norm) == 0.0  # order does not matter


def test_chamfer_rejects_bad_arguments():
    a = np.zeros((3, 3))
    with pytest.raises(ValueError):
        chamfer(a, a, norm="l3")
    with pytest.raises(ValueError):
        chamfer(a, a, reduction="max")
    with pytest.raises(ValueError):
        chamfer(a, np.zeros((0, 3)))
    with pytest.raises(ValueError):
        chamfer(a, np.full((2, 3), np.nan))


def test_chamfer_parallel_plane_grids_exact():
    # identical 50 x 50 grids (spacing 0.02) on z = 0 and z = d < spacing: every nearest neighbour
    # is the point straight across, so l1 = 2 d and l2 = 2 d^2 (analytic; tolerance 1e-12)
    d = 0.013
    g = np.stack(np.meshgrid(np.linspace(0, 1, 50), np.linspace(0, 1, 50)), -1).reshape(-1, 2)
    a, b = np.c_[g, np.zeros(len(g))], np.c_[g, np.full(len(g), d)]
    assert chamfer(a, b, "l1") == pytest.approx(2 * d, abs=1e-12)
    assert chamfer(a, b, "l2") == pytest.approx(2 * d * d, abs=1e-12)
    # the second grid shifted by half a spacing in x and y: NN at sqrt(d^2 + 2 (h/2)^2), all points
    h = 1 / 49
    b2 = b + [h / 2, h / 2, 0]
    assert chamfer(a, b2, "l1") == pytest.approx(2 * math.sqrt(d * d + h * h / 2), abs=1e-12)
    assert chamfer(a, b2, "l2") == pytest.approx(2 * (d * d + h * h / 2), abs=1e-12)


def test_chamfer_sampled_parallel_planes():
    # two unit squares at distance d, 20k samples each: l1 ~= 2 d, l2 ~= 2 d^2 (analytic, continuous
    # surfaces). Sampling adds the lateral NN gap rho: l2 excess 2 E[rho^2] = 2 / (pi 20000) ~= 0.16%
    # of 2 d^2 at d = 0.1, l1 excess ~0.08%. Tolerance 1% relative; never below the analytic value.
    d = 0.1
    a, b = sample_surface(_square(), 20_000, 1), sample_surface(_square(d), 20_000, 2)
    l1, l2 = chamfer(a, b, "l1"), chamfer(a, b, "l2")
    assert 2 * d <= l1 <= 2 * d * 1.01
    assert 2 * d * d <= l2 <= 2 * d * d * 1.01


def _translated_sphere_case(n: int, t: float = 0.05, r: float = 0.25):
    """Spheres of radius r whose centres are t apart: a point of one lies | |r u + t| - r | from the
    other, whose mean over the sphere is t / 2 (squared: t^2 / 3), so l1 sum = t, l2 sum = 2 t^2 / 3
    (analytic, continuous spheres, t < r)."""
    s = _sphere(r)
    a = sample_surface(_mesh(s), n, 1)
    b = sample_surface(_mesh(s, (t, 0, 0)), n, 2)
    return chamfer(a, b, "l1"), chamfer(a, b, "l2"), t, 2 * t * t / 3


def test_chamfer_translated_sphere():
    # at 20k points the discrete-sampling excess is ~1.3% (l1) and ~0.7% (l2): tolerance 3% relative
    l1, l2, ref1, ref2 = _translated_sphere_case(20_000)
    assert l1 == pytest.approx(ref1, rel=0.03)
    assert l2 == pytest.approx(ref2, rel=0.03)


def test_chamfer_translated_sphere_large_n():
    # the one larger test: 100k points, sampling excess ~0.25% (l1), ~0.02% (l2): tolerance 1% relative
    l1, l2, ref1, ref2 = _translated_sphere_case(100_000)
    assert l1 == pytest.approx(ref1, rel=0.01)
    assert l2 == pytest.approx(ref2, rel=0.01)


# ---------------------------------------------------------------------------- voxels


def _centres(cells, resolution: int = 4) -> np.ndarray:
    """Points at the centres of the given voxel indices of a [-0.5, 0.5]^3 grid."""
    return -0.5 + (np.asarray(cells, dtype=np.float64) + 0.5) / resolution


def test_voxelize_indices_and_bounds():
    g = voxelize(np.array([[0.0, 0.0, 0.0]]))
    assert g.shape == (64, 64, 64) and g.dtype == bool
    assert np.argwhere(g).tolist() == [[32, 32, 32]]  # cell i covers [-0.5 + i/64, -0.5 + (i+1)/64)
    edges = np.array([[-0.5, -0.5, -0.5], [0.5, 0.5, 0.5], [0.5 + 1e-7, 0, 0], [0.5 - 1e-12, 0, 0]])
    assert np.argwhere(voxelize(edges)).tolist() == [[0, 0, 0], [63, 32, 32], [63, 63, 63]]


def test_voxelize_drops_outside_and_nonfinite_points():
    # chosen convention: points beyond the bounds (by more than 1e-6) are dropped, not clipped
    pts = np.array([[0.6, 0, 0], [-0.5 - 1e-3, 0, 0], [0, 0, 7], [np.nan, 0, 0], [np.inf, 0, 0]])
    assert not voxelize(pts).any()
    g = voxelize(np.vstack([pts, [[0.1, 0.1, 0.1]]]))
    assert g.sum() == 1


def test_voxelize_rejects_bad_arguments():
    with pytest.raises(ValueError):
        voxelize(np.zeros((1, 3)), resolution=0)
    with pytest.raises(ValueError):
        voxelize(np.zeros((1, 3)), bounds=(0.5, -0.5))


def test_voxel_centers_roundtrip():
    cells = [[0, 0, 0], [1, 2, 3], [3, 3, 3]]
    g = voxelize(_centres(cells), resolution=4)
    assert np.argwhere(g).tolist() == cells
    assert np.allclose(voxel_centers(g), _centres(cells), atol=1e-15)  # exact up to rounding


def test_voxel_iou_identical_disjoint_and_hand_built():
    rng = np.random.default_rng(0)
    a = rng.uniform(-0.5, 0.5, (2000, 3))
    assert voxel_iou(a, a) == 1.0  # exact
    assert voxel_iou(a * 0.4 - 0.3, a * 0.4 + 0.3) == 0.0  # disjoint boxes, exact
    # A occupies 4 voxels, B 6, sharing 2: IoU = 2 / 8 (hand count; exact)
    shared = [[0, 0, 0], [1, 1, 1]]
    only_a = [[2, 2, 2], [3, 3, 3]]
    only_b = [[0, 3, 0], [3, 0, 0], [0, 0, 3], [2, 1, 0]]
    pa = np.repeat(_centres(shared + only_a), 3, axis=0)  # several points per voxel count once
    pb = _centres(shared + only_b)
    assert voxelize(pa, 4).sum() == 4 and voxelize(pb, 4).sum() == 6
    assert voxel_iou(pa, pb, resolution=4) == 2 / 8


def test_voxel_iou_empty():
    far = np.array([[2.0, 2, 2]])
    assert math.isnan(voxel_iou(far, far))  # no voxel at all: undefined
    assert voxel_iou(far, np.zeros((1, 3))) == 0.0


# ---------------------------------------------------------------------------- F-score


def _brute_f(a, b, tau):
    d_ab, d_ba = _brute_nn(a, b)
    p, r = np.mean(d_ab <= tau), np.mean(d_ba <= tau)
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


@pytest.mark.parametrize("tau", [0.0, 0.05, 0.1, 0.3, 10.0])
def test_f_score_matches_brute_force(tau):
    rng = np.random.default_rng(9)
    a, b = rng.random((700, 3)), rng.random((500, 3)) * 0.9 + 0.2
    # reference: numpy pairwise precision / recall; tolerance 1e-12 relative
    assert f_score(a, b, tau) == pytest.approx(_brute_f(a, b, tau), rel=1e-12, abs=1e-15)


def test_f_score_hand_cases():
    a = np.array([[0.0, 0, 0], [1, 0, 0]])
    b = np.array([[0.0, 0, 0.1]])
    # P = 1/2 (only a[0] within 0.1 of b, inclusive), R = 1: F = 2/3 (hand count; exact up to 1e-15)
    assert f_score(a, b, 0.1) == pytest.approx(2 / 3, abs=1e-15)
    assert f_score(a, b, 0.05) == 0.0  # P = R = 0 -> 0
    assert f_score(a, a, 0.0) == 1.0
    assert f_score(a, np.zeros((0, 3)), 0.1) == 0.0
    assert math.isnan(f_score(np.zeros((0, 3)), np.zeros((0, 3)), 0.1))
    with pytest.raises(ValueError):
        f_score(a, b, -1.0)


def test_voxel_f_score_below_pitch_is_dice():
    # on voxel centres with a threshold below the pitch, F = 2 |A & B| / (|A| + |B|): 2 * 2 / 10
    # for the hand-built 4- and 6-voxel case (hand count; tolerance 1e-15)
    ga = voxelize(_centres([[0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3]]), 4)
    gb = voxelize(_centres([[0, 0, 0], [1, 1, 1], [0, 3, 0], [3, 0, 0], [0, 0, 3], [2, 1, 0]]), 4)
    assert f_score(voxel_centers(ga), voxel_centers(gb), 0.2) == pytest.approx(0.4, abs=1e-15)


# ---------------------------------------------------------------------------- part_metrics


def test_config_defaults_and_record():
    c = PartMetricsConfig()
    assert (c.n_points, c.voxel_resolution, c.chamfer_norm, c.chamfer_reduction) == (500_000, 64, "l1", "sum")
    d = c.as_dict()
    json.dumps(d)  # recordable as is
    for key in ("n_points", "chamfer_norm", "chamfer_reduction", "voxel_resolution", "fscore_threshold",
                "fscore_domain", "frame", "seed", "voxel_bounds", "out_of_bounds"):
        assert key in d
    for bad in ({"chamfer_norm": "l3"}, {"chamfer_reduction": "max"}, {"fscore_domain": "x"},
                {"frame": "world"}, {"n_points": 0}, {"voxel_resolution": 0}, {"fscore_threshold": -1}):
        with pytest.raises(ValueError):
            PartMetricsConfig(**bad)


@pytest.mark.parametrize("domain", ["voxels", "points"])
def test_part_metrics_identical_meshes(domain):
    gt = _mesh(_sphere(0.3, 3))
    r = part_metrics(gt, gt, PartMetricsConfig(n_points=20_000, fscore_domain=domain))
    # the same seed samples identical meshes identically: all exact
    assert r["success"] and r["reason"] == "ok"
    assert r["chamfer"] == 0.0 and r["iou"] == 1.0 and r["fscore"] == 1.0
    assert r["pred_out_of_bounds"] == 0.0 and r["gt_out_of_bounds"] == 0.0
    assert r["config"]["fscore_domain"] == domain and r["config"]["n_points"] == 20_000


def test_part_metrics_translated_mesh():
    s = _sphere(0.25, 4)
    gt, pred = _mesh(s), _mesh(s, (0.05, 0, 0))
    r = part_metrics(pred, gt, FAST)
    # consistent with the building blocks on the same samples (exact)
    a, b = sample_surface(pred, 20_000, 0), sample_surface(gt, 20_000, 0)
    assert r["chamfer"] == pytest.approx(chamfer(a, b, "l1", "sum"), rel=1e-12)
    assert r["iou"] == voxel_iou(a, b, 64)
    ga, gb = voxelize(a), voxelize(b)
    dice = 2 * (ga & gb).sum() / (ga.sum() + gb.sum())
    assert r["fscore"] == pytest.approx(dice, rel=1e-12)  # default threshold 0.01 < pitch 1/64
    # analytic Chamfer of spheres t apart: l1 sum = t (see _translated_sphere_case; tolerance 3%)
    assert r["chamfer"] == pytest.approx(0.05, rel=0.03)
    assert 0 < r["iou"] < 1 and 0 < r["fscore"] < 1
    assert r["fscore"] > r["iou"]  # Dice > IoU for 0 < IoU < 1
    # l2 / mean / points variants are recorded and differ as defined
    r2 = part_metrics(pred, gt, PartMetricsConfig(n_points=20_000, chamfer_norm="l2",
                                                  chamfer_reduction="mean"))
    assert r2["chamfer"] == pytest.approx(chamfer(a, b, "l2", "mean"), rel=1e-12)
    assert r2["config"]["chamfer_norm"] == "l2" and r2["config"]["chamfer_reduction"] == "mean"
    rp = part_metrics(pred, gt, PartMetricsConfig(n_points=20_000, fscore_domain="points",
                                                  fscore_threshold=0.02))
    assert rp["fscore"] == pytest.approx(f_score(a, b, 0.02), rel=1e-12)


def test_part_metrics_gt_part_frame_is_scale_invariant():
    s = _sphere(0.25, 3)
    gt, pred = _mesh(s), _mesh(s, (0.05, 0, 0))
    gt_small, pred_small = _mesh(s, scale=0.5), _mesh(s, (0.05, 0, 0), scale=0.5)
    cfg = PartMetricsConfig(n_points=20_000, frame="gt_part")
    r, r_small = part_metrics(pred, gt, cfg), part_metrics(pred_small, gt_small, cfg)
    # scaling by 1/2 is exact in floating point, so the normalized samples agree (tolerance 1e-12)
    for k in ("chamfer", "iou", "fscore"):
        assert r[k] == pytest.approx(r_small[k], rel=1e-12)
    # in the object frame the half-size pair has half the l1 Chamfer (tolerance 1e-12)
    assert part_metrics(pred_small, gt_small, FAST)["chamfer"] == pytest.approx(
        part_metrics(pred, gt, FAST)["chamfer"] / 2, rel=1e-12)


def test_part_metrics_out_of_frame_prediction():
    s = _sphere(0.2, 3)
    r = part_metrics(_mesh(s, (1.0, 0, 0)), _mesh(s), FAST)
    assert r["success"] and r["pred_out_of_bounds"] == 1.0
    assert r["iou"] == 0.0 and r["fscore"] == 0.0 and r["chamfer"] > 1.0


_V = np.array([[0.0, 0, 0], [0.2, 0, 0], [0, 0.2, 0]])


@pytest.mark.parametrize(("pred", "reason"), [
    (None, "no prediction"),
    (Mesh(_V, np.zeros((0, 3))), "no faces"),
    (Mesh(np.zeros((0, 3)), np.zeros((0, 3))), "no faces"),
    (Mesh(np.where(np.arange(3)[:, None] == 1, np.nan, _V), np.array([[0, 1, 2]])), "NaN"),
    (Mesh(np.where(np.arange(3)[:, None] == 1, np.inf, _V), np.array([[0, 1, 2]])), "infinite"),
    (Mesh(_V, np.array([[0, 1, 5]])), "do not exist"),
    (Mesh(np.array([[0.0, 0, 0], [0.1, 0.1, 0.1], [0.2, 0.2, 0.2]]), np.array([[0, 1, 2]])), "degenerate"),
    (Mesh(_V[:, :2], np.array([[0, 1, 2]])), "malformed"),
])
def test_part_metrics_failures_never_raise(pred, reason):
    r = part_metrics(pred, _mesh(_sphere(0.2, 2)), PartMetricsConfig(n_points=1000))
    assert r["success"] is False and reason in r["reason"]
    assert all(math.isnan(r[k]) for k in ("chamfer", "iou", "fscore"))
    assert r["config"]["n_points"] == 1000


def test_part_metrics_bad_gt_raises():
    with pytest.raises(MeshError):
        part_metrics(_mesh(_sphere(0.2, 2)), Mesh(_V, np.zeros((0, 3))), FAST)


# ---------------------------------------------------------------------------- aggregate


def test_aggregate_excludes_failures_from_means():
    cfg = PartMetricsConfig(n_points=1000)
    ok = [{"chamfer": c, "iou": i, "fscore": f, "success": True, "reason": "ok", "config": cfg.as_dict()}
          for c, i, f in ((0.1, 0.5, 0.6), (0.3, 0.7, 0.8))]
    fail = part_metrics(None, _mesh(_sphere(0.2, 2)), cfg)
    agg = aggregate_part_metrics(ok + [fail])
    # hand computation; tolerance 1e-15
    assert agg["success_rate"] == pytest.approx(2 / 3, abs=1e-15)
    assert agg["chamfer"] == pytest.approx(0.2, abs=1e-15)
    assert agg["iou"] == pytest.approx(0.6, abs=1e-15)
    assert agg["fscore"] == pytest.approx(0.7, abs=1e-15)
    assert (agg["n_used"], agg["n_total"]) == (2, 3)
    assert agg["config"] == cfg.as_dict()


def test_aggregate_edge_cases():
    cfg = PartMetricsConfig(n_points=1000)
    gt = _mesh(_sphere(0.2, 2))
    agg = aggregate_part_metrics([part_metrics(None, gt, cfg)] * 2)
    assert agg["success_rate"] == 0.0 and (agg["n_used"], agg["n_total"]) == (0, 2)
    assert all(math.isnan(agg[k]) for k in ("chamfer", "iou", "fscore"))
    empty = aggregate_part_metrics([])
    assert empty["n_total"] == 0 and math.isnan(empty["success_rate"])
    with pytest.raises(ValueError):
        aggregate_part_metrics([part_metrics(None, gt, cfg),
                                part_metrics(None, gt, PartMetricsConfig(n_points=2000))])
