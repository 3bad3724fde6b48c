"""Pictures a person looks at: contact sheets of inputs, masks and rig renders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

TILE = 192


def _tile(image: np.ndarray) -> Image.Image:
    if image.dtype != np.uint8:
        image = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, -1)
    return Image.fromarray(image).resize((TILE, TILE), Image.BILINEAR)


def mask_overlay(rgb: np.ndarray, visibility: np.ndarray, occlusion: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: visible pixels tinted green, occluded pixels blue, over a dimmed image."""
    out = (rgb.astype(np.float32) * 0.4).astype(np.uint8)
    out[visibility] = (0.5 * rgb[visibility] + [0, 127, 0]).astype(np.uint8)
    out[occlusion] = [60, 90, 230]
    return out


def write_contact_sheet(path: Path, gt_rig, generations: dict) -> Path:
    """One row per input setting's views (RGB, visibility, occlusion, overlay), one row with the
    GT rig renders, one row per method's rig renders. generations: {(method, views): (case, render)}."""
    rows: list[tuple[str, list[np.ndarray]]] = []
    seen = set()
    for (_, views), (case, _) in sorted(generations.items()):
        if views in seen:
            continue
        seen.add(views)
        for i, v in enumerate(case.views):
            rows.append((f"input {i + 1}/{views} yaw {v.yaw_deg:.0f} vis {v.visible_fraction:.2f}",
                         [v.rgb, v.visibility_mask.astype(np.uint8) * 255,
                          v.occlusion_mask.astype(np.uint8) * 255,
                          mask_overlay(v.rgb, v.visibility_mask, v.occlusion_mask)]))
    rows.append(("ground truth rig", list(gt_rig.rgb)))
    for (method, views), (_, r) in sorted(generations.items()):
        rows.append((f"{method} ({views} view{'s' if views > 1 else ''}) rig", list(r.rgb)))
    ncol = max(len(images) for _, images in rows)
    label_h = 18
    sheet = Image.new("RGB", (ncol * TILE, len(rows) * (TILE + label_h)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, (label, images) in enumerate(rows):
        y = r * (TILE + label_h)
        draw.text((4, y + 3), label, fill=(0, 0, 0))
        for c, im in enumerate(images):
            sheet.paste(_tile(im), (c * TILE, y + label_h))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
