"""bench.inputs.fetch against a real HTTP server on loopback (no mocks): a Fuel stand-in serving zips
built here from real GSO objects, misbehaving on demand (404, 500, truncation, zip-slip, timeouts)."""

from __future__ import annotations

import hashlib
import io
import shutil
import stat
import subprocess
import sys
import threading
import time
import urllib.parse
import zipfile
from collections import Counter
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from bench.inputs import fetch

# Three small real objects (0.5-1 MB each); `.mtl` names differ (model.mtl / material_0.mtl).
OBJECTS = ["Room_Essentials_Salad_Plate_Turquoise", "Craftsman_Grip_Screwdriver_Phillips_Cushion",
           "Diet_Pepsi_Soda_Cola12_Pack_12_oz_Cans"]
EXTRA = {"model.config": b"<?xml version='1.0'?>\n<model><name>{name}</name></model>\n",
         "model.sdf": b"<sdf version='1.6'><model name='{name}'/></sdf>\n",
         "thumbnails/1.jpg": b"\xff\xd8\xff\xe0 not really a jpeg"}
TIMEOUT = 0.5
REPO = Path(__file__).resolve().parents[1]


def _zip(members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


@pytest.fixture(scope="module")
def gso(gso_root: Path) -> dict[str, dict[str, bytes]]:
    """name -> {member: bytes}: the flat Fuel zip's content (source files plus made-up extras)."""
    out = {}
    for name in OBJECTS:
        if not (gso_root / name / "meshes" / "model.obj").is_file():
            pytest.skip(f"GSO object {name} not in {gso_root}")
        extras = {k: v.replace(b"{name}", name.encode()) for k, v in EXTRA.items()}
        src = gso_root / name
        files = {p.relative_to(src).as_posix(): p.read_bytes() for p in src.rglob("*") if p.is_file()}
        out[name] = {**files, **extras}
    return out


@pytest.fixture(scope="module")
def zips(gso) -> dict[str, bytes]:
    return {name: _zip(members) for name, members in gso.items()}


class Fuel:
    """A loopback stand-in for fuel.gazebosim.org: routes[name] = (behaviour, zip bytes)."""

    def __init__(self):
        self.routes: dict[str, tuple[str, bytes]] = {}
        self.hits: Counter[str] = Counter()
        self.release = threading.Event()
        self._lock = threading.Lock()
        fuel = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path, prefix = self.path, "/GoogleResearch/models/"
                name = urllib.parse.unquote(path.removeprefix(prefix).removesuffix(".zip"))
                with fuel._lock:
                    fuel.hits[name] += 1
                    hit = fuel.hits[name]
                behaviour, body = fuel.routes.get(name, ("404", b""))
                fuel.respond(self, behaviour, body, hit)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda request, address: None  # client hung up: expected here
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def respond(self, h: BaseHTTPRequestHandler, behaviour: str, body: bytes, hit: int):
        half = body[:len(body) // 2]
        if behaviour in ("404", "500") or (behaviour == "500-once" and hit == 1):
            return h.send_error(404 if behaviour == "404" else 500)
        if behaviour == "hangup":  # closes the connection without a response
            return
        if behaviour == "slow":  # nothing at all until well past the client's timeout
            self.release.wait(4 * TIMEOUT)
        length = len(half) if behaviour == "half" else len(body)
        h.send_response(200)
        h.send_header("Content-Type", "application/zip")
        h.send_header("Content-Length", str(length))
        h.end_headers()
        if behaviour in ("short", "half"):  # short: Content-Length of the whole, half sent
            return h.wfile.write(half)
        if behaviour == "stall":  # headers and half the body, then silence
            h.wfile.write(half)
            h.wfile.flush()
            self.release.wait(4 * TIMEOUT)
        h.wfile.write(body[len(half):] if behaviour == "stall" else body)

    def serve(self, name: str, body: bytes, behaviour: str = "ok") -> None:
        self.routes[name] = (behaviour, body)

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fuel(zips):
    stub = Fuel()
    stub.routes.update({name: ("ok", body) for name, body in zips.items()})
    yield stub
    stub.close()


def _fetch(fuel: Fuel, names, out: Path, timeout=5.0, **kw) -> list[fetch.FetchResult]:
    return fetch.fetch_objects(names, out, base_url=fuel.base, progress=False, timeout=timeout, **kw)


def _assert_layout(out: Path, name: str, members: dict[str, bytes]) -> None:
    got = {p.relative_to(out / name).as_posix() for p in (out / name).rglob("*") if p.is_file()}
    assert got == set(members)
    for rel, data in members.items():
        assert (out / name / rel).read_bytes() == data, rel


def _assert_gone(out: Path, name: str) -> None:
    assert not (out / name).exists() and not (out / ".partial").exists()


def test_fetch_gives_the_official_layout_byte_for_byte(fuel, gso, tmp_path):
    names = OBJECTS[:2]
    results = _fetch(fuel, names, tmp_path / "out")
    assert [(r.name, r.status, r.error) for r in results] == [(n, "downloaded", None) for n in names]
    for r in results:
        _assert_layout(tmp_path / "out", r.name, gso[r.name])
        assert r.sha256 == hashlib.sha256(gso[r.name]["meshes/model.obj"]).hexdigest()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)  # no .partial left
    assert fuel.hits == Counter(names)


def test_a_name_with_a_space_and_ampersand_is_quoted(fuel, gso, zips, tmp_path):
    assert fetch.model_url("Android_Lego") == "https://fuel.gazebosim.org/1.0/GoogleResearch/models/Android_Lego.zip"
    assert fetch.model_url("A b&c", base_url="http://h/1.0/") == "http://h/1.0/GoogleResearch/models/A%20b%26c.zip"
    odd = "Odd name & co"
    fuel.serve(odd, zips[OBJECTS[0]])
    [r] = _fetch(fuel, [odd], tmp_path)
    assert r.status == "downloaded", r.error
    assert fuel.hits[odd] == 1  # the server unquoted exactly the name
    _assert_layout(tmp_path, odd, gso[OBJECTS[0]])


def test_a_rerun_skips_present_objects_without_a_request(fuel, tmp_path):
    first = _fetch(fuel, OBJECTS[:2], tmp_path)
    fuel.hits.clear()
    again = _fetch(fuel, OBJECTS, tmp_path)
    assert [r.status for r in again] == ["present", "present", "downloaded"]
    assert [r.sha256 for r in again[:2]] == [r.sha256 for r in first]
    assert fuel.hits == Counter({OBJECTS[2]: 1})


def test_stale_partial_leftovers_are_redone(fuel, gso, tmp_path):
    name = OBJECTS[0]
    (tmp_path / ".partial" / name / "meshes").mkdir(parents=True)
    (tmp_path / ".partial" / name / "meshes" / "model.obj").write_text("v 0 0 0\n")  # killed mid-extract
    (tmp_path / ".partial" / name / "junk.txt").write_text("junk")
    (tmp_path / ".partial" / f"{name}.zip").write_bytes(b"PK\x03\x04 half a zip")
    [r] = _fetch(fuel, [name], tmp_path)
    assert r.status == "downloaded", r.error
    _assert_layout(tmp_path, name, gso[name])
    assert not (tmp_path / ".partial").exists()
    (tmp_path / ".partial").mkdir()  # killed between the rename and the zip's removal
    (tmp_path / ".partial" / f"{name}.zip").write_bytes(b"PK")
    assert _fetch(fuel, [name], tmp_path)[0].status == "present"
    assert not (tmp_path / ".partial").exists()


@pytest.mark.parametrize("behaviour,tries,error", [
    ("404", 1, "HTTP 404"), ("500", 3, "HTTP 500"), ("hangup", 3, "connection error: "),
    ("short", 3, "truncated or corrupt zip"), ("half", 1, "truncated or corrupt zip")])
def test_a_failed_download_leaves_nothing(fuel, zips, tmp_path, behaviour, tries, error):
    """404: not retried; 500, hangup: retried; short: Content-Length of the whole zip, half sent (a
    dropped connection: retried); half: an honest Content-Length of half the zip (bad zip: final)."""
    fuel.serve("Cut", zips[OBJECTS[0]], behaviour)
    [r] = _fetch(fuel, ["Cut"], tmp_path, retries=2)
    assert (r.status, r.sha256) == ("failed", None) and r.error.startswith(error) and "\n" not in r.error
    assert fuel.hits["Cut"] == tries
    _assert_gone(tmp_path, "Cut")


# extraction goes to <tmp>/a/out/.partial/Evil: four levels up is <tmp>/evil.txt
@pytest.mark.parametrize("member", ["../evil.txt", "../../../../evil.txt", "meshes/../../../../../evil.txt",
                                    "..\\..\\..\\..\\evil.txt", "ABSOLUTE", "C:/evil.txt", "SYMLINK"])
def test_an_unsafe_member_fails_before_anything_is_written(fuel, gso, tmp_path, member):
    link = member == "SYMLINK"
    member = {"SYMLINK": "meshes/link.obj", "ABSOLUTE": str(tmp_path / "evil.txt")}.get(member, member)
    members = {**gso[OBJECTS[0]], **({} if link else {member: b"pwned"})}
    fuel.serve("Evil", _zip(members, {member: "../../../../../evil.txt"} if link else None))
    out = tmp_path / "a" / "out"
    [r] = _fetch(fuel, ["Evil"], out)
    assert r.status == "failed" and r.error.startswith(f"unsafe member {member!r}"), r.error
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "a" / "evil.txt").exists()
    assert list(out.iterdir()) == []  # nothing of the object, and .partial cleaned


