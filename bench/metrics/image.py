"""Visibility-masked image metrics at the input views (GENA3D Table 2, "faithfulness").

Images are float in [0, 1], (H, W, C); masks are (H, W) bool. SSIM is the Gaussian-window SSIM of
Wang et al. 2004 (sigma 1.5, window radius 5 as scipy's truncate 3.5, K1 0.01, K2 0.03,
population covariances), the same as skimage's `structural_similarity(gaussian_weights=True,
sigma=1.5, use_sample_covariance=False)`.

Masked SSIM (our definition; GENA3D does not say how it masks): the prediction is first filled
with the target outside the mask, then the SSIM map is averaged over the mask and channels. The
window (radius 5 px) then reads, outside the mask, the same pixels in both images, so pixels
outside the mask cannot change the score: a prediction identical to the target inside the mask
scores exactly 1 whatever it holds elsewhere (unfilled, a white outside scored 0.889).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter


def _check(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    if mask.shape != a.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image {a.shape[:2]}")


def psnr_masked(pred: np.ndarray, target: np.ndarray, mask: np.ndarray,
                data_range: float = 1.0) -> float:
    """PSNR in dB over the masked pixels (all channels). inf when identical there; nan if the
    mask is empty."""
    _check(pred, target, mask)
    if not mask.any():
        return float("nan")
    diff = pred[mask].astype(np.float64) - target[mask].astype(np.float64)
    mse = float(np.mean(diff * diff))
    return float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse))


def ssim_map(pred: np.ndarray, target: np.ndarray, data_range: float = 1.0,
             sigma: float = 1.5) -> np.ndarray:
    """(H, W, C) images -> (H, W, C) SSIM map (Gaussian window, reflect padding)."""
    x, y = pred.astype(np.float64), target.astype(np.float64)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(im):
        return np.stack([gaussian_filter(im[..., c], sigma, truncate=3.5, mode="reflect")
                         for c in range(im.shape[-1])], -1)

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def ssim_masked(pred: np.ndarray, target: np.ndarray, mask: np.ndarray,
                data_range: float = 1.0) -> float:
    """Mean over the masked pixels and all channels of the SSIM map of (pred filled with target
    outside the mask, target); nan if the mask is empty. See the module docstring."""
    _check(pred, target, mask)
    if not mask.any():
        return float("nan")
    filled = np.where(mask[..., None], pred, target)
    return float(ssim_map(filled, target, data_range)[mask].mean())
