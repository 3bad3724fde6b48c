"""Finding a method by name: the registry of in-process methods and the method strings.

Methods are registered lazily (name -> "module:Class"), so a heavy backend (torch models, CUDA
extensions) is imported only when that method is used, as lm-evaluation-harness does. Methods
that run elsewhere are named by a string instead of a registry entry:

    worker:<spec.yaml>                   -> WorkerAdapter(WorkerSpec.from_yaml(spec.yaml))
    precomputed:<cases_dir>:<method>     -> PrecomputedAdapter(cases_dir, method)

(adapter_from_string; method_name gives the name such a method is recorded under.)
"""

from __future__ import annotations

import importlib
from pathlib import Path

from bench.methods.adapter import Adapter
from bench.methods.precomputed import PrecomputedAdapter
from bench.methods.worker import WorkerAdapter, WorkerSpec

WORKER_PREFIX = "worker:"
PRECOMPUTED_PREFIX = "precomputed:"

# name -> "module:Class"; a new method is one file in baselines/ plus one line here.
REGISTRY: dict[str, str] = {
    "oracle": "baselines.oracle:Oracle",
    "visible": "baselines.visible:Visible",
    "visual-hull": "baselines.visual_hull:VisualHull",
    "trellis": "baselines.trellis:Trellis",
    "trellis-multidiffusion": "baselines.trellis:TrellisMultidiffusion",
    "pix2gestalt-trellis": "baselines.pix2gestalt_trellis:Pix2GestaltTrellis",
    "pix2gestalt-trellis-mv": "baselines.pix2gestalt_trellis:Pix2GestaltTrellisMV",
    "amodal3r": "baselines.amodal3r:Amodal3R",
    "gena3d": "baselines.gena3d:GENA3D",
    "sam3d": "baselines.sam3d:SAM3DObjects",
    "holopart": "baselines.holopart:HoloPart",
}


def list_methods() -> list[str]:
    return sorted(REGISTRY)


def adapter_class(name: str) -> type[Adapter]:
    if name not in REGISTRY:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(list_methods())}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def get_adapter(name: str) -> Adapter:
    """Instantiate a method: a registered name, or a `worker:<spec.yaml>` /
    `precomputed:<cases_dir>:<method>` string."""
    adapter = adapter_from_string(name)
    return adapter if adapter is not None else adapter_class(name)()


def check_method(name: str) -> str:
    """Fail fast (ValueError) on an unknown or invalid method; returns its record name."""
    if is_method_string(name):
        return method_name(name)  # builds the adapter: reads the spec, checks the CASES root
    adapter_class(name)
    return name


def adapter_from_string(s: str) -> Adapter | None:
    """`worker:<spec.yaml>` -> WorkerAdapter, `precomputed:<cases_dir>:<method>` ->
    PrecomputedAdapter; None for anything else (a plain registry name). ValueError for a
    malformed or invalid one. The method is the part after the last colon, so cases_dir may
    hold colons."""
    if s.startswith(WORKER_PREFIX):
        path = s[len(WORKER_PREFIX):]
        if not path:
            raise ValueError(f"{s!r}: worker: takes a spec path, e.g. worker:specs/trellis.yaml")
        return WorkerAdapter(WorkerSpec.from_yaml(Path(path).expanduser()))
    if s.startswith(PRECOMPUTED_PREFIX):
        root, sep, method = s[len(PRECOMPUTED_PREFIX):].rpartition(":")
        if not sep or not root or not method:
            raise ValueError(f"{s!r}: precomputed: takes precomputed:<cases_dir>:<method>")
        return PrecomputedAdapter(Path(root).expanduser(), method)
    return None


def is_method_string(s: str) -> bool:
    return s.startswith((WORKER_PREFIX, PRECOMPUTED_PREFIX))


def method_name(s: str) -> str:
    """The name a method string is recorded under: the spec's name for worker:, the output
    folder for precomputed:, else the string itself."""
    adapter = adapter_from_string(s)
    return adapter.name if adapter is not None else s
