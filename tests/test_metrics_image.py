"""bench.metrics.image: masked PSNR and Gaussian-window SSIM against scikit-image."""

from __future__ import annotations

import numpy as np
import pytest

from bench.metrics.image import psnr_masked, ssim_map, ssim_masked

skm = pytest.importorskip("skimage.metrics")


def _skimage_ssim_map(a, b, data_range=1.0):
    return skm.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, data_range=data_range,
                                     channel_axis=-1, full=True)[1]


def _random_pair(shape, seed, noise=0.2):
    rng = np.random.default_rng(seed)
    a = rng.random(shape)
    b = np.clip(a + rng.normal(scale=noise, size=shape), 0, 1)
    return a, b


def _smooth_pair(shape, seed):
    h, w, c = shape
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    rng = np.random.default_rng(seed)
    a = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (x * (k + 1) + y * (k + 2)) + rng.random())
                  for k in range(c)], -1)
    b = np.clip(0.9 * a + 0.05 + 0.02 * np.cos(6 * np.pi * x)[..., None], 0, 1)
    return a, b


def _mask(shape, seed, p=0.4):
    return np.random.default_rng(seed).random(shape[:2]) < p


# ---------------------------------------------------------------------------- PSNR


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape", [(32, 48, 3), (17, 9, 1)])
def test_psnr_matches_skimage_on_masked_pixels(shape, seed):
    a, b = _random_pair(shape, seed)
    mask = _mask(shape, seed)
    # reference: skimage.metrics.peak_signal_noise_ratio on the masked pixels; tolerance 1e-10
    ref = skm.peak_signal_noise_ratio(b[mask], a[mask], data_range=1.0)
    assert psnr_masked(a, b, mask) == pytest.approx(ref, abs=1e-10)


def test_psnr_uint8_data_range_255():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)  # uint8 wrap-around must not occur
    mask = _mask(a.shape, 3)
    # reference: skimage on float64 copies of the masked pixels; tolerance 1e-10
    ref = skm.peak_signal_noise_ratio(b[mask].astype(float), a[mask].astype(float),
                                      data_range=255)
    assert psnr_masked(a, b, mask, data_range=255) == pytest.approx(ref, abs=1e-10)


def test_psnr_analytic():
    a = np.zeros((4, 4, 3))
    b = np.full((4, 4, 3), 0.1)
    # analytic: MSE 0.01 -> 10 log10(1 / 0.01) = 20 dB; tolerance 1e-10
    assert psnr_masked(a, b, np.ones((4, 4), bool)) == pytest.approx(20.0, abs=1e-10)


def test_psnr_ignores_pixels_outside_mask():
    a, b = _random_pair((16, 16, 3), 4)
    mask = _mask(a.shape, 4)
    b2 = b.copy()
    b2[~mask] = 1 - b2[~mask]
    assert psnr_masked(a, b, mask) == psnr_masked(a, b2, mask)  # exact


def test_psnr_identical_is_inf_and_empty_mask_is_nan():
    a, b = _random_pair((16, 16, 3), 5)
    mask = _mask(a.shape, 5)
    same = b.copy()
    same[mask] = a[mask]  # identical inside the mask, different outside
    assert psnr_masked(a, same, mask) == float("inf")
    assert np.isnan(psnr_masked(a, b, np.zeros((16, 16), bool)))


# ---------------------------------------------------------------------------- SSIM


@pytest.mark.parametrize("kind", ["random", "smooth"])
@pytest.mark.parametrize("shape", [(40, 50, 3), (64, 64, 3), (23, 31, 1)])
def test_ssim_map_matches_skimage(kind, shape):
    a, b = (_random_pair if kind == "random" else _smooth_pair)(shape, 7)
    ours = ssim_map(a, b)
    ref = _skimage_ssim_map(a, b)
    assert ours.shape == ref.shape == shape
    # reference: skimage structural_similarity(gaussian_weights, sigma 1.5, population
    # covariance, data_range 1, full=True) map; tolerance 1e-6 absolute
    np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=0)
    assert np.ptp(ref) > 0.05  # a non-trivial map, so the comparison means something


def test_ssim_map_data_range_255():
    a, b = _smooth_pair((32, 32, 3), 8)
    # reference: skimage with data_range 255 on the scaled images; tolerance 1e-6
    np.testing.assert_allclose(ssim_map(a * 255, b * 255, data_range=255),
                               _skimage_ssim_map(a * 255, b * 255, data_range=255), atol=1e-6)


def test_ssim_identical_is_one():
    a, _ = _random_pair((24, 24, 3), 9)
    np.testing.assert_allclose(ssim_map(a, a), 1.0, atol=1e-12)  # analytic; 1e-12


@pytest.mark.parametrize("kind", ["random", "smooth"])
def test_ssim_masked_is_mean_of_map_over_mask(kind):
    shape = (48, 40, 3)
    a, b = (_random_pair if kind == "random" else _smooth_pair)(shape, 10)
    mask = _mask(shape, 10)
    # reference: mean over masked pixels and channels of skimage's full map of (a filled with b
    # outside the mask, b) (the documented masked-SSIM definition); tolerance 1e-6
    filled = np.where(mask[..., None], a, b)
    ref = _skimage_ssim_map(filled, b)[mask].mean()
    assert ssim_masked(a, b, mask) == pytest.approx(ref, abs=1e-6)


def test_ssim_masked_cannot_see_pixels_outside_the_mask():
    """Trust issue, item 1: identical inside the mask, white outside: PSNR inf and SSIM exactly 1
    (analytic); any content outside the mask leaves SSIM unchanged bit for bit."""
    shape = (48, 40, 3)
    a, _ = _smooth_pair(shape, 3)
    mask = _mask(shape, 3)
    white_outside = np.where(mask[..., None], a, 1.0)
    assert psnr_masked(white_outside, a, mask) == float("inf")
    assert ssim_masked(white_outside, a, mask) == 1.0
    _, b = _random_pair(shape, 4)
    noise_outside = np.where(mask[..., None], b, np.random.default_rng(5).random(shape))
    assert ssim_masked(noise_outside, a, mask) == ssim_masked(np.where(mask[..., None], b, 0.0), a, mask)


def test_ssim_masked_empty_mask_is_nan():
    a, b = _random_pair((16, 16, 3), 11)
    assert np.isnan(ssim_masked(a, b, np.zeros((16, 16), bool)))


# ---------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("fn", [psnr_masked, ssim_masked])
def test_shape_mismatch_raises(fn):
    a = np.zeros((16, 16, 3))
    with pytest.raises(ValueError, match="image shapes differ"):
        fn(a, np.zeros((16, 15, 3)), np.ones((16, 16), bool))
    with pytest.raises(ValueError, match="image shapes differ"):
        fn(a, np.zeros((16, 16, 4)), np.ones((16, 16), bool))
    with pytest.raises(ValueError, match="mask shape"):
        fn(a, a, np.ones((16, 15), bool))
