"""AmodalCase: what a method sees - occluded input views of one object, and nothing more.

Built from an Asset and a Protocol with the protocol's one seed per object: the occluded face
set, the input cameras (resampled until the visible share of the silhouette lies in the
protocol's range) and per-view RGB, visibility mask, occlusion mask and visible-only depth.
Masks and depth come from the rasterizer (as the public scripts take masks from an Open3D
render); the RGB of the selected views from `shade_inputs` when given (the run passes the
protocol's lit Cycles renderer: the papers' inputs were their Cycles renders), else the
rasterizer's unlit RGB.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from bench.cases.occlusion import OcclusionError, grow_occlusion, view_masks
from bench.inputs.assets import Asset
from bench.inputs.cameras import Camera, camera_from_yaw_pitch, input_view_pool
from bench.inputs.protocol import Protocol
from bench.render import render
from bench.render.shading import background_rgb


class CaseError(ValueError):
    """The protocol cannot be met for this object (e.g. no view has the required visibility)."""


@dataclass
class InputView:
    """One occluded input view.

    rgb: (H, W, 3) uint8: object on the protocol background, occluded pixels in the occluder colour.
    visibility_mask: (H, W) bool, object pixels whose surface is not occluded.
    occlusion_mask: (H, W) bool, object pixels hidden by the occluder.
    depth: (H, W) float32 camera z at visible pixels only, 0 elsewhere (for RGB-D baselines).
    """

    camera: Camera
    rgb: np.ndarray
    visibility_mask: np.ndarray
    occlusion_mask: np.ndarray
    depth: np.ndarray
    yaw_deg: float
    pitch_deg: float

    @property
    def visible_fraction(self) -> float:
        """Visible share of the object's full silhouette in this view."""
        sil = self.visibility_mask.sum() + self.occlusion_mask.sum()
        return float(self.visibility_mask.sum() / sil) if sil else 0.0


@dataclass
class AmodalCase:
    object_id: str
    protocol: str
    protocol_hash: str
    n_views: int
    seed: int
    views: list[InputView]
    background: str
    occlusion_ratio: float
    source: str = ""  # the GT mesh path: read only by the oracle baseline
    degree: float | None = None  # fixed occlusion degree of a sweep setting
    meta: dict = field(default_factory=dict)
    # (F,) bool occluded faces of the GT mesh: for pictures only, never exported to methods
    occluded_faces: np.ndarray | None = field(default=None, repr=False)
    # (V, H, W, 3) float32 unoccluded GT renders at the input views (what the masked metrics
    # compare with), never exported to methods; None for a case read back from disk
    gt_rgb: np.ndarray | None = field(default=None, repr=False)


def _candidates(spec: dict, pool, rng: np.random.Generator):
    """Candidate input (yaw, pitch) pairs: uniform draws from the protocol's ranges, or the
    pool's views in a seeded random order, each at most once (drawn without replacement)."""
    if pool is None:
        while True:
            yield float(rng.uniform(*spec["yaw_deg"])), float(rng.uniform(*spec["pitch_deg"]))
    yaws, pitches = pool
    for i in rng.permutation(len(yaws)):
        yield float(yaws[i]), float(pitches[i])


