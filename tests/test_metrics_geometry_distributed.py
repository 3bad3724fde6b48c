"""bench.metrics.geometry / bench.metrics.distributed: COV/MMD split over ranks by rows.

The reference everywhere is one process (`coverage_mmd` without a partition) and the full matrix
(`distance_matrix`, itself tested against numpy brute force in test_metrics_geometry.py): every
rank's (COV, MMD) must be == one process's, for every world size. In-process ranks are threads
whose all_gather meets at a barrier (objects pass through pickle, as all_gather_object); the last
test runs real processes under torchrun with gloo.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from bench.metrics.distributed import RowPartition, current_partition, row_partition
from bench.metrics.geometry import coverage_mmd, distance_matrix

WORLDS = [1, 2, 3, 4, 5]


class _Group:
    """`world` in-process ranks: all_gather hands every rank the list of all ranks' objects."""

    def __init__(self, world: int):
        self.world, self.slots = world, [None] * world
        self.barrier = threading.Barrier(world, timeout=120)
        self.gathers = [0] * world

    def partition(self, rank: int) -> RowPartition:
        def all_gather(obj):
            self.slots[rank] = pickle.loads(pickle.dumps(obj))
            self.gathers[rank] += 1
            self.barrier.wait()
            out = list(self.slots)
            self.barrier.wait()  # nobody overwrites a slot before every rank has read it
            return out

        return RowPartition(rank, self.world, all_gather)


