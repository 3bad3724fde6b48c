"""Metrics: pure functions over arrays and in-memory networks (no file I/O, nothing else of bench).

image (masked PSNR/SSIM), geometry (Chamfer, COV/MMD), alignment (optional frame alignment),
distribution (FID/KID core), features (registry of the image feature extractors: Inception / CLIP /
MobileNet) with extractors (the networks) and resize (their image preparation), lpips (masked
LPIPS), pointnet (P-FID/P-KID), parts (HoloPart part completion); weights (finding and hashing the
offline weight files: the one module here that touches the file system); catalog (the one table of
metric columns: labels, units, directions, non-standard marks).

HIGHER_IS_BETTER (from catalog) gives each metric's direction, used by reports and drift checks.
"""

from bench.metrics.catalog import HIGHER_IS_BETTER

__all__ = ["HIGHER_IS_BETTER"]
