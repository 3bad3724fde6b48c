"""Fetch Google Scanned Objects from Gazebo Fuel into the official per-object layout.

Where the URLs come from: Gazebo's own collection downloader fetches one zip per model at
`{base}/{owner}/models/{urllib.parse.quote(name)}.zip` (the latest version), base
https://fuel.gazebosim.org/1.0, owner GoogleResearch; Kubric's kubric/scripts/download_GSO.py
(google-research/kubric @0ee21e2) asks for the versioned `{base}/{owner}/models/{name}/1/{name}.zip`
on the older host fuel.ignitionrobotics.org. Not tried against the real server here (no
internet). The Fuel collection "Scanned Objects by Google Research" lists the GSO
release (1,030 objects per the GSO paper, Downs et al., ICRA 2022). Each zip is flat
(model.config, model.sdf, meshes/model.obj, meshes/model.mtl, materials/textures/texture.png,
thumbnails/*.jpg); extracted into a folder named after the model it is the official layout
`<out>/<name>/meshes/model.obj`, the one datasets/gso.yaml reads.

Each object is atomic and a killed run resumes: the zip streams to `<out>/.partial/<name>.zip`,
is checked member by member (no absolute path, drive letter, `..`, backslash escape or symlink)
before anything is written, extracts to `<out>/.partial/<name>/`, its meshes/model.obj is
hashed (and checked against a pin), and only then is the folder renamed to `<out>/<name>`.
`write_lock` records what is on disk as `objects: {name: sha256 of meshes/model.obj}`, the
manifest-pin format a run verifies against.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import stat
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import yaml
from tqdm import tqdm

FUEL_BASE = "https://fuel.gazebosim.org/1.0"
FUEL_OWNER = "GoogleResearch"
LOCK_NAME = "fetch.lock.yaml"
PARTIAL_DIR = ".partial"
MESH_MEMBER = "meshes/model.obj"
CHUNK = 1 << 16
RETRY_BACKOFF_S = 0.25  # sleep RETRY_BACKOFF_S * 2**attempt between tries
USER_AGENT = "amodal-bench-fetch"
CORRUPT = "truncated or corrupt zip"


class UnsafeArchive(ValueError):
    """A zip member that would land outside the extraction folder (or is a symlink)."""


class _Failure(Exception):
    """One object failed; the message is the one-line `FetchResult.error`."""

    def __init__(self, message: str, retry: bool = False):
        super().__init__(message)
        self.retry = retry


@dataclass(frozen=True)
class FetchResult:
    """The outcome for one object.

    status: "downloaded", "present" (already on disk, not fetched again) or "failed".
    sha256: of `<out>/<name>/meshes/model.obj` when the object is in place (also for a present
        object that failed its pin: it stays on disk); None otherwise.
    error: one line when failed ("HTTP 404", "timed out after 5 s", ...), else None.
    """

    name: str
    status: str
    sha256: str | None = None
    error: str | None = None


def model_url(name: str, base_url: str = FUEL_BASE, owner: str = FUEL_OWNER) -> str:
    """The Fuel download URL of one model's zip."""
    return (f"{base_url.rstrip('/')}/{urllib.parse.quote(owner, safe='')}/models/"
            f"{urllib.parse.quote(name, safe='')}.zip")


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _member_path(info: zipfile.ZipInfo) -> PurePosixPath | None:
    """The member's relative path (None for a directory entry); UnsafeArchive when it escapes."""
    name = info.filename
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UnsafeArchive(f"unsafe member {name!r} (symlink)")
    norm = name.replace("\\", "/")
    if not norm.strip("/") or "\0" in norm or norm.startswith("/") or re.match(r"[A-Za-z]:", norm):
        raise UnsafeArchive(f"unsafe member {name!r}")
    rel = PurePosixPath(norm)
    if ".." in rel.parts:
        raise UnsafeArchive(f"unsafe member {name!r}")
    return None if norm.endswith("/") else rel


