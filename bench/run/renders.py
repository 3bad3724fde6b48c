"""`amodal-bench render`: the eval-rig renders of one object as PNGs, so a person can look.

    write_object_renders(protocol, asset, dataset, out, config, mesh=None, gaussians=None)

writes out/gt/view_<k>.png, the GT appearance renders the metrics see (the protocol's
`gt_appearance`: lit Cycles for the paper protocols, cached as in a run), and, given a
generation, out/generation/view_<k>.png rendered as a run measures it (its Gaussians splatted,
else its mesh unlit), in the protocol's frame and rig, plus out/renders.json saying what made
each folder.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from bench.files import atomic_write_bytes
from bench.inputs.assets import Asset, Mesh
from bench.inputs.protocol import Protocol


def write_pngs(directory: Path, rgb: np.ndarray) -> list[str]:
    """(V, H, W, 3) float renders -> view_<k>.png (8-bit, rounded), written atomically; the names."""
    from PIL import Image

    names = []
    for k, img in enumerate(rgb):
        buf = io.BytesIO()
        Image.fromarray(np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8)).save(buf, "PNG")
        atomic_write_bytes(directory / f"view_{k}.png", buf.getvalue())
        names.append(f"view_{k}.png")
    return names


def write_object_renders(protocol: Protocol, asset: Asset, dataset: str, out: Path, config,
                         mesh: Mesh | None = None, gaussians=None) -> dict:
    """Write the GT (and generation) rig renders of one object; returns what renders.json holds.
    config: a bench.run.runner.RunConfig (cache, rasterizer, jobs)."""
    from bench.run.gtcache import gt_appearance_rgb
    from bench.run.measure import generation_appearance

    rig = protocol.eval_rig()
    out = Path(out)
    info = {"protocol": protocol.name, "protocol_hash": protocol.content_hash, "object_id": asset.object_id,
            "import_frame": protocol.import_frame, "background": protocol.background,
            "views": [{"yaw_deg": y, "pitch_deg": p} for y, p in zip(rig.yaws_deg, rig.pitches_deg)],
            "gt": {"renderer": protocol.gt_appearance,
                   "files": write_pngs(out / "gt", gt_appearance_rgb(config, protocol, asset, dataset))}}
    if mesh is not None or gaussians is not None:
        rgb, backend = generation_appearance(mesh, gaussians, rig.cameras, protocol, config)
        info["generation"] = {"renderer": "gaussians" if gaussians is not None else "mesh-unlit",
                              "backend": backend,
                              "files": write_pngs(out / "generation", rgb)}
    atomic_write_bytes(out / "renders.json", json.dumps(info, indent=1).encode())
    return info
