"""`pix2gestalt-trellis` / `pix2gestalt-trellis-mv`: 2D amodal completion with pix2gestalt
(cvlab-columbia/pix2gestalt @1726a9d, CC BY-NC), then TRELLIS on the completed image(s): the
"2D completion lifted to 3D" baselines of Amodal3R and GENA3D.

pix2gestalt input (`pix2gestalt_input`): the whole view resized to 256^2 with area averaging (their
app resizes the whole image with cv2.INTER_AREA; a 512^2 case view is halved exactly) and the
visibility mask resized the same way, thresholded at 127 and repeated to (256, 256, 3) 0/255,
the form `run_pix2gestalt(model, device, input_im, visible_mask, scale, n_samples, ddim_steps,
ddim_eta)` takes. Its output is a list of n_samples (256, 256, 3) uint8 images of the whole
object on white; the first is used. Defaults: scale 2.0, ddim_steps 200, ddim_eta 1.0 (upstream
defaults) and n_samples 1 (upstream 6: one completion per view is what TRELLIS consumes).
pix2gestalt takes no seed: torch.manual_seed(seed) is set before each call.

Amodal mask (`amodal_mask`): their evaluation thresholds the completion's grey level at 250
(cv2.threshold(gray, 250, 255, THRESH_BINARY_INV): object where gray <= 250), with OpenCV's
fixed-point RGB -> grey weights 0.299 / 0.587 / 0.114. (Their app's thresholding branch hands an
RGB image to COLOR_BGR2GRAY, i.e. swaps the R and B weights; on a white background the difference
is one grey level at most near the threshold. We use the RGB weights.)

TRELLIS input (`trellis_image_from_completion`): the 256^2 completion as RGBA, alpha = amodal
mask, so `preprocess_image` crops and resizes it without rembg.

Variants:
- `pix2gestalt-trellis` (per view): every view is completed, then TRELLIS `run` (one view) or
  `run_multi_image(mode='stochastic')` on all completions (GENA3D's "OAAC" setting).
- `pix2gestalt-trellis-mv` (most visible view, then multi-view generation): only the view with
  the largest visible fraction is completed and TRELLIS generates the object from that single
  completion. GENA3D's "OAAC + MV" runs a multi-view diffusion model in between; PROTOCOLS.md
  names none, so here TRELLIS is the multi-view generator. With one input view both variants are
  the same.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from PIL import Image

from baselines._gpu import (
    TRELLIS_SLAT_PARAMS,
    TRELLIS_SS_PARAMS,
    GPUAdapter,
    Stack,
    Weights,
    case_seed,
    generation_from_trellis_outputs,
    load_module_from_file,
    most_visible_view,
    rgba,
)
from baselines.trellis import TRELLIS_STACK, TRELLIS_WEIGHTS, load_trellis_pipeline, run_trellis
from bench.cases.case import AmodalCase, InputView
from bench.methods.adapter import Generation

PIX2GESTALT_SIZE = 256
AMODAL_GRAY_THRESHOLD = 250  # object where gray <= 250 (THRESH_BINARY_INV)
PIX2GESTALT_PARAMS = {"scale": 2.0, "n_samples": 1, "ddim_steps": 200, "ddim_eta": 1.0}
PIX2GESTALT_CONFIG = "pix2gestalt/configs/sd-finetune-pix2gestalt-c_concat-256.yaml"

PIX2GESTALT_STACK = Stack(
    "ldm", "git clone cvlab-columbia/pix2gestalt; pip install -r pix2gestalt/requirements.txt and "
    "-e taming-transformers and -e CLIP (its README)",
    repo_env="AMODAL_BENCH_PIX2GESTALT_REPO", marker="pix2gestalt/inference.py", repo_required=True,
    requires=("omegaconf", "taming", "clip", "segment_anything"))
PIX2GESTALT_WEIGHTS = Weights("AMODAL_BENCH_PIX2GESTALT_WEIGHTS",
                              "pix2gestalt epoch=000005.ckpt from cvlab/pix2gestalt-weights")


def pix2gestalt_input(view: InputView, size: int = PIX2GESTALT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(input_im (size, size, 3) uint8, visible_mask (size, size, 3) uint8 in {0, 255})."""
    image = np.asarray(Image.fromarray(view.rgb).resize((size, size), Image.Resampling.BOX))
    mask = Image.fromarray(view.visibility_mask.astype(np.uint8) * 255)
    mask = np.asarray(mask.resize((size, size), Image.Resampling.BOX)) > 127
    return image, np.repeat(mask[..., None], 3, axis=2).astype(np.uint8) * np.uint8(255)


def gray_levels(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 grey, OpenCV's fixed-point COLOR_RGB2GRAY
    ((4899 R + 9617 G + 1868 B + 8192) >> 14)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] < 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
    rgb = image[..., :3].astype(np.int64)
    return ((rgb[..., 0] * 4899 + rgb[..., 1] * 9617 + rgb[..., 2] * 1868 + 8192) >> 14).astype(np.uint8)


def amodal_mask(completion: np.ndarray, threshold: int = AMODAL_GRAY_THRESHOLD) -> np.ndarray:
    """(H, W) bool whole-object mask of a pix2gestalt completion: gray <= threshold."""
    return gray_levels(completion) <= threshold


