"""The one interface every method implements, and the registry that finds methods by name.

    class MyMethod(Adapter):
        name = "my-method"
        def generate(self, case: AmodalCase) -> Generation: ...

Methods are registered lazily (name -> "module:Class"), so a heavy backend (torch models, CUDA
extensions) is imported only when that method is used, as lm-evaluation-harness does.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from bench.cases.case import AmodalCase
from bench.inputs.assets import Mesh


@dataclass
class Generation:
    """A method's output for one case, in the harness's object frame (TRELLIS frame, Z-up).

    mesh: the generated surface; None means the method produced nothing (a failure).
    meta: anything the method wants recorded (sampler settings, seeds, weights hash).
    gaussians: a 3D Gaussian splat output (bench.inputs.gaussians.Gaussians), kept as Gaussians for
        rendering later; the mesh metrics use `mesh`.
    parts: completed part meshes of a part-completion method (HoloPart), in the object frame.
    """

    mesh: Mesh | None
    meta: dict = field(default_factory=dict)
    gaussians: Any = None
    parts: list[Mesh] | None = None


class Adapter(ABC):
    """A method under evaluation. Subclasses set `name` and implement `generate`."""

    name: str = ""

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """(can run in this environment, why not). Override to check packages and weights."""
        return True, ""

    @abstractmethod
    def generate(self, case: AmodalCase) -> Generation:
        """Generate the complete object from the occluded input views of `case`."""


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
    `precomputed:<cases_dir>:<method>` string (bench.methods.worker)."""
    from bench.methods.worker import adapter_from_string

    adapter = adapter_from_string(name)
    return adapter if adapter is not None else adapter_class(name)()


def check_method(name: str) -> str:
    """Fail fast (ValueError) on an unknown or invalid method; returns its record name."""
    from bench.methods.worker import is_method_string, method_name

    if is_method_string(name):
        return method_name(name)  # builds the adapter: reads the spec, checks the CASES root
    adapter_class(name)
    return name
