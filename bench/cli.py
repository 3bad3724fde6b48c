"""amodal-bench command line: the door. Parses the arguments and dispatches to bench.commands.

    amodal-bench run --data DIR --dataset gso --protocol amodal3r-gso --methods oracle,visible \
                     --limit N --out DIR
    amodal-bench demo            # all GSO objects, both baselines, prints the leaderboard
    amodal-bench report RUN      # re-aggregate a run directory
    amodal-bench export-cases --protocol P --out CASES    # cases on disk for external methods
    amodal-bench import --cases CASES --methods m1,m2     # evaluate their outputs
    amodal-bench show-case --protocol P --objects id --out DIR
    amodal-bench render --protocol P --object ID --out DIR [--mesh F | --gaussians F.ply]
    amodal-bench pcs RUN --endpoint URL   # VLM-judged PCS over a run's saved renders
    amodal-bench ls protocols|methods|datasets|rasterizers
    amodal-bench ls objects --protocol P [--data DIR] [--subset random:500] [--out FILE]
    amodal-bench fetch gso --out DIR [--objects a,b] [--jobs N]   # from Gazebo Fuel
"""

from __future__ import annotations

import argparse
import errno
import sys

from bench import commands
from bench.inputs.dataset import list_datasets
from bench.inputs.protocol import list_protocols, load_protocol
from bench.methods.registry import adapter_class, list_methods
from bench.render import RASTERIZERS

