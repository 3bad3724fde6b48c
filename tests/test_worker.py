"""Isolated workers and precomputed outputs: real subprocesses, real files, failures as data."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh
from conftest import SMALL_GSO_OBJECT, one_view_protocol

from bench.cases.case import AmodalCase, InputView
from bench.cases.casefile import case_dir, export_cases, output_path
from bench.inputs.cameras import camera_from_yaw_pitch
from bench.inputs.protocol import load_protocol
from bench.methods.adapter import Generation
from bench.methods.precomputed import PrecomputedAdapter
from bench.methods.registry import adapter_from_string, is_method_string, method_name
from bench.methods.worker import WorkerAdapter, WorkerSpec, substitute

REPO = Path(__file__).resolve().parent.parent
RUN_CASE = [sys.executable, "-m", "baselines.run_case", "--method", "visible", "{case_dir}",
            "--name", "{method}"]


def _tiny_case(protocol_hash: str = "0" * 16) -> AmodalCase:
    """A one-view 8x8 case: enough for the file format, no GSO data, exported in milliseconds."""
    cam = camera_from_yaw_pitch(30.0, 20.0, 2.0, 40.0, 8)
    vis = np.zeros((8, 8), bool)
    vis[2:6, 2:6] = True
    view = InputView(cam, np.full((8, 8, 3), 128, np.uint8), vis, np.zeros((8, 8), bool),
                     np.where(vis, 2.0, 0.0).astype(np.float32), 30.0, 20.0)
    return AmodalCase("tiny_object", "amodal3r-gso", protocol_hash, 1, 7, [view], "white", 0.3)


def _py(name: str, code: str, **kw) -> WorkerAdapter:
    """A worker running Python code with argv[1] = case dir, argv[2] = output dir."""
    return WorkerAdapter(WorkerSpec(name, [sys.executable, "-c", code, "{case_dir}", "{output_dir}"],
                                    **kw))


def _gone(pid: int) -> bool:
    """No such process, or only a zombie left for init to reap."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


def _failed(gen: Generation) -> str:
    assert isinstance(gen, Generation) and gen.mesh is None, gen.meta
    assert gen.meta["reason"]
    return gen.meta["reason"]


# ---- a real worker on a real GSO case ----

@pytest.fixture(scope="module")
def gso_case(gso_root, tmp_path_factory):
    from bench.cases.case import build_case
    from bench.inputs.dataset import open_dataset

    protocol = load_protocol(one_view_protocol(tmp_path_factory.mktemp("protocol")))
    return build_case(open_dataset("gso", gso_root).load(SMALL_GSO_OBJECT), protocol, 1)


def test_worker_reproduces_the_in_process_method(gso_case, tmp_path):
    from baselines.visible import Visible

    spec = WorkerSpec("visible-worker", RUN_CASE, cwd=str(REPO), log_dir=str(tmp_path / "logs"))
    gen = WorkerAdapter(spec).generate(gso_case)
    ref = Visible().generate(gso_case).mesh
    assert gen.mesh is not None, gen.meta.get("reason")
    assert len(gen.mesh.vertices) == len(ref.vertices) and len(ref.faces) > 0
    assert np.allclose(gen.mesh.vertices, ref.vertices, atol=1e-6, rtol=0)
    assert np.array_equal(gen.mesh.faces, ref.faces)
    assert np.array_equal(gen.mesh.vertex_colors, ref.vertex_colors)
    m = gen.meta
    assert m["exit_code"] == 0 and m["up_axis"] == "z" and m["worker"] == "visible-worker"
    assert m["max_depth_jump"] == 0.01 and m["method"] == "visible"  # the worker's sidecar
    assert "baselines.run_case" in m["command"] and m["argv"][-1] == "visible-worker"
    log = Path(m["log"])
    assert log.is_file() and log.is_relative_to(tmp_path / "logs") and log.name.endswith(".log")
    assert "mesh.ply" in m["log_tail"] and m["seconds"] > 0
    assert "source" not in m  # the temporary export is gone
    assert not list(Path(log.parent).glob("*.tmp"))


