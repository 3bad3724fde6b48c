"""The GPU adapters (baselines/trellis.py, pix2gestalt_trellis.py, amodal3r.py, gena3d.py, sam3d.py,
holopart.py) without their GPUs.

What runs for real here: availability(), every input encoding on a real AmodalCase (a GSO object
under the amodal3r-gso protocol), every output conversion on real trimesh meshes and real GLB files,
and generate() end to end.

What is a stand-in: the models themselves cannot run here (no CUDA, no weights), so generate() is
driven through each adapter's `_pipeline()` hook with Recording* stand-ins (RecordingTrellisPipeline,
RecordingAmodal3RPipeline, RecordingGENA3DPipeline, RecordingPix2Gestalt, RecordingSAM3DInference,
RecordingHoloPart). They have the upstream call signatures (explicit keyword names, no **kwargs,
so a misnamed argument fails), record what they receive, and return real meshes of the case's
ground truth in the model's output format (TRELLIS MeshExtractResult / Gaussian attributes, a Y-up
trimesh plus a camera-frame pose for SAM 3D, a trimesh.Scene of parts for HoloPart). They check the
inputs (image sizes and modes, masks, seeds, sampler parameters), never the models' quality.
References: bench.inputs.cameras.Camera.unproject (point maps), bench.cases.encodings decoders (mask
encodings), the GT mesh (output frames).
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import trimesh
from conftest import SMALL_GSO_OBJECT, gso_mesh_path
from PIL import Image

import baselines._gpu as gpu
from baselines._gpu import case_seed, gaussians_from_trellis, mesh_from_extract_result, most_visible_view
from baselines.amodal3r import Amodal3R, amodal3r_inputs
from baselines.gena3d import GENA3D, gena3d_inputs
from baselines.holopart import (
    HOLOPART_SCALE,
    HoloPart,
    connected_part_labels,
    from_holopart_frame,
    part_scene,
    parts_from_scene,
    segment_visible,
)
from baselines.pix2gestalt_trellis import (
    Pix2GestaltTrellis,
    Pix2GestaltTrellisMV,
    amodal_mask,
    completion_to_view,
    gray_levels,
    pix2gestalt_input,
    trellis_image_from_completion,
)
from baselines.sam3d import SAM3DObjects, pointmap_from_view, pose_to_world, sam3d_inputs
from baselines.trellis import Trellis, TrellisMultidiffusion, trellis_image
from bench.cases.case import build_case
from bench.cases.encodings import GENA3D_THRESHOLD, decode_amodal3r
from bench.inputs.assets import Z_UP_TO_Y_UP, Mesh, load_asset
from bench.inputs.gaussians import quaternion_to_matrix
from bench.inputs.protocol import load_protocol
from bench.methods.registry import REGISTRY, adapter_class

GPU_METHODS = ["trellis", "trellis-multidiffusion", "pix2gestalt-trellis", "pix2gestalt-trellis-mv",
               "amodal3r", "gena3d", "sam3d", "holopart"]
SS = {"steps": 12, "cfg_strength": 7.5}
SLAT = {"steps": 12, "cfg_strength": 3.0}


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def asset(gso_root):
    return load_asset(gso_mesh_path(gso_root, SMALL_GSO_OBJECT))


@pytest.fixture(scope="module")
def protocol():
    return load_protocol("amodal3r-gso")


@pytest.fixture(scope="module")
def case1(asset, protocol):
    return build_case(asset, protocol, 1)


@pytest.fixture(scope="module")
def case2(asset, protocol):
    return build_case(asset, protocol, 2)


# ----------------------------------------------------------------------------- stand-ins
class MeshExtractResultStandIn:
    """The attributes of TRELLIS's MeshExtractResult: torch vertices / faces, vertex_attrs (V, 6)
    (sigmoid colours then normals), success."""

    def __init__(self, mesh: Mesh):
        self.vertices = torch.tensor(mesh.vertices, dtype=torch.float32)
        self.faces = torch.tensor(mesh.faces, dtype=torch.int64)
        colors = mesh.vertex_colors
        if colors is None:
            colors = np.full((len(mesh.vertices), 3), 128)
        self.vertex_attrs = torch.cat([torch.tensor(colors / 255.0, dtype=torch.float32),
                                       torch.zeros(len(mesh.vertices), 3)], 1)
        self.success = len(mesh.faces) > 0


class GaussianStandIn:
    """The activated getters of TRELLIS's Gaussian, as torch tensors."""

    def __init__(self, xyz: np.ndarray, scale: float = 0.01):
        n = len(xyz)
        self.get_xyz = torch.tensor(xyz, dtype=torch.float32)
        self.get_opacity = torch.full((n, 1), 0.9)
        self.get_scaling = torch.full((n, 3), scale)
        self.get_rotation = torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1)
        self._features_dc = torch.zeros(n, 1, 3)
        self._features_rest = None


def surface_points(mesh: Mesh, n: int = 200) -> np.ndarray:
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    return np.asarray(trimesh.sample.sample_surface(tm, n, seed=0)[0])


