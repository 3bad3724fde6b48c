"""Which objects a run evaluates: found in the folder, or pinned by a manifest; then --objects,
--subset and --limit, in that order. The result is recorded in every run directory.

Subsets: a name of the manifest's `subsets:` / `splits:`, or `random:N[:SEED]` (GENA3D B.1
evaluates 500 random GSO objects): every candidate id is ranked by sha256("<SEED>:<id>") and the
N smallest are kept, in the candidates' order. The draw depends only on the seed (default 0) and
the ids, not on numpy's generator streams or the folder's listing order, and an object drawn from
a folder stays drawn when more objects are added whose rank is larger.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.inputs.dataset import DataMissing, Dataset
from bench.inputs.manifest import HashCache, load_manifest, verify

BAD_OBJECT_MODES = ("error", "record")


@dataclass
class Selection:
    """ids: what the run evaluates; bad: {id: why it cannot be evaluated as pinned} (a subset of
    ids); spec: how the list was made (written to run.json)."""

    ids: list[str]
    bad: dict[str, str] = field(default_factory=dict)
    spec: dict = field(default_factory=dict)

    def problem(self, limit: int = 3) -> str:
        """One line naming the first `limit` bad objects and their reasons."""
        shown = "; ".join(f"{k}: {v}" for k, v in list(self.bad.items())[:limit])
        more = f"; and {len(self.bad) - limit} more" if len(self.bad) > limit else ""
        return f"{len(self.bad)} of {len(self.ids)} objects cannot be evaluated as pinned: {shown}{more}"


def parse_subset(spec: str) -> tuple[str, int, int] | tuple[str, str]:
    """'random:N[:SEED]' -> ('random', N, SEED); a name -> ('named', name)."""
    if spec.startswith("random:"):
        parts = spec.split(":")
        try:
            n, seed = int(parts[1]), int(parts[2]) if len(parts) > 2 else 0
        except (ValueError, IndexError):
            n, seed = 0, 0
        if len(parts) > 3 or n < 1:
            raise ValueError(f"--subset random:N[:SEED] takes a positive N and an integer seed, got {spec!r}")
        return ("random", n, seed)
    if not spec:
        raise ValueError("--subset is empty")
    return ("named", spec)


def random_subset(ids: Sequence[str], n: int, seed: int = 0) -> list[str]:
    """The n ids with the smallest sha256('<seed>:<id>'), in the order of `ids`."""
    if n > len(ids):
        raise ValueError(f"--subset random:{n} asks for more objects than the {len(ids)} available")
    rank = sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
    keep = set(rank[:n])
    return [i for i in ids if i in keep]


def select_objects(ds: Dataset, *, manifest: str | None = None, objects: Sequence[str] = (),
                   subset: str | None = None, limit: int | None = None,
                   hash_cache: Path | None = None) -> Selection:
    """The run's object list. Without a manifest the candidates are the objects found under the
    data root; with one, the manifest's ids, each then verified (present, sha256 as pinned).
    Explicit `objects` not found are bad too. Raises ValueError/DataMissing in one line."""
    pins = load_manifest(manifest) if manifest else None
    found = ds.object_ids
    if pins is None and not found and not objects:
        raise DataMissing(f"no {ds.name} objects found under {ds.root} in the layout "
                          f"{ds.layout['mesh']!r}: is --data the dataset's root folder?")
    ids = pins.ids if pins else found
    spec: dict = {"dataset": ds.name, "root": str(ds.root), "found": len(found),
                  "manifest": pins.source if pins else None}
    if objects:
        explicit = list(dict.fromkeys(objects))
        if pins:
            stray = [o for o in explicit if o not in pins.objects]
            if stray:
                raise ValueError(f"--objects {', '.join(stray[:3])} not in manifest {pins.source}")
        ids, spec["objects"] = explicit, explicit
    if subset:
        kind = parse_subset(subset)
        if kind[0] == "random":
            ids = random_subset(ids, kind[1], kind[2])
            spec["subset"] = {"spec": subset, "kind": "random", "n": kind[1], "seed": kind[2],
                              "rule": "smallest sha256('<seed>:<id>')"}
        else:
            named = pins.subsets.get(kind[1]) if pins else None
            if named is None:
                have = ", ".join(pins.subsets) if pins and pins.subsets else "none"
                raise ValueError(f"--subset {kind[1]!r} is not a subset of "
                                 f"{pins.source if pins else 'a manifest (pass --manifest)'} "
                                 f"(subsets: {have}; or random:N[:SEED])")
            ids = [i for i in named if i in set(ids)]
            spec["subset"] = {"spec": subset, "kind": "named"}
    if limit:
        ids = ids[:limit]
        spec["limit"] = limit
    if pins:
        bad = verify(ds, ids, pins.objects, HashCache(hash_cache))
        spec["pinned_sha256"] = sum(1 for i in ids if pins.objects.get(i))
    else:
        present = set(found)
        bad = {i: f"not found under {ds.root} in the {ds.name} layout ({ds.layout['mesh']})"
               for i in ids if i not in present}
    spec["selected"] = len(ids)
    return Selection(ids, bad, spec)
