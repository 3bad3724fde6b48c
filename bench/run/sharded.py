"""What a sharded run does around the per-object evaluation (bench.run.shard defines shards):
which objects a shard touches, and the end of the run once every item has a record."""

from __future__ import annotations

from pathlib import Path

from bench.inputs.protocol import Protocol
from bench.records.store import record_path
from bench.run.shard import ProcessGroup, Ranks, Shard


def _items(config, protocol: Protocol, object_id: str):
    from bench.methods.registry import method_name

    for st in protocol.settings:
        for m in config.methods:
            yield method_name(m), st


def owned_objects(config, protocol: Protocol, ids: list[str], shard: Shard) -> list[str]:
    """The objects with at least one item of `shard` (the others are not even loaded)."""
    return [oid for oid in ids if any(shard.owns(label, oid, st.views, st.degree)
                                      for label, st in _items(config, protocol, oid))]


def missing_items(config, protocol: Protocol, ids: list[str]) -> int:
    """Items of the run without a record file yet (of any status)."""
    out = Path(config.out)
    return sum(not record_path(out, protocol.name, label, st.views, oid, st.degree).is_file()
               for oid in ids for label, st in _items(config, protocol, oid))


def finalize_shards(config, protocol: Protocol, ids: list[str], ranks: Ranks | None) -> Path | None:
    """After this shard's items: under torchrun wait for every rank; then, when every item of the
    run has a record, write the contact sheets (one process) and the leaderboard (every rank of a
    torchrun run computes it, COV/MMD split by rows across them, the same bytes written). A SLURM
    shard that is not the last to finish returns None."""
    from bench.report.aggregate import write_leaderboard

    group = ProcessGroup(ranks) if ranks else None
    try:
        if group:
            group.barrier()
        left = missing_items(config, protocol, ids)
        if left:
            print(f"shard {config.active_shard[0]}/{config.active_shard[1]} done; {left} items of "
                  f"other shards have no record yet: `amodal-bench report {config.out}` once they do")
            return None
        if ranks is None or ranks.rank == 0:
            for oid in ids[: config.sheets]:
                write_sheet(config, oid)
        if group is None:
            return write_leaderboard(Path(config.out))
        from bench.metrics.distributed import RowPartition, row_partition

        with row_partition(RowPartition(ranks.rank, ranks.world, group.all_gather_object)):
            path = write_leaderboard(Path(config.out))
        group.barrier()
        return path
    finally:
        if group:
            group.close()


def write_sheet(config, object_id: str) -> None:
    """The contact sheet of one object from the renders on disk (a sharded run's end)."""
    from bench.inputs.assets import AssetError
    from bench.inputs.dataset import open_dataset
    from bench.inputs.protocol import load_protocol
    from bench.run.evaluate import object_job, write_object_sheet

    protocol = load_protocol(config.protocol)
    ds = open_dataset(config.dataset, config.data)
    try:
        asset = ds.load(object_id, protocol.import_frame)
    except AssetError:
        return
    write_object_sheet(object_job(config, protocol, ds.name, object_id), asset)
