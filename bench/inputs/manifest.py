"""Manifests: optional pins of a dataset's object ids and mesh hashes.

A manifest is a YAML file with `objects:` (a list of ids, or a mapping id -> sha256 of the
object's mesh file, null where none is pinned) and optional `subsets:` / `splits:` (name -> ids).
The shipped ones are datasets/<dataset>.yaml (the full release's ids, no hashes) and
datasets/<name>.pins.yaml (e.g. gso-dev: the 52 development objects with their sha256);
`amodal-bench fetch` writes one (fetch.lock.yaml) and every run directory keeps its object list.
When a run uses a manifest, every selected object is verified before any work: absent from the
data root, or a sha256 that differs from the pin, is a reason (bench.inputs.selection).

Hashes are computed once per file and cached by (path, size, mtime) in a JSON file, so a second
run over 1,030 objects does not re-read 1,030 meshes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bench.inputs.dataset import MANIFEST_DIR, PIN_SUFFIX, Dataset, list_datasets


@dataclass
class Manifest:
    """Pinned ids (in the manifest's order), their sha256 (None: not pinned), named subsets."""

    source: str  # the file it came from
    objects: dict[str, str | None]
    subsets: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return list(self.objects)


def _ids_or_pins(value, where: str) -> dict[str, str | None]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return dict.fromkeys(value)
    if isinstance(value, dict) and all(isinstance(k, str) and (v is None or _is_sha256(v))
                                       for k, v in value.items()):
        return {k: (v.lower() if v else None) for k, v in value.items()}
    raise ValueError(f"{where}: `objects` must be a list of ids or a mapping id -> sha256 (64 hex) or null")


def _is_sha256(value) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)


def load_manifest(name_or_path: str) -> Manifest:
    """A manifest by file path, or by name: a shipped pin file (`gso-dev`) or a dataset's own
    list (`gso`, the full release)."""
    path = Path(name_or_path)
    if not path.is_file():
        shipped = (MANIFEST_DIR / f"{name_or_path}{PIN_SUFFIX}", MANIFEST_DIR / f"{name_or_path}.yaml")
        for candidate in shipped:
            if candidate.is_file() and "/" not in name_or_path:
                path = candidate
                break
        else:
            shipped = sorted(p.name[: -len(PIN_SUFFIX)] for p in MANIFEST_DIR.glob(f"*{PIN_SUFFIX}"))
            raise ValueError(f"manifest {name_or_path!r} not found: give a YAML file or one of "
                             f"{', '.join(shipped + list_datasets())}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from e
    if not isinstance(data, dict) or "objects" not in data:
        raise ValueError(f"{path}: a manifest needs an `objects:` list or mapping")
    objects = _ids_or_pins(data["objects"], str(path))
    subsets = {}
    for key in ("subsets", "splits"):
        for name, ids in (data.get(key) or {}).items():
            if not isinstance(ids, list) or not all(i in objects for i in ids):
                raise ValueError(f"{path}: {key}.{name} must list ids of `objects`")
            subsets[str(name)] = list(ids)
    return Manifest(str(path), objects, subsets)


class HashCache:
    """sha256 of files, cached by (absolute path, size, mtime_ns) in a JSON file."""

    def __init__(self, path: Path | None):
        self.path = path
        self.entries: dict[str, list] = {}
        if path and path.is_file():
            try:
                self.entries = json.loads(path.read_text())
            except (OSError, ValueError):  # a damaged cache is rebuilt
                self.entries = {}
        self.dirty = False

    def sha256(self, file: Path) -> str:
        file = Path(file).resolve()
        st = file.stat()
        key = str(file)
        hit = self.entries.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        h = hashlib.sha256()
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        self.entries[key] = [st.st_size, st.st_mtime_ns, h.hexdigest()]
        self.dirty = True
        return h.hexdigest()

    def save(self) -> None:
        if not (self.path and self.dirty):
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(self.entries))
        os.replace(tmp, self.path)
        self.dirty = False


def verify(ds: Dataset, ids: list[str], pins: dict[str, str | None], cache: HashCache) -> dict[str, str]:
    """{object id: reason} for each id absent from the data root or whose mesh's sha256 differs
    from its pin (ids without a pin only need to be present)."""
    present = set(ds.object_ids)
    bad: dict[str, str] = {}
    for oid in ids:
        if oid not in present:
            bad[oid] = f"not found under {ds.root} in the {ds.name} layout ({ds.layout['mesh']})"
            continue
        want = pins.get(oid)
        if want:
            got = cache.sha256(ds.mesh_path(oid))
            if got != want:
                bad[oid] = f"sha256 mismatch: pinned {want[:12]}..., file {got[:12]}..."
    cache.save()
    return bad
