"""Datasets: a folder (or a zip) of objects in a known layout.

A dataset definition in datasets/ (data, not code) names the layout, license, source, where the
data is looked for, and may list the full release's object ids. A run evaluates the objects
*found* under the data root in that layout (sorted ids, stable), whether or not a list names
them; pinning ids and mesh hashes is the job of a manifest (bench.inputs.manifest). The data
itself is never committed: it is read from --data, the definition's environment variable, or its
default root next to the repository (../shared/data/gso for GSO).

Layout patterns are paths relative to the root with the placeholders `{object_id}` and
`{category}` (each may repeat; neither holds a '/'), e.g. `{object_id}/meshes/model.obj`.
A root that is a .zip file is read in place: its members (under the layout's `zip_prefix`) are
matched the same way, and an object's folder is extracted once, by content, into the cache.
"""

from __future__ import annotations

import os
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml

from bench.files import shipped_dir
from bench.inputs.assets import Asset, load_asset

REPO_ROOT = Path(__file__).resolve().parents[2]  # the clone (meaningless in an installed wheel)
MANIFEST_DIR = shipped_dir("bench.inputs.manifests", REPO_ROOT / "datasets")
PIN_SUFFIX = ".pins.yaml"  # datasets/<name>.pins.yaml: shipped manifests (bench.inputs.manifest)


class DataMissing(FileNotFoundError):
    """The dataset's files are not where the definition and arguments point."""


def layout_regex(pattern: str) -> re.Pattern:
    """A layout pattern as a regex over '/'-separated relative paths; repeated placeholders must
    match the same text (`{object_id}/{object_id}.blend`)."""
    out, seen, pos = [], set(), 0
    for m in re.finditer(r"\{(object_id|category)\}", pattern):
        out.append(re.escape(pattern[pos:m.start()]))
        name = m.group(1)
        out.append(f"(?P={name})" if name in seen else f"(?P<{name}>[^/]+)")
        seen.add(name)
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    if "object_id" not in seen:
        raise ValueError(f"layout pattern {pattern!r} has no {{object_id}}")
    return re.compile("".join(out) + r"\Z")


def _glob(pattern: str) -> str:
    return re.sub(r"\{(object_id|category)\}", "*", pattern)


def default_extract_dir() -> Path:
    return Path(os.environ.get("AMODAL_BENCH_CACHE", Path.home() / ".cache" / "amodal-bench")) / "extracted"


