"""bench.metrics.catalog: the one table of metric columns (labels, units, directions, marks)."""

from __future__ import annotations

from bench.metrics import HIGHER_IS_BETTER, catalog


def test_directions_are_the_catalogs():
    assert HIGHER_IS_BETTER is catalog.HIGHER_IS_BETTER
    assert list(HIGHER_IS_BETTER) == list(catalog.METRICS)
    assert HIGHER_IS_BETTER["psnr_masked"] and not HIGHER_IS_BETTER["mmd_cd"]


def test_headers():
    assert catalog.header("mmd_cd") == "MMD (‰)" and catalog.compact("mmd_cd") == "MMD ‰"
    assert catalog.header("kid_mobilenet") == "KID-MobileNet (%)†"
    assert catalog.compact("kid_mobilenet") == "KID-MobileNet %†"
    assert catalog.header("psnr_masked") == "PSNR-m (dB)" and catalog.compact("psnr_masked") == "PSNR-m"


def test_non_standard_marks_agree_with_the_network_registries():
    from bench.metrics.features import EXTRACTORS, metric_key
    from bench.metrics.lpips import LPIPS_NETS

    for name, info in EXTRACTORS.items():
        for col in catalog.fid_metric_names(name):
            if col in catalog.METRICS:
                assert bool(catalog.METRICS[col].non_standard) == (not info.standard), col
            assert (col in catalog.non_standard_metrics()) == (not info.standard), col
        assert catalog.fid_metric_names(name)[0] == f"fid_{metric_key(name)}"
    for net, info in LPIPS_NETS.items():
        assert catalog.lpips_metric_name(net) == info.metric
        assert bool(catalog.METRICS[info.metric].non_standard) == (not info.standard), net
