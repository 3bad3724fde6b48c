"""The command line, run as a real subprocess: one-line errors and listings."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("args,expect", [
    (["run", "--protocol", "nope", "--methods", "oracle", "--out", "x"], "amodal3r-gso"),
    (["run", "--protocol", "amodal3r-gso+raster-unlit", "--methods", "oracle,foo", "--out", "x"],
     "unknown method foo; valid: "),
    (["run", "--protocol", "amodal3r-gso+raster-unlit", "--methods", "oracle", "--out", "x",
      "--rasterizer", "pytorch3d"], "moderngl"),
    (["ls", "things"], "protocols"),
])
def test_bad_arguments_give_one_line_naming_choices(args, expect):
    r = _cli(*args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], r.stderr


def test_missing_data_is_one_line(tmp_path):
    r = _cli("run", "--protocol", "amodal3r-gso+raster-unlit", "--methods", "oracle", "--out",
             str(tmp_path / "o"), "--data", str(tmp_path / "absent"))
    assert r.returncode == 2 and "not found" in r.stderr and "AMODAL_BENCH_GSO" in r.stderr


def test_ls_lists_protocols_and_methods():
    protocols = _cli("ls", "protocols")
    assert protocols.returncode == 0 and "gena3d-gso" in protocols.stdout
    methods = _cli("ls", "methods")
    assert "oracle\tavailable" in methods.stdout and "visible\tavailable" in methods.stdout


def test_run_and_report(gso_root, tmp_path):
    out = tmp_path / "run"
    r = _cli("run", "--data", str(gso_root), "--protocol", "amodal3r-gso+raster-unlit", "--methods",
             "oracle,visible", "--out", str(out), "--objects", "Room_Essentials_Salad_Plate_Turquoise",
             "--jobs", "1", "--cache", str(tmp_path / "cache"), "--sheets", "1", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "leaderboard:" in r.stdout and (out / "leaderboard.csv").is_file()
    assert list((out / "sheets").rglob("*.png"))
    rep = _cli("report", str(out))
    assert rep.returncode == 0 and "visible" in rep.stdout
    merged = tmp_path / "merged.csv"
    vs = _cli("report", str(out), "--versus", "visible", "--out", str(merged))
    assert vs.returncode == 0, vs.stderr
    assert "Against `visible`" in vs.stdout and "| oracle | amodal3r-gso+raster-unlit‡ | 1 |" in vs.stdout
    assert (tmp_path / "merged-vs-visible.md").is_file()
    assert set(pd.read_csv(tmp_path / "merged-vs-visible.csv").method) == {"oracle"}
    # --html shows the rows re-aggregated from the records, as the printed table: a stale
    # leaderboard.csv in the run directory does not leak into the page
    board = pd.read_csv(out / "leaderboard.csv")
    board.loc[board.method == "visible", "psnr_masked"] = 99.125
    board.to_csv(out / "leaderboard.csv", index=False)
    page = _cli("report", str(out), "--html", str(tmp_path / "r.html"))
    assert page.returncode == 0, page.stderr
    html = (tmp_path / "r.html").read_text()
    truth = pd.read_csv(merged).query("method == 'visible'").psnr_masked
    assert "99.1" not in html and all(f">{v:.2f}<" in html for v in truth)
    bad = _cli("report", str(out), "--versus", "nope")
    assert bad.returncode == 2 and "baseline method 'nope' is not in the leaderboard" in bad.stderr


def test_export_cases_then_import_outputs(gso_root, tmp_path):
    # the cluster round trip: export cases, write a method's outputs into them as a foreign
    # process would (here: the GT geometry as PLY), import -> geometry matches exactly
    import json

    import pandas as pd
    import trimesh

    from bench.inputs.dataset import open_dataset

    obj = "Room_Essentials_Salad_Plate_Turquoise"
    cases = tmp_path / "cases"
    r = _cli("export-cases", "--protocol", "amodal3r-gso+raster-unlit", "--data", str(gso_root),
             "--objects", obj, "--out", str(cases), timeout=300)
    assert r.returncode == 0, r.stderr
    manifest = json.loads((cases / "manifest.json").read_text())
    assert len(manifest["cases"]) == 3  # views 1, 2, 4
    mesh = open_dataset("gso", gso_root).load(obj).mesh
    for case in manifest["cases"]:
        out = cases / case["path"] / "output" / "gt-copy"
        out.mkdir(parents=True)
        trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).export(out / "mesh.ply")
    run_dir = tmp_path / "eval"
    r = _cli("import", "--cases", str(cases), "--methods", "gt-copy,absent", "--out", str(run_dir),
             "--jobs", "1", "--cache", str(tmp_path / "cache"), "--sheets", "0", timeout=300)
    assert r.returncode == 0, r.stderr
    board = pd.read_csv(run_dir / "leaderboard.csv")
    copy = board[board.method == "gt-copy"]
    assert (copy.success_rate == 1).all() and (copy.mmd_cd == 0).all() and (copy.cov_cd == 100).all()
    assert (board[board.method == "absent"].success_rate == 0).all()


def test_show_case_writes_a_sheet(gso_root, tmp_path):
    r = _cli("show-case", "--protocol", "gena3d-gso", "--data", str(gso_root), "--objects",
             "Android_Lego", "--out", str(tmp_path), timeout=300)
    assert r.returncode == 0, r.stderr
    from PIL import Image

    sheet = Image.open(tmp_path / "gena3d-gso" / "Android_Lego.png")
    assert sheet.width >= 4 * 192 and sheet.height > 7 * 192  # 1 + 2 + 4 selected views at least


def test_limit_zero_or_negative_is_a_one_line_error(tmp_path):
    """Trust issue, item 16: `--limit 0` evaluated all 52 objects and `--limit -1` 51."""
    for value in ("0", "-1", "two"):
        r = subprocess.run([sys.executable, "-m", "bench", "run", "--protocol", "amodal3r-gso+raster-unlit",
                            "--methods", "visible", "--limit", value, "--out", str(tmp_path / value)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, r.stdout + r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "--limit" in lines[0] and "integer >= 1" in lines[0], r.stderr
        assert not (tmp_path / value).exists()


def test_unwritable_output_is_a_one_line_error():
    """Trust issue, item 23: output that cannot be written is one line, not a traceback (/sys
    refuses new entries even to root, like a read-only filesystem)."""
    r = subprocess.run([sys.executable, "-m", "bench", "run", "--protocol", "amodal3r-gso+raster-unlit",
                        "--methods",
                        "visible", "--limit", "1", "--out", "/sys/amodal-bench-test"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("amodal-bench: error: cannot write /sys/amodal-bench-test")


def test_drift_does_not_write_the_run(tmp_path, gso_root):
    """Trust issue, item 23: `drift` recomputed and rewrote the run's leaderboard.csv. Now it
    compares in memory: the file stays byte-identical (a tampered copy stays tampered) and a
    run without one gets none."""
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "bench", "run", "--data", str(gso_root), "--protocol",
                        "amodal3r-gso+raster-unlit", "--methods", "oracle", "--limit", "1", "--out", str(out),
                        "--jobs", "1", "--sheets", "0", "--cache", str(tmp_path / "cache")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    board = out / "leaderboard.csv"
    baseline = tmp_path / "baseline.csv"
    baseline.write_bytes(board.read_bytes())
    board.write_text(board.read_text() + "# tampered\n")
    before = board.read_bytes()
    gate = subprocess.run([sys.executable, "-m", "bench", "drift", "--baseline", str(baseline), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert gate.returncode == 0 and "no drift" in gate.stdout, gate.stdout[-2000:] + gate.stderr
    assert board.read_bytes() == before
    board.unlink()
    gate = subprocess.run([sys.executable, "-m", "bench", "drift", "--baseline", str(baseline), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert gate.returncode == 0 and not board.exists()


def test_a_paper_protocol_without_blender_is_one_line_before_any_work(tmp_path):
    """Without the `cycles` extra (bpy hidden here), a lit-Cycles protocol stops before any work
    with one line naming the install and the unlit variant; the variant itself runs."""
    code = ("import sys; sys.modules['bpy'] = None; from bench.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    args = ["--methods", "oracle", "--limit", "1", "--jobs", "1", "--sheets", "0",
            "--cache", str(tmp_path / "c")]
    r = subprocess.run([sys.executable, "-c", code, "run", "--protocol", "amodal3r-gso",
                        "--out", str(tmp_path / "a"), *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "pip install 'amodal-bench[cycles]'" in r.stderr and "amodal3r-gso+raster-unlit" in r.stderr
    assert not (tmp_path / "a").exists()
    ok = subprocess.run([sys.executable, "-c", code, "run", "--protocol", "amodal3r-gso+raster-unlit",
                         "--out", str(tmp_path / "b"), *args], capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0, ok.stderr
