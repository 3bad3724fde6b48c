"""A static HTML report of one or more run directories.

    write_html_report([Path("runs/a"), Path("runs/b")], Path("reports/index.html"))

writes index.html and, next to it, index_assets/ with copies of every contact sheet
(sheets/<protocol>/<object>.png of each run) and the plots (PNG, matplotlib Agg). The page
references its images by relative paths only, so the HTML file and its assets folder can be moved
or archived together. Sections: the runs, the leaderboard per protocol (arrows give each metric's
direction from bench.metrics.HIGHER_IS_BETTER; the best value within a (protocol, views,
occlusion degree) group is bold, among the rows scored on the protocol's full reference set only,
and only against rows of the same reference set (bench.report.refset; an incomplete row is marked
* with a note and never bold); NaN is shown as "—" with the row's `notes` as tooltip and
footnote), an optional table of published numbers, plots of each metric against the number of
views and, for occlusion sweeps, against the occlusion degree (bench.report.plots), and per-object
galleries.

The page carries a small script that, once loaded, counts images that failed to decode and writes
the counts into the hidden element #img-check (data-total, data-broken); tests read it back with
`chromium --headless --dump-dom`.

Longer than 350 lines because the page's CSS and image-check script are kept here as strings
(~45 lines) beside the markup that uses them; the plots live in bench.report.plots.
"""

from __future__ import annotations

import html
import math
import shutil
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from bench.metrics.catalog import HIGHER_IS_BETTER
from bench.report.plots import _arrow, _is_nan, _metric_columns, _occ_label, make_plots
from bench.report.refset import rank_keys, rankable

DASH = "—"

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em 2em; color: #222;
       background: #fff; }