def _sample_views(asset: Asset, protocol: Protocol, occluded: np.ndarray, n: int,
                  rng: np.random.Generator, rejected: list[dict], seed: int) -> tuple[list[InputView], list]:
    """Draw input cameras (from the protocol's view pool, bench.inputs.cameras.input_view_pool)
    until n views have a visible fraction in the protocol's range; every rejected candidate is
    appended to `rejected` (yaw, pitch, visible fraction)."""
    spec = protocol.spec["input"]
    lo, hi = spec.get("visible_fraction", [0.0, 1.0])
    occluder = background_rgb(protocol.spec["occlusion"].get("occluder_color", "black"))
    views: list[InputView] = []
    unlit: list[np.ndarray] = []
    tries = 0
    candidates = _candidates(spec, input_view_pool(spec, seed), rng)
    while len(views) < n:
        if tries >= int(spec.get("max_tries", 64)):
            raise CaseError(f"only {len(views)} of {n} input views reached a visible fraction in "
                            f"[{lo}, {hi}] after {tries} tries")
        tries += 1
        try:
            yaw, pitch = next(candidates)
        except StopIteration:
            raise CaseError(f"only {len(views)} of {n} input views of the {len(views) + len(rejected)}"
                            f"-view pool reached a visible fraction in [{lo}, {hi}]") from None
        cam = camera_from_yaw_pitch(yaw, pitch, float(spec["radius"]), float(spec["fov_deg"]),
                                    int(spec["resolution"]))
        r = render(asset.mesh, [cam], protocol.background)
        vis, occ = view_masks(r.face_id[0], occluded)
        sil = vis.sum() + occ.sum()
        frac = vis.sum() / sil if sil else 0.0
        if not lo <= frac <= hi:
            rejected.append({"yaw_deg": yaw, "pitch_deg": pitch, "visible_fraction": float(frac)})
            continue
        unlit.append(r.rgb[0])
        rgb = r.rgb[0].copy()
        rgb[occ] = occluder
        views.append(InputView(cam, np.round(rgb * 255).astype(np.uint8), vis, occ,
                               np.where(vis, r.depth[0], 0).astype(np.float32), yaw, pitch))
    return views, unlit


Shader = Callable[[Sequence[Camera]], np.ndarray]  # cameras -> (V, H, W, 3) float RGB on the background


def _shade(views: list[InputView], shade_inputs: Shader, occluder: np.ndarray) -> np.ndarray:
    """Replace the selected views' RGB by `shade_inputs`' renders, occluded pixels painted again;
    returns the unoccluded renders."""
    lit = np.asarray(shade_inputs([v.camera for v in views]), np.float32)
    for v, img in zip(views, lit):
        rgb = img.copy()
        rgb[v.occlusion_mask] = occluder
        v.rgb = np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    return lit


def build_case(asset: Asset, protocol: Protocol, n_views: int, degree: float | None = None,
               shade_inputs: Shader | None = None) -> AmodalCase:
    """The deterministic case of (protocol, object, n_views[, degree]): same seed -> same case.

    degree: a fixed 3D occlusion ratio (occlusion sweeps) instead of the protocol's sampled range.
    shade_inputs: renders the selected input views' RGB (bench.run.gtcache.input_shader: the
    protocol's lit Cycles renderer); None keeps the rasterizer's unlit RGB. Which one is in
    meta["input_renderer"]. Views are selected on the rasterizer's masks either way.
    Raises CaseError when the protocol cannot be met (triangle soup, views never qualify)."""
    seed = protocol.seed_for(asset.object_id)
    rng = np.random.default_rng(seed)
    occ_spec = protocol.spec["occlusion"]
    if degree is None:
        ratio = float(rng.uniform(*occ_spec["ratio"]))
    else:
        ratio = float(degree)
    try:
        occluded = grow_occlusion(asset.mesh, ratio, rng, occ_spec.get("by", "faces"),
                                  int(occ_spec.get("seed_faces", 1)), occ_spec.get("adjacency", "merged"))
    except OcclusionError as e:
        raise CaseError(f"occlusion: {e}") from e
    # the input views of a setting are drawn after the occlusion, from a stream of their own
    key = [seed, n_views] if degree is None else [seed, n_views, round(degree * 100)]
    view_rng = np.random.default_rng(key)
    rejected: list[dict] = []
    views, gt_rgb = _sample_views(asset, protocol, occluded, n_views, view_rng, rejected, seed)
    renderer = "raster-unlit"
    if shade_inputs is not None:
        occluder = background_rgb(protocol.spec["occlusion"].get("occluder_color", "black"))
        gt_rgb, renderer = _shade(views, shade_inputs, occluder), protocol.gt_appearance
    return AmodalCase(asset.object_id, protocol.name, protocol.content_hash, n_views, seed, views,
                      protocol.background, ratio, asset.source, degree,
                      {"occluded_faces": int(occluded.sum()), "faces": len(occluded),
                       "up_axis": asset.up_axis, "import_frame": asset.import_frame,
                       "input_renderer": renderer, "rejected_views": rejected}, occluded,
                      np.stack(gt_rgb).astype(np.float32))
