"""Metrics: image (masked PSNR/SSIM), geometry (Chamfer, COV/MMD), distribution (FID/KID core),
features (Inception / CLIP / MobileNet image features), lpips (masked LPIPS), pointnet
(P-FID/P-KID), parts (HoloPart part completion); weights (offline weight files).

Each metric declares its direction in HIGHER_IS_BETTER, used by reports and drift checks.
"""

HIGHER_IS_BETTER = {
    "psnr_masked": True,
    "ssim_masked": True,
    "mmd_cd": False,
    "cov_cd": True,
    "mmd_cd_aligned": False,
    "cov_cd_aligned": True,
    "pfid_pointnet": False,
    "pkid_pointnet": False,
    "part_chamfer": False,
    "part_iou": True,
    "part_fscore": True,
    "success_rate": True,
    "fid_inception": False,
    "kid_inception": False,
    "fid_mobilenet": False,
    "kid_mobilenet": False,
    "clip_score": True,
    "pcs": True,
    "lpips_masked": False,
    "lpips_masked_vgg": False,
    "lpips_masked_mobilenet": False,
}
