"""What each `amodal-bench` subcommand does (bench.cli parses the arguments and dispatches).

Every command returns its exit status: 0 done, 1 a check failed (drift), 2 bad input or an
error, printed as one line on stderr.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from bench.commands.data import cmd_fetch, cmd_ls_objects, dataset_of, nothing_loaded
from bench.inputs.dataset import DataMissing
from bench.inputs.protocol import load_protocol

__all__ = ["cmd_fetch", "cmd_ls_objects", "iter_cases"]


def _weights(pairs: list[str]) -> dict[str, str]:
    """--weights NAME=PATH (repeatable) -> {NAME: PATH}. Names and files are checked by
    bench.run.appearance.check_explicit_weights before any work."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--weights takes NAME=PATH, got {pair!r}")
        if name in out and out[name] != path:
            raise ValueError(f"--weights {name} given twice ({out[name]} and {path}); give it once")
        out[name] = path
    return out


def iter_cases(args):
    """(asset, [cases of every setting], [failure lines]) per object, built as a run builds them
    (the input views' RGB by the protocol's GT renderer, cached in --cache)."""
    from tqdm import tqdm

    from bench.cases.case import CaseError, build_case
    from bench.inputs.assets import AssetError
    from bench.inputs.dataset import open_dataset
    from bench.run.gtcache import input_shader
    from bench.run.runner import RunConfig, select_run_objects

    protocol = load_protocol(args.protocol)
    ds = open_dataset(dataset_of(args, protocol), args.data)
    config = RunConfig(out="", protocol=args.protocol, methods=[], dataset=ds.name, data=args.data,
                       jobs=1, cache=args.cache, object_ids=args.objects, manifest=args.manifest,
                       subset=args.subset, limit=args.limit, bad_objects="error")
    ids = select_run_objects(config, ds).ids
    for oid in tqdm(ids, desc=protocol.name, unit="obj"):
        try:
            asset = ds.load(oid, protocol.import_frame)
        except AssetError as e:
            yield oid, None, [], [f"{oid}: asset: {e}"]
            continue
        cases, failures = [], []
        for st in protocol.settings:
            try:
                cases.append(build_case(asset, protocol, st.views, st.degree,
                                        input_shader(config, protocol, asset, ds.name)))
            except CaseError as e:
                failures.append(f"{oid} {st.label}: {e}")
        yield oid, asset, cases, failures


def cmd_export(args) -> int:
    from bench.cases.casefile import export_cases

    protocol = load_protocol(args.protocol)
    failures: list[str] = []

    def cases():
        for _, _, object_cases, fails in iter_cases(args):
            failures.extend(fails)
            yield from object_cases

    manifest = export_cases(cases(), Path(args.out), protocol, dataset_of(args, protocol))
    for line in failures:
        print(f"not exported: {line}")
    print(f"manifest: {manifest}")
    return 0


def cmd_show(args) -> int:
    from bench.run.sheets import write_case_sheet

    protocol = load_protocol(args.protocol)
    for oid, asset, cases, failures in iter_cases(args):
        for line in failures:
            print(f"no case: {line}")
        if cases:
            path = write_case_sheet(Path(args.out) / protocol.name / f"{oid}.png", asset.mesh,
                                    protocol, cases)
            print(path)
    return 0


def cmd_render(args) -> int:
    """The eval-rig renders of one object (GT, and a generation's when given) as PNGs; bad input
    (unknown object, missing data, unreadable mesh or PLY, no Blender) is one stderr line, rc 2."""
    try:
        return _render(args)
    except (ValueError, OSError, RuntimeError) as e:
        if isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
            raise  # unwritable outputs: bench.cli's one line
        sys.stderr.write(f"amodal-bench: error: {e}\n")
        return 2


def _render(args) -> int:
    from bench.inputs.dataset import open_dataset
    from bench.run.renders import write_object_renders
    from bench.run.runner import RunConfig

    protocol = load_protocol(args.protocol)
    args.dataset = dataset_of(args, protocol)
    ds = open_dataset(args.dataset, args.data)
    if args.object not in ds.object_ids:
        raise ValueError(f"object {args.object!r} is not under {ds.root} in the {ds.name} layout")
    asset = ds.load(args.object, protocol.import_frame)
    mesh = gaussians = None
    if args.mesh:
        from bench.methods.normalize import normalize_output

        up = args.up_axis or ("y" if Path(args.mesh).suffix.lower() in (".glb", ".gltf") else "z")
        mesh, _ = normalize_output(args.mesh, up_axis=up)
    if args.gaussians:
        from bench.inputs.gaussians import read_gaussian_ply, trellis_ply_to_z_up

        gaussians = read_gaussian_ply(args.gaussians)
        if args.ply_frame == "trellis":
            gaussians = trellis_ply_to_z_up(gaussians)
    config = RunConfig(out=args.out, protocol=args.protocol, methods=[], dataset=args.dataset,
                       data=args.data, jobs=1, rasterizer=args.rasterizer, cache=args.cache)
    info = write_object_renders(protocol, asset, ds.name, Path(args.out), config, mesh, gaussians)
    for part in ("gt", "generation"):
        if part in info:
            print(f"{Path(args.out) / part}: {len(info[part]['files'])} views ({info[part]['renderer']})")
    return 0