h1 { margin-bottom: .2em; }
h2 { border-bottom: 2px solid #ccc; padding-bottom: .2em; margin-top: 1.6em; }
.meta { color: #666; font-size: .9em; }
table { border-collapse: collapse; margin: .6em 0 1em; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: bold; background: #eef7ee; }
td.na { color: #999; text-align: center; cursor: help; }
tr.group-start td { border-top: 2px solid #888; }
caption { caption-side: top; text-align: left; font-weight: bold; padding: .3em 0; }
.published caption { color: #8a4b00; }
ol.notes { font-size: .85em; color: #555; max-width: 110ch; }
.plots, .gallery { display: flex; flex-wrap: wrap; gap: 1em; }
.plots figure { margin: 0; }
.plots img { width: 460px; border: 1px solid #ddd; }
.gallery figure { margin: 0; width: 380px; }
.gallery img { width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .85em; color: #444; margin-top: .3em; overflow-wrap: anywhere; }
table.runs { max-width: 100%; }
table.runs td { overflow-wrap: anywhere; }
"""

_IMG_CHECK = """
<div id="img-check" hidden></div>
<script>
window.addEventListener("load", function () {
  var imgs = document.images, broken = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (!imgs[i].complete || imgs[i].naturalWidth === 0) broken++;
  }
  var el = document.getElementById("img-check");
  el.setAttribute("data-total", String(imgs.length));
  el.setAttribute("data-broken", String(broken));
  el.textContent = "images " + imgs.length + ", broken " + broken;
});
</script>
"""


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def format_value(x, fmt: str = "{:.4g}") -> str:
    """Display string of one number: NaN -> "—", ±inf -> "∞" / "−∞"."""
    if _is_nan(x):
        return DASH
    if isinstance(x, int | np.integer) and not isinstance(x, bool):
        return str(int(x))
    try:
        xf = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isinf(xf):
        return "∞" if xf > 0 else "−∞"
    return fmt.format(xf)


def best_mask(df: pd.DataFrame, metric: str, keys: list[str]) -> pd.Series:
    """True where a row holds the best value of `metric` within its group of `keys` and reference
    set (`reference_set` when present; ties all True). Only rows scored on the full reference set
    (`complete`, bench.report.refset) take part: an incomplete row is never best. A group needs at
    least two non-NaN values to have a best one."""
    higher = HIGHER_IS_BETTER.get(metric, True)
    out = pd.Series(False, index=df.index)
    if metric not in df.columns:
        return out
    values = pd.to_numeric(df[metric], errors="coerce").where(rankable(df))
    for _, idx in df.groupby(rank_keys(df, keys), dropna=False, sort=False).groups.items():
        v = values.loc[idx].dropna()
        if len(v) < 2:
            continue
        target = v.max() if higher else v.min()
        out.loc[v.index[v == target]] = True
    return out


class _Notes:
    """Numbered, de-duplicated footnotes for one table."""

    def __init__(self, prefix: str):
        self.prefix, self.items = prefix, {}

    def ref(self, text: str) -> tuple[str, str]:
        """(anchor id, number) of the footnote for `text`."""
        if text not in self.items:
            self.items[text] = len(self.items) + 1
        n = self.items[text]
        return f"{self.prefix}-{n}", str(n)

    def render(self) -> str:
        if not self.items:
            return ""
        lis = "".join(f'<li id="{esc(self.prefix)}-{n}">{esc(t)}</li>'
                      for t, n in self.items.items())
        return f'<ol class="notes">{lis}</ol>'


def note_for(notes: str, column: str, columns=()) -> str:
    """The reason a NaN `column` cell shows, from the row's `notes` ("; "-joined parts, metric
    parts reading "<metric, metric...>[ missing]: reason"): the parts whose head names `column`;
    failing that, the parts that name no column of `columns` (reasons for the whole row); "" when
    every part names other columns only (nothing was recorded for this one: e.g. a network the
    run did not ask for)."""
    def head(part: str) -> list[str]:
        return [m.strip() for m in part.split(": ", 1)[0].removesuffix(" missing").split(",")]

    parts = [p for p in notes.split("; ") if p]
    mine = [p for p in parts if column in head(p)]
    if mine:
        return "; ".join(mine)
    known = set(columns)
    general = [p for p in parts if ": " not in p or not set(head(p)) <= known]
    return "; ".join(general)


def _nan_cell(note: str, notes: _Notes) -> str:
    if not note:
        return f'<td class="na" title="not available">{DASH}</td>'
    anchor, n = notes.ref(note)
    return (f'<td class="na" title="{esc(note)}">{DASH}<sup><a href="#{esc(anchor)}">{esc(n)}</a>'
            "</sup></td>")


def leaderboard_table(df: pd.DataFrame, protocol: str, table_id: str) -> str:
    """One protocol's leaderboard as an HTML table plus footnotes."""
    df = df[df["protocol"] == protocol].copy()
    has_occ = "occlusion_degree" in df.columns and df["occlusion_degree"].notna().any()
    has_run = "run" in df.columns and df["run"].nunique() > 1
    if "occlusion_degree" not in df.columns:
        df["occlusion_degree"] = np.nan
    keys = ["protocol", "views", "occlusion_degree"]
    df = df.sort_values(["views", "occlusion_degree", "method"] + (["run"] if has_run else []),
                        na_position="first", kind="stable")
    metrics = _metric_columns(df)
    best = {m: best_mask(df, m, keys) for m, _, _ in metrics}
    notes = _Notes(f"{table_id}-note")
    head = ["method"] + (["run"] if has_run else []) + ["views"] + (["occlusion"] if has_occ else [])
    head += ["n"] if "n" in df.columns else []
    head += ["reference objects"] if "n_reference" in df.columns else []
    complete = rankable(df)
    cells = "".join(f"<th>{esc(h)}</th>" for h in head)
    cells += "".join(f'<th title="{esc(col)}">{esc(label + _arrow(col))}</th>'
                     for col, label, _ in metrics)
    rows, last_group = [], None
    for i, (_, row) in enumerate(df.iterrows()):
        group = (row["views"], _occ_label(row["occlusion_degree"]))
        cls = ' class="group-start"' if i > 0 and group != last_group else ""
        last_group = group
        note = "" if _is_nan(row.get("notes")) else str(row.get("notes", ""))
        if complete.loc[row.name]:
            tds = [f"<td>{esc(row['method'])}</td>"]
        else:  # not scored on the full reference set: marked, with the note naming what is missing
            why = next((p for p in note.split("; ") if p.startswith("incomplete:")),
                       "incomplete: not scored on the full reference set; not ranked")
            anchor, n = notes.ref(why)
            tds = [f'<td class="incomplete" title="{esc(why)}">{esc(row["method"])} *'
                   f'<sup><a href="#{esc(anchor)}">{esc(n)}</a></sup></td>']
        if has_run:
            tds.append(f"<td>{esc(row['run'])}</td>")
        tds.append(f'<td class="num">{esc(format_value(row["views"]))}</td>')
        if has_occ:
            tds.append(f'<td class="num">{esc(_occ_label(row["occlusion_degree"]) or DASH)}</td>')
        if "n" in df.columns:
            tds.append(f'<td class="num">{esc(format_value(row["n"]))}</td>')
        if "n_reference" in df.columns:
            tds.append(f'<td class="num">{esc(format_value(row["n_reference"]))}</td>')
        for col, _, fmt in metrics:
            x = row[col]
            if _is_nan(x):
                tds.append(_nan_cell(note_for(note, col, df.columns), notes))
                continue
            text = format_value(float(x), fmt)
            std = row.get(f"{col}_std")
            if std is not None and not _is_nan(std):
                text += f" ± {format_value(float(std), fmt)}"
            klass = "num best" if best[col].loc[row.name] else "num"
            tds.append(f'<td class="{klass}">{esc(text)}</td>')
        rows.append(f"<tr{cls}>{''.join(tds)}</tr>")
    renderers = sorted({r for x in df.get("gt_renderer", pd.Series(dtype=str)).dropna()
                        for r in str(x).split(",") if r})
    caption = protocol + (f" — GT renders: {', '.join(renderers)}" if renderers else "")
    if "raster-unlit" in renderers:
        caption += " ‡ (unlit rasterizer, not the papers' lit Cycles: image metrics not comparable)"
    return (f'<table id="{esc(table_id)}" class="leaderboard"><caption>{esc(caption)}</caption>'
            f"<thead><tr>{cells}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            + notes.render() + _non_standard_footnote(metrics))


def _non_standard_footnote(metrics) -> str:
    from bench.metrics.catalog import NON_STANDARD_FOOTNOTE

    if any("†" in label for _, label, _ in metrics):
        return f'<p class="nonstandard">{esc(NON_STANDARD_FOOTNOTE)}</p>'
    return ""


def published_table(published: pd.DataFrame) -> str:
    """Any DataFrame (expected columns method, views, metric, ours, published, source), verbatim."""
    if published.empty:
        return ('<p class="note">No published number matches these methods and settings '
                "(the papers report none for them).</p>")
    head = "".join(f"<th>{esc(c)}</th>" for c in published.columns)
    rows = []
    for _, row in published.iterrows():
        tds = []
        for c in published.columns:
            x = row[c]
            if _is_nan(x) or isinstance(x, int | float | np.number) and not isinstance(x, bool):
                tds.append(f'<td class="num">{esc(format_value(x))}</td>')
            else:
                tds.append(f"<td>{esc(x)}</td>")
        rows.append(f"<tr>{''.join(tds)}</tr>")
    return ('<table class="published"><caption>Published numbers, as printed in the papers '
            "(not measured by this harness), next to ours</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _rel_src(path: Path, base: Path) -> str:
    """URL-quoted relative path of `path` from directory `base` (both absolute)."""
    rel = Path(path).resolve().relative_to(base.resolve())
    return quote(rel.as_posix())


def _run_labels(run_dirs: list[Path]) -> list[str]:
    labels = []
    for i, d in enumerate(run_dirs):
        name = Path(d).resolve().name or f"run{i}"
        labels.append(name if name not in labels else f"{name}-{i}")
    return labels


def _runs_section(run_dirs: list[Path], labels: list[str]) -> str:
    import json

    rows = []
    for d, label in zip(run_dirs, labels):
        info = {}
        if (Path(d) / "run.json").is_file():
            try:
                info = json.loads((Path(d) / "run.json").read_text())
            except (OSError, ValueError):
                info = {}
        cfg = info.get("config", {})
        prov = info.get("provenance", {})
        rows.append("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in [
            label, str(Path(d).resolve()), cfg.get("protocol", ""), ", ".join(cfg.get("methods", [])),
            len(info.get("objects", [])) or "", info.get("protocol_hash", ""),
            prov.get("harness", ""), str(prov.get("git", ""))[:12]]) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ["run", "directory", "protocol", "methods", "objects",
                                             "protocol hash", "harness", "git"])
    return f'<table class="runs"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def load_leaderboards(run_dirs: list[Path]) -> pd.DataFrame:
    """All runs' leaderboard.csv, concatenated, with a `run` column."""
    frames = []
    for d, label in zip(run_dirs, _run_labels(run_dirs)):
        path = Path(d) / "leaderboard.csv"
        if not path.is_file():
            raise FileNotFoundError(f"no leaderboard.csv in {d} (run `amodal-bench run` first)")
        df = pd.read_csv(path, keep_default_na=True)
        df["run"] = label
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    if "notes" in df.columns:
        notes = df["notes"].astype(object)
        df["notes"] = notes.where(notes.notna(), "").astype(str)
    return df


def render_html(df: pd.DataFrame, run_dirs: list[Path], base: Path,
                plots: list[tuple[Path, str]], sheets: list[tuple[str, str, str, Path]],
                published: pd.DataFrame | None = None, title: str = "amodal-bench report") -> str:
    """The page. sheets: [(run label, protocol, object id, copied PNG path)]; base: HTML folder."""
    labels = _run_labels(run_dirs)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta">generated {esc(when)} from {len(run_dirs)} run(s): '
        f"{esc(', '.join(labels))}</p>",
        '<h2 id="runs">Runs</h2>', _runs_section(run_dirs, labels),
        '<h2 id="leaderboard">Leaderboard</h2>',
        '<p class="meta">↑ higher is better, ↓ lower is better; bold: best within the same '
        "protocol, number of views, occlusion degree and reference set, among the rows scored on "
        "every reference object of their protocol (a row marked * is not, and is never bold). "
        "MMD is ×1000 (‰), COV in %. "
        f"{DASH}: not available (hover or see the numbered note).</p>",
    ]
    for i, protocol in enumerate(sorted(df["protocol"].astype(str).unique())):
        parts.append(leaderboard_table(df, protocol, f"lb{i}"))
    if published is not None:
        parts += ['<h2 id="published">Published numbers (from the papers)</h2>',
                  published_table(published)]
    if plots:
        parts.append('<h2 id="plots">Plots</h2><div class="plots">')
        for path, caption in plots:
            src = _rel_src(path, base)
            parts.append(f'<figure><img src="{esc(src)}" alt="{esc(caption)}">'
                         f"<figcaption>{esc(caption)}</figcaption></figure>")
        parts.append("</div>")
    if sheets:
        parts.append('<h2 id="galleries">Per-object galleries</h2>')
        parts.append('<p class="meta">Each contact sheet: the input views (RGB, visibility mask, '
                     "occlusion mask, overlay), the ground-truth rig renders by the protocol's GT "
                     "renderer (named in the row label: lit Cycles for the paper protocols), then each "
                     "method's rig renders as measured (its Gaussians splatted when it has them, else "
                     "its mesh unlit). Click a sheet for full size.</p>")
        multi = len(run_dirs) > 1
        groups: dict[tuple[str, str], list] = {}
        for run, protocol, obj, path in sheets:
            groups.setdefault((run, protocol), []).append((obj, path))
        for (run, protocol), items in groups.items():
            heading = f"{protocol} ({run})" if multi else protocol
            parts.append(f"<h3>{esc(heading)}</h3><div class=\"gallery\">")
            for obj, path in items:
                src = esc(_rel_src(path, base))
                parts.append(f'<figure><a href="{src}"><img src="{src}" alt="{esc(obj)}"></a>'
                             f"<figcaption>{esc(obj)} — {esc(protocol)}</figcaption></figure>")
            parts.append("</div>")
    parts += [_IMG_CHECK, "</body></html>"]
    return "\n".join(parts)


def write_html_report(run_dirs: list[Path], out_html: Path,
                      published: pd.DataFrame | None = None,
                      leaderboard: pd.DataFrame | None = None) -> Path:
    """Write the report page `out_html` and its assets folder `<stem>_assets/` next to it (copies
    of the contact sheets, plot PNGs); returns out_html.

    leaderboard: the rows to show, with `run` = the run directory as given (bench.report.aggregate.
    merge_runs, re-aggregated from the records); default: each run's stored leaderboard.csv."""
    run_dirs = [Path(d) for d in run_dirs]
    if not run_dirs:
        raise ValueError("no run directories given")
    out_html = Path(out_html)
    base = out_html.parent.resolve()
    base.mkdir(parents=True, exist_ok=True)
    assets = base / f"{out_html.stem}_assets"
    assets.mkdir(parents=True, exist_ok=True)
    if leaderboard is None:
        df = load_leaderboards(run_dirs)
    else:
        label_of = {str(d): label for d, label in zip(run_dirs, _run_labels(run_dirs))}
        df = leaderboard.assign(run=[label_of.get(str(Path(r)), str(r))
                                     for r in leaderboard["run"]])
        if "notes" in df.columns:
            notes = df["notes"].astype(object)
            df["notes"] = notes.where(notes.notna(), "").astype(str)
    plots = make_plots(df, assets)
    sheets = []
    for i, (d, label) in enumerate(zip(run_dirs, _run_labels(run_dirs))):
        for src in sorted((d / "sheets").glob("*/*.png")):
            protocol, obj = src.parent.name, src.stem
            dst = assets / "sheets" / f"{i:02d}-{label}" / protocol / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
            sheets.append((label, protocol, obj, dst))
    page = render_html(df, run_dirs, base, plots, sheets, published)
    tmp = out_html.with_name(f".{out_html.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out_html)
    return out_html
