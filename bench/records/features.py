"""Feature files: (n, d) image features cached on disk as .npz, tagged with what computed them.

A features file holds `features` (float64, n x d), `extractor` (its name), `weights_sha256` (the
hash of the network's weights file) and `dim` (d). `load_features` refuses a file written by
another extractor or another weights file, so features of different networks never mix in one
FID / KID. Writes are atomic (bench.files.atomic_write_bytes). The extractors themselves live in
bench.metrics.features; this module only needs their name, weights hash and feature length.
"""

from __future__ import annotations

import io
import os
import zipfile
from typing import Protocol

import numpy as np

from bench.files import atomic_write_bytes

__all__ = ["FeatureSource", "load_features", "save_features"]


class FeatureSource(Protocol):
    """What a features file records about its extractor (a bench.metrics FeatureExtractor is one)."""

    name: str
    weights_sha256: str
    dim: int


def save_features(path: str | os.PathLike, feats: np.ndarray,
                  extractor: FeatureSource | tuple[str, str] | tuple[str, str, int]) -> None:
    """Write (n, d) features to an .npz with the extractor name, the weights' sha256 and d.

    extractor: the extractor that computed them (anything with `name`, `weights_sha256` and `dim`,
    such as a bench.metrics.features.FeatureExtractor), or (name, weights sha256[, dim]). The
    column count must equal the extractor's dim when it is known. Written to a temporary file in
    the same folder, then renamed over `path` (atomic on POSIX).
    """
    if isinstance(extractor, tuple):
        name, sha256, *rest = extractor
        dim = int(rest[0]) if rest else None
    else:
        name, sha256, dim = extractor.name, extractor.weights_sha256, extractor.dim
    x = np.asarray(feats, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be a 2-D (n, d) array, got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"features have {x.shape[1]} columns but {name} features have {dim}")
    if not np.isfinite(x).all():
        raise ValueError("features contain non-finite values")
    buf = io.BytesIO()
    np.savez(buf, features=x, extractor=np.array(str(name)), weights_sha256=np.array(str(sha256)),
             dim=np.array(x.shape[1], dtype=np.int64))
    atomic_write_bytes(path, buf.getvalue())


def load_features(path: str | os.PathLike, expect_name: str, expect_sha256: str) -> np.ndarray:
    """(n, d) float64 features from a save_features file. ValueError naming the file and the expected
    and found extractor / weights hash when they differ."""
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"{path} could not be read as a features file: {e}") from e
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is not a features file written by save_features (not an .npz archive)")
    with z:
        keys = set(z.files)
        if not {"features", "extractor", "weights_sha256", "dim"} <= keys:
            raise ValueError(f"{path} is not a features file written by save_features (keys {sorted(keys)})")
        feats = np.asarray(z["features"], dtype=np.float64)
        name, sha256, dim = str(z["extractor"]), str(z["weights_sha256"]), int(z["dim"])
    if name != expect_name or sha256.lower() != str(expect_sha256).lower():
        raise ValueError(f"{path}: features file from another extractor or weights hash: expected "
                         f"{expect_name} (weights sha256 {expect_sha256}), "
                         f"found {name} (weights sha256 {sha256})")
    if feats.ndim != 2 or feats.shape[1] != dim:
        raise ValueError(f"{path}: features of shape {feats.shape} do not match the recorded dim {dim}")
    return feats
