"""Image preparation shared by the feature extractors: validation / 8-bit quantization and
clean-fid's "clean" resize. Pure: arrays in, arrays out (numpy and PIL, no torch, no files).

Input images: a sequence of (H, W, 3) arrays (sizes may differ), or one (n, H, W, 3) array.

- uint8 arrays are used as they are.
- float arrays are taken as values in [0, 1] (our renders, already composited on the protocol
  background) and quantized exactly like saving a PNG: uint8 = rint(clip(x, 0, 1) * 255)
  (round half to even). The published numbers ran clean-fid on PNG files, so feeding the
  extractors the same 8-bit values keeps ours comparable; a float image and its uint8
  quantization give identical features.
- 4-channel (RGBA) images raise ValueError: composite them on the protocol background first.
  clean-fid reads files with PIL `.convert('RGB')`, which drops alpha (whatever colour the
  transparent pixels hold leaks into the metric), so we refuse to guess.
- NaN / inf raise ValueError; so do other dtypes and shapes.

`clean_resize` / `clean_resize_one`: per channel a PIL mode 'F' float32 image, resized with PIL
bicubic, clipped to [0, 255], not re-quantized; equal to cleanfid.resize.make_resizer("PIL",
False, "bicubic", (size, size)).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

__all__ = ["as_uint8_images", "clean_resize", "clean_resize_one"]


def _as_uint8(img: object, i: int) -> np.ndarray:
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[2] == 4:
        raise ValueError(f"image {i} has 4 channels (RGBA): composite it on the protocol background first "
                         "(clean-fid would drop the alpha channel with PIL .convert('RGB'))")
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"image {i} must be an (H, W, 3) RGB array, got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"image {i} is empty, shape {a.shape}")
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"image {i} has dtype {a.dtype}; expected uint8, or float with values in [0, 1]")
    if not np.isfinite(a).all():
        raise ValueError(f"image {i} contains NaN or inf values")
    # Like saving a PNG: clip to [0, 1], scale to 255, round to the nearest integer (half to even).
    return np.rint(np.clip(a.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)


def as_uint8_images(images: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    """Validate images (see the module docstring) and return them as (H, W, 3) uint8 arrays; float
    images in [0, 1] are quantized as rint(clip(x, 0, 1) * 255)."""
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            raise ValueError(f"got a single image of shape {images.shape}; pass a sequence of (H, W, 3) "
                             "images or an (n, H, W, 3) array")
        if images.ndim != 4:
            raise ValueError(f"images must be an (n, H, W, 3) array or a sequence of (H, W, 3) arrays, "
                             f"got an array of shape {images.shape}")
    elif isinstance(images, (str, bytes)) or not isinstance(images, Sequence):
        raise ValueError(f"images must be a sequence of (H, W, 3) arrays, got {type(images).__name__}")
    return [_as_uint8(img, i) for i, img in enumerate(images)]


def clean_resize_one(img: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) float32: clean-fid's PIL float bicubic resize (no quantization)."""
    channels = []
    for c in range(3):
        f = Image.fromarray(np.ascontiguousarray(img[:, :, c], dtype=np.float32))  # mode 'F'
        f = f.resize((size, size), resample=Image.Resampling.BICUBIC)
        channels.append(np.asarray(f, dtype=np.float32).clip(0, 255))
    return np.stack(channels, axis=2)


def clean_resize(images_uint8: np.ndarray, size: int) -> np.ndarray:
    """clean-fid's resize ("clean" mode): (n, H, W, 3) uint8 -> (n, size, size, 3) float32 in [0, 255].

    Each channel becomes a PIL mode 'F' (float32) image, is resized to size x size with PIL's
    bicubic filter (antialiased when downsampling), and is clipped to [0, 255] without being
    quantized back to uint8; equal to cleanfid.resize.make_resizer("PIL", False, "bicubic",
    (size, size)) applied to each image.
    """
    x = np.asarray(images_uint8)
    if x.ndim != 4 or x.shape[3] != 3:
        raise ValueError(f"images_uint8 must be an (n, H, W, 3) array, got shape {x.shape}")
    if x.dtype != np.uint8:
        raise ValueError(f"images_uint8 must be uint8, got {x.dtype} (see as_uint8_images)")
    if int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    out = np.empty((x.shape[0], int(size), int(size), 3), np.float32)
    for i, img in enumerate(x):
        out[i] = clean_resize_one(img, int(size))
    return out