def trellis_outputs(mesh: Mesh) -> dict:
    return {"mesh": [MeshExtractResultStandIn(mesh)], "gaussian": [GaussianStandIn(surface_points(mesh))]}


class RecordingTrellisPipeline:
    """Stand-in for TrellisImageTo3DPipeline (run / run_multi_image, upstream signatures)."""

    def __init__(self, outputs: dict):
        self.outputs, self.calls = outputs, []

    def run(self, image, num_samples=1, seed=42, sparse_structure_sampler_params=None,
            slat_sampler_params=None, formats=("mesh", "gaussian", "radiance_field"),
            preprocess_image=True):
        self.calls.append({"call": "run", "images": [image], "seed": seed,
                           "ss": sparse_structure_sampler_params, "slat": slat_sampler_params,
                           "formats": formats, "preprocess_image": preprocess_image})
        return self.outputs

    def run_multi_image(self, images, num_samples=1, seed=42, sparse_structure_sampler_params=None,
                        slat_sampler_params=None, formats=("mesh", "gaussian", "radiance_field"),
                        preprocess_image=True, mode="stochastic"):
        self.calls.append({"call": "run_multi_image", "images": list(images), "seed": seed,
                           "ss": sparse_structure_sampler_params, "slat": slat_sampler_params,
                           "formats": formats, "preprocess_image": preprocess_image, "mode": mode})
        return self.outputs


class RecordingAmodal3RPipeline:
    """Stand-in for Amodal3RImageTo3DPipeline: run_multi_image(images, masks, ...) reads its inputs
    as upstream's preprocess_image_w_mask does (numpy .astype); run() is broken upstream."""

    def __init__(self, outputs: dict):
        self.outputs, self.calls = outputs, []

    def run(self, *args, **kwargs):
        raise AssertionError("Amodal3R's run() is broken upstream; run_multi_image must be used")

    def run_multi_image(self, images, masks, num_samples=1, seed=42, sparse_structure_sampler_params=None,
                        slat_sampler_params=None, formats=("mesh", "gaussian"), mode="stochastic",
                        erode_kernel_size=3):
        decoded = []
        for image, mask in zip(images, masks):
            image.astype(np.float32)  # upstream: input.astype(np.float32) / 255 (numpy only)
            mask_ori = mask.astype(np.float32)
            decoded.append((mask_ori < 127, mask_ori > 230))
        self.calls.append({"images": list(images), "masks": list(masks), "decoded": decoded, "seed": seed,
                           "ss": sparse_structure_sampler_params, "slat": slat_sampler_params,
                           "formats": formats, "mode": mode, "erode_kernel_size": erode_kernel_size})
        return self.outputs


class RecordingGENA3DPipeline:
    """Stand-in for GENA3D's SparseImageTo3D.run (upstream signature)."""

    def __init__(self, outputs: dict):
        self.outputs, self.calls = outputs, []

    def run(self, image, occluded, mask=None, occ_mask=None, num_samples=1, seed=42,
            sparse_structure_sampler_params=None, slat_sampler_params=None,
            formats=("mesh", "gaussian"), preprocess_image=True, scene_image=None, depth=None,
            use_mask=False, get_voxel_vis=True, custom_model=None):
        self.calls.append({"image": image, "occluded": occluded, "mask": mask, "occ_mask": occ_mask,
                           "seed": seed, "ss": sparse_structure_sampler_params, "slat": slat_sampler_params,
                           "formats": formats, "preprocess_image": preprocess_image})
        return self.outputs


class RecordingPix2Gestalt:
    """Stand-in for pix2gestalt's run_pix2gestalt: the 'completion' keeps the non-white input
    pixels, paints the black occluder grey, and puts everything on white (its output format)."""

    def __init__(self, empty: bool = False):
        self.calls, self.empty = [], empty
        self.model, self.device = object(), "cpu"

    def run_pix2gestalt(self, model, device, input_im, visible_mask, scale=2.0, n_samples=6, ddim_steps=200,
                        ddim_eta=1.0, precision="fp32", h=256, w=256):
        self.calls.append({"input_im": input_im, "visible_mask": visible_mask, "scale": scale,
                           "n_samples": n_samples, "ddim_steps": ddim_steps, "ddim_eta": ddim_eta,
                           "torch_seed": torch.initial_seed()})
        out = np.full((h, w, 3), 255, np.uint8)
        if not self.empty:
            obj = input_im.min(axis=2) < 240
            out[obj] = input_im[obj]
            out[obj & (input_im.max(axis=2) < 10)] = 128  # the occluder, "completed"
        return [out.copy() for _ in range(n_samples)]


def _gaussian_points(g):
    return g.xyz.astype(np.float64)


def _json_meta(gen):
    """Records are JSON: the meta must serialise, and name the model, its weights and the seed."""
    json.dumps(gen.meta, allow_nan=False)
    assert gen.meta["model"] and gen.meta["upstream"] and "weights" in gen.meta
    assert isinstance(gen.meta["seed"], int)
    return gen


# ----------------------------------------------------------------------------- availability
def _clear_env(monkeypatch, cls):
    for stack in cls.stacks:
        if stack.repo_env:
            monkeypatch.delenv(stack.repo_env, raising=False)
    for w in cls.weights:
        monkeypatch.delenv(w.env, raising=False)


