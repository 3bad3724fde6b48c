"""Bring a method's output mesh into the harness's object frame (PROTOCOLS.md section 1).

The object frame is the TRELLIS frame: Z-up, bbox centred at the origin, longest side 1
(bench.inputs.assets.normalize_mesh, the convention the ground truth is loaded with). Outputs arrive as
trimesh objects or GLB / OBJ / PLY files in their own axes:

- glTF (GLB) is Y-up by specification, and TRELLIS `to_glb` rotates its Z-up mesh to Y-up with
  v @ [[1,0,0],[0,0,-1],[0,1,0]] (postprocessing_utils.py); `up_axis="y"` undoes exactly that
  rotation (bench.inputs.assets.y_up_to_z_up). OBJ / PLY outputs are usually Z-up: `up_axis="z"`.
- `rescale=True` then centres the bbox and scales the longest side to 1, as the ground truth;
  use it for methods whose output scale is arbitrary (e.g. metric depth); TRELLIS-family outputs
  already lie in [-0.5, 0.5]^3 and are kept as they are (`rescale=False`).

Every choice is returned in a record (up_axis, rescale, scale, offset, source) for Generation.meta.
Vertex colours and textures are kept. An empty, non-finite or non-mesh input raises ValueError
naming the file (or "<trimesh.Scene>" for an in-memory object).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import trimesh

from bench.inputs.assets import Mesh, mesh_from_trimesh, normalize_mesh, y_up_to_z_up

UP_AXES = ("y", "z")
MESH_EXTS = ("glb", "gltf", "obj", "ply")

Source = str | os.PathLike | trimesh.Trimesh | trimesh.Scene


def _describe(source: Source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return f"<{type(source).__module__}.{type(source).__name__}>"


def _load(path: Path) -> trimesh.Trimesh | trimesh.Scene | trimesh.PointCloud:
    if not path.is_file():
        raise ValueError(f"output file not found: {path}")
    ext = path.suffix.lstrip(".").lower()
    if ext not in MESH_EXTS:
        raise ValueError(f"{path}: unsupported mesh format {ext!r}; valid: {', '.join(MESH_EXTS)}")
    try:
        with open(path, "rb") as f:
            # no `force`: a point cloud must stay a point cloud, so it can be refused by name
            return trimesh.load(f, file_type=ext, process=False,
                                resolver=trimesh.resolvers.FilePathResolver(str(path)))
    except Exception as e:  # trimesh raises many types on corrupt files
        raise ValueError(f"cannot read {path}: {type(e).__name__}: {e}") from e


def _single_trimesh(obj: object, name: str) -> trimesh.Trimesh:
    """One Trimesh (scene graph transforms applied), or ValueError saying what `obj` is instead."""
    if isinstance(obj, trimesh.Scene):
        meshes = [g for g in obj.geometry.values() if isinstance(g, trimesh.Trimesh) and len(g.faces)]
        others = sorted({type(g).__name__ for g in obj.geometry.values()
                         if not isinstance(g, trimesh.Trimesh)})
        if not meshes:
            if not others:
                raise ValueError(f"{name}: empty, no geometry with faces")
            raise ValueError(f"{name}: holds only {', '.join(others)}, not a triangle mesh")
        obj = obj.to_geometry()  # concatenates the meshes with their node transforms applied
    if isinstance(obj, trimesh.PointCloud):
        raise ValueError(f"{name}: a point cloud ({len(obj.vertices)} points), not a triangle mesh")
    if not isinstance(obj, trimesh.Trimesh):
        raise ValueError(f"{name}: a {type(obj).__name__}, not a triangle mesh")
    if len(obj.faces) == 0 or len(obj.vertices) == 0:
        raise ValueError(f"{name}: the mesh is empty (no faces)")
    return obj


def normalize_output(source: Source, up_axis: str = "y", rescale: bool = False) -> tuple[Mesh, dict]:
    """A method's output as a Mesh in the Z-up object frame, plus the record of what was done.

    source: a trimesh Trimesh / Scene, or a GLB / GLTF / OBJ / PLY path.
    up_axis: the output's up axis: "y" (glTF, TRELLIS `to_glb`) or "z".
    rescale: centre the bbox at the origin and scale its longest side to 1 (the GT convention).
    Returns (mesh, record): record = {up_axis, rescale, scale, offset, source} with
    v_object = (R_up(v) + offset) * scale (scale 1 and offset 0 when rescale is False).
    Raises ValueError naming the source when it is unreadable, empty, non-finite or not a mesh.
    """
    if up_axis not in UP_AXES:
        raise ValueError(f"up_axis must be one of {UP_AXES}, got {up_axis!r}")
    name = _describe(source)
    obj = _load(Path(source)) if isinstance(source, (str, os.PathLike)) else source
    tm = _single_trimesh(obj, name)
    mesh = mesh_from_trimesh(tm)
    if not np.isfinite(mesh.vertices).all():
        bad = int((~np.isfinite(mesh.vertices).all(axis=1)).sum())
        raise ValueError(f"{name}: {bad} of {len(mesh.vertices)} vertices are NaN or infinite")
    if mesh.faces.min() < 0 or mesh.faces.max() >= len(mesh.vertices):
        raise ValueError(f"{name}: faces index vertices that do not exist")
    if up_axis == "y":
        mesh = replace(mesh, vertices=y_up_to_z_up(mesh.vertices.astype(np.float64)))
    scale, offset = 1.0, np.zeros(3)
    if rescale:
        try:
            mesh, scale, offset = normalize_mesh(mesh)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from e
    record = {"up_axis": up_axis, "rescale": bool(rescale), "scale": float(scale),
              "offset": [float(x) for x in offset], "source": name}
    return mesh, record


def output_mesh(source: Source, up_axis: str = "y", rescale: bool = False) -> Mesh:
    """normalize_output without the record."""
    return normalize_output(source, up_axis, rescale)[0]
