"""PointNet++ features for P-FID / P-KID, compatible with Point-E's evals checkpoint.

Our own implementation of the classifier Point-E uses for P-FID (openai/point-e @fc8a607,
point_e/evals/: pointnet2_cls_ssg.get_model(num_class=40, normal_channel=False, width_mult=2)):
three single-scale set-abstraction layers (farthest point sampling, ball query, shared 1x1-conv
MLPs with BatchNorm, max-pool) and fc1/bn1/fc2/bn2/fc3. Module and parameter names equal
Point-E's, so its `pointnet.pt` ({'model_state_dict': ...}) loads with strict=True.

Feature = bn2(fc2(.)) before ReLU/dropout: 256 * width_mult = **512** values with width_mult 2
(upstream's `feature_dim` property says 256, but its fc2 is Linear(512w, 256w)).

Clouds are (N, 3) xyz, N >= 512, normalized per cloud (mean removed, divided by the max norm);
Point-E evaluates 4096-point clouds. Our tensors are (B, N, 3) channel-last; upstream's (B, 3, N).

FPS start point: Point-E in eval mode starts the sampling of batch element b at point index b
(in both sampling layers; random in train mode). Its extractor streams clouds in batches of 64,
so cloud j of a set starts at index j % 64. `pointnet_features` reproduces exactly that from each
cloud's position in the list (fps_period=64), independent of our batch size; the model itself
never draws random numbers, in train mode either.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.metrics.distribution import frechet_distance, kernel_inception_distance
from bench.metrics.weights import (  # WeightsMissing re-exported for callers
    WeightsMissing,  # noqa: F401
    WeightsSpec,
    file_sha256,
    resolve_weights,
)

PFID_NAME, PKID_NAME = "pfid_pointnet", "pkid_pointnet"  # metric names carry the extractor
POINTNET_FILENAME = "pointnet.pt"
POINTNET_URL = "https://openaipublic.azureedge.net/main/point-e/pointnet.pt"  # point_e/models/download.py
POINTNET_ENV = "AMODAL_BENCH_POINTNET"
POINTNET_SHA256: str | None = None  # set once the released file's hash is recorded
UPSTREAM_BATCH = 64  # Point-E's device_batch_size: the period of its FPS start index
MIN_POINTS = 512  # sa1 samples 512 centres


POINTNET_SPEC = WeightsSpec(
    filename=POINTNET_FILENAME, env=POINTNET_ENV, used_for="P-FID/P-KID",
    source=f"Point-E's released PointNet++ evals checkpoint, {POINTNET_URL}")


def default_cache_path() -> Path:
    return POINTNET_SPEC.candidates()[0]


def resolve_pointnet_weights(path: str | os.PathLike | None = None) -> Path:
    """Locate pointnet.pt: explicit `path`, else $AMODAL_BENCH_POINTNET, else the cache path.
    A path given explicitly or by the env var that does not exist raises WeightsMissing (no
    silent fallback)."""
    return resolve_weights(POINTNET_SPEC, path)


# Numpy scalars (e.g. accuracies saved next to the state dict) need these under weights_only;
# files written with numpy 1.x name the scalar constructor numpy.core.multiarray.scalar.
# (numpy 1.26, which bpy needs, has a `_core` stub without multiarray: test the version)
_NP_SCALAR = (np._core.multiarray if np.lib.NumpyVersion(np.__version__) >= "2.0.0"
              else np.core.multiarray).scalar
_NUMPY_SAFE = [_NP_SCALAR, (_NP_SCALAR, "numpy.core.multiarray.scalar"), np.dtype,
               *(getattr(np.dtypes, n) for n in ("Float64DType", "Float32DType", "Int64DType"))]


def load_pointnet(path: str | os.PathLike | None = None, expected_sha256: str | None = None,
                  device: str | torch.device = "cpu") -> tuple[PointNet2ClsSSG, str]:
    """Load Point-E's checkpoint into PointNet2ClsSSG (strict), in eval mode.

    expected_sha256 (default: POINTNET_SHA256) is compared with the file's sha256 when set;
    a mismatch raises ValueError naming both. Returns (model, actual sha256); the hash is also
    stored as `model.weights_sha256`.
    """
    file = resolve_pointnet_weights(path)
    actual = file_sha256(file)
    expected = expected_sha256 if expected_sha256 is not None else POINTNET_SHA256
    if expected is not None and actual != expected.lower():
        raise ValueError(f"{file}: sha256 {actual} does not match the expected {expected}")
    try:
        ckpt = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        with torch.serialization.safe_globals(_NUMPY_SAFE):
            ckpt = torch.load(file, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "model_state_dict" not in ckpt:
        raise ValueError(f"{file} is not a Point-E PointNet checkpoint (no 'model_state_dict')")
    model = PointNet2ClsSSG()
    model.load_state_dict(ckpt["model_state_dict"], strict=True)
    model.weights_sha256 = actual
    return model.to(device).eval(), actual


def _gather(values: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """values (B, N, C), idx (B, ...) long -> (B, ..., C)."""
    batch = torch.arange(values.shape[0], device=values.device).view(-1, *[1] * (idx.dim() - 1))
    return values[batch, idx]


def farthest_point_sample(xyz: torch.Tensor, npoint: int, start: torch.Tensor) -> torch.Tensor:
    """xyz (B, N, 3), start (B,) long -> (B, npoint) indices; greedy FPS, first max on ties.
    Distances are (dx^2 + dy^2) + dz^2, summed in upstream's order, on (3, B, N) planes."""
    b, n, _ = xyz.shape
    planes, rows, current = xyz.permute(2, 0, 1).contiguous(), torch.arange(b, device=xyz.device), start
    out = torch.empty(b, npoint, dtype=torch.long, device=xyz.device)
    nearest = torch.full((b, n), 1e10, dtype=xyz.dtype, device=xyz.device)
    for i in range(npoint):
        out[:, i] = current
        centre = xyz[rows, current]  # (B, 3)
        d = (planes[0] - centre[:, :1]).square_()
        d += (planes[1] - centre[:, 1:2]).square_()
        d += (planes[2] - centre[:, 2:]).square_()
        torch.minimum(nearest, d, out=nearest)
        current = nearest.argmax(dim=-1)
    return out


