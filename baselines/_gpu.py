"""Shared helpers of the GPU adapters (TRELLIS, pix2gestalt + TRELLIS, Amodal3R, GENA3D, SAM 3D
Objects, HoloPart).

Each adapter is one module that imports its model stack lazily, inside methods: importing the
module, listing it (`amodal-bench ls methods`) and asking `availability()` never touch torch
models, CUDA extensions or the network. Weights come from a local path named by an environment
variable (AMODAL_BENCH_<MODEL>_WEIGHTS), never from a hub id at run time. Code that is not an
installable package (pix2gestalt, GENA3D, HoloPart scripts, SAM 3D's notebook/inference.py) is
found through AMODAL_BENCH_<MODEL>_REPO, a local clone.

The model call sits behind two small methods per adapter, `_pipeline()` (load, once) and
`_call(...)` (one inference); everything before (input encoding) and after (output conversion)
is a pure function with its own test.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.cases.case import AmodalCase, InputView
from bench.inputs.assets import Mesh
from bench.inputs.gaussians import Gaussians
from bench.methods.adapter import Adapter, Generation
from bench.methods.normalize import normalize_output

# TRELLIS example.py / example_multi_image.py defaults (also Amodal3R's and GENA3D's inference)
TRELLIS_SS_PARAMS = {"steps": 12, "cfg_strength": 7.5}
TRELLIS_SLAT_PARAMS = {"steps": 12, "cfg_strength": 3.0}
TRELLIS_FORMATS = ("mesh", "gaussian")


# ----------------------------------------------------------------------------- availability
def cuda_available() -> bool:
    """torch.cuda.is_available(), False when torch itself is missing."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def package_available(name: str) -> bool:
    """Whether top-level module `name` can be imported (importlib.util.find_spec, no import)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class Stack:
    """Code an adapter imports: an installed package, or a clone named by `repo_env`.

    package: top-level module (e.g. "trellis"); found with find_spec, or inside the clone.
    marker: a file inside the clone that proves it is the right one (e.g. "trellis/__init__.py").
    repo_required: the clone is needed even when the package is installed (scripts, notebooks).
    requires: further top-level modules the upstream code imports (e.g. "segment_anything").
    """

    package: str
    install: str
    repo_env: str = ""
    marker: str = ""
    repo_required: bool = False
    requires: tuple[str, ...] = ()

    def check(self) -> str:
        """'' when importable, else one line saying what to do."""
        repo = os.environ.get(self.repo_env, "") if self.repo_env else ""
        in_repo = bool(repo) and bool(self.marker) and (Path(repo) / self.marker).is_file()
        if repo and self.marker and not in_repo:
            return f"{self.repo_env}={repo}: {Path(repo) / self.marker} not found ({self.install})"
        if self.repo_required and not in_repo:
            return f"set {self.repo_env} to a local clone ({self.install})"
        if not (in_repo or package_available(self.package)):
            where = f", or set {self.repo_env} to a local clone" if self.repo_env else ""
            return f"package {self.package!r} not importable: {self.install}{where}"
        for name in self.requires:
            if not package_available(name):
                return f"package {name!r} not importable (needed by {self.package}): {self.install}"
        return ""

    def add_to_path(self) -> None:
        """Put the clone (when one is named) first on sys.path, so its modules import."""
        repo = os.environ.get(self.repo_env, "") if self.repo_env else ""
        if repo and repo not in sys.path:
            sys.path.insert(0, repo)


@dataclass(frozen=True)
class Weights:
    """Local weights named by an environment variable: a directory holding `required`, or a file
    (required == "")."""

    env: str
    what: str
    required: str = ""

    def check(self) -> str:
        value = os.environ.get(self.env, "")
        kind = f"a directory holding {self.required}" if self.required else "a file"
        if not value:
            return f"set {self.env} to local weights: {self.what} ({kind}); hub ids are never used"
        path = Path(value)
        target = path / self.required if self.required else path
        if not target.is_file():
            return f"{self.env}={value}: {target} not found ({self.what}, {kind})"
        return ""

    def path(self) -> Path:
        """The checked path; RuntimeError with the check's line when it is not usable."""
        why = self.check()
        if why:
            raise RuntimeError(why)
        return Path(os.environ[self.env])