@pytest.mark.parametrize("name", GPU_METHODS)
def test_registered_and_unavailable_without_cuda(name, monkeypatch):
    cls = adapter_class(name)
    assert REGISTRY[name].startswith("baselines.") and cls.name == name
    monkeypatch.setattr(gpu, "cuda_available", lambda: False)
    ok, why = cls.availability()
    assert (ok, why) == (False, "needs a CUDA GPU (torch.cuda.is_available() is False)")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_ls_methods_lists_every_gpu_adapter_as_unavailable(capsys):
    from bench.cli import main

    assert main(["ls", "methods"]) == 0
    lines = dict(line.split("\t", 1) for line in capsys.readouterr().out.strip().splitlines())
    for name in GPU_METHODS:
        assert lines[name] == "unavailable: needs a CUDA GPU (torch.cuda.is_available() is False)"


@pytest.mark.parametrize("name", GPU_METHODS)
def test_availability_names_the_first_missing_piece(name, monkeypatch, tmp_path):
    """With CUDA patched in: each missing stack, then each weights path, is named in one line."""
    cls = adapter_class(name)
    monkeypatch.setattr(gpu, "cuda_available", lambda: True)
    _clear_env(monkeypatch, cls)
    installed: set[str] = set()
    monkeypatch.setattr(gpu, "package_available", lambda pkg: pkg in installed)
    for stack in cls.stacks:
        ok, why = cls.availability()
        assert not ok and "\n" not in why
        if stack.repo_required:
            assert why.startswith(f"set {stack.repo_env} to a local clone")
            repo = tmp_path / stack.package
            (repo / stack.marker).parent.mkdir(parents=True, exist_ok=True)
            (repo / stack.marker).write_text("")
            monkeypatch.setenv(stack.repo_env, str(repo))
        else:
            assert why.startswith(f"package {stack.package!r} not importable")
            assert stack.repo_env in why
            installed.add(stack.package)
        if stack.requires:
            ok, why = cls.availability()
            assert why.startswith(f"package {stack.requires[0]!r} not importable")
            installed.update(stack.requires)
    for w in cls.weights:
        ok, why = cls.availability()
        assert not ok and why.startswith(f"set {w.env} to local weights") and "hub ids are never used" in why
        target = tmp_path / w.env
        monkeypatch.setenv(w.env, str(target))
        ok, why = cls.availability()
        assert not ok and why.startswith(f"{w.env}={target}:") and "not found" in why
        if w.required:
            target.mkdir()
            (target / w.required).write_text("{}")
        else:
            target.write_bytes(b"ckpt")
    assert cls.availability() == (True, "")


def test_wrong_clone_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(gpu, "cuda_available", lambda: True)
    monkeypatch.setenv("AMODAL_BENCH_TRELLIS_REPO", str(tmp_path))
    ok, why = Trellis.availability()
    assert not ok and why.startswith(f"AMODAL_BENCH_TRELLIS_REPO={tmp_path}:")
    assert "trellis/pipelines/trellis_image_to_3d.py not found" in why