# ---- failures, each a real subprocess, each a Generation(None) with a reason ----

def test_nonzero_exit_reports_code_and_last_stderr_line():
    gen = _py("exit3", "import sys; print('loading weights', flush=True); "
                       "sys.stderr.write('Traceback...\\nRuntimeError: CUDA out of memory\\n'); "
                       "sys.exit(3)").generate(_tiny_case())
    assert _failed(gen) == "exit code 3: RuntimeError: CUDA out of memory"
    assert gen.meta["exit_code"] == 3 and "loading weights" in gen.meta["log_tail"]
    assert gen.meta["log"] == ""  # no log_dir: the log went with the temporary directory


def test_timeout_kills_the_whole_process_group(tmp_path):
    pids = tmp_path / "pids.txt"
    code = ("import subprocess, sys, time, os\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
            "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)'])\n"
            f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
            "print('started', flush=True)\n"
            "time.sleep(120)\n")
    t0 = time.monotonic()
    gen = _py("sleeper", code, timeout_s=2, kill_grace_s=1).generate(_tiny_case())
    elapsed = time.monotonic() - t0
    assert _failed(gen) == "timed out after 2 s"
    assert 2 <= elapsed < 10 and "started" in gen.meta["log_tail"]
    leader, child = map(int, pids.read_text().split())
    # the child ignores SIGTERM: only the SIGKILL after the grace period ends it
    assert _gone(leader) and _gone(child)


def test_processes_left_behind_are_ended(tmp_path):
    pid_file = tmp_path / "bg.pid"
    code = ("import subprocess, sys\n"
            "bg = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
            f"open({str(pid_file)!r}, 'w').write(str(bg.pid))\n"
            "open(sys.argv[2] + '/mesh.obj', 'w').write('v 0 0 0\\nv 1 0 0\\nv 0 1 0\\nf 1 2 3\\n')\n")
    gen = _py("leaves-a-child", code).generate(_tiny_case())
    assert gen.mesh is not None and gen.meta["exit_code"] == 0
    assert _gone(int(pid_file.read_text()))


def test_no_output_and_output_in_the_wrong_folder():
    reason = _failed(_py("silent", "pass").generate(_tiny_case()))
    assert reason == "wrote no output (expected output/silent/mesh.glb|obj|ply)"
    code = ("import os, sys; d = os.path.join(sys.argv[1], 'output', 'other'); os.makedirs(d); "
            "open(os.path.join(d, 'mesh.ply'), 'w').write('x')")
    reason = _failed(_py("misplaced", code).generate(_tiny_case()))
    assert reason.startswith("wrote no output") and "found output/other/mesh.ply" in reason


@pytest.mark.parametrize("file,text,match", [
    ("mesh.ply", "this is not a mesh\n", r"mesh\.ply: cannot load"),
    ("mesh.obj", "v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n", "NaN"),
    ("mesh.obj", "v 0 0 0\nv 1 0 0\n", "no faces"),
])
def test_invalid_output_is_a_failure(file, text, match):
    code = f"import sys; open(sys.argv[2] + '/{file}', 'w').write({text!r})"
    import re

    assert re.search(match, _failed(_py("bad-output", code).generate(_tiny_case())))


def test_several_outputs_are_a_failure_not_an_exception():
    code = ("import sys\nfor e in ('obj', 'ply'):\n"
            "    open(f'{sys.argv[2]}/mesh.{e}', 'w').write('v 0 0 0\\nv 1 0 0\\nv 0 1 0\\nf 1 2 3\\n')")
    assert "several outputs" in _failed(_py("two", code).generate(_tiny_case()))


