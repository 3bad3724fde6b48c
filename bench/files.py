"""On-disk helpers shared by every part of bench (a leaf: imports nothing of bench).

- `atomic_write_bytes`: the one atomic write of the harness (records, clouds, features, case
  files, judge verdicts, renders): a temp file in the same folder, fsync-free, then os.replace,
  so a reader never sees a partial file and a killed run leaves none behind.
- `setting_label`: the folder name of an evaluation setting, shared by the run directory layout
  (bench.records) and the case format (bench.cases.casefile).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` via a temp file and os.replace (never a partial file). The file
    gets the usual permissions of a new file (mkstemp would leave 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def setting_label(views: int, degree: float | None = None) -> str:
    """Folder name of a setting: views-<n>, or views-<n>-occ<percent> in a sweep."""
    return f"views-{views}" if degree is None else f"views-{views}-occ{round(degree * 100)}"


def shipped_dir(package: str, clone_dir: Path) -> Path:
    """A data folder that ships in the wheel as `package` (pyproject's package-dir maps the
    repository's datasets/ and reports/ there) and lives at `clone_dir` in a clone. An installed
    wheel reads the package; an editable install or a plain clone, where that package is not
    importable, reads the clone (the source of truth)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(package)  # a data-only (namespace) package in the wheel
    except ModuleNotFoundError:
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return clone_dir
    return Path(list(spec.submodule_search_locations)[0])
