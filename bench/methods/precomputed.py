"""Outputs computed elsewhere, read back from exported case folders.

A method run outside the harness (on a cluster over `amodal-bench export-cases`, or by a worker
command) writes <case_dir>/output/<method>/mesh.glb|obj|ply and optionally gaussians.ply and
output.json, as
bench.cases.casefile describes. Here they become Generations in the Z-up object frame:

    import_output(case_dir, method)          one case folder -> Generation
    ImportedMethod(cases_root, method)       an Adapter over an exported CASES directory
    PrecomputedAdapter(cases_root, method)   the same, checked up front (precomputed:<dir>:<method>)
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.cases.case import AmodalCase
from bench.cases.casefile import (
    DEFAULT_UP,
    OUTPUT_EXTS,
    case_dir,
    output_path,
    read_case_json,
    read_manifest,
)
from bench.inputs.assets import load_mesh, y_up_to_z_up
from bench.inputs.gaussians import read_gaussian_ply, trellis_ply_to_z_up
from bench.methods.adapter import Adapter, Generation


def import_output(case_dir: Path, method: str) -> Generation:
    """The method's output as a Generation in the Z-up object frame.

    No output -> Generation(None) with the reason; a corrupt mesh or sidecar -> Generation(None)
    with the error; several outputs -> ValueError naming them (ambiguous, the user must fix it)."""
    found = [p for p in (output_path(case_dir, method, e) for e in OUTPUT_EXTS) if p.is_file()]
    if not found:
        pattern = output_path(case_dir, method, "glb").with_suffix(".{glb,obj,ply}")
        return Generation(None, {"reason": f"no output at {pattern}"})
    if len(found) > 1:
        raise ValueError(f"several outputs for {method}: {', '.join(map(str, found))}; keep one")
    path = found[0]
    meta: dict = {}
    sidecar = path.parent / "output.json"
    if sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text())
            if not isinstance(meta, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError, UnicodeDecodeError) as e:
            return Generation(None, {"reason": f"unreadable {sidecar}: {e}", "source": str(path)})
    up = meta.pop("up_axis", DEFAULT_UP[path.suffix[1:]])
    if up not in ("y", "z"):
        return Generation(None, {"reason": f"{sidecar}: up_axis must be 'y' or 'z', got {up!r}",
                                 "source": str(path)})
    try:
        mesh = load_mesh(path)
    except ValueError as e:  # AssetError: unreadable, empty, NaN, missing texture
        return Generation(None, {"reason": f"{path}: {e}", "source": str(path)})
    if up == "y":
        mesh = replace(mesh, vertices=y_up_to_z_up(mesh.vertices.astype(np.float64)))
    meta = {**meta, "source": str(path), "up_axis": up}
    splats = path.parent / "gaussians.ply"
    if not splats.is_file():
        return Generation(mesh, meta)
    frame = meta.pop("gaussians_frame", "trellis")
    if frame not in ("trellis", "z-up"):
        return Generation(None, {**meta, "reason": f"{sidecar}: gaussians_frame must be 'trellis' or "
                                                   f"'z-up', got {frame!r}"})
    try:
        gaussians = read_gaussian_ply(splats)
    except ValueError as e:  # a damaged PLY is the method's failure, like a damaged mesh
        return Generation(None, {**meta, "reason": f"{splats}: {e}"})
    if frame == "trellis":
        gaussians = trellis_ply_to_z_up(gaussians)
    return Generation(mesh, {**meta, "gaussians": str(splats), "gaussians_frame": frame}, gaussians)


class ImportedMethod(Adapter):
    """Adapter that returns outputs computed elsewhere for exported cases of `root`.

    The case given to generate() must match the exported one (protocol hash and seed)."""

    def __init__(self, root: Path, method: str):
        self.root, self.name = Path(root), method

    def generate(self, case: AmodalCase) -> Generation:
        cdir = case_dir(self.root, case.protocol, case.n_views, case.object_id, case.degree)
        try:
            exported = read_case_json(cdir)
        except ValueError as e:
            return Generation(None, {"reason": str(e)})
        if (exported.get("protocol_hash"), exported.get("seed")) != (case.protocol_hash, case.seed):
            return Generation(None, {"reason": f"{cdir / 'case.json'} was exported with protocol "
                                     f"hash {exported.get('protocol_hash')}, seed "
                                     f"{exported.get('seed')}; evaluating {case.protocol_hash}, "
                                     f"seed {case.seed}"})
        return import_output(cdir, self.name)


class PrecomputedAdapter(ImportedMethod):
    """Outputs made elsewhere (e.g. on a cluster from `amodal-bench export-cases`), evaluated here.

    cases_root: the exported CASES directory (with manifest.json), its case folders holding
    output/<method>/mesh.glb|obj|ply. A thin wrapper of ImportedMethod that checks up front that
    the root is an export and that `method` wrote output for at least one case; cases without
    output become failure records with the reason, like any failed generation."""

    def __init__(self, cases_root: str | os.PathLike, method: str):
        root = Path(cases_root)
        try:
            manifest = read_manifest(root)
            dirs = [root / e["path"] for e in manifest["cases"]]
        except ValueError as e:
            raise ValueError(f"precomputed outputs: {root} is not an exported CASES directory "
                             f"(amodal-bench export-cases): {e}") from e
        except (KeyError, TypeError) as e:
            raise ValueError(f"precomputed outputs: {root / 'manifest.json'} is malformed "
                             f"({type(e).__name__}: {e})") from e
        output_path(root, method)  # ValueError for a method name that is not a folder name
        with_output = [d for d in dirs if (d / "output" / method).is_dir()]
        if not with_output:
            found = sorted({p.name for d in dirs if (d / "output").is_dir()
                            for p in (d / "output").iterdir() if p.is_dir()})
            raise ValueError(f"precomputed outputs: no case of {root} ({len(dirs)} cases) has "
                             f"output/{method}/; methods found under output/: "
                             f"{', '.join(found) if found else 'none'}")
        super().__init__(root, method)
        self.manifest = manifest
        self.n_cases, self.n_with_output = len(dirs), len(with_output)

    def availability(self) -> tuple[bool, str]:
        return True, f"{self.n_with_output} of {self.n_cases} cases have output/{self.name}/"
