"""`holopart`: HoloPart (VAST-AI-Research/HoloPart @48dd632), generative part completion: a mesh
with per-face part labels in, one completed mesh per part out.

Input (`part_scene`, their README "Prepare segmented mesh"): a GLB scene with one geometry per
part label (the faces of that label and the vertices they use). HoloPart's `prepare_data` samples
each part and the whole scene; its decoder extracts parts in (-1.05, 1.05)^3 after normalising
each part, so the whole object is written at twice the object frame's size (longest side 2, in
[-1, 1]^3) and, as glTF is, Y-up (v @ Z_UP_TO_Y_UP, TRELLIS `to_glb`'s rotation). These two choices
are ours, not upstream's (which takes any GLB): they are recorded (`holopart_frame`) and undone on
the outputs.

Segmentation. HoloPart needs part labels from elsewhere (SAMPart3D, SAMesh, PartField). For an
amodal case this adapter lifts the visible pixels of every view to 3D (baselines.visible) and
labels its connected components as parts (largest first, at most `max_parts`, at least
`min_part_faces` faces; the rest is dropped): HoloPart then completes each visible piece.
`complete_parts(mesh, labels)` takes any mesh and labels directly (e.g. a GT mesh with
SAMPart3D labels, HoloPart's own protocol).

Call: scripts/inference_holopart.py `prepare_data(glb_path, device)` then `run_holopart(pipe,
batch, batch_size, seed, num_inference_steps=50, guidance_scale=3.5)` -> trimesh.Scene of the
completed parts (named as the input parts, in the input GLB's frame).
Output: Generation(mesh = union of the parts, parts = [one Mesh per part, input order]).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import trimesh

from baselines._gpu import (
    GPUAdapter,
    Stack,
    Weights,
    case_seed,
    load_module_from_file,
    merge_meshes,
)
from baselines.visible import lift_view
from bench.cases.case import AmodalCase
from bench.inputs.assets import Z_UP_TO_Y_UP, Mesh, y_up_to_z_up
from bench.methods.adapter import Generation

HOLOPART_SCALE = 2.0  # object frame (longest side 1) -> HoloPart input (longest side 2)
HOLOPART_STACK = Stack(
    "holopart", "git clone VAST-AI-Research/HoloPart and pip install -r requirements.txt",
    repo_env="AMODAL_BENCH_HOLOPART_REPO", marker="scripts/inference_holopart.py", repo_required=True,
    requires=("diffusers", "torch_cluster", "pymeshlab"))
HOLOPART_WEIGHTS = Weights("AMODAL_BENCH_HOLOPART_WEIGHTS", "a local copy of VAST-AI/HoloPart",
                           "model_index.json")
HOLOPART_PARAMS = {"num_inference_steps": 50, "guidance_scale": 3.5, "batch_size": 8}


def part_name(label: int) -> str:
    return f"part_{int(label):03d}"


def part_scene(mesh: Mesh, labels: np.ndarray, scale: float = HOLOPART_SCALE) -> trimesh.Scene:
    """One geometry per label >= 0 (named part_<label>, ascending), vertices mapped to HoloPart's
    input frame: v_in = scale * (v @ Z_UP_TO_Y_UP). Faces with a negative label are left out."""
    labels = np.asarray(labels)
    if labels.shape != (len(mesh.faces),):
        raise ValueError(f"labels must be one per face ({len(mesh.faces)}), got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    parts = np.unique(labels[labels >= 0])
    if len(parts) == 0:
        raise ValueError("no face has a part label >= 0")
    vertices = scale * (mesh.vertices.astype(np.float64) @ Z_UP_TO_Y_UP)
    scene = trimesh.Scene()
    for label in parts:
        faces = mesh.faces[labels == label]
        used, inverse = np.unique(faces, return_inverse=True)
        part = trimesh.Trimesh(vertices[used], inverse.reshape(-1, 3), process=False)
        scene.add_geometry(part, geom_name=part_name(label), node_name=part_name(label))
    return scene


def from_holopart_frame(vertices: np.ndarray, scale: float = HOLOPART_SCALE) -> np.ndarray:
    """Inverse of part_scene's vertex map: (N, 3) HoloPart frame -> Z-up object frame."""
    return y_up_to_z_up(np.asarray(vertices, dtype=np.float64) / scale)


