"""Per-view input encodings of the amodal baselines: Amodal3R's one grey-level mask, GENA3D's four images.

Images are numpy arrays ready for PIL (`Image.fromarray`): RGB (H, W, 3) uint8, masks (H, W) uint8.
Boolean masks are (H, W) bool. The decoders read the arrays exactly as the baselines' pipelines read
the PNG files (thresholds, dilation), before their crop / resize to 518 x 518, which is theirs.

Amodal3R (README; amodal3r/pipelines/image_to_3d.py, `preprocess_image_w_mask`): the mask image is
background 255 (white), visible 188 (grey), occluded 0 (black). The pipeline reads it as
occluded = mask < 127, dilated once with OpenCV's 3 x 3 MORPH_ELLIPSE kernel (a cross; its argument
is named `erode_kernel_size` but the operation is cv2.dilate), background = mask > 230, and zeroes the
RGB over dilated occluded | background; visible is the rest. The dilation happens when the mask is
*read*, not when it is written: so `encode_amodal3r` writes the undilated classes and
`decode_amodal3r` applies the dilation, exactly as their pipeline does. GENA3D's pipeline carries the
same function for its Amodal3R-style path.

GENA3D (inference_gena3d.py, gena3d/pipelines/sparse_image_to_3d.py): four files per view:
amodal_completion.png (2D amodal completion, RGB), sd_img_cut.png (the occluded input RGB),
visibility_instance_mask.png and occ_mask0.png, read as grey ('L') and binarised at > 127.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bench.cases.masks2d import check_mask

AMODAL3R_BACKGROUND, AMODAL3R_VISIBLE, AMODAL3R_OCCLUDED = 255, 188, 0
AMODAL3R_BACKGROUND_ABOVE = 230  # mask > 230: background
AMODAL3R_OCCLUDED_BELOW = 127  # mask < 127: occluded (before dilation)
AMODAL3R_KERNEL_SIZE = 3  # MORPH_ELLIPSE size of the dilation of the occluded class
GENA3D_THRESHOLD = 127  # mask > 127: True
GENA3D_FILES = {
    "amodal_completion": "amodal_completion.png",
    "occluded": "sd_img_cut.png",
    "visibility": "visibility_instance_mask.png",
    "occlusion": "occ_mask0.png",
}


def _check_uint8(name: str, image: object, ndim: int, channels: tuple[int, ...] = ()) -> np.ndarray:
    ok = isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == ndim
    if ok and channels:
        ok = image.shape[2] in channels
    if not ok:
        want = "(H, W)" if ndim == 2 else f"(H, W, {' or '.join(map(str, channels))})"
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{name} must be a uint8 array {want}, got {got}")
    return image


def _check_disjoint(visibility: np.ndarray, occlusion: np.ndarray) -> None:
    both = int((visibility & occlusion).sum())
    if both:
        raise ValueError(f"visibility and occlusion overlap on {both} pixels; a pixel is either "
                         "visible or occluded")


def ellipse_kernel(size: int) -> np.ndarray:
    """(size, size) bool structuring element by OpenCV's MORPH_ELLIPSE rule (odd size):
    row i spans columns c - dx .. c + dx with c = size // 2, dx = round(c * sqrt(1 - (i - c)^2 / c^2)).
    Size 3 is the cross [[0,1,0],[1,1,1],[0,1,0]]; size 1 is a single pixel."""
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd integer, got {size!r}")
    c = size // 2
    out = np.zeros((size, size), dtype=bool)
    for i in range(size):
        dx = int(np.rint(c * np.sqrt(1.0 - (i - c) ** 2 / c**2))) if c else 0
        out[i, c - dx:c + dx + 1] = True
    return out


def dilate(mask: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Binary dilation of (H, W) bool `mask` by a centred odd (k, k) bool kernel; outside the image
    counts as False (cv2.dilate's default border)."""
    r = kernel.shape[0] // 2
    padded = np.pad(mask, r)
    out = np.zeros_like(mask)
    h, w = mask.shape
    for di, dj in np.argwhere(kernel):
        out |= padded[2 * r - di:2 * r - di + h, 2 * r - dj:2 * r - dj + w]
    return out


