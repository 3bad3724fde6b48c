"""Measuring one generation against the GT side of its object: masked PSNR/SSIM/LPIPS at the
input views, the eval-rig render and point cloud, rig image features and the CLIP score.
Nothing is written here (bench.run.evaluate writes the files and the record).

Which render is measured (PROTOCOLS.md 7): a generation that carries Gaussians is rendered as
Amodal3R's and GENA3D's inference scripts render it, by splatting its Gaussians
(bench.render.splat), for every appearance metric (masked PSNR/SSIM/LPIPS, FID/KID, CLIP);
without Gaussians its mesh is rasterized unlit (its colours as they are, as a Gaussian render
shows its colours). Geometry (the rig point cloud) always comes from the mesh. The record says
which (`meta.appearance_render`: "gaussians" or "mesh-unlit"; `meta.appearance_backend`: the
splatting backend, numba or gsplat, or the rasterizer).

`config` is a bench.run.runner.RunConfig.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from bench.cases.case import AmodalCase
from bench.inputs.assets import Mesh
from bench.inputs.protocol import Protocol
from bench.metrics.image import psnr_masked, ssim_masked
from bench.render import render
from bench.render.pointcloud import sample_point_cloud
from bench.run.appearance import AppearanceSuite
from bench.run.gtcache import _sampler

_SUITES: dict[str, AppearanceSuite] = {}


def appearance_suite(config) -> AppearanceSuite:
    """The metric networks of this process, loaded once per configuration."""
    key = repr(config.appearance)
    if key not in _SUITES:
        _SUITES[key] = AppearanceSuite(config.appearance)
    return _SUITES[key]


@dataclass(frozen=True)
class Reference:
    """What every generation of one object is measured against, and with what."""

    backend: str  # the rasterizer's name
    suite: AppearanceSuite
    cloud: np.ndarray  # GT rig point cloud
    features: dict[str, np.ndarray]  # GT rig image features per extractor


@dataclass
class Measurement:
    """One generation measured: its metrics and what is written next to its record."""

    metrics: dict
    cloud: np.ndarray | None  # None when the rig render is empty
    geometry_error: str
    rig_rgb: np.ndarray  # (V, H, W, 3) the eval-rig appearance render that was measured
    features: dict[str, np.ndarray]  # extractor -> rig image features (V, d)
    appearance_render: str  # "gaussians" or "mesh-unlit"
    appearance_backend: str = ""  # "numba" / "gsplat" (splats) or the rasterizer's name


def generation_appearance(mesh: Mesh, gaussians, cameras, protocol: Protocol,
                          config) -> tuple[np.ndarray, str]:
    """(V, H, W, 3) appearance render of a generation and the backend that made it: its
    Gaussians splatted when it has them, else its mesh rasterized unlit."""
    if gaussians is not None:
        from bench.render.splat import render_gaussians

        out = render_gaussians(gaussians, cameras, protocol.background)
    else:
        out = render(mesh, cameras, protocol.background, config.rasterizer)
    return out.rgb, out.backend


def _evaluate_generation(mesh: Mesh, gaussians, case: AmodalCase, gt_inputs, protocol: Protocol,
                         config, suite: AppearanceSuite):
    """Masked PSNR/SSIM/LPIPS at the input views, the rig appearance render and the rig point
    cloud of one generation."""
    mesh.validate()
    cams = [v.camera for v in case.views]
    rgb, backend = generation_appearance(mesh, gaussians, cams, protocol, config)
    pred = SimpleNamespace(rgb=rgb)
    masks = [v.visibility_mask for v in case.views]
    # PSNR of the object: from the MSE pooled over the masked pixels of all its input views
    # (views stacked along the image rows), so one identical view cannot make it infinite
    psnr = psnr_masked(np.concatenate(list(pred.rgb)), np.concatenate(list(gt_inputs.rgb)),
                       np.concatenate(masks))
    ssim = [ssim_masked(pred.rgb[i], gt_inputs.rgb[i], masks[i]) for i in range(len(masks))]
    rig = protocol.eval_rig()
    rig_render = render(mesh, rig.cameras, protocol.background, config.rasterizer)
    rig_rgb = rig_render.rgb if gaussians is None else generation_appearance(
        mesh, gaussians, rig.cameras, protocol, config)[0]
    try:
        cloud, geometry_error = sample_point_cloud(
            rig_render.depth, rig.cameras, protocol.spec["pointcloud"]["points"], case.seed,
            _sampler(protocol)), ""
    except ValueError as e:  # nothing rendered: a failure for the geometry metrics only
        cloud, geometry_error = None, str(e)
    metrics = {"psnr_masked": float(psnr), "ssim_masked": float(np.mean(ssim))}
    metrics.update(suite.lpips_masked(pred.rgb, gt_inputs.rgb, [v.visibility_mask for v in case.views]))
    return metrics, cloud, geometry_error, rig_rgb, backend


def _image_features(ref: Reference, rig_rgb: np.ndarray) -> tuple[dict, dict[str, np.ndarray]]:
    """Rig image features of one generation per extractor, and the CLIP score against the GT."""
    from bench.run.appearance import CLIP_EXTRACTOR

    metrics, features = {}, {}
    for name in ref.suite.extractors:
        features[name] = ref.suite.features(name, rig_rgb)
        if name == CLIP_EXTRACTOR:
            metrics["clip_score"] = ref.suite.clip_score(features[name], ref.features[name])
    return metrics, features


def measure(protocol: Protocol, config, ref: Reference, case: AmodalCase, gt_inputs,
            mesh: Mesh, gaussians=None) -> Measurement:
    """Image and geometry metrics of one generation: its mesh, and its Gaussians
    (bench.inputs.gaussians.Gaussians, same frame) when it has them (nothing is written here)."""
    metrics, cloud, geometry_error, rig_rgb, backend = _evaluate_generation(
        mesh, gaussians, case, gt_inputs, protocol, config, ref.suite)
    # an empty rig render (nothing rendered) is a background-only render: it keeps its image
    # features, as a failed generation does (bench.run.evaluate), so failures never flatter FID
    image_metrics, features = _image_features(ref, rig_rgb)
    metrics.update(image_metrics)
    return Measurement(metrics, cloud, geometry_error, rig_rgb, features,
                       "mesh-unlit" if gaussians is None else "gaussians", backend)


_BACKGROUND: dict[tuple, dict[str, np.ndarray]] = {}


def background_features(protocol: Protocol, ref: Reference) -> dict[str, np.ndarray]:
    """Rig image features of a background-only render (what a failed generation contributes to
    FID/KID): every rig view filled with the protocol's background colour. Cached per process."""
    from bench.inputs.protocol import background_rgb

    rig = protocol.eval_rig()
    key = (protocol.background, tuple((c.height, c.width) for c in rig.cameras),
           tuple(sorted((n, e.weights_sha256) for n, e in ref.suite.extractors.items())))
    if key not in _BACKGROUND:
        blank = np.stack([np.broadcast_to(background_rgb(protocol.background), (c.height, c.width, 3))
                          for c in rig.cameras]).astype(np.float32)
        _BACKGROUND[key] = {name: ref.suite.features(name, blank) for name in ref.suite.extractors}
    return _BACKGROUND[key]
