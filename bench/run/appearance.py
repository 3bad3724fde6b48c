"""Appearance metrics of one run: which image networks are available, and what they measure.

A run measures appearance three ways (PROTOCOLS.md section 4):
- FID / KID between the GT and generated eval-rig renders, over all objects and views (set
  level, computed by the report from per-record feature files): `fid_<key>`, `kid_<key>`,
  one per feature extractor of bench.metrics.features (`inception` is the standard one;
  `mobilenet` is a non-standard substitute and its metrics say so by name);
- the CLIP score: cosine similarity of CLIP image embeddings of the generated and the GT view
  at the same pose, mean over the rig views (per record, averaged over objects by the report);
- masked LPIPS at the input views, over the visibility mask (bench.metrics.lpips).

`AppearanceSuite` loads what it can once per process. A network whose weights are absent is
recorded as missing with the reason (WeightsMissing's message), its metrics stay NaN, and the
run goes on; `require=True` turns any missing network into an error before work starts. Metric
names, non-standard marks and note texts are bench.metrics.catalog's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bench.metrics.catalog import fid_metric_names, missing_notes
from bench.metrics.weights import WeightsMismatch, WeightsMissing

CLIP_EXTRACTOR = "clip-vit-b-32"
DEFAULT_FID_EXTRACTORS = ("inception", "mobilenet")
DEFAULT_LPIPS_NETS = ("alex", "mobilenet")


class MetricsUnavailable(RuntimeError):
    """--require-metrics was given and some metric network cannot be loaded."""


@dataclass
class AppearanceConfig:
    """Which appearance metrics a run computes. `weights` maps an extractor name ("inception",
    "clip-vit-b-32", "mobilenet") or an LPIPS net prefixed with "lpips-" ("lpips-alex") to an
    explicit weights path."""

    fid_extractors: list[str] = field(default_factory=lambda: list(DEFAULT_FID_EXTRACTORS))
    clip_score: bool = True
    lpips_nets: list[str] = field(default_factory=lambda: list(DEFAULT_LPIPS_NETS))
    weights: dict[str, str] = field(default_factory=dict)
    batch_size: int = 32


def _valid_rgb(images: np.ndarray, what: str) -> None:
    if not np.isfinite(images).all():
        raise ValueError(f"{what}: non-finite pixel values")


class AppearanceSuite:
    """The loaded networks of one process. `missing` maps metric name -> reason."""

    def __init__(self, config: AppearanceConfig):
        from bench.metrics.features import EXTRACTORS, load_extractor
        from bench.metrics.lpips import LPIPS_NETS, load_lpips

        self.config = config
        self.extractors: dict = {}
        self.lpips: dict = {}
        self.missing: dict[str, str] = {}
        wanted = list(dict.fromkeys(config.fid_extractors + ([CLIP_EXTRACTOR] if config.clip_score else [])))
        for name in wanted:
            if name not in EXTRACTORS:
                raise ValueError(f"unknown feature extractor {name!r}; known: {', '.join(EXTRACTORS)}")
            try:
                self.extractors[name] = load_extractor(name, config.weights.get(name))
            except (WeightsMissing, WeightsMismatch) as e:
                metrics = (["clip_score"] if name == CLIP_EXTRACTOR else []) + (
                    fid_metric_names(name) if name in config.fid_extractors else [])
                for m in metrics:
                    self.missing[m] = str(e)
        for net in config.lpips_nets:
            if net not in LPIPS_NETS:
                raise ValueError(f"unknown LPIPS net {net!r}; known: {', '.join(LPIPS_NETS)}")
            try:
                self.lpips[net] = load_lpips(net, config.weights.get(f"lpips-{net}"))
            except (WeightsMissing, WeightsMismatch) as e:
                self.missing[LPIPS_NETS[net].metric] = str(e)

    def require(self) -> None:
        if self.missing:
            raise MetricsUnavailable("--require-metrics: " + " | ".join(missing_notes(self.missing)))

    @property
    def feature_names(self) -> list[str]:
        """Extractors whose features are stored per record (FID/KID and CLIP)."""
        return list(self.extractors)

    @property
    def fid_names(self) -> list[str]:
        return [n for n in self.config.fid_extractors if n in self.extractors]

    def weights_sha256(self) -> dict[str, str]:
        out = {n: e.weights_sha256 for n, e in self.extractors.items()}
        out.update({f"lpips-{n}": m.weights_sha256 for n, m in self.lpips.items()})
        return out

    def features(self, name: str, rgb: np.ndarray) -> np.ndarray:
        """(V, H, W, 3) renders -> (V, d) features of extractor `name`."""
        _valid_rgb(rgb, f"features({name})")
        return self.extractors[name](list(rgb), batch_size=self.config.batch_size)

    @staticmethod
    def clip_score(gen: np.ndarray, gt: np.ndarray) -> float:
        """Mean over views of the cosine similarity of CLIP embeddings, x100 (the papers print
        CLIP score in percent). gen, gt: (V, d) with rows at the same poses."""
        if gen.shape != gt.shape:
            raise ValueError(f"CLIP embeddings of different shapes: {gen.shape} vs {gt.shape}")
        a = gen / np.linalg.norm(gen, axis=1, keepdims=True)
        b = gt / np.linalg.norm(gt, axis=1, keepdims=True)
        return float(np.mean(np.sum(a * b, axis=1)) * 100.0)

    def lpips_masked(self, pred: Sequence[np.ndarray], target: Sequence[np.ndarray],
                     masks: Sequence[np.ndarray]) -> dict[str, float]:
        """Masked LPIPS per loaded net, mean over the input views."""
        out = {}
        for model in self.lpips.values():
            values = [model(p, t, m) for p, t, m in zip(pred, target, masks)]
            out[model.metric] = float(np.nanmean(values)) if not all(np.isnan(values)) else float("nan")
        return out