# the demo keeps the fast unlit GT path: 52 objects x 4 lit Cycles views at the measured 18.9 s per
# view on 2 cores (bench.perf.cycles_benchmark) would add ~65 min to its ~4 min
DEMO_PROTOCOL = "amodal3r-gso+raster-unlit"
DEMO_METHODS = ["oracle", "visible"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, naming the valid choices
        sys.stderr.write(f"amodal-bench: error: {message}\n")
        sys.exit(2)




def int_at_least(lo: int):
    """argparse type: an integer >= lo (`--limit 0` would otherwise mean "all", `-1` "all but one")."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {lo}, got {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"expected an integer >= {lo}, got {value}")
        return value
    return parse


positive_int, non_negative_int = int_at_least(1), int_at_least(0)


def _methods(value: str) -> list[str]:
    from bench.methods.registry import adapter_from_string, is_method_string

    names = [m.strip() for m in value.split(",") if m.strip()]
    bad = [m for m in names if m not in list_methods() and not is_method_string(m)]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown method {', '.join(bad) or '(none)'}; valid: {', '.join(list_methods())}, "
            "worker:<spec.yaml>, precomputed:<cases_dir>:<method>")
    for m in names:
        if is_method_string(m):
            try:
                adapter_from_string(m)  # the spec file or the CASES root, checked now
            except ValueError as e:
                raise argparse.ArgumentTypeError(str(e)) from e
    return names


def _names(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _protocol(value: str) -> str:
    try:
        load_protocol(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e
    return value


def _add_selection_args(p: argparse.ArgumentParser) -> None:
    """Which objects: found under --data, or pinned by --manifest; then --objects, --subset, --limit
    (bench.inputs.selection)."""
    p.add_argument("--data", help="dataset root: a folder (or Toys4K's zip) in the dataset's layout "
                                  "(default: the dataset's env var, e.g. $AMODAL_BENCH_GSO, "
                                  "or ../shared/data/gso)")
    p.add_argument("--dataset", default=None, choices=list_datasets(),
                   help="the data's layout (default: the protocol's dataset)")
    p.add_argument("--manifest", default=None, metavar="FILE|NAME",
                   help="pin the objects: a manifest YAML (e.g. a fetch.lock.yaml) or a shipped one "
                        "(gso-dev: the 52 dev objects with sha256; gso: the full 1,033-name list); "
                        "every selected object is verified (present, sha256) before any work")
    p.add_argument("--objects", type=lambda s: [o for o in s.split(",") if o], default=[],
                   help="comma-separated object ids (default: every object found under --data)")
    p.add_argument("--subset", default=None, metavar="SPEC",
                   help="random:N[:SEED] (a seeded draw, recorded; GENA3D B.1 uses 500) or a subset "
                        "name of the manifest")
    p.add_argument("--limit", type=positive_int, default=None, help="evaluate only the first N objects")
    p.add_argument("--bad-objects", choices=["error", "record"], default="error",
                   help="an object missing or not as pinned: an error before any work (default), "
                        "or an input-failure record naming the reason")


def _add_run_args(p: argparse.ArgumentParser, demo: bool) -> None:
    _add_selection_args(p)
    p.add_argument("--out", default="runs/demo" if demo else None, required=not demo)
    p.add_argument("--jobs", type=positive_int, default=2, help="worker processes (default 2)")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="evaluate only shard I of N of the items (default: the SLURM array task's, "
                        "from SLURM_ARRAY_TASK_ID/_COUNT; under torchrun each rank takes its own); "
                        "the last shard to finish writes the leaderboard, or `report RUN` merges")
    p.add_argument("--rasterizer", default="auto", choices=RASTERIZERS)
    p.add_argument("--cache", default=None, help="GT cache dir (default ~/.cache/amodal-bench)")
    p.add_argument("--sheets", type=non_negative_int, default=3,
                   help="contact sheets for the first N objects")
    p.add_argument("--fid-extractors", type=_names, default=["inception", "mobilenet"],
                   help="feature extractors for FID/KID (default inception,mobilenet; "
                        "mobilenet is a non-standard substitute, named so in the report)")
    p.add_argument("--lpips-nets", type=_names, default=["alex", "mobilenet"],
                   help="LPIPS networks for masked LPIPS (alex, vgg, mobilenet)")
    p.add_argument("--no-clip-score", action="store_true", help="skip the CLIP score")
    p.add_argument("--weights", action="append", default=[], metavar="NAME=PATH",
                   help="weights file for a metric network: inception, clip-vit-b-32, mobilenet, "
                        "lpips-alex, lpips-vgg, lpips-mobilenet (repeatable). An unknown name, a network "
                        "the run does not use, a missing file or one whose sha256 is not the official "
                        "one is an error before any work (without --weights: NaN + reason in notes)")
    p.add_argument("--alignment", default="none", choices=["none", "yaw", "yaw+icp"],
                   help="also report COV/MMD after aligning each generation to the GT (uses the GT: "
                        "printed in separate *_aligned columns, recorded in every record)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="per-object limit for an in-process method's generate() (failure record)")
    p.add_argument("--save-renders", action="store_true",
                   help="keep each generation's eval-rig renders as PNG (input of `amodal-bench pcs`)")
    p.add_argument("--require-metrics", action="store_true",
                   help="fail when a metric network has no weights (default: NaN + reason in notes)")
    if not demo:
        p.add_argument("--protocol", required=True, type=_protocol,
                       help=f"a name ({', '.join(list_protocols())}) or a protocol YAML path")
        p.add_argument("--methods", type=_methods, required=True,
                       help=f"comma-separated, from: {', '.join(list_methods())}; or "
                            "worker:<spec.yaml> (bench.methods.worker) or precomputed:<cases_dir>:<method>")


def _add_case_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--protocol", required=True, type=_protocol,
                   help=f"a name ({', '.join(list_protocols())}) or a protocol YAML path")
    _add_selection_args(p)
    p.add_argument("--cache", default=None,
                   help="GT cache: lit input renders (default $AMODAL_BENCH_CACHE or ~/.cache/amodal-bench)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="amodal-bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_run_args(sub.add_parser("run", help="evaluate methods on a dataset under a protocol"),
                  demo=False)
    _add_run_args(sub.add_parser("demo", help=f"{DEMO_PROTOCOL} on GSO with "
                                 f"{' and '.join(DEMO_METHODS)}"), demo=True)
    exp = sub.add_parser("export-cases", help="write the occluded cases to disk for external methods")
    _add_case_args(exp)
    exp.add_argument("--out", required=True, help="CASES directory")
    show = sub.add_parser("show-case", help="contact sheets of inputs, masks, selected/rejected views")
    _add_case_args(show)
    show.add_argument("--out", required=True, help="directory for the PNG sheets")
    ren = sub.add_parser("render", help="the eval-rig renders of one object as PNGs (GT, and a "
                         "generation's), as the metrics see them")
    ren.add_argument("--protocol", required=True, type=_protocol,
                     help=f"a name ({', '.join(list_protocols())}) or a protocol YAML path")
    ren.add_argument("--object", required=True, help="object id")
    ren.add_argument("--out", required=True, help="directory: gt/view_<k>.png, generation/view_<k>.png")
    ren.add_argument("--data", help="dataset root (default: $AMODAL_BENCH_GSO or ../shared/data/gso)")
    ren.add_argument("--dataset", default=None, choices=list_datasets(), help="(default: the protocol's)")
    ren.add_argument("--mesh", help="a generated mesh (GLB/GLTF Y-up, OBJ/PLY Z-up unless --up-axis)")
    ren.add_argument("--up-axis", choices=["y", "z"], default=None, help="the mesh file's up axis")
    ren.add_argument("--gaussians", help="a generated 3DGS PLY (rendered by splatting)")
    ren.add_argument("--ply-frame", choices=["trellis", "z-up"], default="trellis",
                     help="the PLY's frame: TRELLIS save_ply (up = -Y, the default) or Z-up")
    ren.add_argument("--rasterizer", default="auto", choices=RASTERIZERS)
    ren.add_argument("--cache", default=None, help="GT cache (default $AMODAL_BENCH_CACHE or ~/.cache)")
    imp = sub.add_parser("import", help="evaluate method outputs written into exported cases")
    imp.add_argument("--cases", required=True, help="CASES directory written by export-cases")
    imp.add_argument("--methods", required=True, type=lambda v: [m for m in v.split(",") if m],
                     help="comma-separated output folder names under output/")
    _add_run_args(imp, demo=True)
    imp.set_defaults(out=None)
    rep = sub.add_parser("report", help="merge run directories into one leaderboard and tables")
    rep.add_argument("runs", nargs="+")
    rep.add_argument("--out", default=None,
                     help="merged leaderboard CSV; also writes <stem>.md/.tex tables beside it")
    rep.add_argument("--html", default=None, help="write an HTML report here")
    rep.add_argument("--versus", default=None, metavar="METHOD",
                     help="also print (and with --out write <stem>-vs-METHOD.md/.csv) every other "
                          "method against this one: baseline -> method (delta) per metric")
    rep.add_argument("--published", action="store_true",
                     help="show the papers' published numbers beside ours (HTML)")
    drift = sub.add_parser("drift", help="compare a run with a baseline leaderboard (CI gate)")
    drift.add_argument("run", help="run directory (or a leaderboard CSV)")
    drift.add_argument("--baseline", required=True)
    drift.add_argument("--tolerances", default=None,
                       help="YAML of per-metric tolerances (default reports/drift_tolerances.yaml)")
    pcs = sub.add_parser("pcs", help="PCS: a VLM judges each generation's saved eval-rig renders")
    pcs.add_argument("run", help="run directory made with --save-renders")
    judge = pcs.add_mutually_exclusive_group(required=True)
    judge.add_argument("--endpoint", help="OpenAI-compatible base URL, e.g. http://host:8000/v1 (vLLM)")
    judge.add_argument("--transformers", metavar="PATH", help="local Qwen-VL model directory (in-process)")
    pcs.add_argument("--model", default="Qwen/Qwen3-VL-32B-Instruct", help="model id sent to the endpoint")
    pcs.add_argument("--concurrency", type=int, default=4)
    pcs.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    pcs.add_argument("--max-attempts", type=int, default=3, help="tries per object for a parseable answer")
    pcs.add_argument("--seed", type=int, default=0)
    pcs.add_argument("--cache", default=None, help="judge answer cache (default ~/.cache/amodal-bench/pcs)")
    ls = sub.add_parser("ls", help="list what exists (objects: the exact list a run would evaluate)")
    ls.add_argument("what", choices=["protocols", "methods", "datasets", "rasterizers", "objects"])
    ls.add_argument("--protocol", type=_protocol, default=None, help="(ls objects) the protocol")
    _add_selection_args(ls)
    ls.add_argument("--out", default=None, help="(ls objects) also write the list to this file")
    ls.add_argument("--cache", default=None, help="(ls objects) where verified sha256 are cached")
    fetch = sub.add_parser("fetch", help="download a dataset into its official layout (GSO: Gazebo Fuel)")
    fetch.add_argument("dataset", choices=["gso"])
    fetch.add_argument("--out", required=True, help="the data root to fill (resumable)")
    fetch.add_argument("--objects", type=lambda s: [o for o in s.split(",") if o], default=[],
                       help="comma-separated names (default: all names of datasets/gso.yaml)")
    fetch.add_argument("--manifest", default=None, metavar="FILE|NAME",
                       help="fetch this manifest's objects and verify their pinned sha256")
    fetch.add_argument("--jobs", type=positive_int, default=4, help="parallel downloads (default 4)")
    fetch.add_argument("--base-url", default=None, help="Fuel API base (default: the dataset's, "
                                                        "https://fuel.gazebosim.org/1.0)")
    fetch.add_argument("--owner", default=None, help="Fuel owner (default GoogleResearch)")
    fetch.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default 60)")
    return parser


WRITE_ERRORS = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT}


def main(argv: list[str] | None = None) -> int:
    from bench.methods.supervise import exit_on_sigterm

    args = build_parser().parse_args(argv)
    exit_on_sigterm()  # a SIGTERM runs the cleanup (worker process groups, temp folders) first
    try:
        return _dispatch(args)
    except OSError as e:  # an unwritable output (read-only filesystem, permissions, full disk)
        if e.errno not in WRITE_ERRORS:
            raise
        where = f" {e.filename}" if e.filename else ""
        sys.stderr.write(f"amodal-bench: error: cannot write{where}: {e.strerror}\n")
        return 2


def _dispatch(args) -> int:
    if args.command == "run":
        return commands.cmd_run(args, args.protocol, args.methods)
    if args.command == "demo":
        return commands.cmd_run(args, DEMO_PROTOCOL, DEMO_METHODS)
    if args.command == "export-cases":
        return commands.cmd_export(args)
    if args.command == "show-case":
        return commands.cmd_show(args)
    if args.command == "import":
        return commands.cmd_import(args)
    if args.command == "render":
        return commands.cmd_render(args)
    if args.command == "report":
        return commands.cmd_report(args)
    if args.command == "drift":
        return commands.cmd_drift(args)
    if args.command == "pcs":
        return commands.cmd_pcs(args)
    if args.command == "fetch":
        return commands.cmd_fetch(args)
    if args.command == "ls" and args.what == "objects":
        return commands.cmd_ls_objects(args)
    if args.command == "ls":
        if args.what == "protocols":
            for name in list_protocols():
                print(f"{name}\t{load_protocol(name).spec.get('description', '')}")
        elif args.what == "methods":
            for name in list_methods():
                ok, why = adapter_class(name).availability()
                print(f"{name}\t{'available' if ok else 'unavailable: ' + why}")
        elif args.what == "datasets":
            print("\n".join(list_datasets()))
        else:
            print("\n".join(RASTERIZERS))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
