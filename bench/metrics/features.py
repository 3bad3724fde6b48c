"""Image feature extractors for FID / KID / CLIP score: the registry, fully offline.

`EXTRACTORS` names each extractor (`ExtractorInfo`: standard or not, feature length, weights
file, description); `load_extractor(name)` returns the loaded network (the classes are in
bench.metrics.extractors, their input handling in bench.metrics.resize). Weights are never
downloaded: `load_extractor` finds the file with `bench.metrics.weights.resolve_weights`
(explicit path, $AMODAL_BENCH_<NET>, then the caches of the library the file comes from) and
checks its sha256 with `verify_weights` where the official hash is known.

Extractors (`EXTRACTORS`; details in bench.metrics.extractors):

- "inception" (standard, 2048-d): clean-fid 0.1.35 "clean" mode exactly, on StyleGAN2-ADA's
  TorchScript Inception-v3 `inception-2015-12-05.pt` (sha256 not known to us: recorded, not
  verified).
- "clip-vit-b-32" (standard, 512-d, for the CLIP score): open_clip `ViT-B-32-quickgelu` with
  OpenAI's weights `ViT-B-32.pt` (sha256 pinned), open_clip's own preprocessing.
- "mobilenet" (NON-standard, 1280-d): torchvision `mobilenet_v2` ImageNet weights
  (`bench.metrics.weights.MOBILENET_SPEC`, shared with the MobileNet LPIPS). Metrics computed
  with it (fid_mobilenet, kid_mobilenet) are NOT comparable with any published FID/KID.

Metric names carry the extractor: fid_<metric_key(name)>, kid_<metric_key(name)>. Features are
cached on disk by bench.records.features (save_features / load_features), which record the
extractor name and the weights' sha256.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from bench.metrics.extractors import (
    ClipExtractor,
    ExtractorInfo,
    FeatureExtractor,
    InceptionExtractor,
    MobilenetExtractor,
)
from bench.metrics.weights import (
    MOBILENET_SPEC,
    WeightsMismatch,
    WeightsMissing,
    WeightsSpec,
    amodal_cache,
    file_identity,
    resolve_weights,
    verify_weights,
)

__all__ = [
    "EXTRACTORS",
    "ExtractorInfo",
    "FeatureExtractor",
    "WeightsMismatch",
    "WeightsMissing",
    "clear_extractor_cache",
    "load_extractor",
    "metric_key",
]

INCEPTION_SPEC = WeightsSpec(
    filename="inception-2015-12-05.pt",
    env="AMODAL_BENCH_INCEPTION",
    used_for="FID/KID on Inception features (fid_inception, kid_inception)",
    source="StyleGAN2-ADA's TorchScript Inception-v3, the file clean-fid uses: https://nvlabs-fi-cdn."
           "nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
    caches=lambda: [Path("/tmp"), amodal_cache()],  # /tmp: clean-fid's own download folder on Linux
)
CLIP_SPEC = WeightsSpec(
    filename="ViT-B-32.pt",
    env="AMODAL_BENCH_CLIP",
    used_for="the CLIP score (clip-vit-b-32 features)",
    source="OpenAI CLIP ViT-B/32: https://openaipublic.azureedge.net/clip/models/"
           "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
    sha256="40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
    caches=lambda: [Path.home() / ".cache" / "clip", amodal_cache()],  # ~/.cache/clip: OpenAI clip's folder
)
# MobileNetV2: bench.metrics.weights.MOBILENET_SPEC, the one spec shared with the MobileNet LPIPS.


EXTRACTORS: dict[str, ExtractorInfo] = {
    "inception": ExtractorInfo(
        name="inception", standard=True, dim=2048, spec=INCEPTION_SPEC,
        description="clean-fid 0.1.35 'clean' mode: PIL float bicubic resize to 299x299, TorchScript "
                    "Inception-v3 (inception-2015-12-05.pt) pool features; the standard FID/KID network. "
                    "Weights hash recorded, not verified (official sha256 not known to us)."),
    "clip-vit-b-32": ExtractorInfo(
        name="clip-vit-b-32", standard=True, dim=512, spec=CLIP_SPEC,
        description="open_clip ViT-B-32-quickgelu with OpenAI's weights, fp32; open_clip's preprocessing "
                    "(shortest side 224 bicubic, centre crop, OpenAI mean/std); unnormalized encode_image "
                    "output, for the CLIP score."),
    "mobilenet": ExtractorInfo(
        name="mobilenet", standard=False, dim=1280, spec=MOBILENET_SPEC,
        description="NON-STANDARD: torchvision MobileNetV2 (ImageNet IMAGENET1K_V1), clean-fid style resize "
                    "of the whole image to 224x224, global-average-pooled features. fid_mobilenet / "
                    "kid_mobilenet are not comparable with any published FID or KID."),
}


def _check_name(name: str) -> ExtractorInfo:
    if name not in EXTRACTORS:
        raise ValueError(f"unknown feature extractor {name!r}; known: {', '.join(sorted(EXTRACTORS))}")
    return EXTRACTORS[name]


def metric_key(name: str) -> str:
    """The extractor's part of a metric name: "clip-vit-b-32" -> "clip_vit_b_32" (fid_<key>, kid_<key>)."""
    return _check_name(name).name.replace("-", "_")


_CLASSES: dict[str, type[FeatureExtractor]] = {
    "inception": InceptionExtractor,
    "clip-vit-b-32": ClipExtractor,
    "mobilenet": MobilenetExtractor,
}
_LOADED: dict[tuple[str, str, int, int], FeatureExtractor] = {}


def clear_extractor_cache() -> None:
    """Forget the loaded models (load_extractor caches them per name and weights file)."""
    _LOADED.clear()


def load_extractor(name: str, weights: str | os.PathLike | None = None,
                   verify: bool = True) -> FeatureExtractor:
    """The extractor `name` (a key of EXTRACTORS) with its weights file.

    weights: explicit path; else $<spec.env>, else the spec's caches (see bench.metrics.weights).
    Missing file -> WeightsMissing. verify: the file's sha256 must be the official one when the
    spec is pinned (else WeightsMismatch); unpinned (inception): recorded only. Loaded models are
    cached per (name, file, size, mtime), so repeated calls are cheap.
    """
    info = _check_name(name)
    path = resolve_weights(info.spec, weights)
    key = (info.name, *file_identity(path))
    cached = _LOADED.get(key)
    if cached is not None:
        if verify and not info.spec.matches(cached.weights_sha256):
            verify_weights(info.spec, path, verify=True)  # raises WeightsMismatch
        return cached
    sha256 = verify_weights(info.spec, path, verify=verify)
    logging.getLogger(__name__).info("loading %s features from %s (sha256 %s)", name, path, sha256)
    extractor = _CLASSES[info.name](info, path, sha256)
    _LOADED[key] = extractor
    return extractor