def test_missing_or_unrunnable_executable(tmp_path):
    spec = WorkerSpec("ghost", ["/nonexistent/amodal-bench-tool", "{case_dir}"])
    assert WorkerAdapter(spec).availability() == (
        False, "executable '/nonexistent/amodal-bench-tool' not found or not executable")
    assert _failed(WorkerAdapter(spec).generate(_tiny_case())) == \
        "command not found: /nonexistent/amodal-bench-tool"
    spec = WorkerSpec("ghost", ["amodal-bench-no-such-tool", "{case_dir}"])
    ok, why = spec.availability()
    assert not ok and "'amodal-bench-no-such-tool'" in why and "on PATH" in why
    assert "amodal-bench-no-such-tool" in _failed(WorkerAdapter(spec).generate(_tiny_case()))
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\nexit 0\n")  # not executable
    spec = WorkerSpec("noexec", ["./run.sh", "{case_dir}"], cwd=str(tmp_path))
    assert not spec.availability()[0]
    assert "permission denied" in _failed(WorkerAdapter(spec).generate(_tiny_case()))
    spec = WorkerSpec("nocwd", [sys.executable, "{case_dir}"], cwd=str(tmp_path / "nope"))
    assert "does not exist" in spec.availability()[1]
    assert "does not exist" in _failed(WorkerAdapter(spec).generate(_tiny_case()))
    assert WorkerSpec("py", [sys.executable, "{case_dir}"]).availability() == (True, "")


def test_no_shell_placeholder_values_arrive_verbatim(tmp_path):
    name = "m; rm -rf $(touch PWNED) `touch PWNED2` && echo"
    record = tmp_path / "argv.json"
    code = ("import json, os, sys; json.dump({'argv': sys.argv[1:], 'env': "
            "{k: v for k, v in os.environ.items() if k.startswith('W_') or k in "
            "('AMODAL_BENCH_CASE_DIR', 'AMODAL_BENCH_OUTPUT_DIR', 'AMODAL_BENCH_METHOD')}}, "
            f"open({str(record)!r}, 'w'))")
    spec = WorkerSpec(name, [sys.executable, "-c", code, "{method}", "{output_dir}",
                             "$(touch PWNED3); echo hi", "a {method} b", "{x y}"],
                      cwd=str(tmp_path), env={"W_OUT": "{output_dir}/x", "W_GONE": None})
    os.environ["W_GONE"] = "should be unset"
    try:
        reason = _failed(WorkerAdapter(spec).generate(_tiny_case()))
    finally:
        del os.environ["W_GONE"]
    assert reason.startswith("wrote no output")
    got = json.loads(record.read_text())
    out_dir = got["argv"][1]
    assert got["argv"] == [name, out_dir, "$(touch PWNED3); echo hi", f"a {name} b", "{x y}"]
    assert out_dir.endswith(f"/output/{name}")
    assert got["env"] == {"AMODAL_BENCH_METHOD": name, "AMODAL_BENCH_OUTPUT_DIR": out_dir,
                          "AMODAL_BENCH_CASE_DIR": str(Path(out_dir).parent.parent),
                          "W_OUT": f"{out_dir}/x"}
    assert not list(tmp_path.glob("PWNED*"))
    # one pass: a value that looks like a placeholder is not expanded again
    assert substitute("{case_dir}/{method}", {"case_dir": "{method}", "method": "m",
                                              "output_dir": "o"}) == "{method}/m"


# ---- the spec file ----

def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_spec_from_yaml(tmp_path):
    (tmp_path / "TRELLIS").mkdir()
    path = _yaml(tmp_path, 'name: trellis\ncommand: ["python", "run.py", "{case_dir}"]\n'
                           "cwd: TRELLIS\nlog_dir: logs\nenv: {CUDA_VISIBLE_DEVICES: 0, PYTHONPATH: null}\n"
                           "timeout_s: 600\n")
    spec = WorkerSpec.from_yaml(path)
    assert spec.name == "trellis" and spec.command == ["python", "run.py", "{case_dir}"]
    assert spec.cwd == str(tmp_path / "TRELLIS") and spec.log_dir == str(tmp_path / "logs")
    assert spec.env == {"CUDA_VISIBLE_DEVICES": "0", "PYTHONPATH": None}
    assert spec.timeout_s == 600 and spec.kill_grace_s == 10 and not spec.keep_workdir
    env = spec.environment()
    assert env["CUDA_VISIBLE_DEVICES"] == "0" and "PYTHONPATH" not in env
    assert WorkerSpec("d", ["x"]).timeout_s == 1800


