"""bench.metrics.geometry: the torch route of COV/MMD in bounded memory, and equal to the KD route.

The torch route used to allocate cdist's (N_ref, n, m) float64 distances for each generated cloud:
64 references of 4,096 points need 64 x 4096 x 4096 x 8 B = 8.6 GB (8 GiB) for cdist's output,
and as much again for the `** 2` that followed. It now works in blocks of at most `max_bytes`
(default TORCH_MAX_BYTES = 256 MiB). The limit tests run the route in a subprocess under
RLIMIT_AS; the distance-block tests check the blocks against the KD route and brute force.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bench.metrics.geometry import (
    TORCH_MAX_BYTES,
    _block_shape,
    chamfer_matrix_torch,
    coverage_mmd,
    distance_matrix,
)

N_REF, N_POINTS = 64, 4096
OLD_BYTES = N_REF * N_POINTS * N_POINTS * 8  # 8,589,934,592 B: the unchunked distance tensor
GIB = 1 << 30
# Address space granted above what the child holds after importing torch and running a small
# cdist. torch maps its CPU and CUDA libraries at import: VmSize ~3.3 GiB here (measured with
# torch 2.14 cu130, 2 cores), so a fixed limit would depend on the build; the child measures its
# own VmSize and adds HEADROOM. Measured here: the chunked route's VmPeak is ~0.21 GiB above that
# (one 256 MiB block), far below HEADROOM; the old allocation asks for 8 GiB at once.
HEADROOM = 1 * GIB

_CHILD = textwrap.dedent("""
    import json, os, re, resource, sys
    import numpy as np
    import torch
    from bench.metrics.geometry import chamfer_matrix_torch, coverage_mmd

    def vm(key):
        return int(re.search(key + r":\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024

    data = np.load(sys.argv[1])
    gen, refs = [data["gen"]], list(data["refs"])
    max_bytes = None if sys.argv[2] == "none" else int(sys.argv[2])
    rng = np.random.default_rng(0)  # warm-up: intra-op threads and allocator arenas exist now
    chamfer_matrix_torch([rng.normal(size=(1024, 3))], [rng.normal(size=(1024, 3))] * 2)
    base = vm("VmSize")
    limit = base + int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        cov, mmd = coverage_mmd(gen, refs, backend="torch", max_bytes=max_bytes)
        out = {"cov": cov, "mmd": mmd}
    except (MemoryError, RuntimeError) as e:
        out = {"error": type(e).__name__, "message": str(e)[:400]}
    out.update(base=base, limit=limit, peak=vm("VmPeak"))
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """One generated cloud and 64 reference clouds of 4,096 points (ellipsoid surfaces), saved for
    the child; and the KD route's (COV, MMD) on them, computed here without a limit."""
    rng = np.random.default_rng(0)
    refs = []
    for _ in range(N_REF):
        u = rng.normal(size=(N_POINTS, 3))
        refs.append(u / np.linalg.norm(u, axis=1, keepdims=True) * rng.uniform(0.2, 0.5, 3))
    gen = refs[17] * [1.05, 0.95, 1.0] + rng.normal(0, 0.01, (N_POINTS, 3))
    path = tmp_path_factory.mktemp("clouds") / "sets.npz"
    np.savez(path, gen=gen, refs=np.stack(refs))
    return path, coverage_mmd([gen], refs, backend="kdtree")


def _run_child(path, max_bytes: int | None) -> dict:
    # CPU only: the limit is on host address space (CUDA would map far more at init); on a GPU
    # the same cap bounds device memory, the block being the same size.
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", MALLOC_ARENA_MAX="2")
    arg = "none" if max_bytes is None else str(max_bytes)
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(path), arg, str(HEADROOM)],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_chunked_torch_route_fits_the_limit_and_equals_kd_route(sets):
    path, (cov_kd, mmd_kd) = sets
    out = _run_child(path, TORCH_MAX_BYTES)
    assert "error" not in out, out
    assert out["peak"] - out["base"] < HEADROOM < OLD_BYTES
    print(f"\nchunked torch route: VmSize {out['base'] / GIB:.2f} GiB before, VmPeak "
          f"{out['peak'] / GIB:.2f} GiB, limit {out['limit'] / GIB:.2f} GiB")
    # one generated cloud: COV = 1/64 names the nearest reference, MMD is the mean of all 64 CDs
    assert out["cov"] == cov_kd == 1 / N_REF
    assert out["mmd"] == pytest.approx(mmd_kd, rel=1e-9)


def test_unchunked_allocation_fails_under_the_same_limit(sets):
    # max_bytes=None: all 64 references at once, the old (64, 4096, 4096) float64 tensor
    path, _ = sets
    out = _run_child(path, None)
    assert out.get("error") in ("MemoryError", "RuntimeError"), out
    # torch's CPU allocator names the request: exactly the old tensor, 8,589,934,592 bytes
    assert "alloc" in out["message"].lower() and str(OLD_BYTES) in out["message"], out["message"]


# ---------------------------------------------------------------------------- distance blocks


def test_block_shape_respects_the_cap():
    # brute force over caps: the block holds at most max(cap, 1 distance) and is maximal in the
    # order columns, rows, items
    for cap in (1, 8, 8 * 7, 8 * 100, 8 * 4096, 8 * 4096 * 4096, 3 * 8 * 4096 * 4096 + 5, 1 << 40):
        k, r, c = _block_shape(64, 4096, 4096, 8, cap)
        assert k * r * c * 8 <= max(cap, 8)
        assert c == 4096 or (r, k) == (1, 1)
        assert (r == 4096 or k == 1) and (k == 64 or (k + 1) * r * c * 8 > cap)
    assert _block_shape(64, 4096, 4096, 8, TORCH_MAX_BYTES) == (2, 4096, 4096)
    assert _block_shape(64, 4096, 4096, 8, None) == (64, 4096, 4096)


def _shapes(rng, sizes):
    return [rng.normal(size=(n, 3)) * rng.uniform(0.05, 0.4, 3) + rng.uniform(-0.2, 0.2, 3)
            for n in sizes]


@pytest.mark.parametrize("max_bytes", [8, 8 * 37, 8 * 60 * 50, 8 * 2 * 60 * 80 + 8, None])
def test_blocks_of_any_size_give_the_kd_matrix(max_bytes):
    # mixed point counts (three reference groups); caps from one distance (blocks over the
    # points of both clouds) to none. Reference: the KD-tree matrix and a numpy brute force,
    # relative 1e-9 (both exact up to float64 rounding; measured ~4e-16)
    rng = np.random.default_rng(9)
    gen, ref = _shapes(rng, [50, 80, 50]), _shapes(rng, [60, 60, 90, 33, 60])
    got = chamfer_matrix_torch(gen, ref, max_bytes=max_bytes)
    np.testing.assert_allclose(got, distance_matrix(gen, ref), rtol=1e-9)
    brute = np.array([[((g[:, None] - r[None]) ** 2).sum(-1).min(1).mean()
                       + ((g[:, None] - r[None]) ** 2).sum(-1).min(0).mean() for r in ref] for g in gen])
    np.testing.assert_allclose(got, brute, rtol=1e-9)
    cov, mmd = coverage_mmd(gen, ref, backend="torch", max_bytes=max_bytes)
    cov_kd, mmd_kd = coverage_mmd(gen, ref, backend="kdtree")
    assert cov == cov_kd and mmd == pytest.approx(mmd_kd, rel=1e-9)


def test_auto_backend_without_cuda_is_kdtree_and_probe_names_a_route():
    # the decision rule only (no timing is asserted): without CUDA "auto" is the KD route, as
    # measured by bench.perf.covmmd_benchmark; the probe that decides on CUDA machines runs here
    # on the CPU on a tiny problem and must name one of the two exact routes
    from bench.metrics import geometry

    if not geometry._cuda_available():
        assert geometry.auto_backend() == "kdtree"
    assert geometry._probe_backends("cpu", n_clouds=3, n_points=300) in ("kdtree", "torch")
    gens, refs = geometry._probe_sets(3, 300)
    assert coverage_mmd(gens, refs, backend="auto") == pytest.approx(
        coverage_mmd(gens, refs, backend="torch"), rel=1e-9)
