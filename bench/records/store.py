"""Results as records: one JSON file per (protocol, method, views, object), written atomically.

Layout of a run directory:
    run.json                                         the run's configuration and provenance
    records/<protocol>/<method>/views-<n>[-occ<pct>]/<object>.json
    pointclouds/<protocol>/gt/<object>.npy           GT side, (4096, 3) float32
    pointclouds/<protocol>/<method>/views-<n>/<object>.npy
    features/<protocol>/gt/<object>.<extractor>.npz  eval-rig image features (V, d), GT side
    features/<protocol>/<method>/views-<n>/<object>.<extractor>.npz
    renders/<protocol>/<method>/views-<n>/<object>/view_<k>.png   eval-rig renders (--save-renders)
    pcs/<protocol>/<method>/views-<n>/<object>.json   PCS judge verdicts (amodal-bench pcs)
    leaderboard.csv
A record exists only once complete (temp file + rename), so a killed run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

import bench
from bench.files import atomic_write_bytes, setting_label


@dataclass
class Record:
    method: str
    protocol: str
    protocol_hash: str
    dataset: str
    object_id: str
    views: int
    status: str  # "ok" | "failed"
    occlusion_degree: float | None = None  # set in occlusion sweeps
    reason: str = ""
    traceback_digest: str = ""
    metrics: dict = field(default_factory=dict)
    pointcloud: str = ""  # path relative to the run directory
    features: dict = field(default_factory=dict)  # extractor name -> feature file, relative
    seed: int = 0
    rasterizer: str = ""
    seconds: float = 0.0
    meta: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def record_path(out: Path, protocol: str, method: str, views: int, object_id: str,
                degree: float | None = None) -> Path:
    return (Path(out) / "records" / protocol / method / setting_label(views, degree)
            / f"{object_id}.json")


def gt_cloud_path(out: Path, protocol: str, object_id: str) -> Path:
    return Path(out) / "pointclouds" / protocol / "gt" / f"{object_id}.npy"


def cloud_path(out: Path, protocol: str, method: str, views: int, object_id: str,
               degree: float | None = None) -> Path:
    return (Path(out) / "pointclouds" / protocol / method / setting_label(views, degree)
            / f"{object_id}.npy")


def features_path(out: Path, protocol: str, method: str, views: int, object_id: str,
                  degree: float | None, extractor: str) -> Path:
    return (Path(out) / "features" / protocol / method / setting_label(views, degree)
            / f"{object_id}.{extractor}.npz")


def renders_dir(out: Path, protocol: str, method: str, views: int, object_id: str,
                degree: float | None) -> Path:
    """Eval-rig renders of one generation, view_<k>.png in rig order (`--save-renders`)."""
    return Path(out) / "renders" / protocol / method / setting_label(views, degree) / object_id


def pcs_path(out: Path, protocol: str, method: str, views: int, object_id: str,
             degree: float | None) -> Path:
    """The PCS judge's verdict on one generation (`amodal-bench pcs`)."""
    return Path(out) / "pcs" / protocol / method / setting_label(views, degree) / f"{object_id}.json"


def gt_features_path(out: Path, protocol: str, object_id: str, extractor: str) -> Path:
    return Path(out) / "features" / protocol / "gt" / f"{object_id}.{extractor}.npz"


def write_record(path: Path, record: Record) -> None:
    atomic_write_bytes(path, json.dumps(asdict(record), indent=1, sort_keys=True,
                                         allow_nan=True).encode())


def read_record(path: Path) -> Record:
    try:
        return Record(**json.loads(Path(path).read_text()))
    except (json.JSONDecodeError, TypeError) as e:
        raise ValueError(f"corrupt record {path}: {e}") from e


def write_array(path: Path, array: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write_bytes(path, buf.getvalue())


def load_records(out: Path) -> list[Record]:
    """Every record of a run directory, sorted by path (deterministic)."""
    return [read_record(p) for p in sorted((Path(out) / "records").rglob("*.json"))]


def traceback_digest(tb: str) -> str:
    return hashlib.sha256(tb.encode()).hexdigest()[:12]


def _git_hash() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(bench.__file__).parent,
                              capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def provenance() -> dict:
    """Versions and code identity stored in every record."""
    versions = {}
    for pkg in ("numpy", "scipy", "trimesh", "moderngl", "numba", "torch"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"harness": bench.__version__, "git": _git_hash(), "python": platform.python_version(),
            "packages": versions}