@pytest.mark.parametrize("text,match", [
    ("name: m\ncommand: python run.py {case_dir}\n", "key 'command': must be a non-empty list"),
    ("name: m\ncommand: []\n", "key 'command': must be a non-empty list"),
    ("name: m\ncommand: [python, 3]\n", "key 'command': must be a non-empty list"),
    ("name: m\ncommand: [python, {case_dir}]\n", "key 'command': quote the placeholders"),
    ('name: m\ncommand: [python, "{casedir}"]\n', "key 'command': unknown placeholder {casedir}"),
    ("name: m\n", "missing key 'command'"),
    ("command: [python]\n", "missing key 'name'"),
    ("name: m\ncommand: [python]\ntimeout: 5\n", "unknown key 'timeout'; valid: name, command"),
    ("name: m\ncommand: [python]\ntimeout_s: -1\n", "key 'timeout_s'"),
    ("name: m\ncommand: [python]\ntimeout_s: ten\n", "key 'timeout_s'"),
    ("name: m\ncommand: [python]\nenv: {A: [1]}\n", "key 'env': A"),
    ("name: m\ncommand: [python]\nenv: [A]\n", "key 'env'"),
    ("name: a/b\ncommand: [python]\n", "key 'name'"),
    ("name: 'a:b'\ncommand: [python]\n", "key 'name'"),
    ("- python\n", "a worker spec is a mapping"),
    ("name: [unclosed\n", "unreadable worker spec"),
])
def test_spec_validation_names_file_and_key(tmp_path, text, match):
    path = _yaml(tmp_path, text)
    with pytest.raises(ValueError, match=match) as e:
        WorkerSpec.from_yaml(path)
    assert str(path) in str(e.value)


def test_spec_file_missing(tmp_path):
    with pytest.raises(ValueError, match="worker spec not found: .*nope.yaml"):
        WorkerSpec.from_yaml(tmp_path / "nope.yaml")


# ---- precomputed outputs and the method strings ----

@pytest.fixture
def cases_root(tmp_path) -> Path:
    protocol = load_protocol("amodal3r-gso")
    root = tmp_path / "CASES"
    export_cases([_tiny_case(protocol.content_hash)], root, protocol, "gso")
    return root


def _write_output(root: Path, method: str, ext: str = "ply") -> Path:
    cdir = case_dir(root, "amodal3r-gso", 1, "tiny_object")
    path = output_path(cdir, method, ext)
    path.parent.mkdir(parents=True)
    trimesh.Trimesh([[0, 0, 0], [0.1, 0, 0], [0, 0.1, 0.2]], [[0, 1, 2]], process=False).export(path)
    return path


def test_precomputed_adapter(cases_root, tmp_path):
    with pytest.raises(ValueError, match="not an exported CASES directory.*manifest.json"):
        PrecomputedAdapter(tmp_path / "empty", "m")
    with pytest.raises(ValueError, match="methods found under output/: none"):
        PrecomputedAdapter(cases_root, "m")
    _write_output(cases_root, "trellis")
    _write_output(cases_root, "amodal3r", "obj")
    with pytest.raises(ValueError, match=r"no case of .*\(1 cases\) has output/m/; methods found "
                                         r"under output/: amodal3r, trellis"):
        PrecomputedAdapter(cases_root, "m")
    with pytest.raises(ValueError, match="cannot be a directory name"):
        PrecomputedAdapter(cases_root, "..")
    adapter = PrecomputedAdapter(cases_root, "trellis")
    assert adapter.name == "trellis" and adapter.availability() == (
        True, "1 of 1 cases have output/trellis/")
    gen = adapter.generate(_tiny_case(load_protocol("amodal3r-gso").content_hash))
    assert gen.mesh is not None and gen.meta["up_axis"] == "z"
    assert np.allclose(gen.mesh.vertices[2], [0, 0.1, 0.2])
    # a case that was never exported is a failure record, not an exception
    other = _tiny_case(load_protocol("amodal3r-gso").content_hash)
    other.object_id = "not_exported"
    assert "case.json" in _failed(adapter.generate(other))


