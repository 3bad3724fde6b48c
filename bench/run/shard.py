"""Sharding a run over processes that share a run directory and nothing else: torchrun ranks,
SLURM array tasks, or `--shard I/N` by hand.

Each item (method, object, input-view setting) has a stable key, the first 8 bytes of
sha256(json([method label, object id, views, degree])), and belongs to shard `key % N`. The key
does not depend on N, on the order of methods or objects, or on anything a previous run did, so
any world size partitions the same items, and a run killed at one world size resumes at another:
records are per item and a finished item is never redone (bench.run.evaluate). Two shards never
own the same item, so two processes never write the same record.

torchrun: RANK / WORLD_SIZE / LOCAL_RANK from its environment; a process group (NCCL on GPUs,
gloo on CPUs) carries the barrier before the report and the row-partitioned COV/MMD. CUDA ranks
see only LOCAL_RANK's GPU (CUDA_VISIBLE_DEVICES narrowed before any CUDA use, so the worker
processes they spawn inherit it). SLURM arrays: SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of
SLURM_ARRAY_TASK_COUNT, unless --shard is given; torchrun inside an array task shards both ways
(task * WORLD_SIZE + RANK of COUNT * WORLD_SIZE).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

# a rank that finishes early waits at the barrier for the slowest: days at full scale
BARRIER_TIMEOUT_S = float(os.environ.get("AMODAL_BENCH_BARRIER_TIMEOUT_S", 7 * 24 * 3600))


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if not (self.count >= 1 and 0 <= self.index < self.count):
            raise ValueError(f"a shard is I/N with 0 <= I < N, got {self.index}/{self.count}")

    def owns(self, method: str, object_id: str, views: int, degree: float | None) -> bool:
        return item_key(method, object_id, views, degree) % self.count == self.index

    @property
    def label(self) -> str:
        return f"{self.index}-of-{self.count}"


def item_key(method: str, object_id: str, views: int, degree: float | None) -> int:
    """The stable key of one item (`method`: the name its records are kept under)."""
    text = json.dumps([method, object_id, int(views), None if degree is None else float(degree)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def parse_shard(text: str) -> Shard:
    """'I/N' -> Shard(I, N)."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard takes I/N (e.g. 0/3), got {text!r}") from None
    return Shard(i, n)


def slurm_shard(environ: Mapping[str, str] = os.environ) -> Shard | None:
    """The array task's shard, when the process is a SLURM array task."""
    if "SLURM_ARRAY_TASK_ID" not in environ or "SLURM_ARRAY_TASK_COUNT" not in environ:
        return None
    first = int(environ.get("SLURM_ARRAY_TASK_MIN", "0"))
    return Shard(int(environ["SLURM_ARRAY_TASK_ID"]) - first, int(environ["SLURM_ARRAY_TASK_COUNT"]))


@dataclass(frozen=True)
class Ranks:
    rank: int
    world: int
    local_rank: int


def torchrun_ranks(environ: Mapping[str, str] = os.environ) -> Ranks | None:
    """The process's place under torchrun (None outside it, or with a single process)."""
    if "RANK" not in environ or "WORLD_SIZE" not in environ:
        return None
    ranks = Ranks(int(environ["RANK"]), int(environ["WORLD_SIZE"]), int(environ.get("LOCAL_RANK", 0)))
    return ranks if ranks.world > 1 else None


def combined(outer: Shard | None, ranks: Ranks | None) -> Shard | None:
    """One shard from an array task (or --shard) and a torchrun rank inside it."""
    if ranks is None:
        return outer
    outer = outer or Shard(0, 1)
    return Shard(outer.index * ranks.world + ranks.rank, outer.count * ranks.world)


def pin_local_gpu(ranks: Ranks, environ=os.environ) -> None:
    """Narrow CUDA_VISIBLE_DEVICES to LOCAL_RANK's device (of those visible), before CUDA is used."""
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    devices = [d for d in visible.split(",") if d] if visible else None
    if devices:
        environ["CUDA_VISIBLE_DEVICES"] = devices[ranks.local_rank % len(devices)]
    elif visible is None:
        environ["CUDA_VISIBLE_DEVICES"] = str(ranks.local_rank)


class ProcessGroup:
    """torch.distributed for the run's control plane: a barrier and object gathers."""

    def __init__(self, ranks: Ranks):
        import torch
        import torch.distributed as dist

        self.ranks, self.dist = ranks, dist
        self.backend = "nccl" if torch.cuda.is_available() else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(self.backend, timeout=datetime.timedelta(seconds=BARRIER_TIMEOUT_S))
        if self.backend == "nccl":
            torch.cuda.set_device(0)  # the one device CUDA_VISIBLE_DEVICES leaves

    def barrier(self) -> None:
        self.dist.barrier()

    def all_gather_object(self, obj) -> list:
        out = [None] * self.ranks.world
        self.dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self.dist.is_initialized():
            self.dist.destroy_process_group()


def log_items(out, shard: Shard, items: list[tuple[str, str, str]]) -> None:
    """Append (method, setting, object) of the items this shard evaluates to
    <out>/shards/<I>-of-<N>.log: who wrote what."""
    if not items:
        return
    from pathlib import Path

    path = Path(out) / "shards" / f"{shard.label}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:  # one write per object, O_APPEND: lines of processes do not mix
        f.write("".join("\t".join(item) + "\n" for item in items))
