"""bench.run.gtcache, bench.run.renders and the appearance choice of bench.run.measure: the
protocol's GT renderer (lit Cycles, cached by content) reaches the features, sheets and records;
a generation with Gaussians is measured on its Gaussian renders; `amodal-bench render` writes
what a person looks at. Cycles runs for real (bpy) on a small rig (64 x 64, 2 views)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("bpy")

from conftest import SMALL_GSO_OBJECT  # noqa: E402

from bench.inputs.protocol import PROTOCOL_DIR, load_protocol  # noqa: E402
from bench.run.runner import RunConfig, run  # noqa: E402

OBJECT = SMALL_GSO_OBJECT


def _small_cycles_protocol(tmp_path: Path, renderer: str = "cycles-trellis") -> str:
    """amodal3r-gso's seed with a 2-view 64 x 64 eval rig, 64 x 64 inputs and one setting."""
    spec = yaml.safe_load((PROTOCOL_DIR / "amodal3r-gso.yaml").read_text())
    spec.update(name="small-cycles", seed="amodal3r-gso", gt_appearance=renderer)
    spec["eval_rig"].update(yaws_deg=[0, 135], resolution=64)
    spec["input"].update(views=[1], resolution=64)
    path = tmp_path / f"small-{renderer}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


@pytest.fixture(scope="module")
def asset(gso_root):
    from bench.inputs.dataset import open_dataset

    return open_dataset("gso", gso_root).load(OBJECT)


def test_cycles_gt_is_cached_by_content_and_lit(tmp_path, asset):
    from bench.render import render
    from bench.run.gtcache import cycles_rgba8, gt_appearance_rgb

    protocol = load_protocol(_small_cycles_protocol(tmp_path))
    config = RunConfig(out=str(tmp_path / "run"), protocol=protocol.name, methods=[],
                       cache=str(tmp_path / "c"), jobs=1)
    rgb = gt_appearance_rgb(config, protocol, asset, "gso")
    files = sorted((tmp_path / "c" / "gt-renders").glob("*.npz"))
    assert rgb.shape == (2, 64, 64, 3) and len(files) == 2  # one file per view
    stamps = [f.stat().st_mtime_ns for f in files]
    again = gt_appearance_rgb(config, protocol, asset, "gso")
    assert [f.stat().st_mtime_ns for f in files] == stamps  # read from the cache, not rendered again
    np.testing.assert_array_equal(rgb, again)
    # the lit render is not the unlit albedo, but covers the same pixels (silhouette IoU)
    unlit = render(asset.mesh, protocol.eval_rig().cameras, "white")
    lit_mask = cycles_rgba8(config, protocol, asset, "gso", protocol.eval_rig().cameras)[..., 3] >= 128
    iou = (lit_mask & (unlit.face_id >= 0)).sum() / (lit_mask | (unlit.face_id >= 0)).sum()
    assert iou > 0.95, iou  # 64 x 64: the boundary pixels are a large share
    hit = unlit.face_id >= 0
    assert np.abs(rgb[hit] - unlit.rgb[hit]).mean() > 0.02
    # another GT mesh (one vertex moved) is another cache entry
    from dataclasses import replace

    moved = asset.mesh.vertices.copy()
    moved[0] += 0.01
    gt_appearance_rgb(config, protocol, replace(asset, mesh=replace(asset.mesh, vertices=moved)), "gso")
    assert len(list((tmp_path / "c" / "gt-renders").glob("*.npz"))) == 4


def test_a_damaged_cache_file_is_rendered_again(tmp_path, asset):
    from bench.run.gtcache import gt_appearance_rgb

    protocol = load_protocol(_small_cycles_protocol(tmp_path))
    config = RunConfig(out=str(tmp_path / "run"), protocol=protocol.name, methods=[],
                       cache=str(tmp_path / "c"), jobs=1)
    first = gt_appearance_rgb(config, protocol, asset, "gso")
    path = sorted((tmp_path / "c" / "gt-renders").glob("*.npz"))[0]
    path.write_bytes(b"not an npz")
    np.testing.assert_array_equal(gt_appearance_rgb(config, protocol, asset, "gso"), first)


