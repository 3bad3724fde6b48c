"""Run an evaluation: objects x input-view settings x methods -> records, then the leaderboard.

Objects are spread over worker processes (one EGL context each); every (method, object, setting)
ends as one record, success or failure (bench.run.evaluate). Existing records are skipped, so a
killed run resumes. The GT side is cached by content across runs and methods (bench.run.gtcache).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from bench.files import atomic_write_bytes
from bench.inputs.dataset import open_dataset
from bench.inputs.protocol import load_protocol
from bench.inputs.selection import BAD_OBJECT_MODES, Selection, select_objects
from bench.records.store import provenance
from bench.run.appearance import AppearanceConfig
from bench.run.evaluate import appearance_suite, evaluate_object
from bench.run.shard import combined, parse_shard, pin_local_gpu, slurm_shard, torchrun_ranks
from bench.run.sharded import finalize_shards, owned_objects

__all__ = ["RunConfig", "evaluate_object", "run"]


@dataclass
class RunConfig:
    out: str
    protocol: str
    methods: list[str]
    dataset: str = "gso"
    data: str | None = None
    limit: int | None = None
    jobs: int = 2
    rasterizer: str = "auto"
    cache: str | None = None  # GT cache dir; default $AMODAL_BENCH_CACHE or ~/.cache/amodal-bench
    sheets: int = 3  # contact sheets for the first N objects
    object_ids: list[str] = field(default_factory=list)
    manifest: str | None = None  # pin file or shipped name (bench.inputs.manifest): ids verified first
    subset: str | None = None  # a manifest subset name or random:N[:SEED] (bench.inputs.selection)
    bad_objects: str = "error"  # an object missing / not as pinned: "error" before work, or "record"
    unusable: dict[str, str] = field(default_factory=dict)  # filled by run(): id -> reason (record mode)
    shard: str | None = None  # "I/N": evaluate only the items of shard I (bench.run.shard); default
    #                           from SLURM_ARRAY_TASK_ID / _COUNT, combined with torchrun's RANK
    active_shard: tuple[int, int] | None = None  # filled by run(): the (index, count) this process owns
    cases: str | None = None  # exported CASES dir: methods are outputs found there (import)
    appearance: AppearanceConfig = field(default_factory=AppearanceConfig)
    alignment: str = "none"  # bench.metrics.alignment: "none" | "yaw" | "yaw+icp" (aligned COV/MMD beside)
    generation_timeout_s: float | None = None  # per generate() call, in-process adapters
    save_renders: bool = False  # eval-rig renders as PNG per generation (input of the PCS judge)
    require_metrics: bool = False  # a metric network without weights is an error, not a NaN


def _require_blender(protocol) -> None:
    """A one-line error when bpy is not installed. Found, not imported: importing bpy here would
    put Blender's script folders on the sys.path the worker processes inherit."""
    import importlib.util

    from bench.render.cycles import BPY_MISSING

    try:
        found = importlib.util.find_spec("bpy") is not None
    except ValueError:  # sys.modules["bpy"] is None: import blocked
        found = False
    if not found:
        raise ValueError(f"protocol {protocol.name} renders its GT with lit Cycles: {BPY_MISSING}; or "
                         f"run {protocol.name}+raster-unlit (unlit GT, marked non-standard)")


OBJECT_LIST = "objects.txt"  # every run directory keeps the exact list it evaluated


def select_run_objects(config: RunConfig, ds) -> Selection:
    """The run's objects (bench.inputs.selection); bad objects are an error in one line unless
    config.bad_objects == "record"."""
    from bench.run.gtcache import cache_dir

    if config.bad_objects not in BAD_OBJECT_MODES:
        raise ValueError(f"bad_objects must be one of {', '.join(BAD_OBJECT_MODES)}")
    sel = select_objects(ds, manifest=config.manifest, objects=config.object_ids, subset=config.subset,
                         limit=config.limit, hash_cache=cache_dir(config) / "sha256.json")
    if sel.bad and config.bad_objects == "error":
        raise ValueError(f"{sel.problem()} (--bad-objects record evaluates the rest and records "
                         "these as input failures)")
    return sel


