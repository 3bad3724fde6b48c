"""`trellis` / `trellis-multidiffusion`: TRELLIS image-to-3D (microsoft/TRELLIS @6b0d647) on the
occluded inputs, with no amodal completion: the lower bound of the 3D generators.

Input encoding (`trellis_image`): per view an RGBA image at the view's resolution, RGB = the input
view, alpha = 255 on the visible object pixels (`alpha="visible"`, default: the occluder is cut
away, as a segmentation of the visible part would) or on visible + occluded pixels
(`alpha="object"`: the occluder patch stays inside the object silhouette), 0 elsewhere. With a
real alpha, `TrellisImageTo3DPipeline.preprocess_image` skips rembg, crops the alpha > 0.8 bbox
enlarged 1.2x, resizes to 518^2 and premultiplies: exactly what the pipeline does for any RGBA.

Calls (trellis/pipelines/trellis_image_to_3d.py): one view -> `run(image, seed=...,
sparse_structure_sampler_params=..., slat_sampler_params=..., formats=[mesh, gaussian],
preprocess_image=True)`; several -> `run_multi_image(images, ..., mode=MODE)` with MODE
'stochastic' (`trellis`) or 'multidiffusion' (`trellis-multidiffusion`). Sampler defaults are
the README example's: 12 steps, cfg 7.5 (sparse structure), 12 steps, cfg 3.0 (SLat).

Output: the Gaussians (`outputs['gaussian'][0]`) and, with `mesh_source="extract"` (default), the
in-memory mesh (`outputs['mesh'][0]`, Z-up object frame, vertex colours), no rotation; with
`mesh_source="glb"`, upstream `postprocessing_utils.to_glb(gaussian, mesh, simplify=0.95,
texture_size=1024)` (their app's export: simplified, hole-filled, texture baked, Y-up), rotated
back to Z-up by bench.methods.normalize.
"""

from __future__ import annotations

from typing import Any

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
    rgba,
)
from bench.cases.case import AmodalCase, InputView
from bench.methods.adapter import Generation

ALPHAS = ("visible", "object")
MODES = ("stochastic", "multidiffusion")
MESH_SOURCES = ("extract", "glb")
GLB_PARAMS = {"simplify": 0.95, "texture_size": 1024}

TRELLIS_STACK = Stack(
    "trellis", "git clone microsoft/TRELLIS and run its setup.sh (--basic --xformers --flash-attn "
    "--diffoctreerast --spconv --mipgaussian --kaolin --nvdiffrast)",
    repo_env="AMODAL_BENCH_TRELLIS_REPO", marker="trellis/pipelines/trellis_image_to_3d.py")
TRELLIS_WEIGHTS = Weights("AMODAL_BENCH_TRELLIS_WEIGHTS", "a local copy of microsoft/TRELLIS-image-large",
                          "pipeline.json")


def trellis_image(view: InputView, alpha: str = "visible") -> Image.Image:
    """The RGBA image TRELLIS gets for one occluded view (module docstring)."""
    if alpha not in ALPHAS:
        raise ValueError(f"alpha must be one of {ALPHAS}, got {alpha!r}")
    mask = view.visibility_mask if alpha == "visible" else view.visibility_mask | view.occlusion_mask
    if not mask.any():
        raise ValueError("the view has no object pixels to condition on")
    return rgba(view.rgb, mask)


def load_trellis_pipeline() -> Any:
    """TrellisImageTo3DPipeline.from_pretrained(<local weights>) on CUDA.

    Upstream still fetches DINOv2 with torch.hub.load('facebookresearch/dinov2', ...) inside
    from_pretrained: offline, its torch hub cache ($TORCH_HOME/hub) must already hold it."""
    return load_trellis_family(TRELLIS_STACK, TRELLIS_WEIGHTS, "trellis.pipelines",
                               "TrellisImageTo3DPipeline")


def run_trellis(pipeline: Any, images: list[Image.Image], seed: int, mode: str,
                ss_params: dict, slat_params: dict, formats: tuple[str, ...] = TRELLIS_FORMATS,
                preprocess_image: bool = True) -> tuple[dict, dict]:
    """One TRELLIS inference; returns (outputs, record of the call)."""
    if not images:
        raise ValueError("TRELLIS needs at least one image")
    kwargs = {"seed": seed, "sparse_structure_sampler_params": dict(ss_params),
              "slat_sampler_params": dict(slat_params), "formats": list(formats),
              "preprocess_image": preprocess_image}
    record = {"sparse_structure_sampler_params": dict(ss_params),
              "slat_sampler_params": dict(slat_params), "formats": list(formats),
              "preprocess_image": preprocess_image}
    if len(images) == 1:
        return pipeline.run(images[0], **kwargs), {**record, "call": "run"}
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    outputs = pipeline.run_multi_image(images, mode=mode, **kwargs)
    return outputs, {**record, "call": "run_multi_image", "mode": mode}


class Trellis(GPUAdapter):
    name = "trellis"
    model_id = "microsoft/TRELLIS-image-large"
    upstream = "microsoft/TRELLIS@6b0d647"
    stacks = (TRELLIS_STACK,)
    weights = (TRELLIS_WEIGHTS,)
    mode = "stochastic"  # multi-image conditioning of run_multi_image
    alpha = "visible"
    mesh_source = "extract"
    ss_params = TRELLIS_SS_PARAMS
    slat_params = TRELLIS_SLAT_PARAMS

    def _pipeline(self) -> Any:
        return load_trellis_pipeline()

    def _to_glb(self, outputs: dict) -> Any:
        """Upstream's GLB export of the first sample (needs CUDA: texture baking)."""
        from trellis.utils import postprocessing_utils

        return postprocessing_utils.to_glb(outputs["gaussian"][0], outputs["mesh"][0], verbose=False,
                                           **GLB_PARAMS)

    def _call(self, pipeline: Any, images: list[Image.Image], seed: int) -> tuple[dict, dict]:
        return run_trellis(pipeline, images, seed, self.mode, self.ss_params, self.slat_params)

    def generate(self, case: AmodalCase) -> Generation:
        images = [trellis_image(v, self.alpha) for v in case.views]
        seed = case_seed(case)
        if self.mesh_source not in MESH_SOURCES:
            raise ValueError(f"mesh_source must be one of {MESH_SOURCES}, got {self.mesh_source!r}")
        outputs, call = self._call(self.pipeline(), images, seed)
        meta = {**self.base_meta(case, seed), **call,
                "input": {"encoding": f"RGBA, alpha = {self.alpha} pixels",
                          "size": list(images[0].size)}}
        glb = None
        if self.mesh_source == "glb":
            glb, meta["to_glb"] = self._to_glb(outputs), dict(GLB_PARAMS)
        return generation_from_trellis_outputs(outputs, meta, glb)


class TrellisMultidiffusion(Trellis):
    name = "trellis-multidiffusion"
    mode = "multidiffusion"