def trellis_image_from_completion(completion: np.ndarray) -> Image.Image:
    """The TRELLIS input of one completion: RGBA, alpha = amodal mask."""
    return rgba(np.ascontiguousarray(completion[..., :3]), amodal_mask(completion))


def completion_to_view(completion: np.ndarray, view: InputView) -> np.ndarray:
    """A 256^2 completion back at the view's resolution (their app resizes back with Lanczos):
    (H, W, 4) uint8 RGBA, alpha = amodal mask of the resized completion | visibility mask."""
    h, w = view.rgb.shape[:2]
    resized = np.asarray(Image.fromarray(np.ascontiguousarray(completion[..., :3]))
                         .resize((w, h), Image.Resampling.LANCZOS))
    alpha = amodal_mask(resized) | view.visibility_mask
    return np.dstack([resized, np.where(alpha, np.uint8(255), np.uint8(0))])


def load_pix2gestalt() -> SimpleNamespace:
    """(model, device, run_pix2gestalt) from the clone's pix2gestalt/inference.py and the local
    checkpoint. Their modules import `ldm` from pix2gestalt/, so that folder goes on sys.path;
    inference.py is loaded under a private name (SAM 3D also ships an inference.py)."""
    import sys

    import torch
    from omegaconf import OmegaConf

    repo = Path(os.environ[PIX2GESTALT_STACK.repo_env])
    code = repo / "pix2gestalt"
    if str(code) not in sys.path:
        sys.path.insert(0, str(code))
    module = load_module_from_file("_pix2gestalt_inference", code / "inference.py")
    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    model = module.load_model_from_config(OmegaConf.load(repo / PIX2GESTALT_CONFIG),
                                          str(PIX2GESTALT_WEIGHTS.path()), device)
    return SimpleNamespace(model=model, device=device, run_pix2gestalt=module.run_pix2gestalt)


def complete_view(p2g: Any, view: InputView, seed: int, params: dict = PIX2GESTALT_PARAMS) -> np.ndarray:
    """One pix2gestalt completion of a view: (256, 256, 3) uint8, whole object on white."""
    import torch

    input_im, visible_mask = pix2gestalt_input(view)
    torch.manual_seed(seed)
    outputs = p2g.run_pix2gestalt(p2g.model, p2g.device, input_im, visible_mask, **params)
    out = np.asarray(outputs[0])
    if out.shape != (PIX2GESTALT_SIZE, PIX2GESTALT_SIZE, 3) or out.dtype != np.uint8:
        raise ValueError(f"pix2gestalt returned {out.dtype} {out.shape}, expected uint8 (256, 256, 3)")
    return out


class Pix2GestaltTrellis(GPUAdapter):
    name = "pix2gestalt-trellis"
    model_id = "cvlab/pix2gestalt-weights epoch=000005 + microsoft/TRELLIS-image-large"
    upstream = "cvlab-columbia/pix2gestalt@1726a9d + microsoft/TRELLIS@6b0d647"
    stacks = (PIX2GESTALT_STACK, TRELLIS_STACK)
    weights = (PIX2GESTALT_WEIGHTS, TRELLIS_WEIGHTS)
    variant = "per-view"  # or "most-visible"
    trellis_mode = "stochastic"
    pix2gestalt_params = PIX2GESTALT_PARAMS
    ss_params = TRELLIS_SS_PARAMS
    slat_params = TRELLIS_SLAT_PARAMS

    def _pipeline(self) -> SimpleNamespace:
        return SimpleNamespace(pix2gestalt=load_pix2gestalt(), trellis=load_trellis_pipeline())

    def views_to_complete(self, case: AmodalCase) -> list[int]:
        if self.variant == "per-view":
            return list(range(len(case.views)))
        if self.variant == "most-visible":
            return [most_visible_view(case)]
        raise ValueError(f"unknown variant {self.variant!r}")

    def generate(self, case: AmodalCase) -> Generation:
        seed = case_seed(case)
        models = self.pipeline()
        indices = self.views_to_complete(case)
        seeds = [(seed + k) % 2**32 for k in indices]
        meta = {**self.base_meta(case, seed), "variant": self.variant, "completed_views": indices,
                "pix2gestalt": {**self.pix2gestalt_params, "seeds": seeds, "size": PIX2GESTALT_SIZE,
                                "amodal_mask": f"gray <= {AMODAL_GRAY_THRESHOLD}"}}
        completions = [complete_view(models.pix2gestalt, case.views[k], s, self.pix2gestalt_params)
                       for k, s in zip(indices, seeds)]
        fractions = [float(amodal_mask(c).mean()) for c in completions]
        meta["pix2gestalt"]["amodal_fraction"] = fractions
        empty = [k for k, f in zip(indices, fractions) if f == 0]
        if empty:
            return Generation(None, {**meta, "reason": f"pix2gestalt completed no object in views {empty}"})
        images = [trellis_image_from_completion(c) for c in completions]
        outputs, call = run_trellis(models.trellis, images, seed, self.trellis_mode, self.ss_params,
                                    self.slat_params)
        meta.update(call)
        meta["input"] = {"encoding": "pix2gestalt completion, RGBA alpha = amodal mask",
                         "size": list(images[0].size)}
        return generation_from_trellis_outputs(outputs, meta)


class Pix2GestaltTrellisMV(Pix2GestaltTrellis):
    name = "pix2gestalt-trellis-mv"
    variant = "most-visible"
