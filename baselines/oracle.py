"""`oracle`: returns the ground-truth mesh. An upper bound that checks the harness itself:
every metric must come out perfect (masked PSNR infinite, MMD 0, COV 100 %)."""

from __future__ import annotations

from bench.cases.case import AmodalCase
from bench.inputs.assets import load_asset
from bench.methods.adapter import Adapter, Generation


class Oracle(Adapter):
    name = "oracle"

    def generate(self, case: AmodalCase) -> Generation:
        # reads the GT file named by the case; the same loader and normalization as the GT side
        asset = load_asset(case.source, case.object_id, case.meta.get("up_axis", "z"))
        return Generation(asset.mesh, {"source": case.source})