@dataclass
class Dataset:
    """A data root read in a dataset's layout. `definition` is datasets/<name>.yaml."""

    name: str
    root: Path
    definition: dict
    extract_dir: Path = field(default_factory=default_extract_dir)

    def __post_init__(self) -> None:
        self._found: dict[str, str] | None = None  # object id -> relative mesh path

    @property
    def layout(self) -> dict:
        return self.definition["layout"]

    @property
    def is_zip(self) -> bool:
        return self.root.is_file() and zipfile.is_zipfile(self.root)

    def _discover(self) -> dict[str, str]:
        if self._found is None:
            rx = layout_regex(self.layout["mesh"])
            if self.is_zip:
                prefix = self.layout.get("zip_prefix", "")
                with zipfile.ZipFile(self.root) as z:
                    rels = [n[len(prefix):] for n in z.namelist() if n.startswith(prefix)]
            else:
                rels = [p.relative_to(self.root).as_posix()
                        for p in self.root.glob(_glob(self.layout["mesh"]))]
            found: dict[str, str] = {}
            for rel in sorted(rels):
                if any(part.startswith(".") for part in PurePosixPath(rel).parts):
                    continue  # hidden folders: a download in progress (.partial), editor files
                m = rx.match(rel)
                if m:
                    found.setdefault(m.group("object_id"), rel)
            self._found = dict(sorted(found.items()))
        return self._found

    @property
    def object_ids(self) -> list[str]:
        """The objects found under the root in the dataset's layout, sorted."""
        return list(self._discover())

    def category(self, object_id: str) -> str | None:
        """The object's category when the layout has a {category} folder, else None."""
        rel = self._discover().get(object_id)
        m = layout_regex(self.layout["mesh"]).match(rel) if rel else None
        return m.groupdict().get("category") if m else None

    def relative_mesh_path(self, object_id: str) -> str:
        rel = self._discover().get(object_id)
        if rel is not None:
            return rel
        if "{category}" in self.layout["mesh"]:
            raise KeyError(f"{object_id} is not under {self.root}")
        return self.layout["mesh"].format(object_id=object_id)

    def mesh_path(self, object_id: str) -> Path:
        """The mesh file on disk (extracted from a zip root first). An object that is not there
        gives the path it would have (loading it then fails with 'mesh file not found')."""
        try:
            rel = self.relative_mesh_path(object_id)
        except KeyError:
            return self.root / object_id / "(not found)"
        return self._extracted(rel) if self.is_zip else self.root / rel

    def _extracted(self, rel: str) -> Path:
        """Extract the object's folder (its mesh, textures, sidecar files) once into the cache,
        keyed by the zip's name, size and mtime; atomically, so a killed extraction is redone."""
        st = self.root.stat()
        base = self.extract_dir / f"{self.root.stem}-{st.st_size}-{st.st_mtime_ns}"
        target = base / rel
        if target.is_file():
            return target
        prefix = self.layout.get("zip_prefix", "")
        depth = next(i for i, part in enumerate(self.layout["mesh"].split("/")) if "{object_id}" in part)
        folder = "/".join(PurePosixPath(rel).parts[: depth + 1])  # the object's own folder
        tmp = base.with_name(base.name + f".tmp{os.getpid()}")
        with zipfile.ZipFile(self.root) as z:
            for info in z.infolist():
                name = info.filename[len(prefix):] if info.filename.startswith(prefix) else None
                if name is None or info.is_dir() or not (name == folder or name.startswith(folder + "/")):
                    continue
                path = PurePosixPath(name)
                if path.is_absolute() or ".." in path.parts:
                    raise DataMissing(f"{self.root}: unsafe member {info.filename!r}")
                dest = tmp / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        (base / folder).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(tmp / folder, base / folder)
        except OSError:  # another process extracted it first
            if not target.is_file():
                raise
        shutil.rmtree(tmp, ignore_errors=True)
        return target

    def load(self, object_id: str, import_frame: str = "upright") -> Asset:
        """Load one object in the TRELLIS object frame, imported in `import_frame` (a protocol's
        `import_frame`); raises AssetError on a bad mesh."""
        return load_source(self.mesh_path(object_id), object_id, self.definition.get("up_axis", "z"),
                           import_frame)


def load_source(path: str | os.PathLike, object_id: str | None = None, up_axis: str = "z",
                import_frame: str = "upright") -> Asset:
    """A GT object from its source file: a .blend through bpy (bench.inputs.blend, Toys4K), any
    other mesh through bench.inputs.assets.load_asset."""
    if Path(path).suffix.lower() == ".blend":
        from bench.inputs.blend import load_blend

        return load_blend(Path(path), object_id, import_frame)
    return load_asset(path, object_id, up_axis, import_frame)


def list_datasets() -> list[str]:
    return sorted(p.stem for p in MANIFEST_DIR.glob("*.yaml") if not p.name.endswith(PIN_SUFFIX))


def default_root(name: str) -> Path:
    """Where the data is looked for when no --data is given: env var, then the definition's default."""
    definition = load_definition(name)
    env = os.environ.get(definition.get("env_var", ""), "")
    return Path(env) if env else (REPO_ROOT / definition["default_root"]).resolve()


def load_definition(name: str) -> dict:
    if not MANIFEST_DIR.is_dir():
        raise FileNotFoundError(f"dataset manifests not found at {MANIFEST_DIR}: a broken install "
                                "(the wheel ships them as bench.inputs.manifests)")
    path = MANIFEST_DIR / f"{name}.yaml"
    if name.endswith(".pins") or not path.is_file():
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(list_datasets())}")
    return yaml.safe_load(path.read_text())


def open_dataset(name: str, root: str | os.PathLike | None = None) -> Dataset:
    """Open a dataset by definition name over `root` (default: see default_root): a folder, or a
    .zip file where the definition's layout has one (Toys4K's toys4k_blend_files.zip)."""
    definition = load_definition(name)
    root = Path(root) if root else default_root(name)
    if not (root.is_dir() or (root.is_file() and zipfile.is_zipfile(root))):
        raise DataMissing(f"{name} data not found at {root}; pass --data DIR or set "
                          f"{definition.get('env_var', 'the data path')}")
    return Dataset(name, root, definition)
