"""Run one registered in-process method on exported case directories, in this interpreter.

    python -m baselines.run_case --method visible CASE_DIR [CASE_DIR ...] [--name OUTNAME]

Each CASE_DIR is a directory written by bench.cases.casefile.export_case (it holds case.json); a CASES
root with a manifest.json stands for all of its cases. For every case the method's result is
written to CASE_DIR/output/<OUTNAME>/mesh.ply (mesh.glb when the mesh has a texture) with the
sidecar output.json {"up_axis": "z", "method": ..., ...}; the mesh stays in the Z-up object frame.
A case the method cannot do is reported on stderr, the others go on, and the exit code is 1.

This is how the CPU baselines run as isolated workers (bench.methods.worker.WorkerSpec with the command
[python, "-m", "baselines.run_case", "--method", "visible", "{case_dir}", "--name", "{method}"]),
and an example for a worker of your own: read the case, generate, write exactly one
output/<name>/mesh.glb|obj|ply plus an optional output.json, exit 0; exit non-zero on failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.cases.casefile import OUTPUT_EXTS, case_dirs, output_path, read_case
from bench.files import atomic_write_bytes


def write_output(case_dir: Path, name: str, mesh, meta: dict | None = None) -> Path:
    """Write a bench.inputs.assets.Mesh as the output of method `name` for one case; returns its path.

    Z-up, declared in output.json. Outputs of another format left by an earlier run are removed
    first, since a case must hold exactly one."""
    import trimesh

    if mesh.texture is not None and mesh.uv is not None:
        from PIL import Image

        visual = trimesh.visual.TextureVisuals(uv=mesh.uv, image=Image.fromarray(mesh.texture))
        ext = "glb"
    else:
        visual = (trimesh.visual.ColorVisuals(vertex_colors=mesh.vertex_colors)
                  if mesh.vertex_colors is not None else None)
        ext = "ply"
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, visual=visual, process=False)
    path = output_path(case_dir, name, ext)
    for other in OUTPUT_EXTS:
        if other != ext:
            output_path(case_dir, name, other).unlink(missing_ok=True)
    sidecar = {k: v for k, v in (meta or {}).items()
               if isinstance(v, (str, int, float, bool)) and k != "up_axis"}
    atomic_write_bytes(path, tm.export(file_type=ext))
    atomic_write_bytes(path.parent / "output.json",
                       json.dumps({**sidecar, "up_axis": "z"}, indent=1, sort_keys=True).encode())
    return path


def _expand(paths: list[str]) -> list[Path]:
    out = []
    for p in map(Path, paths):
        if not (p / "case.json").is_file() and (p / "manifest.json").is_file():
            out.extend(case_dirs(p))
        else:
            out.append(p)
    return out


def main(argv: list[str] | None = None) -> int:
    from bench.methods.registry import get_adapter, list_methods

    parser = argparse.ArgumentParser(prog="python -m baselines.run_case",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--method", required=True, help=f"one of: {', '.join(list_methods())}")
    parser.add_argument("--name", default=None, help="output folder name (default: the method)")
    parser.add_argument("case_dirs", nargs="+", metavar="CASE_DIR")
    args = parser.parse_args(argv)
    try:
        adapter = get_adapter(args.method)
    except ValueError as e:
        parser.error(str(e))
    name = args.name or args.method
    failed = 0
    for cdir in _expand(args.case_dirs):
        try:
            case = read_case(cdir)
            gen = adapter.generate(case)
            if gen.mesh is None:
                raise ValueError(f"{args.method} produced no mesh: "
                                 f"{gen.meta.get('reason', 'no reason given')}")
            gen.mesh.validate()
            path = write_output(cdir, name, gen.mesh, {**gen.meta, "method": args.method})
        except Exception as e:  # one bad case must not stop the others
            failed += 1
            print(f"{cdir}: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        print(path)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
