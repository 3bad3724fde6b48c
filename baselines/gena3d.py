"""`gena3d`: GENA3D (Colezwhy/GENAmodal3D @c9e3af9): 2D amodal completions of every view fused
by a TRELLIS-based generator conditioned on the occluded views, their masks and a Pi3 point cloud.

GENA3D needs a 2D amodal completion per view (the paper uses OAAC [ao2025open], and reports
pix2gestalt and Flux inpainting as alternatives, Table 5). OAAC is not in PROTOCOLS.md section 6;
this adapter completes each view with pix2gestalt (baselines.pix2gestalt_trellis, recorded as
`completion: pix2gestalt`) and pastes the completion back at the view's resolution.

Inputs per view (`gena3d_inputs`, bench.cases.encodings.encode_gena3d; inference_gena3d.py's four
files): amodal_completion as RGBA with alpha = completed object (a real alpha makes
`preprocess_image_aligned` use it instead of rembg; it then crops all four images with the
alpha bbox enlarged 1.2x and resizes them to 518^2), the occluded view as RGB, and the visibility
and occlusion masks as 'L' images in {0, 255} (the pipeline binarises them at 127).

Call: `SparseImageTo3D.run(images, occluded, mask=visibility, occ_mask=occlusion, seed=...,
sparse_structure_sampler_params=..., slat_sampler_params=..., formats=[mesh, gaussian])`, lists
even for one view (its single-image branch calls preprocess_image_aligned with an argument it
does not take). Stage 2 is always run_multi_image-style 'stochastic' upstream. Sampler defaults:
inference_gena3d.py, 12 steps cfg 7.5 / 12 steps cfg 3.0, as TRELLIS.

Offline caveat: `from_pretrained_with_custom` also loads Pi3 ('yyfz233/Pi3') and the TRELLIS
sparse-structure encoder ('microsoft/TRELLIS-image-large/ckpts/...') by hub id, and DINOv2 with
torch.hub.load(..., force_reload=True); offline these need pre-filled HF and torch hub caches.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
from PIL import Image

from baselines._gpu import (
    TRELLIS_FORMATS,
    TRELLIS_SLAT_PARAMS,
    TRELLIS_SS_PARAMS,
    GPUAdapter,
    Stack,
    Weights,
    case_seed,
    generation_from_trellis_outputs,
    load_trellis_family,
)
from baselines.pix2gestalt_trellis import (
    PIX2GESTALT_PARAMS,
    PIX2GESTALT_STACK,
    PIX2GESTALT_WEIGHTS,
    complete_view,
    completion_to_view,
    load_pix2gestalt,
)
from bench.cases.case import AmodalCase, InputView
from bench.cases.encodings import encode_gena3d
from bench.methods.adapter import Generation

GENA3D_STACK = Stack(
    "gena3d", "git clone Colezwhy/GENAmodal3D and run its setup.sh (TRELLIS's environment, Pi3 "
    "under dependency/, open3d)",
    repo_env="AMODAL_BENCH_GENA3D_REPO", marker="gena3d/pipelines/sparse_image_to_3d.py",
    repo_required=True)
GENA3D_WEIGHTS = Weights("AMODAL_BENCH_GENA3D_WEIGHTS", "a local copy of Colezwhy/GENA3D", "pipeline.json")


def gena3d_inputs(view: InputView, completion_rgba: np.ndarray) -> dict[str, Image.Image]:
    """GENA3D's four PIL images of one view, keyed as bench.cases.encodings.GENA3D_FILES."""
    if completion_rgba.shape[:2] != view.rgb.shape[:2] or completion_rgba.shape[2] != 4:
        raise ValueError(f"completion must be RGBA at the view's size {view.rgb.shape[:2]}, "
                         f"got {completion_rgba.shape}")
    if (completion_rgba[..., 3] == 255).all():
        raise ValueError("completion alpha is all opaque: GENA3D would run rembg instead of using it")
    arrays = encode_gena3d(completion_rgba, view.rgb, view.visibility_mask, view.occlusion_mask)
    return {"amodal_completion": Image.fromarray(arrays["amodal_completion"], "RGBA"),
            "occluded": Image.fromarray(arrays["occluded"], "RGB"),
            "visibility": Image.fromarray(arrays["visibility"], "L"),
            "occlusion": Image.fromarray(arrays["occlusion"], "L")}


class GENA3D(GPUAdapter):
    name = "gena3d"
    model_id = "Colezwhy/GENA3D"
    upstream = "Colezwhy/GENAmodal3D@c9e3af9 + cvlab-columbia/pix2gestalt@1726a9d"
    stacks = (GENA3D_STACK, PIX2GESTALT_STACK)
    weights = (GENA3D_WEIGHTS, PIX2GESTALT_WEIGHTS)
    completion = "pix2gestalt"
    pix2gestalt_params = PIX2GESTALT_PARAMS
    ss_params = TRELLIS_SS_PARAMS
    slat_params = TRELLIS_SLAT_PARAMS

    def _pipeline(self) -> SimpleNamespace:
        gena3d = load_trellis_family(GENA3D_STACK, GENA3D_WEIGHTS, "gena3d.pipelines",
                                     "SparseImageTo3D", loader="from_pretrained_with_custom")
        return SimpleNamespace(gena3d=gena3d, pix2gestalt=load_pix2gestalt())

    def _call(self, pipeline: Any, inputs: list[dict[str, Image.Image]], seed: int) -> dict:
        return pipeline.run(
            [i["amodal_completion"] for i in inputs], [i["occluded"] for i in inputs],
            mask=[i["visibility"] for i in inputs], occ_mask=[i["occlusion"] for i in inputs],
            seed=seed, sparse_structure_sampler_params=dict(self.ss_params),
            slat_sampler_params=dict(self.slat_params), formats=list(TRELLIS_FORMATS))

    def generate(self, case: AmodalCase) -> Generation:
        seed = case_seed(case)
        models = self.pipeline()
        seeds = [(seed + k) % 2**32 for k in range(len(case.views))]
        completions = [completion_to_view(complete_view(models.pix2gestalt, v, s, self.pix2gestalt_params), v)
                       for v, s in zip(case.views, seeds)]
        inputs = [gena3d_inputs(v, c) for v, c in zip(case.views, completions)]
        outputs = self._call(models.gena3d, inputs, seed)
        meta = {**self.base_meta(case, seed), "call": "SparseImageTo3D.run",
                "mode": "stochastic (stage 2, fixed upstream)",
                "sparse_structure_sampler_params": dict(self.ss_params),
                "slat_sampler_params": dict(self.slat_params), "formats": list(TRELLIS_FORMATS),
                "completion": self.completion,
                "pix2gestalt": {**self.pix2gestalt_params, "seeds": seeds},
                "input": {"encoding": "RGBA completion, RGB occluded view, L visibility / occlusion",
                          "size": list(inputs[0]["occluded"].size)}}
        return generation_from_trellis_outputs(outputs, meta)