def parts_from_scene(scene: trimesh.Scene, names: list[str] | None = None,
                     scale: float = HOLOPART_SCALE) -> tuple[list[Mesh], list[str]]:
    """Part meshes of a HoloPart output scene in the object frame, with their names: in the order
    of `names` when the scene holds exactly those names, else in the scene's order. Node
    transforms are applied; empty geometries are dropped."""
    found: dict[str, Mesh] = {}
    for node in scene.graph.nodes_geometry:
        transform, geom_name = scene.graph[node]
        geom = scene.geometry[geom_name]
        if not isinstance(geom, trimesh.Trimesh) or len(geom.faces) == 0:
            continue
        v = trimesh.transform_points(np.asarray(geom.vertices, dtype=np.float64), transform)
        found[geom_name] = Mesh(from_holopart_frame(v, scale), np.asarray(geom.faces))
    order = names if names is not None and set(names) == set(found) else list(found)
    return [found[n] for n in order], order


def connected_part_labels(mesh: Mesh, min_faces: int = 50, max_parts: int = 8) -> np.ndarray:
    """(F,) int part labels: connected components over shared edges, largest first, relabelled
    0..K-1; components beyond max_parts or under min_faces get -1."""
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    comp = trimesh.graph.connected_component_labels(tm.face_adjacency, node_count=len(mesh.faces))
    ids, counts = np.unique(comp, return_counts=True)
    order = ids[np.lexsort((ids, -counts))]  # by size descending, then id
    labels = np.full(len(mesh.faces), -1, dtype=np.int64)
    k = 0
    for cid in order:
        n = int((comp == cid).sum())
        if k >= max_parts or n < min_faces:
            break
        labels[comp == cid] = k
        k += 1
    return labels


def segment_visible(case: AmodalCase, min_faces: int = 50, max_parts: int = 8) -> tuple[Mesh, np.ndarray]:
    """The visible surface of all views lifted to 3D (baselines.visible.lift_view) and its
    connected components as part labels."""
    meshes = [lift_view(v) for v in case.views]
    mesh = merge_meshes(meshes)
    return mesh, connected_part_labels(mesh, min_faces, max_parts)


class HoloPart(GPUAdapter):
    name = "holopart"
    model_id = "VAST-AI/HoloPart"
    upstream = "VAST-AI-Research/HoloPart@48dd632"
    stacks = (HOLOPART_STACK,)
    weights = (HOLOPART_WEIGHTS,)
    params = HOLOPART_PARAMS
    min_part_faces = 50
    max_parts = 8

    def _pipeline(self) -> SimpleNamespace:
        import os

        import torch

        HOLOPART_STACK.add_to_path()
        repo = Path(os.environ[HOLOPART_STACK.repo_env])
        script = load_module_from_file("_holopart_inference", repo / "scripts" / "inference_holopart.py")
        from holopart.pipelines.pipeline_holopart import HoloPartPipeline

        pipe = HoloPartPipeline.from_pretrained(str(HOLOPART_WEIGHTS.path())).to("cuda", torch.float16)
        return SimpleNamespace(pipe=pipe, device="cuda", prepare_data=script.prepare_data,
                               run_holopart=script.run_holopart)

    def _call(self, models: Any, glb_path: Path, seed: int) -> trimesh.Scene:
        batch = models.prepare_data(str(glb_path), device=models.device)
        return models.run_holopart(models.pipe, batch=batch, batch_size=self.params["batch_size"],
                                   seed=seed, num_inference_steps=self.params["num_inference_steps"],
                                   guidance_scale=self.params["guidance_scale"])

    def complete_parts(self, mesh: Mesh, labels: np.ndarray, seed: int,
                       meta: dict | None = None) -> Generation:
        """Complete every labelled part of `mesh` (object frame) -> Generation(union, parts)."""
        scene = part_scene(mesh, labels)
        names = list(scene.geometry)
        meta = {**(meta or {}), "seed": seed, **self.params, "parts_in": names,
                "holopart_frame": {"up": "y", "scale": HOLOPART_SCALE}}
        with tempfile.TemporaryDirectory(prefix="holopart-") as tmp:
            path = Path(tmp) / "input_mesh.glb"
            scene.export(path, file_type="glb")
            out = self._call(self.pipeline(), path, seed)
        parts, order = parts_from_scene(out, names)
        meta["parts_out"] = order
        if not parts:
            return Generation(None, {**meta, "reason": "HoloPart returned no part mesh"})
        return Generation(merge_meshes(parts), meta, parts=parts)

    def generate(self, case: AmodalCase) -> Generation:
        seed = case_seed(case)
        mesh, labels = segment_visible(case, self.min_part_faces, self.max_parts)
        meta = {**self.base_meta(case, seed), "segmentation": "connected components of the lifted visible "
                f"surface (min {self.min_part_faces} faces, at most {self.max_parts} parts)",
                "call": "prepare_data + run_holopart (scripts/inference_holopart.py)"}
        if not (labels >= 0).any():
            return Generation(None, {**meta, "reason": "no visible component large enough to be a part"})
        return self.complete_parts(mesh, labels, seed, meta)
