"""bench.metrics.distribution: Frechet distance and KID against closed forms, an eigenvalue
computation, brute-force loops and (when installed) clean-fid."""

from __future__ import annotations

import numpy as np
import pytest

from bench.metrics import distribution as dist
from bench.metrics.distribution import (
    feature_statistics,
    frechet_distance,
    frechet_from_statistics,
    kernel_inception_distance,
)


def _feats(n, d, seed, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)  # correlated features
    return shift + scale * rng.normal(size=(n, d)) @ (np.eye(d) + mix)


def _with_exact_diag_cov(mu, var, n, seed):
    """n rows whose sample mean is exactly mu and sample covariance exactly diag(var)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(mu)))
    q, _ = np.linalg.qr(x - x.mean(0))  # orthonormal columns, each orthogonal to ones => centred
    return mu + q * np.sqrt((n - 1) * var)


def _psd_sqrt(s):
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _frechet_eig(a, b):
    """Independent reference: Tr((S1 S2)^1/2) = Tr((S1^1/2 S2 S1^1/2)^1/2), via numpy eigh."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    r = _psd_sqrt(s1)
    tr_cross = np.sqrt(np.clip(np.linalg.eigvalsh(r @ s2 @ r), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_cross)


def _mmd2_brute(x, y):
    """Unbiased MMD^2, polynomial kernel (x.y/d + 1)^3, as an explicit double loop."""
    m, d = x.shape

    def k(u, v):
        return (float(np.dot(u, v)) / d + 1.0) ** 3

    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return (kxx + kyy) / (m * (m - 1)) - 2 * kxy / (m * m)


# ---------------------------------------------------------------------------- Frechet


def test_frechet_identical_sets_is_zero():
    a = _feats(300, 16, 0)
    assert abs(frechet_distance(a, a)) < 1e-6


def test_frechet_diagonal_closed_form():
    # Reference: sum((mu1-mu2)^2) + sum(s1 + s2 - 2 sqrt(s1 s2)) for exactly diagonal covariances.
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=12), rng.normal(size=12)
    v1, v2 = rng.uniform(0.2, 3, 12), rng.uniform(0.2, 3, 12)
    a, b = _with_exact_diag_cov(mu1, v1, 80, 2), _with_exact_diag_cov(mu2, v2, 50, 3)
    np.testing.assert_allclose(np.cov(a, rowvar=False), np.diag(v1), atol=1e-12)
    expected = ((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_frechet_matches_eigenvalue_reference():
    a, b = _feats(400, 24, 4), _feats(300, 24, 5, shift=0.3, scale=1.2)
    assert frechet_distance(a, b) == pytest.approx(_frechet_eig(a, b), rel=1e-8)


def test_statistics_round_trip():
    a, b = _feats(100, 8, 6), _feats(120, 8, 7, shift=0.5)
    mu, sigma = feature_statistics(a)
    assert mu.shape == (8,) and sigma.shape == (8, 8)
    assert frechet_from_statistics(mu, sigma, *feature_statistics(b)) == frechet_distance(a, b)


def test_frechet_eps_retry_when_sqrtm_non_finite(monkeypatch):
    a, b = _feats(50, 6, 8), _feats(50, 6, 9, shift=1.0)
    calls, real_sqrtm = [], dist.linalg.sqrtm

    def flaky(m):
        calls.append(m)
        return np.full_like(m, np.nan) if len(calls) == 1 else real_sqrtm(m)

    monkeypatch.setattr(dist.linalg, "sqrtm", flaky)
    value = frechet_distance(a, b, eps=1e-6)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    off = 1e-6 * np.eye(6)
    np.testing.assert_allclose(calls[1], (s1 + off) @ (s2 + off), rtol=1e-12)
    assert value == pytest.approx(_frechet_eig(a, b), rel=1e-5)


def test_frechet_imaginary_component(monkeypatch):
    a, b = _feats(50, 4, 10), _feats(50, 4, 11)
    real_sqrtm = dist.linalg.sqrtm
    monkeypatch.setattr(dist.linalg, "sqrtm", lambda m: real_sqrtm(m) + 1e-5j)  # small: dropped
    assert frechet_distance(a, b) == pytest.approx(_frechet_eig(a, b), rel=1e-8)
    monkeypatch.setattr(dist.linalg, "sqrtm", lambda m: real_sqrtm(m) + 0.1j * np.eye(len(m)))
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(a, b)


@pytest.mark.parametrize("fn", [frechet_distance, kernel_inception_distance])
def test_too_few_samples_and_dim_mismatch(fn):
    a = _feats(10, 5, 12)
    with pytest.raises(ValueError, match="at least 2"):
        fn(a[:1], a)
    with pytest.raises(ValueError, match="at least 2"):
        fn(a, a[:1])
    with pytest.raises(ValueError, match="dimensions differ"):
        fn(a, a[:, :4])
    with pytest.raises(ValueError, match="2-D"):
        fn(a[0], a)


def test_non_finite_features_rejected():
    a = _feats(10, 3, 13)
    b = a.copy()
    b[2, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        frechet_distance(a, b)


# ---------------------------------------------------------------------------- KID


def test_kid_whole_set_matches_brute_force():
    # subset_size >= n and n_a == n_b: every subset is the whole set (permuted) -> one value.
    a, b = _feats(12, 5, 14), _feats(12, 5, 15, shift=0.4)
    mean, std = kernel_inception_distance(a, b, subset_size=1000, subsets=7, seed=3)
    assert mean == pytest.approx(_mmd2_brute(a, b), abs=1e-9)
    assert std < 1e-9


def test_kid_subsets_follow_documented_sampling():
    # Documented protocol: default_rng(seed); per subset, m rows of a then m rows of b.
    a, b = _feats(10, 4, 16), _feats(15, 4, 17, shift=0.2)
    rng = np.random.default_rng(5)
    vals = []
    for _ in range(3):
        ia, ib = rng.choice(10, 10, replace=False), rng.choice(15, 10, replace=False)
        vals.append(_mmd2_brute(a[ia], b[ib]))
    mean, std = kernel_inception_distance(a, b, subset_size=64, subsets=3, seed=5)
    assert mean == pytest.approx(np.mean(vals), abs=1e-9)
    assert std == pytest.approx(np.std(vals), abs=1e-9)


def test_kid_seed_determinism():
    a, b = _feats(60, 6, 18), _feats(70, 6, 19, shift=0.3)
    r1 = kernel_inception_distance(a, b, subset_size=20, subsets=10, seed=0)
    assert kernel_inception_distance(a, b, subset_size=20, subsets=10, seed=0) == r1
    assert kernel_inception_distance(a, b, subset_size=20, subsets=10, seed=1) != r1


def test_kid_orders_shifts_and_can_be_negative():
    a = _feats(200, 8, 20)
    near, far = _feats(200, 8, 21, shift=0.1), _feats(200, 8, 22, shift=1.0)
    assert kernel_inception_distance(a, far, 100, 20)[0] > kernel_inception_distance(a, near, 100, 20)[0]
    # Unbiased estimator: a set against itself scores below zero (cross terms include i == j).
    assert kernel_inception_distance(a, a, subset_size=1000, subsets=1)[0] < 0


def test_kid_argument_checks():
    a = _feats(10, 3, 23)
    with pytest.raises(ValueError, match="subset_size"):
        kernel_inception_distance(a, a, subset_size=1)
    with pytest.raises(ValueError, match="subsets"):
        kernel_inception_distance(a, a, subsets=0)


# ---------------------------------------------------------------------------- clean-fid


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # clean-fid passes sqrtm(disp=False)
def test_matches_clean_fid():
    cfid = pytest.importorskip("cleanfid.fid")
    a, b = _feats(300, 32, 24), _feats(250, 32, 25, shift=0.2, scale=0.9)
    ref = cfid.frechet_distance(*feature_statistics(a), *feature_statistics(b))
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-10)
    # clean-fid draws its subsets with the global RNG; with m = n the subset is the whole set.
    x, y = a[:40], b[:40]
    ref_kid = cfid.kernel_distance(x, y, num_subsets=3, max_subset_size=1000)
    assert kernel_inception_distance(x, y, subset_size=1000, subsets=3)[0] == pytest.approx(
        ref_kid, rel=1e-9, abs=1e-12)


def test_matches_torchmetrics_fid_and_kid():
    """torchmetrics computes Tr((S1 S2)^1/2) from eigenvalues instead of sqrtm: an independent
    route to the same number (float64 tensors, 1e-6 relative as the issue asks)."""
    torch = pytest.importorskip("torch")
    tm_fid = pytest.importorskip("torchmetrics.image.fid")
    tm_kid = pytest.importorskip("torchmetrics.image.kid")
    a, b = _feats(400, 48, 30), _feats(350, 48, 31, shift=0.3, scale=1.1)
    (mu1, s1), (mu2, s2) = feature_statistics(a), feature_statistics(b)
    ref = float(tm_fid._compute_fid(*(torch.from_numpy(v) for v in (mu1, s1, mu2, s2))))
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)
    # torchmetrics' per-subset KID (poly_mmd, gamma 1/d, coef 1, degree 3) on whole sets.
    x, y = a[:60], b[:60]
    ref_kid = float(tm_kid.poly_mmd(torch.from_numpy(x), torch.from_numpy(y)))
    assert kernel_inception_distance(x, y, subset_size=60, subsets=1)[0] == pytest.approx(
        ref_kid, rel=1e-9)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("n_a,n_b,d", [(30, 40, 64), (48, 48, 300), (5, 9, 16)])
def test_lowrank_route_equals_sqrtm_and_clean_fid(n_a, n_b, d):
    """Few samples in many dimensions: the nuclear-norm identity gives the sqrtm value."""
    a, b = _feats(n_a, d, 40), _feats(n_b, d, 41, shift=0.1, scale=1.2)
    low = frechet_distance(a, b, method="lowrank")
    assert frechet_distance(a, b) == low  # auto picks lowrank when n < d
    assert low == pytest.approx(frechet_distance(a, b, method="sqrtm"), rel=1e-6)
    assert low == pytest.approx(_frechet_eig(a, b), rel=1e-6)
    cfid = pytest.importorskip("cleanfid.fid")
    assert low == pytest.approx(cfid.fid_from_feats(a, b), rel=1e-6)


def test_lowrank_route_also_exact_with_many_samples():
    a, b = _feats(200, 16, 42), _feats(150, 16, 43, shift=0.2)
    assert frechet_distance(a, b, method="lowrank") == pytest.approx(
        frechet_distance(a, b, method="sqrtm"), rel=1e-9)
    with pytest.raises(ValueError, match="method"):
        frechet_distance(a, b, method="eig")