def check_requirements(stacks: tuple[Stack, ...], weights: tuple[Weights, ...]) -> tuple[bool, str]:
    """(ok, why): CUDA first, then each stack, then each weights path; the first failure only."""
    if not cuda_available():
        return False, "needs a CUDA GPU (torch.cuda.is_available() is False)"
    for item in (*stacks, *weights):
        why = item.check()
        if why:
            return False, why
    return True, ""


def load_module_from_file(name: str, path: Path):
    """Import a file as module `name` (upstream scripts with generic names such as inference.py
    would collide in sys.modules)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_trellis_family(stack: Stack, weights: Weights, module: str, cls: str,
                        loader: str = "from_pretrained") -> Any:
    """A pipeline built on TRELLIS's code (TRELLIS, Amodal3R, GENA3D): spconv without autotuning
    per run (SPCONV_ALGO=native, as TRELLIS example.py), the stack's clone on sys.path, then
    `<module>.<cls>.<loader>(<local weights dir>)` moved to CUDA. Missing weights fail (one line,
    RuntimeError) before the model's code is imported."""
    path = weights.path()
    os.environ.setdefault("SPCONV_ALGO", "native")
    stack.add_to_path()
    pipeline_cls = getattr(importlib.import_module(module), cls)
    pipeline = getattr(pipeline_cls, loader)(str(path))
    pipeline.cuda()
    return pipeline


