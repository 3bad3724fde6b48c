"""The images a PCS judge sees: PIL images in mode RGB, or (H, W, 3) uint8 arrays. RGBA (and
other modes) raise ValueError: composite the renders on the protocol background first (what
colour transparent pixels hold would otherwise leak into the judge's view). `png_bytes` is the
one PNG encoding (PIL defaults): what is sent, and what the verdict cache hashes.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

__all__ = ["as_rgb_image", "png_bytes"]


def as_rgb_image(image: Image.Image | np.ndarray) -> Image.Image:
    """A PIL RGB image from a PIL RGB image or an (H, W, 3) uint8 array; anything else raises
    ValueError (RGBA: composite it on the protocol background first)."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"judge images as arrays must be (H, W, 3) uint8, got {image.dtype} "
                             f"{image.shape}")
        return Image.fromarray(image)
    if not isinstance(image, Image.Image):
        raise ValueError(f"judge images must be PIL images or uint8 arrays, got {type(image).__name__}")
    if image.mode != "RGB":
        raise ValueError(f"judge images must be RGB, got mode {image.mode!r}"
                         + (": composite it on the protocol background first" if "A" in image.mode
                            else ": convert it to RGB first"))
    return image


def png_bytes(image: Image.Image) -> bytes:
    """The PNG encoding of an RGB image (PIL defaults): what is sent and what the cache hashes."""
    buf = io.BytesIO()
    as_rgb_image(image).save(buf, format="PNG")
    return buf.getvalue()