def test_extract_archive_refuses_before_writing(gso, tmp_path):
    path = tmp_path / "slip.zip"
    path.write_bytes(_zip({"meshes/model.obj": b"v 0 0 0\n", "../evil.txt": b"pwned"}))
    with pytest.raises(fetch.UnsafeArchive, match="'../evil.txt'"):
        fetch.extract_archive(path, tmp_path / "x")
    assert not (tmp_path / "x").exists() and not (tmp_path / "evil.txt").exists()
    path.write_bytes(_zip(gso[OBJECTS[0]]))
    written = fetch.extract_archive(path, tmp_path / "x")
    assert sorted(written) == sorted(gso[OBJECTS[0]])


@pytest.mark.parametrize("damage,error", [("flip", "truncated or corrupt zip"),
                                          ("no-obj", "no meshes/model.obj in archive")])
def test_a_bad_archive_fails(fuel, gso, zips, tmp_path, damage, error):
    """flip: one byte of member data flipped (the central directory still reads: CRC catches it)."""
    body = bytearray(zips[OBJECTS[0]])
    body[len(body) // 3] ^= 0xFF
    no_obj = {k: v for k, v in gso[OBJECTS[0]].items() if k != "meshes/model.obj"}
    fuel.serve("Bad", bytes(body) if damage == "flip" else _zip(no_obj))
    [r] = _fetch(fuel, ["Bad"], tmp_path)
    assert (r.status, r.error) == ("failed", error)
    _assert_gone(tmp_path, "Bad")


@pytest.mark.parametrize("behaviour", ["slow", "stall"])
def test_a_slow_server_times_out_and_is_retried(fuel, zips, tmp_path, behaviour):
    """slow: no headers before the timeout; stall: headers and half the body, then silence."""
    fuel.serve("Slow", zips[OBJECTS[0]], behaviour)
    t0 = time.perf_counter()
    [r] = _fetch(fuel, ["Slow"], tmp_path, timeout=TIMEOUT, retries=1)
    assert time.perf_counter() - t0 < 2 * TIMEOUT + 1.5  # two tries and a backoff, not the server's 2 s
    assert (r.status, r.error, fuel.hits["Slow"]) == ("failed", "timed out after 0.5 s", 2)
    _assert_gone(tmp_path, "Slow")


def test_a_500_is_retried_then_succeeds(fuel, gso, zips, tmp_path):
    fuel.serve("Flaky", zips[OBJECTS[0]], "500-once")
    [r] = _fetch(fuel, ["Flaky"], tmp_path, retries=2)
    assert r.status == "downloaded" and fuel.hits["Flaky"] == 2
    _assert_layout(tmp_path, "Flaky", gso[OBJECTS[0]])


def test_pins_are_checked_on_download_and_on_present(fuel, gso, tmp_path):
    name = OBJECTS[0]
    good = hashlib.sha256(gso[name]["meshes/model.obj"]).hexdigest()
    bad = "ab12" + "0" * 60
    [r] = _fetch(fuel, [name], tmp_path, pins={name: bad})
    assert r.status == "failed" and r.error == f"sha256 mismatch: expected {bad}, got {good}"
    _assert_gone(tmp_path, name)
    [r] = _fetch(fuel, [name], tmp_path, pins={name: good})
    assert (r.status, r.sha256) == ("downloaded", good)
    fuel.hits.clear()
    [r] = _fetch(fuel, [name], tmp_path, pins={name: bad})  # present but not what the pin says
    assert (r.status, r.sha256, r.error) == ("failed", good, f"sha256 mismatch: expected {bad}, got {good}")
    assert (tmp_path / name / "meshes" / "model.obj").is_file()  # left alone
    assert not fuel.hits


def test_a_folder_without_model_obj_is_left_alone(fuel, tmp_path):
    name = OBJECTS[0]
    (tmp_path / name).mkdir()
    (tmp_path / name / "notes.txt").write_text("mine")
    [r] = _fetch(fuel, [name], tmp_path)
    assert r.status == "failed" and "exists without meshes/model.obj" in r.error
    assert (tmp_path / name / "notes.txt").read_text() == "mine"
    assert not fuel.hits


@pytest.mark.parametrize("name", ["../escape", "a/b", ".partial", "", fetch.LOCK_NAME])
def test_an_invalid_name_fails_without_a_request(fuel, tmp_path, name):
    [r] = _fetch(fuel, [name], tmp_path / "out")
    assert r.status == "failed" and r.error.startswith("invalid object name")
    assert not fuel.hits
    assert list((tmp_path / "out").iterdir()) == []


def test_parallel_gives_the_serial_results_in_input_order(fuel, tmp_path):
    names = [OBJECTS[2], "Missing", OBJECTS[0], OBJECTS[1], OBJECTS[0]]  # a duplicate: fetched once
    serial = _fetch(fuel, names, tmp_path / "serial", jobs=1)
    hits, fuel.hits = fuel.hits, Counter()
    parallel = _fetch(fuel, names, tmp_path / "parallel", jobs=3)
    assert parallel == serial
    assert [r.name for r in parallel] == names
    assert [r.status for r in parallel] == ["downloaded", "failed", "downloaded", "downloaded", "downloaded"]
    assert fuel.hits == hits == Counter({**{n: 1 for n in OBJECTS}, "Missing": 1})


def test_the_lock_file_round_trips_and_merges(fuel, gso, tmp_path):
    digests = {n: hashlib.sha256(gso[n]["meshes/model.obj"]).hexdigest() for n in OBJECTS}
    results = _fetch(fuel, [OBJECTS[1], OBJECTS[0], "Missing"], tmp_path)
    path = fetch.write_lock(tmp_path, results, base_url=fuel.base, owner="GoogleResearch")
    assert path == tmp_path / fetch.LOCK_NAME
    lock = yaml.safe_load(path.read_text())
    assert (lock["dataset"], lock["source"]) == ("gso", {"base_url": fuel.base, "owner": "GoogleResearch"})
    assert datetime.fromisoformat(lock["fetched_at"]).utcoffset().total_seconds() == 0
    assert list(lock["objects"]) == sorted(OBJECTS[:2])  # sorted, failed ones left out
    assert lock["objects"] == {n: digests[n] for n in OBJECTS[:2]}
    # a later fetch of one more object merges; an object removed from disk drops out
    results = _fetch(fuel, [OBJECTS[2]], tmp_path)
    fetch.write_lock(tmp_path, results, base_url=fuel.base, owner="GoogleResearch")
    assert fetch.read_lock(tmp_path) == digests
    shutil.rmtree(tmp_path / OBJECTS[1])
    fetch.write_lock(tmp_path, [], base_url=fuel.base, owner="GoogleResearch")
    assert fetch.read_lock(tmp_path) == {n: digests[n] for n in (OBJECTS[0], OBJECTS[2])}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fetch.LOCK_NAME, OBJECTS[0], OBJECTS[2]])