def weights_record(w: Weights) -> dict:
    """Provenance of local weights: the path, plus the sha256 of the directory's manifest
    (pipeline.json, ...) or, for a single-file checkpoint, its size (hashing gigabytes per run
    would cost more than the inference)."""
    value = os.environ.get(w.env, "")
    out: dict = {"path": value}
    target = Path(value) / w.required if w.required else Path(value)
    if value and target.is_file():
        if w.required:
            out[f"{w.required}_sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
        else:
            out["bytes"] = target.stat().st_size
    return out


class GPUAdapter(Adapter):
    """An in-process adapter of a GPU model. Subclasses set the class attributes below and
    implement `_pipeline()` (load the model, once) and `generate()`."""

    model_id: str = ""  # the model's public name, for the record (never fetched)
    upstream: str = ""  # owner/repo@commit whose public API the adapter follows
    stacks: tuple[Stack, ...] = ()
    weights: tuple[Weights, ...] = ()

    def __init__(self) -> None:
        self._loaded: Any = None

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        return check_requirements(cls.stacks, cls.weights)

    def pipeline(self) -> Any:
        """The loaded model (cached): `_pipeline()` on first use."""
        if self._loaded is None:
            self._loaded = self._pipeline()
        return self._loaded

    def _pipeline(self) -> Any:
        raise NotImplementedError

    def base_meta(self, case: AmodalCase, seed: int) -> dict:
        return {"model": self.model_id, "upstream": self.upstream, "seed": seed,
                "n_views": len(case.views),
                "weights": {w.env: weights_record(w) for w in self.weights}}


# ----------------------------------------------------------------------------- inputs
def case_seed(case: AmodalCase) -> int:
    """The model seed of a case: the protocol's per-object seed reduced to 32 bits (torch,
    numpy and diffusers generators all accept it)."""
    return int(case.seed) % (2**32)


def most_visible_view(case: AmodalCase) -> int:
    """Index of the view with the largest visible share of the silhouette (first on ties)."""
    return int(np.argmax([v.visible_fraction for v in case.views]))


def rgba(rgb: np.ndarray, alpha_mask: np.ndarray) -> Image.Image:
    """PIL RGBA image: rgb (H, W, 3) uint8, alpha 255 where alpha_mask (H, W) bool, else 0."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be (H, W, 3) uint8, got {rgb.dtype} {rgb.shape}")
    if alpha_mask.shape != rgb.shape[:2]:
        raise ValueError(f"alpha mask {alpha_mask.shape} does not match rgb {rgb.shape[:2]}")
    alpha = np.where(alpha_mask, np.uint8(255), np.uint8(0))
    return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")


def check_square(view: InputView, who: str) -> None:
    h, w = view.rgb.shape[:2]
    if h != w:
        raise ValueError(f"{who} resizes each view to a square without cropping; got {w}x{h}")


# ----------------------------------------------------------------------------- outputs
def to_numpy(x: Any) -> np.ndarray:
    """A torch tensor (any device) or array-like -> numpy array."""
    if hasattr(x, "detach"):
        x = x.detach()
    if hasattr(x, "cpu"):
        x = x.cpu()
    if hasattr(x, "float") and getattr(x, "dtype", None) is not None and "bfloat16" in str(x.dtype):
        x = x.float()
    return np.asarray(x.numpy() if hasattr(x, "numpy") else x)


def mesh_from_extract_result(result: Any) -> Mesh | None:
    """A TRELLIS-family `MeshExtractResult` (vertices (V, 3), faces (F, 3), vertex_attrs (V, C)
    or None; Z-up object frame, no rotation) -> Mesh with vertex colours from the first three
    vertex_attrs channels (sigmoid colours in [0, 1]) when present. None when it has no faces."""
    vertices = to_numpy(result.vertices).astype(np.float64)
    faces = to_numpy(result.faces).astype(np.int64)
    if len(faces) == 0 or len(vertices) == 0:
        return None
    colors = None
    attrs = getattr(result, "vertex_attrs", None)
    if attrs is not None:
        attrs = to_numpy(attrs)
        if attrs.ndim == 2 and attrs.shape[0] == len(vertices) and attrs.shape[1] >= 3:
            colors = np.round(np.clip(attrs[:, :3], 0, 1) * 255).astype(np.uint8)
    return Mesh(vertices, faces, vertex_colors=colors)


def gaussians_from_trellis(g: Any) -> Gaussians:
    """A TRELLIS-family in-memory `Gaussian` (Z-up object frame; get_xyz, get_opacity,
    get_scaling, get_rotation activated; _features_dc (N, 1, 3); _features_rest (N, K, 3) or None)
    -> Gaussians, same frame."""
    xyz = to_numpy(g.get_xyz).reshape(-1, 3)
    n = len(xyz)
    rest = getattr(g, "_features_rest", None)
    return Gaussians(xyz=xyz, opacity=to_numpy(g.get_opacity).reshape(n),
                     scales=to_numpy(g.get_scaling).reshape(n, 3),
                     rotations=to_numpy(g.get_rotation).reshape(n, 4),
                     sh_dc=to_numpy(g._features_dc).reshape(n, 3),
                     sh_rest=None if rest is None else to_numpy(rest).reshape(n, -1, 3))


def generation_from_trellis_outputs(outputs: dict, meta: dict, glb: Any = None) -> Generation:
    """A TRELLIS-family outputs dict {'mesh': [MeshExtractResult], 'gaussian': [Gaussian], ...}
    (lists of num_samples; the first sample is used) -> Generation in the Z-up object frame.

    Without `glb` the in-memory mesh is used (Z-up, vertex colours): no rotation. With `glb` (the
    trimesh or GLB path `to_glb` made from these outputs: simplified, hole-filled, textured,
    Y-up) that mesh is rotated back to Z-up by bench.methods.normalize. The frame is recorded in meta;
    an empty or unreadable mesh is a failure record, not an exception."""
    meta = {**meta, "output_formats": sorted(k for k in outputs if outputs[k])}
    gaussians = None
    if outputs.get("gaussian"):
        gaussians = gaussians_from_trellis(outputs["gaussian"][0])
        meta["n_gaussians"] = len(gaussians)
    if glb is not None:
        try:
            mesh, record = normalize_output(glb, up_axis="y", rescale=False)
        except ValueError as e:
            return Generation(None, {**meta, "reason": f"to_glb output: {e}"}, gaussians)
        meta["frame"] = {**record, "mesh_source": "to_glb"}
    else:
        meta["frame"] = {"mesh_source": "outputs['mesh'][0]", "up_axis": "z", "rescale": False}
        mesh = mesh_from_extract_result(outputs["mesh"][0]) if outputs.get("mesh") else None
    if mesh is None:
        return Generation(None, {**meta, "reason": "the model returned an empty mesh"}, gaussians)
    meta["n_faces"] = int(len(mesh.faces))
    return Generation(mesh, meta, gaussians)


def merge_meshes(meshes: list[Mesh]) -> Mesh:
    """Concatenate meshes; vertex colours kept only when every mesh has them."""
    offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
    colors = None
    if all(m.vertex_colors is not None for m in meshes):
        colors = np.concatenate([m.vertex_colors for m in meshes])
    return Mesh(np.concatenate([m.vertices for m in meshes]),
                np.concatenate([m.faces + o for m, o in zip(meshes, offsets)]), vertex_colors=colors)
