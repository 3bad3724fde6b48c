"""Methods that run elsewhere: isolated worker commands and precomputed outputs.

Methods with conflicting software stacks (TRELLIS, Amodal3R, ...: each its own CUDA, spconv,
xformers) run as *workers*: for every case the harness exports the case with
bench.cases.casefile.export_case into a temporary directory, runs the method's own command in the
method's own environment, and imports what it wrote to output/<name>/mesh.glb|obj|ply
(bench.cases.casefile's format; the worker needs only numpy, PIL and json to read the case).

A worker spec (YAML; relative `cwd` and `log_dir` are relative to the YAML file):

    name: trellis                      # output folder name and method name in the records
    command: ["/envs/trellis/bin/python", "run_trellis.py", "{case_dir}", "--out", "{output_dir}"]
    cwd: /opt/TRELLIS                  # optional; a relative executable is looked up from here
    env: {CUDA_VISIBLE_DEVICES: "0", PYTHONPATH: null}   # extra variables; null unsets one
    timeout_s: 1800                    # per object
    log_dir: logs/trellis              # optional; else the log lives (and dies) with the temp dir

`command` is an argument list, never a shell string: no shell ever sees it, and each placeholder
({case_dir}, {output_dir}, {method}) is replaced inside its argument, so a value with spaces,
`;` or `$(...)` arrives as one literal argument. The worker also finds the three values in the
environment as AMODAL_BENCH_CASE_DIR, AMODAL_BENCH_OUTPUT_DIR and AMODAL_BENCH_METHOD.
The command runs in a session of its own (start_new_session) with stdin from /dev/null; on a
timeout, or when the harness is interrupted, its whole process group gets SIGTERM and, after
kill_grace_s, SIGKILL; processes it leaves behind after exiting are ended the same way.

Every failure is a Generation(None, {"reason": ...}), never an exception: a timeout, a non-zero
exit (with the last stderr line), a missing executable, no output, an unreadable or invalid mesh.

Outputs computed on a cluster (export-cases there, any scheduler, copy CASES back) are evaluated
anywhere with PrecomputedAdapter. On the command line both are named by a string:

    worker:<spec.yaml>                   -> WorkerAdapter(WorkerSpec.from_yaml(spec.yaml))
    precomputed:<cases_dir>:<method>     -> PrecomputedAdapter(cases_dir, method)

(adapter_from_string; method_name gives the name such a method is recorded under.)
"""

from __future__ import annotations

import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from bench.cases.case import AmodalCase
from bench.cases.casefile import (
    OUTPUT_EXTS,
    ImportedMethod,
    case_dir,
    export_case,
    import_output,
    output_path,
    read_manifest,
)
from bench.methods.adapter import Adapter, Generation

PLACEHOLDERS = ("case_dir", "output_dir", "method")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
_WHOLE_BRACED = re.compile(r"\{\w+\}")  # an argument that is only "{word}": meant as a placeholder
ENV_VARS = {"case_dir": "AMODAL_BENCH_CASE_DIR", "output_dir": "AMODAL_BENCH_OUTPUT_DIR",
            "method": "AMODAL_BENCH_METHOD"}
LOG_TAIL_CHARS = 4000
DRAIN_S = 2.0  # after the command exits, how long to keep reading pipes a straggler holds open
WORKER_PREFIX = "worker:"
PRECOMPUTED_PREFIX = "precomputed:"


def substitute(arg: str, values: dict[str, str]) -> str:
    """Replace {case_dir}, {output_dir}, {method} in one argument, in a single pass (a value is
    never expanded again); other braces are left alone."""
    return _PLACEHOLDER.sub(lambda m: values[m[1]], arg)


