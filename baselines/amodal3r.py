"""`amodal3r`: Amodal3R (Sm0kyWu/Amodal3R @58a2c22), a TRELLIS fine-tuned on occluded inputs.

Input encoding (`amodal3r_inputs`, bench.cases.encodings.encode_amodal3r): per view an RGB image and a
grey mask image, both (H, W) uint8 numpy arrays at the view's resolution: mask 255 background,
188 visible, 0 occluded (the pipeline dilates the occluded class with a 3x3 ellipse when it reads
it), RGB zeroed where the pipeline zeroes it. Their `preprocess_image_w_mask` resizes the image to
518^2 with no crop, so views must be square and object-centred (the case renders are, as their
GSO evaluation renders were).

Why numpy and not PIL: upstream versions of `preprocess_image_w_mask` differ; some call
`input.astype(...)` (numpy only), others `np.array(input)` (either). uint8 arrays work with both.

Call: `run_multi_image(images, masks, seed=..., sparse_structure_sampler_params=...,
slat_sampler_params=..., formats=[mesh, gaussian], mode='stochastic', erode_kernel_size=3)` even
for one view: `run()` is broken upstream (it calls a `preprocess_image` the pipeline does not have
and ignores the masks). Sampler defaults: their inference.py, 12 steps cfg 7.5 / 12 steps cfg 3.

Output: the in-memory mesh and Gaussians (Z-up object frame), as TRELLIS.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from baselines._gpu import (
    TRELLIS_FORMATS,
    TRELLIS_SLAT_PARAMS,
    TRELLIS_SS_PARAMS,
    GPUAdapter,
    Stack,
    Weights,
    case_seed,
    check_square,
    generation_from_trellis_outputs,
    load_trellis_family,
)
from bench.cases.case import AmodalCase, InputView
from bench.cases.encodings import AMODAL3R_KERNEL_SIZE, encode_amodal3r
from bench.methods.adapter import Generation

AMODAL3R_STACK = Stack(
    "amodal3r", "git clone Sm0kyWu/Amodal3R and run its setup.sh (TRELLIS's environment)",
    repo_env="AMODAL_BENCH_AMODAL3R_REPO", marker="amodal3r/pipelines/image_to_3d.py")
AMODAL3R_WEIGHTS = Weights("AMODAL_BENCH_AMODAL3R_WEIGHTS", "a local copy of Sm0kyWu/Amodal3R",
                           "pipeline.json")


def amodal3r_inputs(view: InputView) -> tuple[np.ndarray, np.ndarray]:
    """(image (H, W, 3) uint8, mask (H, W) uint8) for one view, as Amodal3R reads them."""
    check_square(view, "Amodal3R")
    return encode_amodal3r(view.rgb, view.visibility_mask, view.occlusion_mask)


class Amodal3R(GPUAdapter):
    name = "amodal3r"
    model_id = "Sm0kyWu/Amodal3R"
    upstream = "Sm0kyWu/Amodal3R@58a2c22"
    stacks = (AMODAL3R_STACK,)
    weights = (AMODAL3R_WEIGHTS,)
    mode = "stochastic"
    erode_kernel_size = AMODAL3R_KERNEL_SIZE
    ss_params = TRELLIS_SS_PARAMS
    slat_params = TRELLIS_SLAT_PARAMS

    def _pipeline(self) -> Any:
        return load_trellis_family(AMODAL3R_STACK, AMODAL3R_WEIGHTS, "amodal3r.pipelines",
                                   "Amodal3RImageTo3DPipeline")

    def _call(self, pipeline: Any, images: list[np.ndarray], masks: list[np.ndarray], seed: int) -> dict:
        return pipeline.run_multi_image(
            images, masks, seed=seed, sparse_structure_sampler_params=dict(self.ss_params),
            slat_sampler_params=dict(self.slat_params), formats=list(TRELLIS_FORMATS), mode=self.mode,
            erode_kernel_size=self.erode_kernel_size)

    def generate(self, case: AmodalCase) -> Generation:
        images, masks = zip(*[amodal3r_inputs(v) for v in case.views])
        seed = case_seed(case)
        outputs = self._call(self.pipeline(), list(images), list(masks), seed)
        meta = {**self.base_meta(case, seed), "call": "run_multi_image", "mode": self.mode,
                "sparse_structure_sampler_params": dict(self.ss_params),
                "slat_sampler_params": dict(self.slat_params), "formats": list(TRELLIS_FORMATS),
                "erode_kernel_size": self.erode_kernel_size,
                "input": {"encoding": "numpy RGB + grey mask 255 bg / 188 visible / 0 occluded",
                          "size": list(images[0].shape[:2])}}
        return generation_from_trellis_outputs(outputs, meta)