def cmd_report(args) -> int:
    from bench.methods.registry import method_name
    from bench.report.aggregate import merge_runs
    from bench.report.coverage import coverage_problems
    from bench.report.refset import reference_report
    from bench.report.tables import format_table, write_tables

    try:
        merged = merge_runs([Path(r) for r in args.runs])
    except ValueError as e:
        sys.stderr.write(f"amodal-bench: error: {e}\n")
        return 2
    for run in args.runs:  # records that do not cover run.json's methods x objects x settings
        for line in coverage_problems(Path(run), label=method_name):
            sys.stderr.write(f"amodal-bench: warning: {line}\n")
    print(format_table(merged))
    for line in reference_report(merged):  # rows not ranked with the others, and why
        print(line)
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


def cmd_drift(args) -> int:
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
    if run.is_dir():  # records that do not cover run.json's methods x objects x settings
        from bench.methods.registry import method_name
        from bench.report.coverage import coverage_problems

        for line in coverage_problems(run, label=method_name):
            sys.stderr.write(f"amodal-bench: warning: {line}\n")
    print(format_drift(drifts))
    if failed(drifts):
        n = sum(d.mark != " " for d in drifts)
        print(f"\nDRIFT: {n} metric(s) changed beyond tolerance or are not comparable; if the change "
              f"is intended, update {args.baseline} in the same change")
        return 1
    print("\nno drift")
    return 0


def cmd_pcs(args) -> int:
    """Judge the saved eval-rig renders of a run (PCS) and refresh its leaderboard."""
    import json

    from PIL import Image

    from bench.files import atomic_write_bytes
    from bench.judge.cache import JudgeCache
    from bench.judge.core import JudgeSettings, score_many
    from bench.judge.http_backend import OpenAIJudge
    from bench.judge.transformers_backend import TransformersJudge
    from bench.records.store import load_records, pcs_path, renders_dir
    from bench.report.aggregate import write_leaderboard
    from bench.report.tables import format_table

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


def cmd_import(args) -> int:
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
    return cmd_run(args, protocol, args.methods, cases=args.cases)


def cmd_run(args, protocol: str, methods: list[str], cases: str | None = None) -> int:
    import pandas as pd

    from bench.report.tables import format_table
    from bench.run.appearance import AppearanceConfig, MetricsUnavailable, check_explicit_weights
    from bench.run.runner import RunConfig, run

    try:
        appearance = AppearanceConfig(fid_extractors=args.fid_extractors,
                                      clip_score=not args.no_clip_score, lpips_nets=args.lpips_nets,
                                      weights=_weights(args.weights))
        check_explicit_weights(appearance)  # a wrong explicit file is an error before any work, not a NaN
    except ValueError as e:
        sys.stderr.write(f"amodal-bench: error: {e}\n")
        return 2
    config = RunConfig(out=args.out, protocol=protocol, methods=methods,
                       dataset=dataset_of(args, load_protocol(protocol)), data=args.data,
                       limit=args.limit, manifest=args.manifest, subset=args.subset,
                       bad_objects=args.bad_objects, jobs=args.jobs,
                       rasterizer=args.rasterizer, cache=args.cache, sheets=args.sheets,
                       object_ids=args.objects, cases=cases, appearance=appearance,
                       require_metrics=args.require_metrics, alignment=args.alignment,
                       generation_timeout_s=args.timeout, save_renders=args.save_renders,
                       shard=args.shard)
    t0 = time.perf_counter()
    try:
        path = run(config)
    except (DataMissing, MetricsUnavailable, ValueError) as e:
        sys.stderr.write(f"amodal-bench: error: {e}\n")
        return 2
    elapsed = time.perf_counter() - t0
    if path is None:  # a shard whose run is not complete yet (bench.run.sharded printed why)
        print(f"elapsed: {elapsed:.1f} s")
        return 0
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 prints
        return 0
    print(format_table(pd.read_csv(path)))  # the table just written, not a second aggregation
    print(f"\nleaderboard: {path}")
    why = nothing_loaded(Path(args.out))
    if why:
        sys.stderr.write(f"amodal-bench: error: {why}\n")
        return 2
    sheets = [p for p in sorted((Path(args.out) / "sheets").rglob("*.png")) if "renders" not in p.parts]
    if sheets:
        print(f"contact sheets: {Path(args.out) / 'sheets'} ({len(sheets)} PNG)")
    print(f"elapsed: {elapsed:.1f} s")
    return 0


