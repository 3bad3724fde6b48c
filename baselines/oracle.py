"""`oracle`: returns the ground-truth mesh, in the case's import frame. An upper bound that checks
the harness itself: every geometry metric must come out perfect (MMD 0, COV 100 %), and every
image metric too when the GT is rendered unlit (`<protocol>+raster-unlit`); against lit Cycles GT
its unlit texture shows the lit-vs-unlit gap."""

from __future__ import annotations

from bench.cases.case import AmodalCase
from bench.inputs.dataset import load_source
from bench.methods.adapter import Adapter, Generation


class Oracle(Adapter):
    name = "oracle"

    def generate(self, case: AmodalCase) -> Generation:
        # reads the GT file named by the case; the same loader and normalization as the GT side
        asset = load_source(case.source, case.object_id, case.meta.get("up_axis", "z"),
                            case.meta.get("import_frame", "upright"))
        return Generation(asset.mesh, {"source": case.source})