def test_adapter_from_string(cases_root, tmp_path):
    assert adapter_from_string("visible") is None and method_name("visible") == "visible"
    assert not is_method_string("visible") and is_method_string("worker:x.yaml")
    spec = _yaml(tmp_path, 'name: trellis-env\ncommand: [python, "{case_dir}"]\n')
    a = adapter_from_string(f"worker:{spec}")
    assert isinstance(a, WorkerAdapter) and a.name == "trellis-env"
    assert method_name(f"worker:{spec}") == "trellis-env"
    colon = tmp_path / "a:b"
    colon.mkdir()
    _write_output(cases_root, "m")
    cases = cases_root.rename(colon / "CASES")
    p = adapter_from_string(f"precomputed:{cases}:m")
    assert isinstance(p, PrecomputedAdapter) and p.name == "m" and p.root == cases
    for bad, match in [("worker:", "spec path"), ("precomputed:m", "precomputed:<cases_dir>:<method>"),
                       (f"precomputed:{cases}:", "precomputed:<cases_dir>:<method>"),
                       (f"worker:{tmp_path / 'none.yaml'}", "worker spec not found")]:
        with pytest.raises(ValueError, match=match):
            adapter_from_string(bad)


def test_run_case_cli(tmp_path, capsys):
    from baselines.run_case import main

    protocol = load_protocol("amodal3r-gso")
    seen, hidden = _tiny_case(protocol.content_hash), _tiny_case(protocol.content_hash)
    hidden.object_id = "hidden_object"
    hidden.views[0].visibility_mask = np.zeros((8, 8), bool)
    root = tmp_path / "CASES"
    export_cases([seen, hidden], root, protocol, "gso")
    seen_dir = case_dir(root, "amodal3r-gso", 1, "tiny_object")
    stale = output_path(seen_dir, "v", "glb")
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an earlier run's output")
    assert main(["--method", "visible", str(root), "--name", "v"]) == 1  # the root: both cases
    err = capsys.readouterr().err
    assert "hidden_object" in err and "no visible pixels to lift" in err and "tiny_object" not in err
    assert not stale.exists() and output_path(seen_dir, "v", "ply").is_file()
    assert json.loads((stale.parent / "output.json").read_text()) == {
        "up_axis": "z", "method": "visible", "max_depth_jump": 0.01}
    assert main(["--method", "visible", str(seen_dir)]) == 0  # --name defaults to the method
    assert output_path(seen_dir, "visible", "ply").is_file()
    with pytest.raises(SystemExit):
        main(["--method", "nope", str(seen_dir)])
    assert "valid:" in capsys.readouterr().err


# ---- end to end through the harness ----

class VisibleWorker(WorkerAdapter):
    """`visible` run out of process, as a registry entry would (tests only)."""

    name = "visible-worker"

    def __init__(self):
        super().__init__(WorkerSpec("visible-worker", RUN_CASE, cwd=str(REPO)))


class Exit3Worker(WorkerAdapter):
    name = "exit3-worker"

    def __init__(self):
        super().__init__(WorkerSpec("exit3-worker", [
            sys.executable, "-c", "import sys; sys.exit('no GPU here')", "{case_dir}"]))