def write_object_list(path: Path, ids: list[str], spec: dict) -> None:
    """One id per line after a commented header saying how the list was made."""
    head = "".join(f"# {k}: {json.dumps(v)}\n" for k, v in spec.items())
    atomic_write_bytes(path, (head + "".join(f"{i}\n" for i in ids)).encode())


def run(config: RunConfig, progress: bool = True) -> Path | None:
    """Evaluate, write records and the leaderboard; returns the leaderboard path. A shard
    (torchrun rank, SLURM array task, --shard) evaluates its items only; the leaderboard is
    written once every item has a record (torchrun: after a barrier; shards: by the last to
    finish), else None is returned and `amodal-bench report RUN` merges later."""
    from bench.report.aggregate import write_leaderboard

    ranks = torchrun_ranks()
    if ranks:
        pin_local_gpu(ranks)
    shard = combined(parse_shard(config.shard) if config.shard else slurm_shard(), ranks)
    config = replace(config, active_shard=(shard.index, shard.count) if shard else None)
    protocol = load_protocol(config.protocol)
    ds = open_dataset(config.dataset, config.data)
    if not config.cases:
        from bench.methods.registry import check_method

        names = [check_method(m) for m in config.methods]  # fail fast on an unknown method
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"several methods are recorded as {', '.join(dup)}; rename one")
    from bench.metrics.alignment import ALIGNMENTS

    if config.alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {', '.join(ALIGNMENTS)}, got {config.alignment!r}")
    if protocol.gt_appearance in ("cycles-trellis", "cycles-gena3d"):  # Blender, before any work
        _require_blender(protocol)
    suite = appearance_suite(config)  # load (or find missing) metric networks before any work
    if config.require_metrics:
        suite.require()
    sel = select_run_objects(config, ds)
    ids = sel.ids
    config = replace(config, unusable=sel.bad)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    shared = {k: v for k, v in asdict(config).items() if k not in ("shard", "active_shard")}
    atomic_write_bytes(out / "run.json", json.dumps(  # the same bytes from every shard
        {"config": shared, "protocol_hash": protocol.content_hash,
         "data_root": str(ds.root), "objects": ids, "selection": sel.spec, "provenance": provenance(),
         "missing_metrics": suite.missing, "weights_sha256": suite.weights_sha256()}, indent=1).encode())
    write_object_list(out / OBJECT_LIST, ids, sel.spec)
    all_ids = ids
    if shard:
        ids = owned_objects(config, protocol, ids, shard)
    bar = tqdm(total=len(ids), desc=f"{protocol.name}" + (f" shard {shard.index}/{shard.count}" if shard
                                                          else ""), unit="obj", disable=not progress)
    if config.jobs <= 1:
        for oid in ids:
            evaluate_object(config, oid, all_ids.index(oid))
            bar.update()
    else:
        ctx = mp.get_context("spawn")  # never fork a process that may hold a GL context
        saved = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = "1"  # workers already fill the cores: one BLAS thread each
        try:
            with ProcessPoolExecutor(config.jobs, mp_context=ctx) as pool:
                index = {oid: i for i, oid in enumerate(all_ids)}  # sheets: the run's first N objects
                futures = [pool.submit(evaluate_object, config, oid, index[oid]) for oid in ids]
                for f in as_completed(futures):
                    f.result()
                    bar.update()
        finally:
            if saved is None:
                os.environ.pop("OMP_NUM_THREADS")
            else:
                os.environ["OMP_NUM_THREADS"] = saved
    bar.close()
    if shard is None:
        return write_leaderboard(out)
    return finalize_shards(config, protocol, all_ids, ranks)