@pytest.mark.parametrize("name,stack,weights,module,cls,loader", [
    ("trellis", "TRELLIS_STACK", "TRELLIS_WEIGHTS", "trellis.pipelines", "TrellisImageTo3DPipeline",
     "from_pretrained"),
    ("amodal3r", "AMODAL3R_STACK", "AMODAL3R_WEIGHTS", "amodal3r.pipelines",
     "Amodal3RImageTo3DPipeline", "from_pretrained"),
    ("gena3d", "GENA3D_STACK", "GENA3D_WEIGHTS", "gena3d.pipelines", "SparseImageTo3D",
     "from_pretrained_with_custom"),
])
def test_trellis_family_loads_from_the_clone_and_weights_dir(name, stack, weights, module, cls,
                                                             loader, monkeypatch, tmp_path):
    """The real loading path up to the model: a clone on disk with the upstream module path and a
    class recording what it is given (no network, no GPU: `.cuda()` is recorded, not run)."""
    import importlib
    import sys

    stack, weights = (getattr(importlib.import_module(f"baselines.{name}"), a) for a in (stack, weights))
    repo, wdir = tmp_path / "clone", tmp_path / "weights"
    (repo / module.replace(".", "/")).parent.mkdir(parents=True)
    (repo / module.split(".")[0] / "__init__.py").write_text("")
    (repo / (module.replace(".", "/") + ".py")).write_text(
        f"class {cls}:\n"
        f"    @classmethod\n"
        f"    def {loader}(cls, path):\n"
        f"        self = cls(); self.path, self.on_cuda = path, False; return self\n"
        f"    def cuda(self):\n"
        f"        self.on_cuda = True; return self\n")
    wdir.mkdir()
    (wdir / weights.required).write_text("{}")
    monkeypatch.setenv(stack.repo_env, str(repo))
    monkeypatch.setenv(weights.env, str(wdir))
    monkeypatch.delenv("SPCONV_ALGO", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for key in [k for k in sys.modules if k.split(".")[0] == module.split(".")[0]]:
        monkeypatch.delitem(sys.modules, key)
    pipeline = gpu.load_trellis_family(stack, weights, module, cls, loader)
    assert type(pipeline).__name__ == cls and pipeline.path == str(wdir) and pipeline.on_cuda
    assert sys.path[0] == str(repo) and os.environ["SPCONV_ALGO"] == "native"
    for key in [k for k in sys.modules if k.split(".")[0] == module.split(".")[0]]:
        del sys.modules[key]


def test_trellis_family_without_weights_is_one_line(monkeypatch):
    from baselines.trellis import TRELLIS_STACK, TRELLIS_WEIGHTS

    monkeypatch.delenv(TRELLIS_WEIGHTS.env, raising=False)
    with pytest.raises(RuntimeError, match="set AMODAL_BENCH_TRELLIS_WEIGHTS to local weights"):
        # the module named does not exist: the weights are checked before any import
        gpu.load_trellis_family(TRELLIS_STACK, TRELLIS_WEIGHTS, "no_such_module", "Pipeline")


# ----------------------------------------------------------------------------- output conversion
def test_trellis_outputs_become_a_generation_in_the_object_frame(asset):
    outputs = trellis_outputs(asset.mesh)
    mesh = mesh_from_extract_result(outputs["mesh"][0])
    assert np.allclose(mesh.vertices, asset.mesh.vertices)  # in-memory outputs are Z-up: no rotation
    assert np.array_equal(mesh.faces, asset.mesh.faces)
    if asset.mesh.vertex_colors is not None:
        assert np.abs(mesh.vertex_colors.astype(int) - asset.mesh.vertex_colors).max() <= 1
    g = gaussians_from_trellis(outputs["gaussian"][0])
    assert g.xyz.shape == (200, 3) and np.allclose(g.opacity, 0.9) and g.sh_rest is None
    empty = MeshExtractResultStandIn(Mesh(np.zeros((0, 3)), np.zeros((0, 3), int)))
    assert mesh_from_extract_result(empty) is None
    gen = gpu.generation_from_trellis_outputs({"mesh": [empty], "gaussian": []}, {"model": "m"})
    assert gen.mesh is None and gen.meta["reason"] == "the model returned an empty mesh"


# ----------------------------------------------------------------------------- TRELLIS
def test_trellis_image_is_rgba_with_the_visible_pixels(case1):
    view = case1.views[0]
    image = trellis_image(view)
    assert image.mode == "RGBA" and image.size == (512, 512)
    a = np.asarray(image)
    assert np.array_equal(a[..., :3], view.rgb)
    assert np.array_equal(a[..., 3] == 255, view.visibility_mask) and set(np.unique(a[..., 3])) == {0, 255}
    # TRELLIS preprocess_image uses a given alpha (not all 255) instead of rembg
    assert not np.all(a[..., 3] == 255)
    whole = np.asarray(trellis_image(view, "object"))[..., 3] == 255
    assert np.array_equal(whole, view.visibility_mask | view.occlusion_mask)
    with pytest.raises(ValueError, match="alpha must be one of"):
        trellis_image(view, "silhouette")


def test_trellis_one_view_calls_run(case1, asset):
    adapter = Trellis()
    pipe = RecordingTrellisPipeline(trellis_outputs(asset.mesh))
    adapter._pipeline = lambda: pipe
    gen = _json_meta(adapter.generate(case1))
    (call,) = pipe.calls
    assert call["call"] == "run" and call["seed"] == case_seed(case1) and 0 <= call["seed"] < 2**32
    assert call["ss"] == SS and call["slat"] == SLAT and list(call["formats"]) == ["mesh", "gaussian"]
    assert call["preprocess_image"] is True
    assert np.array_equal(np.asarray(call["images"][0]), np.asarray(trellis_image(case1.views[0])))
    assert np.allclose(gen.mesh.vertices, asset.mesh.vertices) and len(gen.gaussians) == 200
    assert gen.meta["call"] == "run" and "mode" not in gen.meta
    assert gen.meta["model"] == "microsoft/TRELLIS-image-large" and gen.meta["seed"] == call["seed"]
    assert gen.meta["sparse_structure_sampler_params"] == SS and gen.meta["slat_sampler_params"] == SLAT


def test_trellis_glb_export_is_rotated_back(case1, asset, tmp_path, monkeypatch):
    """mesh_source='glb': the to_glb export (a real Y-up GLB written by trimesh, textured) is read
    back Z-up; the weights' manifest hash is recorded."""
    weights = tmp_path / "TRELLIS-image-large"
    weights.mkdir()
    (weights / "pipeline.json").write_text('{"args": {}}')
    monkeypatch.setenv("AMODAL_BENCH_TRELLIS_WEIGHTS", str(weights))
    glb = tmp_path / "to_glb.glb"
    visual = trimesh.visual.TextureVisuals(uv=asset.mesh.uv, material=trimesh.visual.material.PBRMaterial(
        baseColorTexture=Image.fromarray(asset.mesh.texture)))
    trimesh.Trimesh(asset.mesh.vertices @ Z_UP_TO_Y_UP, asset.mesh.faces, visual=visual,
                    process=False).export(glb)
    adapter = Trellis()
    adapter.mesh_source = "glb"
    pipe = RecordingTrellisPipeline(trellis_outputs(asset.mesh))
    adapter._pipeline = lambda: pipe
    exported = []
    adapter._to_glb = lambda outputs: exported.append(outputs) or glb
    gen = _json_meta(adapter.generate(case1))
    assert exported == [pipe.outputs]
    assert np.allclose(gen.mesh.vertices, asset.mesh.vertices, atol=1e-6)
    assert np.array_equal(gen.mesh.texture, asset.mesh.texture)
    assert gen.meta["frame"]["up_axis"] == "y" and gen.meta["frame"]["mesh_source"] == "to_glb"
    assert gen.meta["to_glb"] == {"simplify": 0.95, "texture_size": 1024}
    record = gen.meta["weights"]["AMODAL_BENCH_TRELLIS_WEIGHTS"]
    assert record["path"] == str(weights) and len(record["pipeline.json_sha256"]) == 64


@pytest.mark.parametrize("cls, mode", [(Trellis, "stochastic"), (TrellisMultidiffusion, "multidiffusion")])
def test_trellis_several_views_call_run_multi_image(case2, asset, cls, mode):
    adapter = cls()
    pipe = RecordingTrellisPipeline(trellis_outputs(asset.mesh))
    adapter._pipeline = lambda: pipe
    gen = _json_meta(adapter.generate(case2))
    (call,) = pipe.calls
    assert call["call"] == "run_multi_image" and call["mode"] == mode and len(call["images"]) == 2
    assert all(im.mode == "RGBA" and im.size == (512, 512) for im in call["images"])
    assert gen.meta["mode"] == mode and gen.meta["call"] == "run_multi_image"


# ----------------------------------------------------------------------------- Amodal3R
def test_amodal3r_inputs_decode_back_to_the_case_masks(case1):
    view = case1.views[0]
    image, mask = amodal3r_inputs(view)
    assert image.dtype == np.uint8 and image.shape == (512, 512, 3)
    assert mask.dtype == np.uint8 and mask.shape == (512, 512)
    assert np.array_equal(mask == 188, view.visibility_mask)
    assert np.array_equal(mask == 0, view.occlusion_mask)
    assert set(np.unique(mask)) <= {0, 188, 255}
    vis, occ, bg = decode_amodal3r(mask)
    # the image is zeroed exactly where their pipeline zeroes it: dilated occlusion | background
    assert np.array_equal(image.any(axis=2) | ~vis, ~vis | view.rgb.any(axis=2)) and not image[~vis].any()
    assert np.array_equal(image[vis], view.rgb[vis])


def test_amodal3r_uses_run_multi_image_even_for_one_view(case1, asset):
    adapter = Amodal3R()
    pipe = RecordingAmodal3RPipeline(trellis_outputs(asset.mesh))
    adapter._pipeline = lambda: pipe
    gen = _json_meta(adapter.generate(case1))
    (call,) = pipe.calls
    assert len(call["images"]) == 1 and call["mode"] == "stochastic" and call["erode_kernel_size"] == 3
    assert call["seed"] == case_seed(case1) and call["ss"] == SS and call["slat"] == SLAT
    occluded, background = call["decoded"][0]
    view = case1.views[0]
    assert np.array_equal(occluded, view.occlusion_mask)
    assert np.array_equal(background, ~(view.visibility_mask | view.occlusion_mask))
    assert gen.mesh is not None and gen.meta["call"] == "run_multi_image"


# ----------------------------------------------------------------------------- pix2gestalt + TRELLIS
def test_pix2gestalt_input_is_the_view_at_256(case1):
    view = case1.views[0]
    image, mask = pix2gestalt_input(view)
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    ref = view.rgb.astype(np.float64).reshape(256, 2, 256, 2, 3).mean(axis=(1, 3))  # area average
    assert np.abs(image - ref).max() <= 1
    assert mask.shape == (256, 256, 3) and set(np.unique(mask)) <= {0, 255}
    assert (mask[..., 0] == mask[..., 2]).all()
    coverage = view.visibility_mask.reshape(256, 2, 256, 2).mean(axis=(1, 3))
    assert np.array_equal(mask[..., 0] == 255, coverage >= 0.5)  # > 127 on the area average (2 of 4 -> 128)


def test_amodal_mask_threshold_and_grey_levels():
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    ref = img.astype(np.float64) @ [0.299, 0.587, 0.114]
    assert np.abs(gray_levels(img).astype(np.float64) - ref).max() <= 0.51  # rounding + 14-bit weights
    grey = np.array([[[250, 250, 250], [251, 251, 251], [255, 255, 255], [0, 0, 0]]], np.uint8)
    assert amodal_mask(grey).tolist() == [[True, False, False, True]]  # THRESH_BINARY_INV at 250


def test_completion_back_at_view_size_and_as_trellis_input(case1):
    view = case1.views[0]
    completion = RecordingPix2Gestalt().run_pix2gestalt(None, "cpu", *pix2gestalt_input(view), n_samples=1)[0]
    full = completion_to_view(completion, view)
    assert full.shape == (512, 512, 4) and full.dtype == np.uint8
    alpha = full[..., 3] == 255
    assert (alpha | ~view.visibility_mask).all()  # the visible pixels are always object
    assert alpha[view.occlusion_mask].mean() > 0.9  # the stand-in completed the occluder
    image = trellis_image_from_completion(completion)
    assert image.mode == "RGBA" and image.size == (256, 256)
    assert np.array_equal(np.asarray(image)[..., 3] == 255, amodal_mask(completion))


def test_pix2gestalt_trellis_per_view(case2, asset):
    adapter = Pix2GestaltTrellis()
    p2g, trellis = RecordingPix2Gestalt(), RecordingTrellisPipeline(trellis_outputs(asset.mesh))
    adapter._pipeline = lambda: SimpleNamespace(pix2gestalt=p2g, trellis=trellis)
    gen = _json_meta(adapter.generate(case2))
    seed = case_seed(case2)
    assert len(p2g.calls) == 2
    for k, call in enumerate(p2g.calls):
        assert (call["scale"], call["n_samples"], call["ddim_steps"], call["ddim_eta"]) == (2.0, 1, 200, 1.0)
        assert call["torch_seed"] == seed + k
        image, mask = pix2gestalt_input(case2.views[k])
        assert np.array_equal(call["input_im"], image) and np.array_equal(call["visible_mask"], mask)
    (call,) = trellis.calls
    assert call["call"] == "run_multi_image" and call["mode"] == "stochastic" and len(call["images"]) == 2
    assert all(im.mode == "RGBA" and im.size == (256, 256) for im in call["images"])
    assert gen.mesh is not None and gen.meta["completed_views"] == [0, 1]
    assert gen.meta["pix2gestalt"]["seeds"] == [seed, seed + 1]


def test_pix2gestalt_trellis_mv_completes_the_most_visible_view(case2, asset):
    adapter = Pix2GestaltTrellisMV()
    p2g, trellis = RecordingPix2Gestalt(), RecordingTrellisPipeline(trellis_outputs(asset.mesh))
    adapter._pipeline = lambda: SimpleNamespace(pix2gestalt=p2g, trellis=trellis)
    gen = _json_meta(adapter.generate(case2))
    k = most_visible_view(case2)
    assert k == int(np.argmax([v.visible_fraction for v in case2.views]))
    (call,) = p2g.calls
    assert np.array_equal(call["input_im"], pix2gestalt_input(case2.views[k])[0])
    (tcall,) = trellis.calls
    assert tcall["call"] == "run" and gen.meta["completed_views"] == [k]
    assert gen.meta["variant"] == "most-visible"


def test_empty_completion_is_a_failure_record(case1, asset):
    adapter = Pix2GestaltTrellis()
    trellis = RecordingTrellisPipeline(trellis_outputs(asset.mesh))
    adapter._pipeline = lambda: SimpleNamespace(pix2gestalt=RecordingPix2Gestalt(empty=True), trellis=trellis)
    gen = _json_meta(adapter.generate(case1))
    assert gen.mesh is None and "completed no object in views [0]" in gen.meta["reason"] and not trellis.calls


# ----------------------------------------------------------------------------- GENA3D
def test_gena3d_four_images_per_view(case1):
    view = case1.views[0]
    completion = completion_to_view(
        RecordingPix2Gestalt().run_pix2gestalt(None, "cpu", *pix2gestalt_input(view), n_samples=1)[0], view)
    images = gena3d_inputs(view, completion)
    assert {k: im.mode for k, im in images.items()} == {
        "amodal_completion": "RGBA", "occluded": "RGB", "visibility": "L", "occlusion": "L"}
    assert all(im.size == (512, 512) for im in images.values())
    assert np.array_equal(np.asarray(images["occluded"]), view.rgb)
    assert np.array_equal(np.asarray(images["visibility"]) > GENA3D_THRESHOLD, view.visibility_mask)
    assert np.array_equal(np.asarray(images["occlusion"]) > GENA3D_THRESHOLD, view.occlusion_mask)
    assert not (np.asarray(images["amodal_completion"])[..., 3] == 255).all()  # a real alpha: no rembg
    opaque = completion.copy()
    opaque[..., 3] = 255
    with pytest.raises(ValueError, match="all opaque"):
        gena3d_inputs(view, opaque)


def test_gena3d_run_gets_lists_of_pil_images(case2, asset):
    adapter = GENA3D()
    p2g, pipe = RecordingPix2Gestalt(), RecordingGENA3DPipeline(trellis_outputs(asset.mesh))
    adapter._pipeline = lambda: SimpleNamespace(gena3d=pipe, pix2gestalt=p2g)
    gen = _json_meta(adapter.generate(case2))
    (call,) = pipe.calls
    assert len(p2g.calls) == 2
    for key, mode in (("image", "RGBA"), ("occluded", "RGB"), ("mask", "L"), ("occ_mask", "L")):
        assert isinstance(call[key], list) and len(call[key]) == 2
        assert all(isinstance(im, Image.Image) and im.mode == mode and im.size == (512, 512)
                   for im in call[key])
    assert call["seed"] == case_seed(case2) and call["ss"] == SS and call["slat"] == SLAT
    assert call["preprocess_image"] is True and list(call["formats"]) == ["mesh", "gaussian"]
    assert gen.mesh is not None and gen.meta["completion"] == "pix2gestalt"


# ----------------------------------------------------------------------------- SAM 3D Objects
def test_pointmap_matches_camera_unproject(case1):
    view = case1.views[0]
    pm = pointmap_from_view(view)
    valid = view.depth > 0
    assert pm.shape == (512, 512, 3) and np.isnan(pm[~valid]).all() and np.isfinite(pm[valid]).all()
    opencv = pm[valid].astype(np.float64) * [-1, -1, 1]  # PyTorch3D camera -> OpenCV camera
    r, t = view.camera.extrinsics[:3, :3], view.camera.extrinsics[:3, 3]
    world = (opencv - t) @ r
    assert np.allclose(world, view.camera.unproject(view.depth), atol=1e-5)
    image, mask = sam3d_inputs(view)
    assert image.dtype == np.uint8 and image.shape == (512, 512, 3)
    assert np.array_equal(mask, view.visibility_mask)


def _sam3d_output(mesh: Mesh, camera, metric: float, seed: int = 0) -> dict:
    """A SAM 3D-style output of `mesh` (object frame) seen by `camera`: a random local frame, the
    glb Y-up in it, Gaussians Z-up in it, and the pose that puts it in PyTorch3D camera space
    (scaled by `metric`, as a metric depth estimate would)."""
    rng = np.random.default_rng(seed)
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    m = quaternion_to_matrix(q[None])[0]
    s, t = 1.7, np.array([0.05, -0.1, 0.3])

    def local(points):
        p3d = metric * camera.world_to_camera(points.astype(np.float64)) * [-1, -1, 1]
        return (p3d - t) @ m.T / s  # inverse of their row-vector p3d = s * local @ M + t

    glb = trimesh.Trimesh(local(mesh.vertices) @ Z_UP_TO_Y_UP, mesh.faces, process=False)
    return {"glb": glb, "gs": GaussianStandIn(local(surface_points(mesh))),
            "rotation": torch.tensor(q[None], dtype=torch.float32),
            "translation": torch.tensor(t[None], dtype=torch.float32),
            "scale": torch.tensor([[s, s, s]], dtype=torch.float32)}


def test_sam3d_pose_to_world_inverts_the_camera_frame(asset, case1):
    camera = case1.views[0].camera
    out = _sam3d_output(asset.mesh, camera, metric=1.0)
    a, s, b = pose_to_world(out["rotation"], out["translation"], out["scale"], camera)
    assert np.allclose(a @ a.T, np.eye(3), atol=1e-6) and np.isclose(np.linalg.det(a), 1)
    local = np.asarray(out["glb"].vertices) @ Z_UP_TO_Y_UP.T  # glb Y-up -> local Z-up
    assert np.allclose(s * local @ a.T + b, asset.mesh.vertices, atol=1e-4)


class RecordingSAM3DInference:
    """Stand-in for SAM 3D's notebook Inference: __call__(image, mask, seed=None, pointmap=None)."""

    def __init__(self, output: dict):
        self.output, self.calls = output, []

    def __call__(self, image, mask, seed=None, pointmap=None):
        self.calls.append({"image": image, "mask": mask, "seed": seed, "pointmap": pointmap})
        return self.output


@pytest.mark.parametrize("pointmap_source", ["moge", "case-depth"])
def test_sam3d_end_to_end_recovers_the_object(asset, case2, pointmap_source, tmp_path):
    k = most_visible_view(case2)
    view = case2.views[k]
    output = _sam3d_output(asset.mesh, view.camera, metric=3.0)
    if pointmap_source == "case-depth":  # the glb as a real GLB file read back (a trimesh.Scene)
        output["glb"].export(tmp_path / "sam3d.glb")
        output["glb"] = trimesh.load(tmp_path / "sam3d.glb", process=False)
        assert isinstance(output["glb"], trimesh.Scene)
    inference = RecordingSAM3DInference(output)
    adapter = SAM3DObjects()
    adapter.pointmap_source = pointmap_source
    adapter._pipeline = lambda: inference
    gen = _json_meta(adapter.generate(case2))
    (call,) = inference.calls
    assert call["image"].dtype == np.uint8 and call["image"].shape == (512, 512, 3)
    assert np.array_equal(call["mask"], view.visibility_mask) and call["seed"] == case_seed(case2)
    if pointmap_source == "moge":
        assert call["pointmap"] is None
    else:
        assert isinstance(call["pointmap"], torch.Tensor) and tuple(call["pointmap"].shape) == (512, 512, 3)
    # metric scale 3 undone by rescale: the GT mesh (already normalized) comes back
    assert np.allclose(gen.mesh.vertices, asset.mesh.vertices, atol=1e-4)
    expected = surface_points(asset.mesh)
    assert np.allclose(_gaussian_points(gen.gaussians), expected, atol=1e-4)
    assert np.allclose(gen.gaussians.scales, 0.01 * 1.7 * gen.meta["rescale_scale"], rtol=1e-4)
    assert gen.meta["view_index"] == k and gen.meta["rescale"]
    assert gen.meta["pointmap_source"] == pointmap_source


# ----------------------------------------------------------------------------- HoloPart
def test_holopart_scene_round_trips_through_a_real_glb(asset, tmp_path):
    mesh = asset.mesh
    z = mesh.vertices[mesh.faces].mean(axis=1)[:, 2]
    labels = np.digitize(z, np.quantile(z, [1 / 3, 2 / 3]))  # three height bands
    labels[::97] = -1  # unlabelled faces are left out
    scene = part_scene(mesh, labels)
    path = tmp_path / "parts.glb"
    scene.export(path)
    back = trimesh.load(path, process=False)
    assert isinstance(back, trimesh.Scene) and sorted(back.geometry) == ["part_000", "part_001", "part_002"]
    for label in range(3):
        part = back.geometry[f"part_{label:03d}"]
        faces = mesh.faces[labels == label]
        assert len(part.faces) == len(faces)
        # the part in HoloPart's frame: Y-up, twice the object frame
        assert np.allclose(np.asarray(part.vertices)[part.faces],
                           HOLOPART_SCALE * mesh.vertices[faces] @ Z_UP_TO_Y_UP, atol=1e-5)
        assert np.allclose(from_holopart_frame(part.vertices)[part.faces], mesh.vertices[faces], atol=1e-6)
    parts, names = parts_from_scene(back, ["part_002", "part_000", "part_001"])
    assert names == ["part_002", "part_000", "part_001"] and len(parts[0].faces) == (labels == 2).sum()
    with pytest.raises(ValueError, match="one per face"):
        part_scene(mesh, labels[:-1])
    with pytest.raises(ValueError, match="no face has a part label"):
        part_scene(mesh, np.full(len(mesh.faces), -1))


def test_connected_components_as_parts():
    a = trimesh.creation.box()
    b = trimesh.creation.icosphere(subdivisions=1)
    b.apply_translation([3, 0, 0])
    tiny = trimesh.Trimesh([[9, 9, 9], [9.1, 9, 9], [9, 9.1, 9]], [[0, 1, 2]])
    tm = trimesh.util.concatenate([a, b, tiny])
    labels = connected_part_labels(Mesh(tm.vertices, tm.faces), min_faces=5)
    assert (labels[:12] == 1).all() and (labels[12:92] == 0).all() and labels[92] == -1  # largest first
    assert (connected_part_labels(Mesh(tm.vertices, tm.faces), min_faces=5, max_parts=1) == 0).sum() == 80


class RecordingHoloPart:
    """Stand-in for HoloPart's scripts/inference_holopart.py: prepare_data reads the GLB for real;
    run_holopart 'completes' each part as its convex hull, named as the input part."""

    def __init__(self):
        self.pipe, self.device, self.calls = object(), "cpu", {}

    def prepare_data(self, data_path, device="cuda"):
        scene = trimesh.load(data_path)
        self.calls["prepare_data"] = {"path": data_path, "device": device, "scene": scene}
        return {"part_id_list": list(scene.geometry), "parts": list(scene.geometry.values())}

    def run_holopart(self, pipe, batch, batch_size, seed, num_inference_steps=50, guidance_scale=3.5,
                     dense_octree_depth=8, hierarchical_octree_depth=9, flash_octree_depth=9,
                     final_octree_depth=-1, num_chunks=10000, use_flash_decoder=True,
                     bounds=(-1.05, -1.05, -1.05, 1.05, 1.05, 1.05), post_smooth=True, device="cuda"):
        self.calls["run_holopart"] = {"batch_size": batch_size, "seed": seed, "steps": num_inference_steps,
                                      "guidance_scale": guidance_scale}
        scene = trimesh.Scene()
        for name, part in zip(batch["part_id_list"], batch["parts"]):
            scene.add_geometry(part.convex_hull, geom_name=name)
        return scene


def test_holopart_end_to_end(case2):
    adapter = HoloPart()
    models = RecordingHoloPart()
    adapter._pipeline = lambda: models
    gen = _json_meta(adapter.generate(case2))
    mesh, labels = segment_visible(case2, adapter.min_part_faces, adapter.max_parts)
    n = labels.max() + 1
    assert n >= 1 and len(gen.parts) == n and gen.meta["parts_in"] == gen.meta["parts_out"]
    seen = models.calls["prepare_data"]
    assert seen["path"].endswith("input_mesh.glb") and len(seen["scene"].geometry) == n
    assert models.calls["run_holopart"] == {"batch_size": 8, "seed": case_seed(case2), "steps": 50,
                                            "guidance_scale": 3.5}
    for label, part in enumerate(gen.parts):
        component = mesh.vertices[np.unique(mesh.faces[labels == label])]
        assert np.allclose(part.bounds, [component.min(0), component.max(0)], atol=1e-5)
    assert len(gen.mesh.faces) == sum(len(p.faces) for p in gen.parts)
    assert gen.meta["holopart_frame"] == {"up": "y", "scale": HOLOPART_SCALE}