def ball_query(radius: float, nsample: int, xyz: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Indices (B, S, nsample) of the first `nsample` points (in index order) within `radius` of
    each centre (B, S, 3), padded with the first one. Squared distances use the expansion
    |a|^2 + |b|^2 - 2 a.b, as upstream, so boundary decisions agree with it."""
    n = xyz.shape[1]
    d2 = (-2 * centres @ xyz.transpose(1, 2) + (centres**2).sum(-1)[..., None]
          + (xyz**2).sum(-1)[:, None, :])
    idx = torch.arange(n, device=xyz.device).expand_as(d2).masked_fill(d2 > radius**2, n)
    idx = idx.topk(nsample, dim=-1, largest=False, sorted=True).values
    return torch.where(idx == n, idx[..., :1], idx)


class SetAbstraction(nn.Module):
    """Sample `npoint` centres (or one at the origin if group_all), group neighbours with
    centre-relative xyz followed by their features, shared MLP (1x1 conv+BN+ReLU), max-pool."""

    def __init__(self, npoint: int | None, radius: float | None, nsample: int | None,
                 in_channel: int, mlp: Sequence[int], group_all: bool = False):
        super().__init__()
        self.npoint, self.radius, self.nsample, self.group_all = npoint, radius, nsample, group_all
        self.mlp_convs, self.mlp_bns = nn.ModuleList(), nn.ModuleList()
        for out in mlp:
            self.mlp_convs.append(nn.Conv2d(in_channel, out, 1))
            self.mlp_bns.append(nn.BatchNorm2d(out))
            in_channel = out

    def forward(self, xyz: torch.Tensor, feats: torch.Tensor | None,
                start: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """xyz (B, N, 3), feats (B, N, D) or None, start (B,) -> ((B, S, 3), (B, S, C_out))."""
        if self.group_all:
            centres = xyz.new_zeros(xyz.shape[0], 1, 3)
            grouped = xyz[:, None]
            if feats is not None:
                grouped = torch.cat([grouped, feats[:, None]], -1)
        else:
            centres = _gather(xyz, farthest_point_sample(xyz, self.npoint, start % xyz.shape[1]))
            nbr = ball_query(self.radius, self.nsample, xyz, centres)
            grouped = _gather(xyz, nbr) - centres[:, :, None]
            if feats is not None:
                grouped = torch.cat([grouped, _gather(feats, nbr)], -1)
        return centres, self._mlp(grouped).amax(dim=2)

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        """(B, S, K, C_in) -> (B, S, K, C_out). The 1x1 convs run as channel-last matmuls; in
        eval mode BatchNorm is folded into them (same maths, ~1e-7 relative round-off)."""
        for conv, bn in zip(self.mlp_convs, self.mlp_bns):
            weight, bias = conv.weight.flatten(1), conv.bias
            if self.training:
                x = F.relu(bn(F.linear(x, weight, bias).movedim(-1, 1)).movedim(1, -1))
            else:
                scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
                x = F.linear(x, weight * scale[:, None], (bias - bn.running_mean) * scale + bn.bias)
                x = x.relu_()
        return x


class PointNet2ClsSSG(nn.Module):
    """PointNet++ SSG classifier with Point-E's layer names; xyz only (no normals)."""

    def __init__(self, num_classes: int = 40, width_mult: int = 2):
        super().__init__()
        w = width_mult
        self.sa1 = SetAbstraction(512, 0.2, 32, 3, [64 * w, 64 * w, 128 * w])
        self.sa2 = SetAbstraction(128, 0.4, 64, 128 * w + 3, [128 * w, 128 * w, 256 * w])
        self.sa3 = SetAbstraction(None, None, None, 256 * w + 3, [256 * w, 512 * w, 1024 * w],
                                  group_all=True)
        self.fc1, self.bn1 = nn.Linear(1024 * w, 512 * w), nn.BatchNorm1d(512 * w)
        self.fc2, self.bn2 = nn.Linear(512 * w, 256 * w), nn.BatchNorm1d(256 * w)
        self.drop1, self.drop2 = nn.Dropout(0.4), nn.Dropout(0.4)
        self.fc3 = nn.Linear(256 * w, num_classes)
        self.feature_dim = 256 * w

    def features(self, xyz: torch.Tensor, fps_start: torch.Tensor | None = None) -> torch.Tensor:
        """xyz (B, N, 3) normalized clouds -> bn2(fc2(.)) (B, 256*width_mult), pre-ReLU.
        fps_start (B,) long: FPS start index per cloud; default arange(B) as Point-E in eval."""
        b = xyz.shape[0]
        if fps_start is None:
            fps_start = torch.arange(b, device=xyz.device)
        l1_xyz, l1 = self.sa1(xyz, None, fps_start)
        l2_xyz, l2 = self.sa2(l1_xyz, l1, fps_start)
        _, l3 = self.sa3(l2_xyz, l2, fps_start)
        x = self.drop1(F.relu(self.bn1(self.fc1(l3.reshape(b, -1)))))
        return self.bn2(self.fc2(x))

    def forward(self, xyz: torch.Tensor,
                fps_start: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """xyz (B, N, 3) -> (log-probabilities (B, num_classes), features (B, 256*width_mult))."""
        feats = self.features(xyz, fps_start)
        return F.log_softmax(self.fc3(self.drop2(F.relu(feats))), -1), feats


def normalize_cloud(points: np.ndarray) -> np.ndarray:
    """(N, 3) -> (N, 3) float64: minus its mean, divided by its max point norm (unit sphere)."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or not np.isfinite(p).all():
        raise ValueError(f"expected a finite (N, 3) cloud, got shape {p.shape}")
    p = p - p.mean(axis=0)
    scale = np.sqrt((p * p).sum(-1)).max()
    if scale == 0:
        raise ValueError("degenerate cloud: all points coincide")
    return p / scale


@torch.no_grad()
def pointnet_features(model: PointNet2ClsSSG, clouds: Sequence[np.ndarray] | np.ndarray,
                      batch_size: int = 16, fps_period: int = UPSTREAM_BATCH) -> np.ndarray:
    """Clouds, each (N_i, 3) with N_i >= 512 (Point-E: 4096) -> (n, 256*width_mult) float64.

    Each cloud is normalized (normalize_cloud); cloud j starts FPS at index j % fps_period,
    reproducing Point-E's extractor (batches of 64) whatever `batch_size` is. Clouds of equal N
    are batched together; the model runs in eval mode (its mode is restored afterwards).
    """
    if len(clouds) == 0:
        raise ValueError("no clouds given")
    norm = [normalize_cloud(c).astype(np.float32) for c in clouds]
    if min(len(c) for c in norm) < MIN_POINTS:
        raise ValueError(f"every cloud needs >= {MIN_POINTS} points (Point-E uses 4096)")
    device, was_training = next(model.parameters()).device, model.training
    out = np.empty((len(norm), model.feature_dim), dtype=np.float64)
    model.eval()
    try:
        for n in sorted({len(c) for c in norm}):
            ids = [j for j, c in enumerate(norm) if len(c) == n]
            for k in range(0, len(ids), batch_size):
                chunk = ids[k:k + batch_size]
                xyz = torch.from_numpy(np.stack([norm[j] for j in chunk])).to(device)
                start = torch.tensor([j % fps_period for j in chunk], device=device)
                out[chunk] = model.features(xyz, start).double().cpu().numpy()
    finally:
        model.train(was_training)
    return out


def p_fid(gen_feats: np.ndarray, ref_feats: np.ndarray) -> float:
    """P-FID (reported as PFID_NAME): Frechet distance of PointNet++ features, (n, d) each."""
    return frechet_distance(gen_feats, ref_feats)


def p_kid(gen_feats: np.ndarray, ref_feats: np.ndarray, subset_size: int = 1000, subsets: int = 100,
          seed: int = 0) -> tuple[float, float]:
    """P-KID (reported as PKID_NAME): (mean, std) KID of PointNet++ features; not in Point-E."""
    return kernel_inception_distance(gen_feats, ref_feats, subset_size, subsets, seed)
