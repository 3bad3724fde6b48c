"""COV/MMD by rows across ranks: the row partition and the exact combination of the ranks' parts.

A `RowPartition` (rank, world, all_gather) makes `bench.metrics.geometry.coverage_mmd` compute
the exact Chamfer distances only of the generated rows i with i % world == rank; the ranks then
exchange, with `all_gather` (a picklable object in, every rank's object out, in rank order, as
torch.distributed.all_gather_object), each row's argmin (a global reference index) and each
column's minimum over the rank's rows, and every rank combines them into the same COV and MMD:

    COV = |distinct row argmins| / N_ref,   MMD = mean_j (min over ranks of the column minima).

Every entry a rank computes is the very number one process computes (the same exact Chamfer
function on the same two clouds), a row lives whole on one rank (its argmin, lowest index on
ties, is that of one process) and a minimum does not depend on the grouping, so the result is
bitwise identical (==) to one process for every world size; MMD's mean is taken over the same
(N_ref,) vector of column minima as one process takes it.

`row_partition(p)` makes every coverage_mmd call inside it (in this thread / task: a ContextVar)
use p, so code that calls coverage_mmd deep inside (bench.report.aggregate) runs under torchrun
without a new parameter. Calls are collective: every rank must make the same coverage_mmd calls,
in the same order, with the same sets (sizes are checked at the first exchange; a rank that fails
between exchanges leaves the others waiting until the process group's timeout).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["RowPartition", "current_partition", "row_partition"]


@dataclass(frozen=True)
class RowPartition:
    """This process's share of the generated rows: i % world == rank.

    all_gather(obj) -> [obj of rank 0, ..., obj of rank world - 1]; every rank calls it the same
    number of times, in the same order (a collective)."""

    rank: int
    world: int
    all_gather: Callable[[Any], list[Any]]

    def __post_init__(self) -> None:
        if self.world < 1 or not 0 <= self.rank < self.world:
            raise ValueError(f"a row partition needs 0 <= rank < world, got rank {self.rank} "
                             f"of {self.world}")

    def rows(self, n: int) -> range:
        """The rows of an n-row matrix this rank computes."""
        return range(self.rank, n, self.world)

    def gather(self, obj: Any) -> list[Any]:
        out = list(self.all_gather(obj))
        if len(out) != self.world:
            raise RuntimeError(f"all_gather returned {len(out)} objects for a world of {self.world}")
        return out

    @classmethod
    def single(cls) -> RowPartition:
        """One process holding every row (world 1): the same code path, no communication."""
        return cls(0, 1, lambda obj: [obj])

    @classmethod
    def from_torch_distributed(cls, group: Any = None) -> RowPartition:
        """The partition of an initialized torch.distributed process group (default: WORLD):
        rank and world size of `group`, all_gather = torch.distributed.all_gather_object.
        With NCCL, set the rank's CUDA device first (all_gather_object uses it); gloo (CPU) and
        NCCL both work. torch.distributed is imported here, not with bench.metrics."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("torch.distributed is not initialized: call "
                               "torch.distributed.init_process_group first (e.g. under torchrun)")
        world = dist.get_world_size(group)

        def all_gather(obj: Any) -> list[Any]:
            out: list[Any] = [None] * world
            dist.all_gather_object(out, obj, group=group)
            return out

        return cls(dist.get_rank(group), world, all_gather)


_CURRENT: contextvars.ContextVar[RowPartition | None] = contextvars.ContextVar(
    "bench_metrics_row_partition", default=None)


@contextlib.contextmanager
def row_partition(partition: RowPartition | None) -> Iterator[RowPartition | None]:
    """Every coverage_mmd call inside uses `partition` (unless given one explicitly); None:
    one process. Nests; restored on exit."""
    token = _CURRENT.set(partition)
    try:
        yield partition
    finally:
        _CURRENT.reset(token)


def current_partition() -> RowPartition | None:
    """The partition set by the innermost row_partition block, or None."""
    return _CURRENT.get()


def agree(part: RowPartition, backend: str, n_gen: int, n_ref: int) -> str:
    """First exchange: every rank has the same set sizes (ValueError on all ranks if not) and
    takes rank 0's route, so "auto" (timed per process on CUDA) cannot split the ranks over two
    routes with different rounding or a different number of exchanges."""
    heads = part.gather((backend, n_gen, n_ref))
    sizes = {(g, r) for _, g, r in heads}
    if len(sizes) > 1:
        raise ValueError(f"ranks passed sets of different sizes (n_gen, n_ref): "
                         f"{[(g, r) for _, g, r in heads]}")
    return heads[0][0]


def column_min(part: RowPartition, local: np.ndarray) -> np.ndarray:
    """Elementwise minimum over the ranks of a (N_ref,) vector (exact: order-free)."""
    return np.minimum.reduce([np.asarray(v, np.float64) for v in part.gather(local)])


def combine(part: RowPartition, m_rows: np.ndarray, n_ref: int) -> tuple[float, float]:
    """(COV, MMD) from every rank's rows of M (this rank's m_rows, inf where not computed):
    each row's argmin (lowest index on ties, as np.argmin over the full row of one process)
    and each column's minimum over the rank's rows are gathered and combined."""
    local = (m_rows.argmin(axis=1).astype(np.int64), m_rows.min(axis=0, initial=np.inf))
    parts = part.gather(local)
    argmins = np.concatenate([a for a, _ in parts])
    col = np.minimum.reduce([c for _, c in parts])
    return len(np.unique(argmins)) / n_ref, float(col.mean())