def extract_archive(zip_path: str | os.PathLike, dest: str | os.PathLike) -> list[str]:
    """Extract a zip into `dest` after checking every member; returns the files written.

    Raises UnsafeArchive (nothing written) for a member with an absolute path, a drive letter, a
    `..` component (also via backslashes) or a symlink, and zipfile.BadZipFile for a truncated or
    corrupt zip (CRC checked with testzip before extraction)."""
    dest = Path(dest)
    with zipfile.ZipFile(zip_path) as zf:
        plan = [(info, _member_path(info)) for info in zf.infolist()]  # all checked before any write
        root = dest.resolve()
        for info, rel in plan:
            if rel is not None and not (root / rel).resolve().is_relative_to(root):
                raise UnsafeArchive(f"unsafe member {info.filename!r}")
        bad = zf.testzip()
        if bad is not None:
            raise zipfile.BadZipFile(f"bad CRC in member {bad!r}")
        written = []
        dest.mkdir(parents=True, exist_ok=True)
        for info, rel in plan:
            if rel is None:
                (dest / info.filename.replace("\\", "/")).mkdir(parents=True, exist_ok=True)
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
            written.append(rel.as_posix())
    return written


def _download_once(url: str, dest: Path, timeout: float) -> None:
    timed_out = _Failure(f"timed out after {timeout:g} s", retry=True)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp, open(dest, "wb") as f:
            expected = resp.headers.get("Content-Length")
            received = 0
            while chunk := resp.read(CHUNK):
                f.write(chunk)
                received += len(chunk)
    except urllib.error.HTTPError as e:
        e.close()
        raise _Failure(f"HTTP {e.code}", retry=e.code >= 500 or e.code in (408, 429)) from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, TimeoutError):
            raise timed_out from None
        raise _Failure(_one_line(f"connection error: {e.reason}"), retry=True) from None
    except TimeoutError:
        raise timed_out from None
    except http.client.IncompleteRead:
        raise _Failure(CORRUPT, retry=True) from None
    except (http.client.HTTPException, ConnectionError) as e:
        raise _Failure(_one_line(f"connection error: {e!r}"), retry=True) from None
    if expected is not None and expected.strip().isdigit() and received != int(expected):
        raise _Failure(CORRUPT, retry=True)  # the connection dropped mid-body


def _download(url: str, dest: Path, timeout: float, retries: int) -> None:
    for attempt in range(retries + 1):
        try:
            _download_once(url, dest, timeout)
            return
        except _Failure as failure:
            if not failure.retry or attempt == retries:
                raise
        time.sleep(RETRY_BACKOFF_S * 2**attempt)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _check_name(name: str) -> None:
    if (not name or name.startswith(".") or name == LOCK_NAME
            or any(c in name for c in "/\\\0") or name != name.strip()):
        raise _Failure(f"invalid object name {name!r}")


def _check_pin(pin: str | None, digest: str) -> None:
    if pin and digest != pin.lower():
        raise _Failure(f"sha256 mismatch: expected {pin}, got {digest}")


def _clean_partial(partial: Path, name: str) -> None:
    (partial / f"{name}.zip").unlink(missing_ok=True)
    shutil.rmtree(partial / name, ignore_errors=True)


