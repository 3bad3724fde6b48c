"""The one interface every method implements: Adapter, and its output, Generation.

    class MyMethod(Adapter):
        name = "my-method"
        def generate(self, case: AmodalCase) -> Generation: ...

Methods are found by name in bench.methods.registry.
"""

from __future__ import annotations

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
    parts: completed part meshes of a part-completion method (HoloPart), in the object frame;
        filled by the holopart adapter, not evaluated yet: the leaderboard has no part_* columns
        until the part protocol (issue "parts") scores them.
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
