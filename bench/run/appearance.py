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

Weights named explicitly (`AppearanceConfig.weights`, the CLI's `--weights NAME=PATH`) are never
a NaN: `check_explicit_weights` (run by `AppearanceSuite` before it loads anything) raises
`WeightsRejected` for an unknown network name, a network this run does not use, a path that is
not a file, or a file whose sha256 is not the official one (where it is pinned). Only the
implicit search (environment variable, library caches) may leave metrics NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.metrics.catalog import fid_metric_names, missing_notes
from bench.metrics.weights import WeightsMismatch, WeightsMissing, WeightsSpec, file_sha256

CLIP_EXTRACTOR = "clip-vit-b-32"
DEFAULT_FID_EXTRACTORS = ("inception", "mobilenet")
DEFAULT_LPIPS_NETS = ("alex", "mobilenet")


class MetricsUnavailable(RuntimeError):
    """--require-metrics was given and some metric network cannot be loaded."""


class WeightsRejected(ValueError):
    """An explicit weights entry names an unknown network or one the run does not use, or a file
    that is missing or is not the official one. One line: network, path, what is wrong."""


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


def weights_specs() -> dict[str, WeightsSpec]:
    """Every name `AppearanceConfig.weights` accepts -> the spec of its file: the feature
    extractors by name, the LPIPS nets as "lpips-<net>"."""
    from bench.metrics.features import EXTRACTORS
    from bench.metrics.lpips import LPIPS_NETS

    out = {name: info.spec for name, info in EXTRACTORS.items()}
    out.update({f"lpips-{net}": info.spec for net, info in LPIPS_NETS.items()})
    return out


def _used_by(config: AppearanceConfig) -> set[str]:
    """The weights names whose networks this run loads."""
    return ({*config.fid_extractors, *([CLIP_EXTRACTOR] if config.clip_score else [])}
            | {f"lpips-{n}" for n in config.lpips_nets})


def check_explicit_weights(config: AppearanceConfig) -> dict[str, Path]:
    """Check every explicitly named weights file before any work: the name is a known network
    that this run uses, the path is a file, and its sha256 is the official one where that is
    pinned (unpinned, inception: the hash is recorded when it loads). Returns name -> path;
    raises WeightsRejected (one line naming network, path and the problem) otherwise."""
    specs, used = weights_specs(), _used_by(config)
    out = {}
    for name, path in config.weights.items():
        what = f"--weights {name}={path}"
        if name not in specs:
            raise WeightsRejected(f"{what}: unknown network {name!r}; known: {', '.join(sorted(specs))}")
        if name not in used:
            if name.startswith("lpips-"):
                hint = (f"--lpips-nets is {','.join(config.lpips_nets) or '(none)'}: add "
                        f"{name.removeprefix('lpips-')} to it")
            elif name == CLIP_EXTRACTOR:
                hint = "--no-clip-score was given and it is not in --fid-extractors"
            else:
                hint = f"--fid-extractors is {','.join(config.fid_extractors) or '(none)'}: add {name} to it"
            raise WeightsRejected(f"{what}: network {name} is not used by this run ({hint}, or drop "
                                  "this --weights)")
        spec, file = specs[name], Path(path)
        if not file.exists():
            raise WeightsRejected(f"{what}: no such file (network {name} needs {spec.filename}: "
                                  f"{spec.source})")
        if not file.is_file():
            raise WeightsRejected(f"{what}: not a file (network {name} needs {spec.filename})")
        try:
            sha256 = file_sha256(file)
        except OSError as e:
            raise WeightsRejected(f"{what}: cannot be read ({e.strerror or e})") from e
        if not spec.matches(sha256):
            raise WeightsRejected(f"{what}: sha256 {sha256} is not the official {spec.filename}'s "
                                  f"({spec.official}): a damaged or different file for network {name}")
        out[name] = file
    return out


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
        for net in config.lpips_nets:
            if net not in LPIPS_NETS:
                raise ValueError(f"unknown LPIPS net {net!r}; known: {', '.join(LPIPS_NETS)}")
        check_explicit_weights(config)  # explicit weights are right or an error, never a NaN
        for name in wanted:
            try:
                self.extractors[name] = load_extractor(name, config.weights.get(name))
            except (WeightsMissing, WeightsMismatch) as e:
                if name in config.weights:  # changed since the check: still an error, not a NaN
                    raise WeightsRejected(f"--weights {name}={config.weights[name]}: {e}") from e
                metrics = (["clip_score"] if name == CLIP_EXTRACTOR else []) + (
                    fid_metric_names(name) if name in config.fid_extractors else [])
                for m in metrics:
                    self.missing[m] = str(e)
        for net in config.lpips_nets:
            try:
                self.lpips[net] = load_lpips(net, config.weights.get(f"lpips-{net}"))
            except (WeightsMissing, WeightsMismatch) as e:
                key = f"lpips-{net}"
                if key in config.weights:
                    raise WeightsRejected(f"--weights {key}={config.weights[key]}: {e}") from e
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
