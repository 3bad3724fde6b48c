"""Methods run as isolated worker commands: WorkerSpec (the YAML spec) and WorkerAdapter.

Methods with conflicting software stacks (TRELLIS, Amodal3R, ...: each its own CUDA, spconv,
xformers) run as *workers*: for every case the harness exports the case with
bench.cases.casefile.export_case into a temporary directory, runs the method's own command in the
method's own environment, and imports what it wrote to output/<name>/mesh.glb|obj|ply
(bench.cases.casefile's format, read back by bench.methods.precomputed.import_output; the worker
needs only numpy, PIL and json to read the case).

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
The command runs under bench.methods.supervise.run_command: in a session of its own
(start_new_session) with stdin from /dev/null; on a timeout, or when the harness is interrupted,
its whole process group gets SIGTERM and, after kill_grace_s, SIGKILL; processes it leaves behind
after exiting are ended the same way.

Every failure is a Generation(None, {"reason": ...}), never an exception: a timeout, a non-zero
exit (with the last stderr line), a missing executable, no output, an unreadable or invalid mesh.

On the command line a worker is named `worker:<spec.yaml>` (bench.methods.registry resolves it
to WorkerAdapter(WorkerSpec.from_yaml(spec.yaml)); outputs computed on a cluster are
`precomputed:<cases_dir>:<method>`, bench.methods.precomputed).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from bench.cases.case import AmodalCase
from bench.cases.casefile import OUTPUT_EXTS, case_dir, export_case, output_path
from bench.methods.adapter import Adapter, Generation
from bench.methods.precomputed import import_output
from bench.methods.supervise import run_command

PLACEHOLDERS = ("case_dir", "output_dir", "method")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
_WHOLE_BRACED = re.compile(r"\{\w+\}")  # an argument that is only "{word}": meant as a placeholder
ENV_VARS = {"case_dir": "AMODAL_BENCH_CASE_DIR", "output_dir": "AMODAL_BENCH_OUTPUT_DIR",
            "method": "AMODAL_BENCH_METHOD"}


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
        """<log_dir>/<method>/<protocol>/<setting>/<object_id>.log, or None without a log_dir
        (the method is in the path: several worker methods of one run may share a log_dir)."""
        if not self.spec.log_dir:
            return None
        d = case_dir(Path(self.spec.log_dir) / self.spec.name, case.protocol, case.n_views,
                     case.object_id, case.degree)
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
                              spec.kill_grace_s, cleanup=[] if spec.keep_workdir else [work])
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
