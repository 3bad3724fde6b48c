"""Dataset readers driven by the manifests in datasets/ (data, not code).

A manifest names the layout, license, source and per-object sha256 of each mesh. The data itself
is never committed: it is read from --data, the manifest's environment variable, or its default
root next to the repository (../shared/data/gso for GSO).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.files import shipped_dir
from bench.inputs.assets import Asset, load_asset

REPO_ROOT = Path(__file__).resolve().parents[2]  # the clone (meaningless in an installed wheel)
MANIFEST_DIR = shipped_dir("bench.inputs.manifests", REPO_ROOT / "datasets")


class DataMissing(FileNotFoundError):
    """The dataset's files are not where the manifest and arguments point."""


@dataclass
class Dataset:
    name: str
    root: Path
    manifest: dict

    @property
    def object_ids(self) -> list[str]:
        return list(self.manifest["objects"])

    def mesh_path(self, object_id: str) -> Path:
        return self.root / self.manifest["layout"]["mesh"].format(object_id=object_id)

    def load(self, object_id: str, import_frame: str = "upright") -> Asset:
        """Load one object in the TRELLIS object frame, imported in `import_frame` (a protocol's
        `import_frame`); raises AssetError on a bad mesh."""
        return load_asset(self.mesh_path(object_id), object_id, self.manifest.get("up_axis", "z"),
                          import_frame)

    def verify(self, object_id: str) -> bool:
        """True when the mesh file's sha256 matches the manifest."""
        digest = hashlib.sha256(self.mesh_path(object_id).read_bytes()).hexdigest()
        return digest == self.manifest["objects"][object_id]


def list_datasets() -> list[str]:
    return sorted(p.stem for p in MANIFEST_DIR.glob("*.yaml"))


def default_root(name: str) -> Path:
    """Where the data is looked for when no --data is given: env var, then the manifest default."""
    manifest = _manifest(name)
    env = os.environ.get(manifest.get("env_var", ""), "")
    return Path(env) if env else (REPO_ROOT / manifest["default_root"]).resolve()


def _manifest(name: str) -> dict:
    if not MANIFEST_DIR.is_dir():
        raise FileNotFoundError(f"dataset manifests not found at {MANIFEST_DIR}: a broken install "
                                "(the wheel ships them as bench.inputs.manifests)")
    path = MANIFEST_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(list_datasets())}")
    return yaml.safe_load(path.read_text())


def open_dataset(name: str, root: str | os.PathLike | None = None) -> Dataset:
    """Open a dataset by manifest name over `root` (default: see default_root)."""
    manifest = _manifest(name)
    root = Path(root) if root else default_root(name)
    if not root.is_dir():
        raise DataMissing(f"{name} data not found at {root}; pass --data DIR or set "
                          f"{manifest.get('env_var', 'the data path')}")
    return Dataset(name, root, manifest)