def test_the_cli_fetches_and_names_a_failed_object(fuel, gso, tmp_path):
    def cli(objects: str) -> subprocess.CompletedProcess:
        argv = ["fetch", "gso", "--out", str(tmp_path / "d"), "--base-url", fuel.base, "--objects", objects,
                "--jobs", "2", "--timeout", "2"]
        return subprocess.run([sys.executable, "-m", "bench", *argv], cwd=REPO, capture_output=True,
                              text=True, timeout=120)

    r = cli(",".join(OBJECTS[:2]))
    assert r.returncode == 0, r.stderr[-2000:]
    for name in OBJECTS[:2]:
        _assert_layout(tmp_path / "d", name, gso[name])
    assert set(fetch.read_lock(tmp_path / "d")) == set(OBJECTS[:2])
    r = cli(f"{OBJECTS[0]},Missing")
    assert r.returncode != 0
    named = [line for line in r.stderr.splitlines() if "Missing" in line]
    assert len(named) == 1 and "HTTP 404" in named[0], r.stderr[-2000:]
    edited = tmp_path / "d" / OBJECTS[1] / "meshes" / "model.obj"
    edited.write_bytes(edited.read_bytes() + b"\n")  # the lock of the first fetch pins it
    r = cli(OBJECTS[1])
    assert r.returncode != 0 and f"{OBJECTS[1]}: sha256 mismatch" in r.stderr, r.stderr[-2000:]
