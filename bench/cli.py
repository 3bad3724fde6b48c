"""amodal-bench command line: run, demo, report, ls.

    amodal-bench run --data DIR --dataset gso --protocol amodal3r-gso --methods oracle,visible \
                     --limit N --out DIR
    amodal-bench demo            # all GSO objects, both baselines, prints the leaderboard
    amodal-bench report RUN      # re-aggregate a run directory
    amodal-bench export-cases --protocol P --out CASES    # cases on disk for external methods
    amodal-bench import --cases CASES --methods m1,m2     # evaluate their outputs
    amodal-bench show-case --protocol P --objects id --out DIR
    amodal-bench pcs RUN --endpoint URL   # VLM-judged PCS over a run's saved renders
    amodal-bench ls protocols|methods|datasets|rasterizers
"""

from __future__ import annotations

import argparse
import errno
import sys
import time
from pathlib import Path

from bench.inputs.dataset import DataMissing, list_datasets
from bench.inputs.protocol import list_protocols, load_protocol
from bench.methods.registry import adapter_class, list_methods
from bench.render import RASTERIZERS

DEMO_PROTOCOL = "amodal3r-gso"
DEMO_METHODS = ["oracle", "visible"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, naming the valid choices
        sys.stderr.write(f"amodal-bench: error: {message}\n")
        sys.exit(2)



def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (`--limit 0` would otherwise mean "all", `-1` "all but one")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value

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


def _weights(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--weights takes NAME=PATH, got {pair!r}")
        out[name] = path
    return out


def _protocol(value: str) -> str:
    try:
        load_protocol(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e
    return value


def _add_run_args(p: argparse.ArgumentParser, demo: bool) -> None:
    p.add_argument("--data", help="dataset root (default: $AMODAL_BENCH_GSO or ../shared/data/gso)")
    p.add_argument("--dataset", default="gso", choices=list_datasets())
    p.add_argument("--limit", type=positive_int, default=None, help="evaluate only the first N objects")
    p.add_argument("--objects", type=lambda s: [o for o in s.split(",") if o], default=[],
                   help="comma-separated object ids (default: every object of the manifest)")
    p.add_argument("--out", default="runs/demo" if demo else None, required=not demo)
    p.add_argument("--jobs", type=positive_int, default=2, help="worker processes (default 2)")
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
                        "lpips-alex, lpips-vgg, lpips-mobilenet (repeatable)")
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
    p.add_argument("--data", help="dataset root (default: $AMODAL_BENCH_GSO or ../shared/data/gso)")
    p.add_argument("--dataset", default="gso", choices=list_datasets())
    p.add_argument("--limit", type=positive_int, default=None)
    p.add_argument("--objects", type=lambda s: [o for o in s.split(",") if o], default=[])


def _iter_cases(args):
    """(asset, [cases of every setting], [failure lines]) per object."""
    from tqdm import tqdm

    from bench.cases.case import CaseError, build_case
    from bench.inputs.assets import AssetError
    from bench.inputs.dataset import open_dataset

    protocol = load_protocol(args.protocol)
    ds = open_dataset(args.dataset, args.data)
    ids = args.objects or ds.object_ids
    ids = ids[: args.limit] if args.limit else ids
    for oid in tqdm(ids, desc=protocol.name, unit="obj"):
        try:
            asset = ds.load(oid)
        except AssetError as e:
            yield oid, None, [], [f"{oid}: asset: {e}"]
            continue
        cases, failures = [], []
        for st in protocol.settings:
            try:
                cases.append(build_case(asset, protocol, st.views, st.degree))
            except CaseError as e:
                failures.append(f"{oid} {st.label}: {e}")
        yield oid, asset, cases, failures


def _cmd_export(args) -> int:
    from bench.cases.casefile import export_cases

    protocol = load_protocol(args.protocol)
    failures: list[str] = []

    def cases():
        for _, _, object_cases, fails in _iter_cases(args):
            failures.extend(fails)
            yield from object_cases

    manifest = export_cases(cases(), Path(args.out), protocol, args.dataset)
    for line in failures:
        print(f"not exported: {line}")
    print(f"manifest: {manifest}")
    return 0


def _cmd_show(args) -> int:
    from bench.run.sheets import write_case_sheet

    protocol = load_protocol(args.protocol)
    for oid, asset, cases, failures in _iter_cases(args):
        for line in failures:
            print(f"no case: {line}")
        if cases:
            path = write_case_sheet(Path(args.out) / protocol.name / f"{oid}.png", asset.mesh,
                                    protocol, cases)
            print(path)
    return 0


def _cmd_report(args) -> int:
    from bench.report.aggregate import format_table, merge_runs
    from bench.report.tables import write_tables

    try:
        merged = merge_runs([Path(r) for r in args.runs])
    except ValueError as e:
        sys.stderr.write(f"amodal-bench: error: {e}\n")
        return 2
    print(format_table(merged))
    if args.versus:
        from bench.report.tables import versus, versus_markdown

        try:
            comparison = versus(merged, args.versus)
        except ValueError as e:
            sys.stderr.write(f"amodal-bench: error: {e}\n")
            return 2
        print()
        print(versus_markdown(merged, args.versus))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        merged.to_csv(out, index=False, float_format="%.6g")
        tables = write_tables(merged, out.with_name(out.stem + "-table"))
        if args.versus:
            stem = out.with_name(f"{out.stem}-vs-{args.versus}")
            stem.with_suffix(".md").write_text(versus_markdown(merged, args.versus))
            comparison.to_csv(stem.with_suffix(".csv"), index=False, float_format="%.6g")
            tables += [stem.with_suffix(".md"), stem.with_suffix(".csv")]
        print(f"leaderboard: {out}; tables: {', '.join(str(t) for t in tables)}")
    if args.html:
        from bench.report.html import write_html_report

        published = None
        if args.published:
            from bench.report.published import load_published, published_beside

            published = published_beside(merged, load_published())
        page = write_html_report([Path(r) for r in args.runs], Path(args.html), published,
                                 leaderboard=merged)
        print(f"html: {page}")
    return 0


def _cmd_drift(args) -> int:
    import pandas as pd

    from bench.report.aggregate import read_leaderboard
    from bench.report.drift import compare, failed, format_drift, load_tolerances
    from bench.report.published import REFERENCE_DIR

    run = Path(args.run)
    try:
        current = pd.read_csv(run) if run.suffix == ".csv" else read_leaderboard(run)
        baseline = pd.read_csv(args.baseline)
        tolerances = load_tolerances(args.tolerances or REFERENCE_DIR / "drift_tolerances.yaml")
        drifts = compare(baseline, current, tolerances)
    except (ValueError, FileNotFoundError) as e:
        sys.stderr.write(f"amodal-bench: error: {e}\n")
        return 2
    print(format_drift(drifts))
    if failed(drifts):
        n = sum(d.mark != " " for d in drifts)
        print(f"\nDRIFT: {n} metric(s) changed beyond tolerance or are not comparable; if the change "
              f"is intended, update {args.baseline} in the same change")
        return 1
    print("\nno drift")
    return 0


def _cmd_pcs(args) -> int:
    """Judge the saved eval-rig renders of a run (PCS) and refresh its leaderboard."""
    import json

    from PIL import Image

    from bench.files import atomic_write_bytes
    from bench.judge.cache import JudgeCache
    from bench.judge.core import JudgeSettings, score_many
    from bench.judge.http_backend import OpenAIJudge
    from bench.judge.transformers_backend import TransformersJudge
    from bench.records.store import load_records, pcs_path, renders_dir
    from bench.report.aggregate import format_table, write_leaderboard

    run = Path(args.run)
    try:
        records = [r for r in load_records(run) if r.ok]
        settings = JudgeSettings(seed=args.seed, max_attempts=args.max_attempts)
        judge = (OpenAIJudge(args.endpoint, args.model, timeout_s=args.timeout, settings=settings)
                 if args.endpoint else TransformersJudge(args.transformers, settings=settings))
    except (ValueError, FileNotFoundError, OSError) as e:
        sys.stderr.write(f"amodal-bench: error: {e}\n")
        return 2
    items, paths, unrendered = {}, {}, 0
    for r in records:
        d = renders_dir(run, r.protocol, r.method, r.views, r.object_id, r.occlusion_degree)
        views = sorted(d.glob("view_*.png"), key=lambda p: int(p.stem.split("_")[1]))
        if not views:
            unrendered += 1
            continue
        key = str(d.relative_to(run))
        items[key] = [Image.open(p).convert("RGB") for p in views]
        paths[key] = pcs_path(run, r.protocol, r.method, r.views, r.object_id, r.occlusion_degree)
    if not items:
        sys.stderr.write(f"amodal-bench: error: no saved renders under {run / 'renders'}: PCS judges the "
                         "eval-rig renders, run with --save-renders\n")
        return 2
    cache = JudgeCache(Path(args.cache) if args.cache else Path.home() / ".cache" / "amodal-bench" / "pcs")
    verdicts = score_many(judge, items, concurrency=args.concurrency, cache=cache)
    for key, verdict in verdicts.items():
        atomic_write_bytes(paths[key], json.dumps(verdict.to_dict(), indent=1).encode())
    missing = sum(v.score is None for v in verdicts.values())
    print(f"judged {len(verdicts)} generations ({missing} without a score"
          + (f"; {unrendered} have no saved renders" if unrendered else "") + ")")
    import pandas as pd

    print(format_table(pd.read_csv(write_leaderboard(run))))
    return 0


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
    ls = sub.add_parser("ls", help="list what exists")
    ls.add_argument("what", choices=["protocols", "methods", "datasets", "rasterizers"])
    return parser


def _cmd_import(args) -> int:
    from bench.cases.casefile import read_manifest

    manifest = read_manifest(Path(args.cases))
    protocol = manifest["protocol"]["name"]
    if args.out is None:
        args.out = str(Path(args.cases) / "evaluation")
    local = load_protocol(protocol)
    if manifest["protocol"]["content_hash"] != local.content_hash:
        sys.stderr.write(f"amodal-bench: error: {args.cases} was exported with protocol {protocol} "
                         f"hash {manifest['protocol']['content_hash']}, this harness has "
                         f"{local.content_hash}\n")
        return 2
    args.objects = sorted({c["object_id"] for c in manifest["cases"]})
    return _cmd_run(args, protocol, args.methods, cases=args.cases)


def _cmd_run(args, protocol: str, methods: list[str], cases: str | None = None) -> int:
    import pandas as pd

    from bench.report.aggregate import format_table
    from bench.run.appearance import AppearanceConfig, MetricsUnavailable
    from bench.run.runner import RunConfig, run

    try:
        appearance = AppearanceConfig(fid_extractors=args.fid_extractors,
                                      clip_score=not args.no_clip_score, lpips_nets=args.lpips_nets,
                                      weights=_weights(args.weights))
    except ValueError as e:
        sys.stderr.write(f"amodal-bench: error: {e}\n")
        return 2
    config = RunConfig(out=args.out, protocol=protocol, methods=methods, dataset=args.dataset,
                       data=args.data, limit=args.limit, jobs=args.jobs,
                       rasterizer=args.rasterizer, cache=args.cache, sheets=args.sheets,
                       object_ids=args.objects, cases=cases, appearance=appearance,
                       require_metrics=args.require_metrics, alignment=args.alignment,
                       generation_timeout_s=args.timeout, save_renders=args.save_renders)
    t0 = time.perf_counter()
    try:
        path = run(config)
    except (DataMissing, MetricsUnavailable, ValueError) as e:
        sys.stderr.write(f"amodal-bench: error: {e}\n")
        return 2
    elapsed = time.perf_counter() - t0
    print(format_table(pd.read_csv(path)))  # the table just written, not a second aggregation
    print(f"\nleaderboard: {path}")
    sheets = sorted((Path(args.out) / "sheets").rglob("*.png"))
    if sheets:
        print(f"contact sheets: {Path(args.out) / 'sheets'} ({len(sheets)} PNG)")
    print(f"elapsed: {elapsed:.1f} s")
    return 0


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
        return _cmd_run(args, args.protocol, args.methods)
    if args.command == "demo":
        return _cmd_run(args, DEMO_PROTOCOL, DEMO_METHODS)
    if args.command == "export-cases":
        return _cmd_export(args)
    if args.command == "show-case":
        return _cmd_show(args)
    if args.command == "import":
        return _cmd_import(args)
    if args.command == "report":
        return _cmd_report(args)
    if args.command == "drift":
        return _cmd_drift(args)
    if args.command == "pcs":
        return _cmd_pcs(args)
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
