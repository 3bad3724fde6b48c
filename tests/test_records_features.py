"""bench.records.features: feature files (.npz) tagged with the extractor name and weights hash.
The round trip through a real extractor is in test_metrics_features.py."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from bench.records.features import load_features, save_features


@dataclass
class _Source:
    """What a features file needs of an extractor (a FeatureExtractor has these attributes)."""

    name: str
    weights_sha256: str
    dim: int


def test_load_features_refuses_other_extractor_or_weights(tmp_path):
    path = tmp_path / "feats.npz"
    save_features(path, np.ones((2, 1280)), ("mobilenet", "a" * 64))
    with pytest.raises(ValueError, match="another extractor or weights hash") as err:
        load_features(path, "inception", "a" * 64)
    assert str(path) in str(err.value) and "inception" in str(err.value) and "mobilenet" in str(err.value)
    with pytest.raises(ValueError, match="another extractor or weights hash") as err:
        load_features(path, "mobilenet", "b" * 64)
    assert "a" * 64 in str(err.value) and "b" * 64 in str(err.value)
    np.save(tmp_path / "plain.npy", np.ones((2, 3)))
    with pytest.raises(ValueError, match="not a features file"):
        load_features(tmp_path / "plain.npy", "mobilenet", "a" * 64)


def test_dim_is_checked_when_known(tmp_path):
    path = tmp_path / "feats.npz"
    save_features(path, np.ones((3, 4)), _Source("mobilenet", "c" * 64, 4))
    assert load_features(path, "mobilenet", "C" * 64).shape == (3, 4)  # hash compared case-blind
    with pytest.raises(ValueError, match="columns"):
        save_features(path, np.ones((3, 5)), _Source("mobilenet", "c" * 64, 4))
    with pytest.raises(ValueError, match="columns"):
        save_features(path, np.ones((3, 5)), ("mobilenet", "c" * 64, 4))
    save_features(path, np.ones((3, 5)), ("mobilenet", "c" * 64))  # (name, sha256): dim unknown
    assert load_features(path, "mobilenet", "c" * 64).shape == (3, 5)
    with pytest.raises(ValueError, match="non-finite"):
        save_features(path, np.full((1, 4), np.nan), ("mobilenet", "c" * 64))
