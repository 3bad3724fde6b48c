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

# Why an item has no measurement:
#   "method"  the method failed (exception, no mesh, degenerate mesh, nothing rendered): counts
#             against its success_rate;
#   "input"   the object or its case could not be made (unreadable mesh or texture, no valid
#             view): the same for every method, counted in n, named in notes;
#   "harness" the harness failed while measuring (a metric network, the renderer, a full disk):
#             status "error", never counted against a method, retried on resume.
FAILURES = ("method", "input", "harness")


@dataclass
class Record:
    method: str
    protocol: str
    protocol_hash: str
    dataset: str
    object_id: str
    views: int
    status: str  # "ok" | "failed" | "error" (see FAILURES)
    occlusion_degree: float | None = None  # set in occlusion sweeps
    reason: str = ""
    failure: str = ""  # "" when ok, else one of FAILURES
    mesh_sha256: str = ""  # sha256 of the GT mesh file the record was scored against
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


_NUMBER = (int, float)
# Record field annotation -> (accepted JSON types, what the error says)
_FIELD_TYPES = {"str": ((str,), "a string"), "int": ((int,), "an integer"),
                "float": (_NUMBER, "a number"), "float | None": ((*_NUMBER, type(None)), "a number or null"),
                "dict": ((dict,), "a JSON object"), "list": ((list,), "a JSON array")}
STATUSES = ("ok", "failed", "error")


def _check(ok: bool, path: Path, what: str, value) -> None:
    if not ok:
        raise ValueError(f"corrupt record {path}: {what}, got {json.dumps(value, allow_nan=True)[:80]}")


def _validate_record(data, path: Path) -> None:
    """Raise ValueError naming `path` when a record's JSON does not have the fields and types of
    Record (bool is not a number here), a known status and failure kind, numeric metrics, string
    file paths, or the meta entries the report reads (fid_extractors, weights_sha256, alignment,
    missing_metrics) in their shapes; an ok record needs psnr_masked and ssim_masked."""
    from dataclasses import MISSING, fields

    _check(isinstance(data, dict), path, "expected a JSON object", data)
    known = {f.name: f for f in fields(Record)}
    unknown = sorted(set(data) - set(known))
    _check(not unknown, path, f"unknown field(s) {', '.join(unknown)}", unknown)
    for name, f in known.items():
        if name not in data:
            required = f.default is MISSING and f.default_factory is MISSING
            _check(not required, path, f"field {name!r} missing", None)
            continue
        if str(f.type) in _FIELD_TYPES:
            types, what = _FIELD_TYPES[str(f.type)]
            value = data[name]
            _check(isinstance(value, types) and not isinstance(value, bool), path,
                   f"field {name!r} must be {what}", value)
    _check(data["status"] in STATUSES, path, f"status must be one of {', '.join(STATUSES)}",
           data["status"])
    if "failure" in data:
        _check(data["failure"] in ("", *FAILURES), path,
               f"failure must be empty or one of {', '.join(FAILURES)}", data["failure"])
    _check(data["views"] >= 1, path, "views must be >= 1", data["views"])
    for key, value in data.get("metrics", {}).items():
        _check(isinstance(value, _NUMBER) and not isinstance(value, bool), path,
               f"metric {key!r} must be a number", value)
    if data["status"] == "ok":
        for key in ("psnr_masked", "ssim_masked"):
            _check(key in data.get("metrics", {}), path, f"an ok record needs metric {key!r}", None)
    for key, value in data.get("features", {}).items():
        _check(isinstance(value, str) and value != "", path, f"features[{key!r}] must be a file path",
               value)
    meta = data.get("meta", {})
    if "fid_extractors" in meta:
        v = meta["fid_extractors"]
        _check(isinstance(v, list) and all(isinstance(x, str) for x in v), path,
               "meta.fid_extractors must be a list of names", v)
    for key in ("weights_sha256", "missing_metrics"):
        if key in meta:
            v = meta[key]
            _check(isinstance(v, dict) and all(isinstance(x, str) for x in v.values()), path,
                   f"meta.{key} must map names to strings", v)
    if data["status"] == "ok":
        hashes = meta.get("weights_sha256", {})
        for key in data.get("features", {}):
            _check(key in hashes, path, f"features[{key!r}] without meta.weights_sha256[{key!r}]",
                   sorted(hashes))
    if "alignment" in meta:
        v = meta["alignment"]
        _check(isinstance(v, dict) and all(isinstance(v.get(k, ""), str) for k in ("method", "pointcloud")),
               path, "meta.alignment must be an object with string method/pointcloud", v)


def read_record(path: Path) -> Record:
    """The record at `path`; ValueError naming the file when it is not valid JSON or a field has
    the wrong type (a string metric, a missing field, an unknown status...)."""
    try:
        data = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"corrupt record {path}: {e}") from e
    except OSError as e:
        raise ValueError(f"unreadable record {path}: {e}") from e
    _validate_record(data, Path(path))
    return Record(**data)


def read_cloud(path: Path) -> np.ndarray:
    """A stored point cloud, (N, 3) finite floats with N >= 1; ValueError naming the file when it
    is missing, truncated, not an .npy array or of another shape."""
    path = Path(path)
    try:
        cloud = np.load(path, allow_pickle=False)
    except FileNotFoundError as e:
        raise ValueError(f"point cloud {path} is missing") from e
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"unreadable point cloud {path} (truncated or not an .npy file): {e}") from e
    if not isinstance(cloud, np.ndarray) or cloud.ndim != 2 or cloud.shape[1] != 3 or not len(cloud) \
            or not np.issubdtype(cloud.dtype, np.floating):
        raise ValueError(f"point cloud {path}: expected (N, 3) floats, got "
                         f"{getattr(cloud, 'shape', '?')} {getattr(cloud, 'dtype', type(cloud).__name__)}")
    if not np.isfinite(cloud).all():
        raise ValueError(f"point cloud {path} holds NaN or infinite coordinates")
    return cloud


def write_array(path: Path, array: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write_bytes(path, buf.getvalue())


def load_records(out: Path) -> list[Record]:
    """Every record of a run directory, sorted by path (deterministic); ValueError naming the
    first record that is corrupt or has a field of the wrong type (read_record)."""
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