def _run_ranks(world: int, fn) -> list:
    """fn(partition) on `world` threads, one per rank; the ranks' results in rank order."""
    group, results, errors = _Group(world), [None] * world, []

    def target(rank):
        try:
            results[rank] = fn(group.partition(rank))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            errors.append(e)
            group.barrier.abort()

    threads = [threading.Thread(target=target, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    if errors:
        raise errors[0]
    assert len(set(group.gathers)) == 1  # the same number of exchanges on every rank
    return results


def _full_matrix(gen, ref) -> tuple[float, float]:
    """COV/MMD from the full Chamfer matrix, PointFlow's definitions (argmin: lowest index)."""
    m = distance_matrix(gen, ref)
    return len({int(np.argmin(row)) for row in m}) / len(ref), float(np.mean(m.min(axis=0)))


def _sets(seed: int, n_ref: int = 13, pts: int = 400):
    """Anisotropic blobs; generated: perturbed copies of most, two duplicates, unrelated ones."""
    rng = np.random.default_rng(seed)
    ref = [rng.normal(size=(pts, 3)) * rng.uniform(0.05, 0.4, 3) + rng.uniform(-0.2, 0.2, 3)
           for _ in range(n_ref)]
    gen = [r * rng.uniform(0.8, 1.2, 3) + rng.normal(0, 0.02, r.shape) for r in ref[:n_ref - 4]]
    gen += [gen[0].copy(), gen[1].copy()]  # duplicate rows: equal argmins on different ranks
    gen += [rng.normal(size=(pts, 3)) * 0.3 for _ in range(3)]
    return [gen[i] for i in rng.permutation(len(gen))], ref


def _assert_all_equal(results, single, full):
    for cov, mmd in results:
        assert (cov, mmd) == single  # bitwise
        assert cov == full[0]
        assert mmd == pytest.approx(full[1], rel=1e-12, abs=0)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("world", WORLDS)
def test_ranks_equal_one_process_random_clouds(world, seed):
    gen, ref = _sets(seed)
    single = coverage_mmd(gen, ref)
    full = _full_matrix(gen, ref)
    assert 0 < single[0] < 1  # a non-trivial coverage
    _assert_all_equal(_run_ranks(world, lambda p: coverage_mmd(gen, ref, partition=p)),
                      single, full)
    if seed:
        return
    # unpruned and lion_box normalized: the same identity
    assert _run_ranks(world, lambda p: coverage_mmd(gen, ref, prune=False, partition=p)) == \
        [coverage_mmd(gen, ref, prune=False)] * world
    assert _run_ranks(world, lambda p: coverage_mmd(gen, ref, "lion_box", partition=p)) == \
        [coverage_mmd(gen, ref, "lion_box")] * world


def test_ranks_prune_exactly_as_one_process(monkeypatch):
    # a rank's bounds of its rows are one process's rows bitwise, so the ranks together compute
    # exactly the entries one process computes: no pair twice, none more
    from bench.metrics import geometry

    gen, ref = _sets(7)
    gens, refs = [geometry._Cloud.build(g) for g in gen], [geometry._Cloud.build(r) for r in ref]
    lower, upper = geometry.chamfer_bounds(gens, refs)
    for rows in (slice(0, None, 3), slice(2, None, 3)):
        lo, hi = geometry.chamfer_bounds(gens[rows], refs)
        assert (lo == lower[rows]).all() and (hi == upper[rows]).all()
    computed = []
    exact = geometry.chamfer_l2

    def counted(a, b, tree_a=None, tree_b=None):
        computed.append((a.tobytes()[:64], b.tobytes()[:64]))
        return exact(a, b, tree_a, tree_b)

    monkeypatch.setattr(geometry, "chamfer_l2", counted)
    coverage_mmd(gen, ref)
    single = sorted(computed)
    assert 0 < len(single) < len(gen) * len(ref)  # pruning does skip pairs here
    for world in (2, 3):
        computed.clear()
        _run_ranks(world, lambda p: coverage_mmd(gen, ref, partition=p))
        assert sorted(computed) == single


@pytest.mark.parametrize("world", [2, 5])
def test_torch_route_by_rows_equals_one_process(world):
    gen, ref = _sets(2, n_ref=7, pts=200)
    single = coverage_mmd(gen, ref, backend="torch")
    assert _run_ranks(world, lambda p: coverage_mmd(gen, ref, backend="torch", partition=p)) \
        == [single] * world
    assert single == pytest.approx(coverage_mmd(gen, ref), rel=1e-9)  # and the KD route


def test_more_ranks_than_rows():
    gen, ref = _sets(3, n_ref=6, pts=200)
    gen = gen[:3]  # ranks 3 and 4 of 5 own no row
    single = coverage_mmd(gen, ref)
    _assert_all_equal(_run_ranks(5, lambda p: coverage_mmd(gen, ref, partition=p)), single,
                      _full_matrix(gen, ref))
    one = [np.zeros((4, 3))]  # 1 x 1: no bounds
    assert _run_ranks(3, lambda p: coverage_mmd(one, one, partition=p)) == [(1.0, 0.0)] * 3


def test_ties_resolve_to_the_lowest_index_on_every_rank():
    rng = np.random.default_rng(4)
    base = [rng.normal(size=(300, 3)) * s for s in (0.1, 0.3, 0.5)]
    ref = [base[0], base[1], base[1].copy(), base[2]]  # refs 1 and 2 identical: rows tie
    near1 = base[1] * 1.01
    gen = [near1, near1.copy(), base[0] * 0.99, near1 + 1e-4]  # rows 0, 1, 3 tie on (1, 2)
    m = distance_matrix(gen, ref)
    assert m[0, 1] == m[0, 2] and m[3, 1] == m[3, 2]
    assert [int(np.argmin(r)) for r in m] == [1, 1, 0, 1]  # one process: lowest index
    single = coverage_mmd(gen, ref)
    assert single[0] == 2 / 4  # {0, 1}; a per-rank rule picking 2 on some rank would give 3/4
    for world in (2, 3, 4):  # tied rows on different ranks
        _assert_all_equal(_run_ranks(world, lambda p: coverage_mmd(gen, ref, partition=p)),
                          single, _full_matrix(gen, ref))


@pytest.fixture(scope="module")
def gso_sets(gso_root):
    import trimesh

    from bench.inputs.dataset import open_dataset

    ds = open_dataset("gso", gso_root)
    ref = []
    for k, oid in enumerate(ds.object_ids[:12]):
        m = ds.load(oid).mesh
        pts, _ = trimesh.sample.sample_surface(trimesh.Trimesh(m.vertices, m.faces), 1024, seed=k)
        ref.append(np.asarray(pts, np.float64))
    rng = np.random.default_rng(9)
    gen = [r * rng.uniform(0.9, 1.1, 3) + rng.normal(0, 0.005, r.shape) for r in ref[:9]]
    gen += [gen[2].copy(), ref[5] * 1.3]
    return [gen[i] for i in rng.permutation(len(gen))], ref


@pytest.mark.parametrize("world", WORLDS)
def test_ranks_equal_one_process_real_gso_clouds(gso_sets, world):
    gen, ref = gso_sets
    single = coverage_mmd(gen, ref)
    _assert_all_equal(_run_ranks(world, lambda p: coverage_mmd(gen, ref, partition=p)), single,
                      _full_matrix(gen, ref))


def test_row_partition_context():
    gen, ref = _sets(5, n_ref=6, pts=200)
    single = coverage_mmd(gen, ref)
    assert current_partition() is None

    def under_context(p):
        with row_partition(p):
            assert current_partition() is p
            inner = coverage_mmd(gen, ref)  # no argument: the context's partition
            with row_partition(None):
                alone = coverage_mmd(gen, ref)  # one process again, no exchange
            assert current_partition() is p
        assert current_partition() is None
        return inner, alone

    assert _run_ranks(3, under_context) == [(single, single)] * 3
    # an explicit partition wins over the context
    assert _run_ranks(2, lambda p: _explicit(p, gen, ref)) == [single] * 2


def _explicit(p, gen, ref):
    with row_partition(RowPartition(0, 7, lambda obj: pytest.fail("context partition used"))):
        return coverage_mmd(gen, ref, partition=p)


def test_disagreeing_ranks_fail_on_every_rank():
    gen, ref = _sets(6, n_ref=6, pts=200)
    errors: list[str] = []

    def mismatched(p):
        try:
            coverage_mmd(gen[: len(gen) - p.rank], ref, partition=p)
        except ValueError as e:
            errors.append(str(e))

    _run_ranks(2, mismatched)
    assert len(errors) == 2 and all("different sizes" in e for e in errors)
    bad = gen[:-1] + [np.full((5, 3), np.nan)]
    for p in (RowPartition(0, 2, pytest.fail), RowPartition(1, 2, pytest.fail)):
        with pytest.raises(ValueError, match="NaN"):  # before any exchange, on every rank
            coverage_mmd(bad, ref, partition=p)


def test_row_partition_checks():
    with pytest.raises(ValueError, match="rank"):
        RowPartition(2, 2, lambda o: [o])
    with pytest.raises(RuntimeError, match="3 objects"):
        RowPartition(0, 2, lambda o: [o] * 3).gather(1)
    assert list(RowPartition(1, 3, lambda o: [o]).rows(8)) == [1, 4, 7]
    assert RowPartition.single().gather("x") == ["x"]
    with pytest.raises(RuntimeError, match="not initialized"):
        RowPartition.from_torch_distributed()


_TORCHRUN_SCRIPT = textwrap.dedent("""
    import datetime, json, sys
    import numpy as np
    import torch.distributed as dist
    from bench.metrics.distributed import RowPartition, row_partition
    from bench.metrics.geometry import coverage_mmd

    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    data = np.load(sys.argv[1])
    gen, ref = list(data["gen"]), list(data["ref"])
    p = RowPartition.from_torch_distributed()
    out = {"world": p.world, "kd": coverage_mmd(gen, ref, partition=p)}
    with row_partition(p):
        out["context"] = coverage_mmd(gen, ref)
        out["torch"] = coverage_mmd(gen, ref, backend="torch")
    if p.rank == 0:
        print("RESULT " + json.dumps(out), flush=True)
    dist.destroy_process_group()
""")


def _gloo() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_gloo_available()


@pytest.mark.skipif(not _gloo(), reason="this torch build has no torch.distributed gloo backend")
def test_torchrun_two_processes_equal_one_process(tmp_path):
    rng = np.random.default_rng(10)
    ref = [rng.normal(size=(1024, 3)) * rng.uniform(0.05, 0.4, 3) for _ in range(16)]
    gen = [r * rng.uniform(0.9, 1.1, 3) + rng.normal(0, 0.01, r.shape) for r in ref[:12]]
    gen += [gen[1].copy()] + [rng.normal(size=(1024, 3)) * 0.2 for _ in range(3)]
    gen = [gen[i] for i in rng.permutation(16)]
    np.savez(tmp_path / "sets.npz", gen=np.stack(gen), ref=np.stack(ref))
    (tmp_path / "run.py").write_text(_TORCHRUN_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        "--nproc_per_node=2", str(tmp_path / "run.py"), str(tmp_path / "sets.npz")],
                       capture_output=True, text=True, timeout=150, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    line = next(x for x in r.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])  # json floats round-trip exactly (repr)
    single = coverage_mmd(gen, ref)
    assert out["world"] == 2
    assert tuple(out["kd"]) == single and tuple(out["context"]) == single
    assert 0 < single[0] < 1
    assert tuple(out["torch"]) == coverage_mmd(gen, ref, backend="torch")