def test_case_inputs_are_the_lit_renders_with_the_occluder_painted(tmp_path, asset):
    """The papers' inputs were their Cycles renders with the occlusion applied: with the run's
    input shader the selected views' RGB is the lit render (8-bit) outside the occlusion mask and
    the occluder colour inside; masks, cameras and depth are those of the unlit case."""
    from bench.cases.case import build_case
    from bench.run.gtcache import appearance_rgb, input_shader

    protocol = load_protocol(_small_cycles_protocol(tmp_path))
    config = RunConfig(out=str(tmp_path / "run"), protocol=protocol.name, methods=[],
                       cache=str(tmp_path / "c"), jobs=1)
    unlit = build_case(asset, protocol, 1)
    lit = build_case(asset, protocol, 1, shade_inputs=input_shader(config, protocol, asset, "gso"))
    assert unlit.meta["input_renderer"] == "raster-unlit" and lit.meta["input_renderer"] == "cycles-trellis"
    (u,), (v,) = unlit.views, lit.views
    assert u.yaw_deg == v.yaw_deg and np.array_equal(u.visibility_mask, v.visibility_mask)
    np.testing.assert_array_equal(u.occlusion_mask, v.occlusion_mask)
    expect = appearance_rgb(config, protocol, asset, "gso", [v.camera])[0]
    np.testing.assert_array_equal(lit.gt_rgb[0], expect)
    assert (v.rgb[v.occlusion_mask] == 0).all()  # black occluder
    free = ~v.occlusion_mask
    assert np.abs(v.rgb[free].astype(float) - np.round(expect[free] * 255)).max() == 0
    assert np.abs(v.rgb.astype(float) - u.rgb.astype(float))[v.visibility_mask].mean() > 3  # lit != unlit


def test_run_records_the_gt_renderer_and_the_appearance_render(tmp_path, gso_root):
    proto = _small_cycles_protocol(tmp_path)
    board = run(RunConfig(out=str(tmp_path / "run"), protocol=proto, methods=["oracle"],
                          data=str(gso_root), jobs=1, cache=str(tmp_path / "c"), sheets=1,
                          object_ids=[OBJECT]), progress=False)
    import pandas as pd

    row = pd.read_csv(board).iloc[0]
    assert row.gt_renderer == "cycles-trellis" and row.appearance_render == "mesh-unlit"
    assert "raster-unlit" not in str(row.notes)
    rec = json.loads(next((tmp_path / "run" / "records").rglob("*.json")).read_text())
    assert rec["meta"]["gt_appearance"] == "cycles-trellis"
    assert rec["meta"]["appearance_render"] == "mesh-unlit"
    assert rec["meta"]["appearance_backend"] in ("moderngl", "numpy")
    assert (tmp_path / "run" / "sheets" / "small-cycles" / f"{OBJECT}.png").is_file()
    # the same run on the unlit variant is marked in its notes
    unlit = run(RunConfig(out=str(tmp_path / "run2"), protocol=proto + "+raster-unlit",
                          methods=["oracle"], data=str(gso_root), jobs=1, cache=str(tmp_path / "c"),
                          sheets=0, object_ids=[OBJECT]), progress=False)
    row2 = pd.read_csv(unlit).iloc[0]
    assert row2.gt_renderer == "raster-unlit" and "not the papers' lit Cycles" in row2.notes
    assert row2.protocol == "small-cycles+raster-unlit"


def _surface_gaussians(mesh, n: int = 4000, seed: int = 0):
    """Gaussians on the GT surface coloured by the texture (a TRELLIS-like generation)."""
    import trimesh

    from bench.inputs.gaussians import Gaussians

    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    pts, _ = trimesh.sample.sample_surface(tm, n, seed=seed)
    rng = np.random.default_rng(seed)
    rgb = rng.uniform(0.2, 0.8, (n, 3))
    return Gaussians(xyz=pts.astype(np.float32), opacity=np.full(n, 0.9, np.float32),
                     scales=np.full((n, 3), 0.01, np.float32),
                     rotations=np.tile(np.array([1, 0, 0, 0], np.float32), (n, 1)),
                     sh_dc=((rgb - 0.5) / 0.28209479177387814).astype(np.float32))