def _fetch_one(name: str, out: Path, url: str, pin: str | None, timeout: float,
               retries: int) -> FetchResult:
    final = out / name
    partial = out / PARTIAL_DIR
    digest = None
    try:
        _check_name(name)
        if partial.is_dir():
            _clean_partial(partial, name)  # leftovers of a killed run are redone (or dropped)
        if (final / MESH_MEMBER).is_file():
            digest = sha256_file(final / MESH_MEMBER)
            _check_pin(pin, digest)
            return FetchResult(name, "present", digest)
        if final.exists():
            raise _Failure(f"{final} exists without {MESH_MEMBER}: remove it to fetch again")
        partial.mkdir(parents=True, exist_ok=True)
        try:
            _download(url, partial / f"{name}.zip", timeout, retries)
            try:
                extract_archive(partial / f"{name}.zip", partial / name)
            except (zipfile.BadZipFile, zlib.error, EOFError):
                raise _Failure(CORRUPT) from None
            if not (partial / name / MESH_MEMBER).is_file():
                raise _Failure(f"no {MESH_MEMBER} in archive")
            fresh = sha256_file(partial / name / MESH_MEMBER)
            _check_pin(pin, fresh)
            os.replace(partial / name, final)
            return FetchResult(name, "downloaded", fresh)
        finally:
            _clean_partial(partial, name)
    except UnsafeArchive as e:
        return FetchResult(name, "failed", None, _one_line(str(e)))
    except _Failure as e:
        return FetchResult(name, "failed", digest, str(e))
    except Exception as e:  # one object's failure (disk full, ...) must not stop the others
        return FetchResult(name, "failed", digest, _one_line(f"{type(e).__name__}: {e}"))


def fetch_objects(names: Sequence[str], out_dir: str | os.PathLike, *, base_url: str = FUEL_BASE,
                  owner: str = FUEL_OWNER, jobs: int = 4, pins: Mapping[str, str | None] | None = None,
                  timeout: float = 60.0, retries: int = 2, progress: bool = True) -> list[FetchResult]:
    """Download `names` from Fuel into `<out_dir>/<name>/` (the official layout), `jobs` at a time.

    Objects already in place are not fetched again (status "present"; their sha256 is still
    computed and checked against `pins[name]` when pinned). HTTP 404 is final; 5xx, timeouts,
    connection errors and short reads are retried `retries` times with a short backoff.
    Returns one FetchResult per input name, in input order; a failure leaves nothing of that
    object outside `<out_dir>/.partial`, which is removed at the end when empty."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pins = pins or {}
    unique = list(dict.fromkeys(names))
    done: dict[str, FetchResult] = {}
    failed = 0
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="fetch") as pool, \
            tqdm(total=len(unique), desc=f"fetch {owner}", unit="obj", file=sys.stderr,
                 disable=not progress) as bar:
        futures = {pool.submit(_fetch_one, name, out, model_url(name, base_url, owner),
                               pins.get(name), timeout, retries): name for name in unique}
        for future in as_completed(futures):
            result = future.result()
            done[result.name] = result
            bar.update(1)
            if result.status == "failed":
                failed += 1
                bar.set_postfix(failed=failed)
    try:
        (out / PARTIAL_DIR).rmdir()
    except OSError:
        pass  # absent, or holds something else
    return [done[name] for name in names]


def read_lock(out_dir: str | os.PathLike) -> dict[str, str]:
    """The `objects` mapping (name -> sha256) of `<out_dir>/fetch.lock.yaml`; {} when absent."""
    path = Path(out_dir) / LOCK_NAME
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    return {str(k): str(v) for k, v in (data.get("objects") or {}).items()}


def write_lock(out_dir: str | os.PathLike, results: Sequence[FetchResult], *, base_url: str = FUEL_BASE,
               owner: str = FUEL_OWNER) -> Path:
    """Write `<out_dir>/fetch.lock.yaml` atomically: `objects: {name: sha256}` for every object now
    on disk, merging an existing lock's entries (for objects still on disk) with `results`
    (downloaded or present ones; failed ones keep their earlier entry, if any)."""
    out = Path(out_dir)
    objects = {name: digest for name, digest in read_lock(out).items()
               if (out / name / MESH_MEMBER).is_file()}
    for r in results:
        if r.status in ("downloaded", "present") and r.sha256:
            objects[r.name] = r.sha256
    lock = {"dataset": "gso", "source": {"base_url": base_url, "owner": owner},
            "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "objects": dict(sorted(objects.items()))}
    path = out / LOCK_NAME
    fd, tmp = tempfile.mkstemp(prefix=f".{LOCK_NAME}.", dir=out)
    try:
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(lock, f, sort_keys=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
