"""The one table of metric columns: label, unit, direction and whether a metric is non-standard.

Every leaderboard metric column has one `Metric` entry in `METRICS` (in the order reports and
drift checks walk them). Renderers read their headers from here:

- `header(col)`: paper-style tables (bench.report.tables): "MMD (‰)", "KID-MobileNet (%)†";
- `compact(col)`: the HTML page and its plots: "MMD ‰", "KID-MobileNet %†";
- `HIGHER_IS_BETTER` (also importable from bench.metrics): each column's direction, for arrows,
  best-value marks, versus tables and drift checks.

A non-standard metric (computed with a substitute network) carries the reason in
`Metric.non_standard`, is marked `NON_STANDARD_MARK` in headers (explained by
`NON_STANDARD_FOOTNOTE`) and is named in the leaderboard `notes` (`non_standard_metrics`).

Also the naming helpers of the image metrics (`fid_metric_names`, `lpips_metric_name`) and the
note texts of missing / non-standard metrics (`grouped_notes`, `missing_notes`). Pure data and
string helpers: nothing here imports torch or touches a file (the two naming helpers look the
network registries up lazily).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HIGHER_IS_BETTER", "METRICS", "NON_STANDARD_FOOTNOTE", "NON_STANDARD_MARK", "Metric", "compact",
           "fid_metric_names", "grouped_notes", "header", "lpips_metric_name", "missing_notes",
           "non_standard_metrics"]

NON_STANDARD_MARK = "†"
# a leaderboard row whose GT appearance came from the fast unlit rasterizer (gt_appearance
# raster-unlit) instead of a paper's lit Cycles renders
RASTER_UNLIT_NOTE = ("fid/kid/clip_score: GT rendered unlit by the rasterizer (gt_appearance "
                     "raster-unlit), not the papers' lit Cycles renders: not comparable with "
                     "published numbers")
NON_STANDARD_FOOTNOTE = ("† computed with a substitute network (MobileNetV2 ImageNet features): "
                         "not comparable with any published number.")

_MOBILENET_FID = ("NON-STANDARD, mobilenet features instead of Inception-v3: not comparable with any "
                  "published FID/KID")
_MOBILENET_LPIPS = ("NON-STANDARD, LPIPS baseline form (unit weights) on mobilenet features instead of "
                    "AlexNet with learned heads: not comparable with published LPIPS")


@dataclass(frozen=True)
class Metric:
    """One metric column. `label` is its name in headers, `unit` the unit of the stored value ("" for
    none; MMD is stored per mille, COV / KID / CLIP / PCS in percent), `higher_is_better` its
    direction, `non_standard` why it is not comparable with published numbers ("" when it is).
    `compact_label` overrides the compact form where the page has always printed it differently."""

    label: str
    unit: str
    higher_is_better: bool
    non_standard: str = ""
    compact_label: str | None = None

    @property
    def mark(self) -> str:
        return NON_STANDARD_MARK if self.non_standard else ""

    @property
    def header(self) -> str:
        """Paper-table header: label (unit) and the non-standard mark."""
        return self.label + (f" ({self.unit})" if self.unit else "") + self.mark

    @property
    def compact(self) -> str:
        """HTML page / plot header: label unit and the non-standard mark."""
        if self.compact_label is not None:
            return self.compact_label
        return self.label + (f" {self.unit}" if self.unit else "") + self.mark


METRICS: dict[str, Metric] = {
    "psnr_masked": Metric("PSNR-m", "dB", True, compact_label="PSNR-m"),
    "ssim_masked": Metric("SSIM-m", "", True),
    "mmd_cd": Metric("MMD", "‰", False),
    "cov_cd": Metric("COV", "%", True),
    "mmd_cd_aligned": Metric("MMD-aligned", "‰", False),
    "cov_cd_aligned": Metric("COV-aligned", "%", True),
    "pfid_pointnet": Metric("P-FID", "", False),
    "pkid_pointnet": Metric("P-KID", "", False),
    "success_rate": Metric("Success", "", True, compact_label="success"),
    "fid_inception": Metric("FID", "", False),
    "kid_inception": Metric("KID", "%", False),
    "fid_mobilenet": Metric("FID-MobileNet", "", False, _MOBILENET_FID),
    "kid_mobilenet": Metric("KID-MobileNet", "%", False, _MOBILENET_FID),
    "clip_score": Metric("CLIP", "%", True),
    "pcs": Metric("PCS", "%", True, compact_label="PCS"),
    "lpips_masked": Metric("LPIPS-m", "", False),
    "lpips_masked_vgg": Metric("LPIPS-m-VGG", "", False),
    "lpips_masked_mobilenet": Metric("LPIPS-m-MobileNet", "", False, _MOBILENET_LPIPS),
}

HIGHER_IS_BETTER: dict[str, bool] = {col: m.higher_is_better for col, m in METRICS.items()}


def header(column: str) -> str:
    """Paper-table header of a metric column, e.g. "MMD (‰)"."""
    return METRICS[column].header


def compact(column: str) -> str:
    """HTML page / plot header of a metric column, e.g. "MMD ‰"."""
    return METRICS[column].compact


def fid_metric_names(extractor: str) -> list[str]:
    """The set-level columns of a feature extractor: fid_<key>, kid_<key>, kid_<key>_std."""
    from bench.metrics.features import metric_key

    k = metric_key(extractor)
    return [f"fid_{k}", f"kid_{k}", f"kid_{k}_std"]


def lpips_metric_name(net: str) -> str:
    """The column of the masked LPIPS with backbone `net`."""
    from bench.metrics.lpips import LPIPS_NETS

    return LPIPS_NETS[net].metric


def non_standard_metrics() -> dict[str, str]:
    """metric name -> why it is not comparable with published numbers (short, for notes). A
    kid_<key> column's spread kid_<key>_std shares its mark."""
    out = {}
    for col, m in METRICS.items():
        if m.non_standard:
            out[col] = m.non_standard
            if col.startswith("kid_"):
                out[f"{col}_std"] = m.non_standard
    return out


def grouped_notes(reasons: dict[str, str], suffix: str = "") -> list[str]:
    """{metric: reason} -> one line per reason naming all its metrics."""
    by_reason: dict[str, list[str]] = {}
    for metric, reason in reasons.items():
        by_reason.setdefault(reason, []).append(metric)
    return [f"{', '.join(ms)}{suffix}: {reason}" for reason, ms in by_reason.items()]


def missing_notes(missing: dict[str, str]) -> list[str]:
    """{metric: why its network is missing} -> note lines "<metrics> missing: <why>"."""
    return grouped_notes(missing, " missing")