def test_a_generation_with_gaussians_is_measured_on_its_gaussian_renders(tmp_path, asset):
    from bench.cases.case import build_case
    from bench.render import render
    from bench.render.splat import render_gaussians
    from bench.run.appearance import AppearanceConfig, AppearanceSuite
    from bench.run.measure import Reference, measure

    protocol = load_protocol(_small_cycles_protocol(tmp_path, "raster-unlit"))
    config = RunConfig(out=str(tmp_path / "run"), protocol=protocol.name, methods=[], jobs=1)
    case = build_case(asset, protocol, 1)
    gt_inputs = render(asset.mesh, [v.camera for v in case.views], protocol.background)
    suite = AppearanceSuite(AppearanceConfig(fid_extractors=[], lpips_nets=[], clip_score=False))
    ref = Reference("moderngl", suite, np.zeros((8, 3)), {})
    g = _surface_gaussians(asset.mesh)
    with_g = measure(protocol, config, ref, case, gt_inputs, asset.mesh, g)
    without = measure(protocol, config, ref, case, gt_inputs, asset.mesh)
    assert with_g.appearance_render == "gaussians" and without.appearance_render == "mesh-unlit"
    assert with_g.appearance_backend == "numba"  # no CUDA here
    assert without.appearance_backend in ("moderngl", "numpy")
    expect = render_gaussians(g, protocol.eval_rig().cameras, protocol.background).rgb
    np.testing.assert_array_equal(with_g.rig_rgb, expect)
    # the mesh is the GT itself: unlit, it is perfect at the input views; the random-colour
    # Gaussians are not. Geometry comes from the mesh either way (same cloud).
    assert without.metrics["psnr_masked"] == np.inf and with_g.metrics["psnr_masked"] < 30
    np.testing.assert_array_equal(with_g.cloud, without.cloud)


def test_render_command_writes_gt_and_generation_views(tmp_path, gso_root, asset):
    from bench.inputs.gaussians import write_gaussian_ply

    proto = _small_cycles_protocol(tmp_path)
    ply = tmp_path / "g.ply"
    write_gaussian_ply(ply, _surface_gaussians(asset.mesh))
    out = tmp_path / "look"
    r = subprocess.run([sys.executable, "-m", "bench", "render", "--data", str(gso_root), "--protocol", proto,
                        "--object", OBJECT, "--out", str(out), "--gaussians", str(ply), "--ply-frame", "z-up",
                        "--cache", str(tmp_path / "c")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    info = json.loads((out / "renders.json").read_text())
    assert info["gt"]["renderer"] == "cycles-trellis" and info["generation"]["renderer"] == "gaussians"
    from PIL import Image

    for part in ("gt", "generation"):
        views = sorted((out / part).glob("view_*.png"))
        assert len(views) == 2 and Image.open(views[0]).size == (64, 64)
    # the GT PNG is the cached render, 8-bit rounded
    from bench.run.gtcache import gt_appearance_rgb

    config = RunConfig(out=str(tmp_path / "x"), protocol=proto, methods=[], cache=str(tmp_path / "c"), jobs=1)
    rgb = gt_appearance_rgb(config, load_protocol(proto), asset, "gso")
    png = np.asarray(Image.open(out / "gt" / "view_1.png"), np.float32) / 255
    assert np.abs(png - rgb[1]).max() <= 0.5 / 255 + 1e-6
    bad = subprocess.run([sys.executable, "-m", "bench", "render", "--data", str(gso_root),
                          "--protocol", proto, "--object", "No_Such_Object", "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "No_Such_Object" in bad.stderr


SPAWN = '''
import multiprocessing as mp

def child():
    from bench.render.cycles import blender_version
    return blender_version()

if __name__ == "__main__":
    import bpy  # the parent imports Blender first: its script folders join sys.path
    with mp.get_context("spawn").Pool(1) as pool:
        print("child", pool.apply(child))
'''


def test_a_spawned_worker_of_a_process_that_imported_bpy_still_finds_blender(tmp_path):
    """Importing bpy puts Blender's scripts/modules (holding a bpy/ package) on sys.path; spawned
    workers inherit it, and a plain `import bpy` there found that package ("No module named
    '_bpy'"): the drift gate's workers failed so. bench.render.cycles drops those entries first."""
    script = tmp_path / "spawn.py"
    script.write_text(SPAWN)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                       cwd=str(Path(__file__).resolve().parents[1]))
    assert r.returncode == 0 and "child 5.0.1" in r.stdout, r.stderr[-2000:]
