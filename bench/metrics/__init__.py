"""Metrics: image (masked PSNR/SSIM), geometry (Chamfer, COV/MMD).

Each metric declares its direction in HIGHER_IS_BETTER, used by reports and drift checks.
"""

HIGHER_IS_BETTER = {
    "psnr_masked": True,
    "ssim_masked": True,
    "mmd_cd": False,
    "cov_cd": True,
    "success_rate": True,
}
