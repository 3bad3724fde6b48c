"""The adapter registry: lazy, named, with one-line errors."""

from __future__ import annotations

import pytest

from bench.methods.adapter import Adapter
from bench.methods.registry import REGISTRY, adapter_class, get_adapter, list_methods


def test_registry_lists_baselines():
    assert {"oracle", "visible"} <= set(list_methods())


def test_every_registered_method_is_an_adapter():
    for name in REGISTRY:
        cls = adapter_class(name)
        assert issubclass(cls, Adapter) and cls.name == name
        ok, why = cls.availability()
        assert isinstance(ok, bool) and isinstance(why, str)


def test_unknown_method_names_valid_ones():
    with pytest.raises(ValueError, match="valid: .*oracle, .*visible"):
        get_adapter("trellis-typo")


def test_adapter_is_abstract():
    with pytest.raises(TypeError):
        Adapter()