@dataclass
class WorkerSpec:
    """How to run one method as an isolated command. See the module docstring."""

    name: str
    command: list[str]
    cwd: str | None = None
    env: dict[str, str | None] = field(default_factory=dict)
    timeout_s: float = 1800.0
    log_dir: str | None = None
    kill_grace_s: float = 10.0  # SIGTERM -> SIGKILL
    keep_workdir: bool = False  # keep the temporary case export and outputs (debugging)

    def __post_init__(self) -> None:
        self._validate()

    def _validate(self) -> None:
        def bad(key: str, why: str):
            raise ValueError(f"key {key!r}: {why}")

        if not isinstance(self.name, str):
            bad("name", f"must be a string, got {type(self.name).__name__}")
        if not self.name or self.name in (".", "..") or any(c in self.name for c in "/\\:,"):
            bad("name", f"{self.name!r} cannot be a method name (a folder name without / \\ : ,)")
        if isinstance(self.command, (list, tuple)) and any(
                isinstance(a, dict) and len(a) == 1 and next(iter(a)) in PLACEHOLDERS
                for a in self.command):
            bad("command", "quote the placeholders: in YAML an unquoted {case_dir} is a mapping; "
                "write \"{case_dir}\"")
        if (not isinstance(self.command, (list, tuple)) or not self.command
                or not all(isinstance(a, str) for a in self.command)):
            bad("command", "must be a non-empty list of strings (an argument list, not a shell "
                f"string), got {self.command!r}")
        self.command = list(self.command)
        if not self.command[0]:
            bad("command", "the executable (first argument) is empty")
        for a in self.command:
            if _WHOLE_BRACED.fullmatch(a) and not _PLACEHOLDER.fullmatch(a):
                bad("command", f"unknown placeholder {a}; valid: "
                    + ", ".join("{" + p + "}" for p in PLACEHOLDERS))
        if self.cwd is not None and not isinstance(self.cwd, (str, os.PathLike)):
            bad("cwd", f"must be a path, got {self.cwd!r}")
        if self.cwd is not None:
            self.cwd = str(self.cwd)
        if not isinstance(self.env, dict):
            bad("env", f"must be a mapping of variable names to strings, got {self.env!r}")
        env = {}
        for k, v in self.env.items():
            if not isinstance(k, str) or not k or "=" in k:
                bad("env", f"invalid variable name {k!r}")
            if v is not None and (isinstance(v, bool) or not isinstance(v, (str, int, float))):
                bad("env", f"{k}: must be a string, a number or null (unset), got {v!r}")
            env[k] = None if v is None else str(v)
        self.env = env
        for key in ("timeout_s", "kill_grace_s"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or v == float("inf"):
                bad(key, f"must be a finite number of seconds, got {v!r}")
        if self.timeout_s <= 0:
            bad("timeout_s", f"must be positive, got {self.timeout_s!r}")
        if self.log_dir is not None and not isinstance(self.log_dir, (str, os.PathLike)):
            bad("log_dir", f"must be a path, got {self.log_dir!r}")
        if self.log_dir is not None:
            self.log_dir = str(self.log_dir)
        if not isinstance(self.keep_workdir, bool):
            bad("keep_workdir", f"must be true or false, got {self.keep_workdir!r}")

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> WorkerSpec:
        """Read and validate a spec; ValueError names the file and the offending key."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError as e:
            raise ValueError(f"worker spec not found: {path}") from e
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise ValueError(f"{path}: unreadable worker spec: {e}") from e
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a worker spec is a mapping with keys name, command, ...; "
                             f"got {type(data).__name__}")
        valid = [f.name for f in fields(cls)]
        unknown = [k for k in data if k not in valid]
        if unknown:
            raise ValueError(f"{path}: unknown key {unknown[0]!r}; valid: {', '.join(valid)}")
        for key in ("name", "command"):
            if key not in data:
                raise ValueError(f"{path}: missing key {key!r}")
        for key in ("cwd", "log_dir"):  # relative to the spec file
            if isinstance(data.get(key), str) and data[key]:
                data[key] = str(path.resolve().parent / Path(data[key]).expanduser())
        try:
            return cls(**data)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from e

    def environment(self, values: dict[str, str] | None = None) -> dict[str, str]:
        """The command's environment: ours, plus the spec's variables (placeholders substituted,
        null ones removed), plus AMODAL_BENCH_CASE_DIR/OUTPUT_DIR/METHOD when values are given."""
        env = dict(os.environ)
        for k, v in self.env.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = substitute(v, values) if values else v
        for key, var in ENV_VARS.items():
            if values and key in values:
                env[var] = values[key]
        return env

    def executable(self) -> str | None:
        """The path the command's executable resolves to, or None: a name is looked up on the
        command's PATH, a relative path (with a /) from cwd, as subprocess does."""
        exe = self.command[0]
        if os.sep in exe or (os.altsep and os.altsep in exe):
            p = Path(exe).expanduser()
            if not p.is_absolute() and self.cwd:
                p = Path(self.cwd) / p
            return str(p) if p.is_file() and os.access(p, os.X_OK) else None
        return shutil.which(exe, path=os.pathsep.join(os.get_exec_path(self.environment())))

    def availability(self) -> tuple[bool, str]:
        if self.cwd and not Path(self.cwd).is_dir():
            return False, f"working directory {self.cwd} does not exist"
        if self.executable() is None:
            exe = self.command[0]
            where = "on PATH" if os.sep not in exe else (f"relative to {self.cwd}" if self.cwd
                                                         and not Path(exe).is_absolute() else "")
            return False, f"executable {exe!r} not found or not executable {where}".rstrip()
        return True, ""


# ---- running a command: its own session, captured output, a deadline, the group killed ----

@dataclass
class _Outcome:
    exit_code: int | None = None
    timed_out: bool = False
    seconds: float = 0.0
    stderr_tail: str = ""
    log_tail: str = ""
    start_error: str = ""  # the command could not be started


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group is still running (zombies do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member we may not signal: still there
        return True
    if not sys.platform.startswith("linux"):
        return True
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        state, _ppid, pgrp = stat[stat.rindex(")") + 2:].split()[:3]
        if int(pgrp) == pgid and state not in ("Z", "X"):
            return True
    return False


def _kill_group(proc: subprocess.Popen, grace_s: float) -> bool:
    """SIGTERM the command's process group, SIGKILL what is left after grace_s; reap the leader.
    Returns whether anything was still running."""
    pgid = proc.pid  # start_new_session: the leader's pid is the group id
    proc.poll()
    if not _group_alive(pgid):
        proc.poll()
        return False
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        proc.poll()
        return False
    except PermissionError:  # a member we may not signal; SIGKILL below tries again
        pass
    end = time.monotonic() + grace_s
    while time.monotonic() < end:
        proc.poll()  # reap the leader, so it does not linger as a zombie of ours
        if not _group_alive(pgid):
            return True
        time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    end = time.monotonic() + 5.0  # SIGKILL cannot be ignored; children need a moment to go
    while time.monotonic() < end and _group_alive(pgid):
        time.sleep(0.02)
    return True


def run_command(argv: list[str], cwd: str | None, env: dict[str, str], log_path: Path,
                timeout_s: float, grace_s: float) -> _Outcome:
    """Run argv without a shell in a new session, stdout and stderr to log_path (interleaved,
    as they arrive); a timeout kills the process group."""
    out = _Outcome()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        log.write(f"# command: {shlex.join(argv)}\n# cwd: {cwd or os.getcwd()}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True, close_fds=True)
        except FileNotFoundError as e:
            if cwd and not Path(cwd).is_dir():
                out.start_error = f"working directory {cwd} does not exist"
            else:
                out.start_error = f"command not found: {argv[0]}"
            log.write(f"# {out.start_error} ({e})\n".encode())
            return out
        except PermissionError:
            out.start_error = f"cannot execute {argv[0]}: permission denied"
            log.write(f"# {out.start_error}\n".encode())
            return out
        except OSError as e:
            out.start_error = f"cannot start {argv[0]}: {e}"
            log.write(f"# {out.start_error}\n".encode())
            return out
        err_tail, all_tail = bytearray(), bytearray()
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(proc.stderr, selectors.EVENT_READ)
        deadline = t0 + timeout_s
        exited_at = None
        try:
            while True:
                now = time.monotonic()
                if exited_at is None and proc.poll() is not None:
                    exited_at = now
                if exited_at is not None and (not sel.get_map() or now - exited_at > DRAIN_S):
                    break
                if exited_at is None and now >= deadline:
                    out.timed_out = True
                    log.write(f"\n# timed out after {timeout_s:g} s: killing the process group\n"
                              .encode())
                    log.flush()
                    _kill_group(proc, grace_s)
                    exited_at = time.monotonic()
                    continue
                wait = 0.1 if exited_at is not None else min(0.25, max(deadline - now, 0.0))
                if not sel.get_map():
                    time.sleep(wait)
                    continue
                for key, _ in sel.select(timeout=wait):
                    data = os.read(key.fd, 65536)
                    if not data:
                        sel.unregister(key.fileobj)
                        continue
                    log.write(data)
                    all_tail += data
                    del all_tail[:-4 * LOG_TAIL_CHARS]
                    if key.fileobj is proc.stderr:
                        err_tail += data
                        del err_tail[:-4 * LOG_TAIL_CHARS]
                log.flush()
        finally:  # also on KeyboardInterrupt: never leave the command running
            sel.close()
            if proc.poll() is None or _group_alive(proc.pid):
                if _kill_group(proc, grace_s) and not out.timed_out:
                    log.write(b"\n# processes left behind by the command were killed\n")
            proc.stdout.close()
            proc.stderr.close()
            proc.wait()
        out.exit_code = proc.returncode
    out.seconds = time.monotonic() - t0
    out.stderr_tail = err_tail.decode("utf-8", "replace")
    out.log_tail = all_tail.decode("utf-8", "replace")[-LOG_TAIL_CHARS:]
    return out


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:500] if lines else ""


def _found_outputs(cdir: Path) -> list[str]:
    root = cdir / "output"
    if not root.is_dir():
        return []
    return sorted(p.relative_to(cdir).as_posix() for p in root.rglob("*") if p.is_file())[:5]


class WorkerAdapter(Adapter):
    """A method run as an isolated command per case (WorkerSpec). Failures are Generation(None)."""

    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        self.name = spec.name

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> WorkerAdapter:
        return cls(WorkerSpec.from_yaml(path))

    def availability(self) -> tuple[bool, str]:  # per spec, so an instance method
        return self.spec.availability()

    def log_path(self, case: AmodalCase) -> Path | None:
        """<log_dir>/<protocol>/<setting>/<object_id>.log, or None without a log_dir."""
        if not self.spec.log_dir:
            return None
        d = case_dir(Path(self.spec.log_dir), case.protocol, case.n_views, case.object_id,
                     case.degree)
        return d.parent / f"{d.name}.log"

    def generate(self, case: AmodalCase) -> Generation:
        spec = self.spec
        work = Path(tempfile.mkdtemp(prefix=f"amodal-worker-{spec.name}-"))
        try:
            return self._generate(case, work)
        finally:
            if not spec.keep_workdir:
                shutil.rmtree(work, ignore_errors=True)

    def _generate(self, case: AmodalCase, work: Path) -> Generation:
        spec = self.spec
        try:
            cdir = export_case(case, work / "cases")
            out_dir = output_path(cdir, spec.name).parent
            out_dir.mkdir(parents=True, exist_ok=True)
        except (ValueError, OSError) as e:
            return Generation(None, {"reason": f"cannot export the case: {e}", "worker": spec.name})
        values = {"case_dir": str(cdir), "output_dir": str(out_dir), "method": spec.name}
        argv = [substitute(a, values) for a in spec.command]
        log = self.log_path(case) or work / "worker.log"
        kept = spec.log_dir is not None or spec.keep_workdir
        outcome = run_command(argv, spec.cwd, spec.environment(values), log, spec.timeout_s,
                              spec.kill_grace_s)
        meta = {"worker": spec.name, "command": shlex.join(argv), "argv": argv,
                "exit_code": outcome.exit_code, "seconds": round(outcome.seconds, 3),
                "log": str(log) if kept else "", "log_tail": outcome.log_tail}
        if spec.keep_workdir:
            meta["workdir"] = str(work)

        def failed(reason: str) -> Generation:
            return Generation(None, {"reason": reason, **meta})

        if outcome.start_error:
            return failed(outcome.start_error)
        if outcome.timed_out:
            return failed(f"timed out after {spec.timeout_s:g} s")
        rc = outcome.exit_code
        if rc != 0:
            last = _last_line(outcome.stderr_tail) or _last_line(outcome.log_tail)
            what = (f"killed by signal {signal.Signals(-rc).name}" if rc < 0
                    and -rc in signal.valid_signals() else f"exit code {rc}")
            return failed(f"{what}: {last}" if last else f"{what} (no output on stderr)")
        if not any(output_path(cdir, spec.name, e).is_file() for e in OUTPUT_EXTS):
            found = _found_outputs(cdir)
            return failed(f"wrote no output (expected output/{spec.name}/mesh."
                          f"{'|'.join(OUTPUT_EXTS)})"
                          + (f"; found {', '.join(found)}" if found else ""))
        try:
            gen = import_output(cdir, spec.name)
            if gen.mesh is not None:
                gen.mesh.validate()
        except ValueError as e:  # several outputs, or AssetError from validate
            return failed(str(e))
        if gen.mesh is None:
            return failed(gen.meta.get("reason", "unreadable output"))
        gen_meta = dict(gen.meta)
        if not spec.keep_workdir:
            gen_meta.pop("source", None)  # a file in the temporary directory, gone now
        gen.meta = {**gen_meta, **meta}
        return gen


class PrecomputedAdapter(ImportedMethod):
    """Outputs made elsewhere (e.g. on a cluster from `amodal-bench export-cases`), evaluated here.

    cases_root: the exported CASES directory (with manifest.json), its case folders holding
    output/<method>/mesh.glb|obj|ply. A thin wrapper of bench.cases.casefile.ImportedMethod that checks
    up front that the root is an export and that `method` wrote output for at least one case;
    cases without output become failure records with the reason, like any failed generation."""

    def __init__(self, cases_root: str | os.PathLike, method: str):
        root = Path(cases_root)
        try:
            manifest = read_manifest(root)
            dirs = [root / e["path"] for e in manifest["cases"]]
        except ValueError as e:
            raise ValueError(f"precomputed outputs: {root} is not an exported CASES directory "
                             f"(amodal-bench export-cases): {e}") from e
        except (KeyError, TypeError) as e:
            raise ValueError(f"precomputed outputs: {root / 'manifest.json'} is malformed "
                             f"({type(e).__name__}: {e})") from e
        output_path(root, method)  # ValueError for a method name that is not a folder name
        with_output = [d for d in dirs if (d / "output" / method).is_dir()]
        if not with_output:
            found = sorted({p.name for d in dirs if (d / "output").is_dir()
                            for p in (d / "output").iterdir() if p.is_dir()})
            raise ValueError(f"precomputed outputs: no case of {root} ({len(dirs)} cases) has "
                             f"output/{method}/; methods found under output/: "
                             f"{', '.join(found) if found else 'none'}")
        super().__init__(root, method)
        self.manifest = manifest
        self.n_cases, self.n_with_output = len(dirs), len(with_output)

    def availability(self) -> tuple[bool, str]:
        return True, f"{self.n_with_output} of {self.n_cases} cases have output/{self.name}/"


def adapter_from_string(s: str) -> Adapter | None:
    """`worker:<spec.yaml>` -> WorkerAdapter, `precomputed:<cases_dir>:<method>` ->
    PrecomputedAdapter; None for anything else (a plain registry name). ValueError for a
    malformed or invalid one. The method is the part after the last colon, so cases_dir may
    hold colons."""
    if s.startswith(WORKER_PREFIX):
        path = s[len(WORKER_PREFIX):]
        if not path:
            raise ValueError(f"{s!r}: worker: takes a spec path, e.g. worker:specs/trellis.yaml")
        return WorkerAdapter(WorkerSpec.from_yaml(Path(path).expanduser()))
    if s.startswith(PRECOMPUTED_PREFIX):
        root, sep, method = s[len(PRECOMPUTED_PREFIX):].rpartition(":")
        if not sep or not root or not method:
            raise ValueError(f"{s!r}: precomputed: takes precomputed:<cases_dir>:<method>")
        return PrecomputedAdapter(Path(root).expanduser(), method)
    return None


def is_method_string(s: str) -> bool:
    return s.startswith((WORKER_PREFIX, PRECOMPUTED_PREFIX))


def method_name(s: str) -> str:
    """The name a method string is recorded under: the spec's name for worker:, the output
    folder for precomputed:, else the string itself."""
    adapter = adapter_from_string(s)
    return adapter.name if adapter is not None else s
