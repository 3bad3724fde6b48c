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


def write_contact_sheet(path: Path, gt_rig, generations: dict, gt_label: str = "ground truth rig") -> Path:
    """One row per input setting's views (RGB, visibility, occlusion, overlay), one row with the
    GT rig renders (labelled `gt_label`: say which renderer), one row per method's rig renders.
    generations: {(method, setting label): (case, render)}."""
    rows: list[tuple[str, list[np.ndarray]]] = []
    seen = set()
    for (_, label), (case, _) in sorted(generations.items()):
        if label in seen:
            continue
        seen.add(label)
        for i, v in enumerate(case.views):
            rows.append((f"{label} input {i + 1} yaw {v.yaw_deg:.0f} pitch {v.pitch_deg:.0f} "
                         f"vis {v.visible_fraction:.2f}",
                         [v.rgb, v.visibility_mask.astype(np.uint8) * 255,
                          v.occlusion_mask.astype(np.uint8) * 255,
                          mask_overlay(v.rgb, v.visibility_mask, v.occlusion_mask)]))
    rows.append((gt_label, list(gt_rig.rgb)))
    for (method, label), (_, r) in sorted(generations.items()):
        rows.append((f"{method} ({label}) rig", list(r.rgb)))
    return _compose(path, rows)


def write_case_sheet(path: Path, mesh, protocol, cases: list, max_rejected: int = 4) -> Path:
    """`amodal-bench show-case`: per setting, the selected input views (RGB, visibility mask,
    occlusion mask, overlay) and up to `max_rejected` rejected candidate views (overlay), each
    labelled with its yaw and visible fraction. mesh: the GT Mesh the cases were built from;
    protocol: their Protocol (for the input camera intrinsics)."""
    from bench.cases.occlusion import view_masks
    from bench.inputs.cameras import camera_from_yaw_pitch
    from bench.render import render

    rows: list[tuple[str, list[np.ndarray]]] = []
    for case in cases:
        label = f"views-{case.n_views}" + ("" if case.degree is None else f" occ {case.degree:.0%}")
        for i, v in enumerate(case.views):
            rows.append((f"{label} selected {i + 1}: yaw {v.yaw_deg:.0f} visible "
                         f"{v.visible_fraction:.2f} (occlusion ratio {case.occlusion_ratio:.2f})",
                         [v.rgb, v.visibility_mask.astype(np.uint8) * 255,
                          v.occlusion_mask.astype(np.uint8) * 255,
                          mask_overlay(v.rgb, v.visibility_mask, v.occlusion_mask)]))
        rejected = case.meta.get("rejected_views", [])[:max_rejected]
        spec = protocol.spec["input"]
        if rejected and case.occluded_faces is not None:
            tiles = []
            for rv in rejected:
                cam = camera_from_yaw_pitch(rv["yaw_deg"], rv["pitch_deg"], float(spec["radius"]),
                                            float(spec["fov_deg"]), int(spec["resolution"]))
                r = render(mesh, [cam], case.background)
                vis, occ = view_masks(r.face_id[0], case.occluded_faces)
                tiles.append(mask_overlay(np.round(r.rgb[0] * 255).astype(np.uint8), vis, occ))
            names = ", ".join(f"yaw {rv['yaw_deg']:.0f} vis {rv['visible_fraction']:.2f}"
                              for rv in rejected)
            rows.append((f"{label} rejected: {names}", tiles))
    return _compose(path, rows)


def _compose(path: Path, rows: list[tuple[str, list[np.ndarray]]]) -> Path:
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