def test_run_with_a_worker_method(gso_root, tmp_path, monkeypatch):
    import bench.methods.registry as registry
    from bench.records.store import load_records
    from bench.run.appearance import AppearanceConfig
    from bench.run.runner import RunConfig, run

    monkeypatch.setitem(registry.REGISTRY, "visible-worker", "tests.test_worker:VisibleWorker")
    monkeypatch.setitem(registry.REGISTRY, "exit3-worker", "tests.test_worker:Exit3Worker")
    monkeypatch.syspath_prepend(str(REPO))
    data = tmp_path / "data"
    data.mkdir()
    (data / SMALL_GSO_OBJECT).symlink_to(gso_root / SMALL_GSO_OBJECT)
    out = tmp_path / "run"
    config = RunConfig(out=str(out), protocol=one_view_protocol(tmp_path), data=str(data), jobs=1,
                       methods=["visible", "visible-worker", "exit3-worker"],
                       cache=str(tmp_path / "cache"), sheets=0, object_ids=[SMALL_GSO_OBJECT],
                       appearance=AppearanceConfig(fid_extractors=[], clip_score=False,
                                                   lpips_nets=[]))
    run(config, progress=False)
    recs = {r.method: r for r in load_records(out)}
    assert set(recs) == {"visible", "visible-worker", "exit3-worker"}
    ref, got = recs["visible"], recs["visible-worker"]
    assert ref.ok and got.ok and got.metrics.keys() == ref.metrics.keys()
    assert got.metrics == pytest.approx(ref.metrics, rel=1e-6, abs=1e-9)
    gen = got.meta["generation"]
    assert gen["worker"] == "visible-worker" and gen["exit_code"] == 0
    assert "baselines.run_case" in gen["command"]
    bad = recs["exit3-worker"]
    assert not bad.ok and bad.reason == "exit code 1: no GPU here"
    assert bad.meta["generation"]["exit_code"] == 1 and "no GPU here" in bad.meta["generation"]["log_tail"]
    # the point clouds of the two routes are the same surface
    a = np.load(out / ref.pointcloud)
    b = np.load(out / got.pointcloud)
    assert np.allclose(a, b, atol=1e-5)


def test_run_with_method_strings(gso_root, tmp_path):
    """worker:<spec.yaml> and precomputed:<cases>:<method> in RunConfig.methods, recorded under
    the spec's name and the output folder (bench.methods.registry resolves the strings). A
    regression fails here; it used to show as a skip (trust issue, item 10)."""
    from bench.methods.registry import get_adapter
    from bench.methods.worker import WorkerAdapter

    spec = tmp_path / "visible-worker.yaml"
    spec.write_text(json.dumps({"name": "visible-worker", "command": RUN_CASE, "cwd": str(REPO)}))
    assert isinstance(get_adapter(f"worker:{spec}"), WorkerAdapter)
    from baselines.run_case import main as run_case
    from bench.cases.case import build_case
    from bench.inputs.dataset import open_dataset
    from bench.records.store import load_records
    from bench.run.appearance import AppearanceConfig
    from bench.run.runner import RunConfig, run

    protocol_path = one_view_protocol(tmp_path)
    protocol = load_protocol(protocol_path)
    case = build_case(open_dataset("gso", gso_root).load(SMALL_GSO_OBJECT), protocol, 1)
    cases = tmp_path / "CASES"
    export_cases([case], cases, protocol, "gso")
    assert run_case(["--method", "visible", str(cases), "--name", "visible-pre"]) == 0
    data = tmp_path / "data"
    data.mkdir()
    (data / SMALL_GSO_OBJECT).symlink_to(gso_root / SMALL_GSO_OBJECT)
    out = tmp_path / "run"
    run(RunConfig(out=str(out), protocol=protocol_path, data=str(data), jobs=1, sheets=0,
                  methods=["visible", f"worker:{spec}", f"precomputed:{cases}:visible-pre"],
                  cache=str(tmp_path / "cache"), object_ids=[SMALL_GSO_OBJECT],
                  appearance=AppearanceConfig(fid_extractors=[], clip_score=False, lpips_nets=[])),
        progress=False)
    recs = {r.method: r for r in load_records(out)}
    assert set(recs) == {"visible", "visible-worker", "visible-pre"}
    assert all(r.ok for r in recs.values())
    for name in ("visible-worker", "visible-pre"):
        assert recs[name].metrics == pytest.approx(recs["visible"].metrics, rel=1e-6, abs=1e-9)
