"""The data commands: `ls objects` (the exact object list of a run) and `fetch` (a download into
the official layout); and what the run commands ask about data (which dataset, was anything
loaded)."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.inputs.dataset import DataMissing
from bench.inputs.protocol import load_protocol


def dataset_of(args, protocol) -> str:
    """--dataset, else the protocol's `dataset`."""
    return getattr(args, "dataset", None) or protocol.spec["dataset"]


def nothing_loaded(out: Path) -> str | None:
    """One line when a run has records and every one is an input failure (no object could be
    loaded), naming the first reason; None otherwise."""
    from bench.records.store import load_records

    records = load_records(out)
    if not records or any(r.failure != "input" for r in records):
        return None
    reasons = sorted({r.reason for r in records})
    return (f"none of the {len({r.object_id for r in records})} objects could be loaded "
            f"(first reason: {reasons[0]}); see {out}")


def cmd_ls_objects(args) -> int:
    """Print (and with --out write) the objects a run with these arguments evaluates."""
    from bench.run.runner import OBJECT_LIST, RunConfig, select_run_objects, write_object_list

    if args.protocol is None:
        sys.stderr.write("amodal-bench: error: ls objects needs --protocol (it names the dataset)\n")
        return 2
    from bench.inputs.dataset import open_dataset

    protocol = load_protocol(args.protocol)
    try:
        ds = open_dataset(dataset_of(args, protocol), args.data)
        config = RunConfig(out="", protocol=args.protocol, methods=[], dataset=ds.name, data=args.data,
                           cache=args.cache, object_ids=args.objects, manifest=args.manifest,
                           subset=args.subset, limit=args.limit, bad_objects=args.bad_objects)
        sel = select_run_objects(config, ds)
    except (DataMissing, ValueError) as e:
        sys.stderr.write(f"amodal-bench: error: {e}\n")
        return 2
    for oid in sel.ids:
        print(oid)
    if args.out:
        path = Path(args.out)
        write_object_list(path / OBJECT_LIST if path.is_dir() else path, sel.ids, sel.spec)
    for oid, why in sel.bad.items():
        sys.stderr.write(f"# {oid}: {why}\n")
    return 0


def cmd_fetch(args) -> int:
    """Download into --out; rc 0 when every object is present, 2 otherwise (one line per failure)."""
    from bench.inputs.dataset import load_definition
    from bench.inputs.fetch import fetch_objects, read_lock, write_lock
    from bench.inputs.manifest import load_manifest

    definition = load_definition(args.dataset)
    fuel = definition.get("fuel", {})
    base_url = (args.base_url or fuel["base_url"]).rstrip("/")
    owner = args.owner or fuel["owner"]
    try:
        pinned = load_manifest(args.manifest).objects if args.manifest else {}
    except ValueError as e:
        sys.stderr.write(f"amodal-bench: error: {e}\n")
        return 2
    # the hashes an earlier fetch saw pin the objects already on disk (an edited file fails);
    # an explicit manifest's pins come first
    pins = {**read_lock(Path(args.out)), **{k: v for k, v in pinned.items() if v}}
    names = list(dict.fromkeys(args.objects)) or list(pinned) or list(definition["objects"])
    results = fetch_objects(names, Path(args.out), base_url=base_url, owner=owner, jobs=args.jobs,
                            pins=pins, timeout=args.timeout)
    lock = write_lock(Path(args.out), results, base_url=base_url, owner=owner)
    failed = [r for r in results if r.status == "failed"]
    counts = {s: sum(r.status == s for r in results) for s in ("downloaded", "present", "failed")}
    print(f"{counts['downloaded']} downloaded, {counts['present']} already present, "
          f"{counts['failed']} failed; lock file {lock}")
    for r in failed:
        sys.stderr.write(f"amodal-bench: fetch failed: {r.name}: {r.error}\n")
    return 2 if failed else 0