def decode_amodal3r(mask: np.ndarray, kernel_size: int = AMODAL3R_KERNEL_SIZE
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read an Amodal3R mask image (H, W) uint8 as their pipeline does.

    Returns (visibility, occlusion, background), each (H, W) bool:
    occlusion = dilate(mask < 127, ellipse(kernel_size)) (kernel_size 0: no dilation, as theirs),
    background = mask > 230, visibility = not (occlusion or background).
    visibility is disjoint from both; occlusion may overlap background where the dilation grows
    into it (their `mask_occ` does the same).
    """
    _check_uint8("mask", mask, 2)
    occluded = mask < AMODAL3R_OCCLUDED_BELOW
    if kernel_size != 0:
        occluded = dilate(occluded, ellipse_kernel(kernel_size))
    background = mask > AMODAL3R_BACKGROUND_ABOVE
    return ~(occluded | background), occluded, background


def encode_amodal3r(rgb: np.ndarray, visibility: np.ndarray, occlusion: np.ndarray,
                    kernel_size: int = AMODAL3R_KERNEL_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Amodal3R's inputs for one view.

    rgb: (H, W, 3) uint8. visibility, occlusion: (H, W) bool, disjoint; background is the rest.
    Returns (rgb_zeroed (H, W, 3) uint8, mask (H, W) uint8): mask is 255 background, 188 visible,
    0 occluded, undilated (the pipeline dilates when reading, see `decode_amodal3r`). rgb_zeroed is
    rgb with 0 over exactly the pixels their pipeline zeroes for this mask, dilated occlusion |
    background, and rgb elsewhere; feeding it back through their preprocessing changes nothing.
    """
    _check_uint8("rgb", rgb, 3, (3,))
    vis = check_mask("visibility", visibility, rgb.shape[:2])
    occ = check_mask("occlusion", occlusion, rgb.shape[:2])
    _check_disjoint(vis, occ)
    mask = np.full(vis.shape, AMODAL3R_BACKGROUND, dtype=np.uint8)
    mask[vis] = AMODAL3R_VISIBLE
    mask[occ] = AMODAL3R_OCCLUDED
    seen, _, _ = decode_amodal3r(mask, kernel_size)
    return np.where(seen[..., None], rgb, np.uint8(0)), mask


def encode_gena3d(completed_rgb: np.ndarray, rgb: np.ndarray, visibility: np.ndarray,
                  occlusion: np.ndarray) -> dict[str, np.ndarray]:
    """GENA3D's four inputs for one view, keyed as GENA3D_FILES (which gives their file names).

    completed_rgb: (H, W, 3|4) uint8, the 2D amodal completion (RGBA with a real alpha makes their
    pipeline use it instead of running rembg). rgb: (H, W, 3|4) uint8, the occluded input view.
    visibility, occlusion: (H, W) bool, disjoint. Returns copies of the images and the masks as
    (H, W) uint8 in {0, 255}.
    """
    _check_uint8("completed_rgb", completed_rgb, 3, (3, 4))
    _check_uint8("rgb", rgb, 3, (3, 4))
    if rgb.shape[:2] != completed_rgb.shape[:2]:
        raise ValueError(f"rgb has size {rgb.shape[:2]}, completed_rgb {completed_rgb.shape[:2]}")
    vis = check_mask("visibility", visibility, rgb.shape[:2])
    occ = check_mask("occlusion", occlusion, rgb.shape[:2])
    _check_disjoint(vis, occ)
    return {
        "amodal_completion": completed_rgb.copy(),
        "occluded": rgb.copy(),
        "visibility": vis.astype(np.uint8) * np.uint8(255),
        "occlusion": occ.astype(np.uint8) * np.uint8(255),
    }


def decode_gena3d(images: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Read GENA3D's four images (keys as GENA3D_FILES) as their pipeline does: the masks
    ((H, W) uint8, grey) become (H, W) bool by > 127; the RGB(A) images are returned as given.
    Visibility and occlusion are not required to be disjoint here: files are read as they are."""
    missing = sorted(set(GENA3D_FILES) - set(images))
    if missing:
        raise ValueError(f"missing GENA3D images: {missing}")
    completed = _check_uint8("amodal_completion", images["amodal_completion"], 3, (3, 4))
    occluded = _check_uint8("occluded", images["occluded"], 3, (3, 4))
    out = {"amodal_completion": completed, "occluded": occluded}
    for key in ("visibility", "occlusion"):
        mask = _check_uint8(key, images[key], 2)
        if mask.shape != completed.shape[:2]:
            raise ValueError(f"{key} has shape {mask.shape}, expected {completed.shape[:2]}")
        out[key] = mask > GENA3D_THRESHOLD
    return out
