"""The report's one HTML page: inline CSS, plots and thumbnails as files beside it, every text escaped."""

from __future__ import annotations

import dataclasses
import html
from typing import Any

from transforms.flags import FLAG_NAMES
from transforms.metrics import format_metric

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:0 1.2em;
color:#222}
h1{font-size:1.5em;margin:.6em 0 .2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.verdict{padding:.8em 1em;border-radius:6px;font-size:1.15em;font-weight:600;margin:.6em 0}
.alert{background:#fdecea;border:2px solid #c0392b;color:#8e1b10}.clear{background:#eaf7ee;border:2px solid #2e8b57;
color:#1d5c39}
.headline{display:flex;gap:1em;flex-wrap:wrap}.headline div{background:#f4f6f8;border-radius:6px;padding:.5em .9em}
.headline b{display:block;font-size:1.3em}
table{border-collapse:collapse;font-size:.85em;margin:.4em 0}td,th{border:1px solid #ddd;padding:.25em .5em;
text-align:right}th{background:#f4f6f8}td:first-child,th:first-child{text-align:left}
.gallery{display:flex;flex-wrap:wrap;gap:.6em}.gallery figure{margin:0;width:170px;font-size:.7em;word-break:break-all}
.gallery img{width:160px;border:1px solid #ccc}.plot{max-width:100%}.muted{color:#777}
"""


@dataclasses.dataclass(frozen=True)
class Thumbnail:
    """One gallery entry: the record's image path, its numbers, and where the thumbnail and heatmap are."""

    image_path: str
    caption: str
    thumbnail: str | None  # relative to the report; None when the run wrote no heatmap
    heatmap_href: str | None


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _interval(value: tuple[float, float] | list[float] | None) -> str:
    return "" if value is None else f" <span class=muted>[{value[0]:.3f}, {value[1]:.3f}]</span>"


def metrics_table(metrics: dict[str, Any]) -> str:
    """Both levels, every group: n, accuracy, sensitivity, specificity, AUROC and kappa with 95 % intervals."""
    head = ("<tr><th>level / group</th><th>n</th><th>abnormal</th><th>accuracy</th><th>sensitivity</th>"
            "<th>specificity</th><th>AUROC [95% CI]</th><th>Cohen's kappa [95% CI]</th><th>notes</th></tr>")
    rows = []
    for level in ("study", "image"):
        for group, m in metrics[level].items():
            notes = "; ".join(f"{k}: {v}" for k, v in m["notes"].items())
            rows.append(
                f"<tr><td>{_e(level)} / {_e(group)}</td><td>{m['n']}</td><td>{m['n_abnormal']}</td>"
                f"<td>{format_metric(m['accuracy'])}</td><td>{format_metric(m['sensitivity'])}</td>"
                f"<td>{format_metric(m['specificity'])}</td>"
                f"<td>{format_metric(m['auroc'])}{_interval(m['auroc_ci95'])}</td>"
                f"<td>{format_metric(m['kappa'])}{_interval(m['kappa_ci95'])}</td><td>{_e(notes)}</td></tr>"
            )
    return f"<table>{head}{''.join(rows)}</table>"


def key_value_table(pairs: list[tuple[str, Any]]) -> str:
    """A two-column table of escaped names and values."""
    return "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in pairs) + "</table>"


def flags_table(counts: dict[str, int], by_part: dict[str, dict[str, int]], ok: int) -> str:
    """Flag counts overall (with share of audited images) and per body part."""
    parts = sorted(by_part)
    head = "<tr><th>flag</th><th>images</th><th>share</th>" + "".join(f"<th>{_e(p)}</th>" for p in parts) + "</tr>"
    rows = [
        f"<tr><td>{_e(name)}</td><td>{counts[name]}</td><td>{counts[name] / ok if ok else 0:.1%}</td>"
        + "".join(f"<td>{by_part[p][name]}</td>" for p in parts) + "</tr>"
        for name in FLAG_NAMES
    ]
    return f"<table>{head}{''.join(rows)}</table>"


def methods_table(methods: list[dict[str, Any]]) -> str:
    """Per explanation method: ok rows, flag counts, means of extra numeric columns."""
    if not methods:
        return ""
    extra = sorted({column for m in methods for column in m["means"]})
    head = ("<tr><th>method</th><th>ok</th>" + "".join(f"<th>{_e(n)}</th>" for n in FLAG_NAMES)
            + "".join(f"<th>mean {_e(c)}</th>" for c in extra) + "</tr>")
    rows = [
        f"<tr><td>{_e(m['method'])}</td><td>{m['ok']}</td>"
        + "".join(f"<td>{m['flags'][n]}</td>" for n in FLAG_NAMES)
        + "".join(f"<td>{format_metric(m['means'][c])}</td>" for c in extra) + "</tr>"
        for m in methods
    ]
    return f"<h2>Per explanation method</h2><table>{head}{''.join(rows)}</table>"


def gallery(title: str, entries: list[Thumbnail]) -> str:
    """A titled row of thumbnails, each linking to its full heatmap and naming its image path."""
    if not entries:
        return f"<h3>{_e(title)}</h3><p class=muted>none</p>"
    figures = []
    for entry in entries:
        image = (f'<img src="{_e(entry.thumbnail)}" alt="heatmap of {_e(entry.image_path)}">'
                 if entry.thumbnail else "<span class=muted>(no heatmap)</span>")
        if entry.heatmap_href and entry.thumbnail:
            image = f'<a href="{_e(entry.heatmap_href)}">{image}</a>'
        figures.append(f"<figure>{image}<figcaption>{_e(entry.image_path)}<br>{_e(entry.caption)}</figcaption>"
                       "</figure>")
    return f"<h3>{_e(title)} ({len(entries)})</h3><div class=gallery>{''.join(figures)}</div>"


def render_page(
    *,
    verdict: str,
    alert: bool,
    headline: list[tuple[str, str]],
    summary: list[tuple[str, Any]],
    errors: list[tuple[str, int]],
    metrics: dict[str, Any],
    flags: str,
    methods: str,
    plots: list[tuple[str, str]],
    galleries: list[tuple[str, list[Thumbnail]]],
) -> str:
    """The whole page; the verdict and headline numbers come first, on the first screen."""
    headline_html = "".join(f"<div>{_e(name)}<b>{_e(value)}</b></div>" for name, value in headline)
    error_html = key_value_table(errors) if errors else "<p class=muted>no errors</p>"
    plot_html = "".join(f'<h3>{_e(title)}</h3><img class=plot src="{_e(src)}" alt="{_e(title)}">'
                        for title, src in plots)
    gallery_html = "".join(gallery(title, entries) for title, entries in galleries)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>cam-audit report</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>
<body>
<h1>cam-audit report</h1>
<div class="verdict {'alert' if alert else 'clear'}">{_e(verdict)}</div>
<div class=headline>{headline_html}</div>
<h2>Run</h2>{key_value_table(summary)}
<h3>Errors by reason</h3>{error_html}
<h2>Metrics</h2>
<p>Images: abnormal when P(abnormal) &gt; {metrics['image_threshold']}. Studies: MURA's rule, the mean of the
images' P(abnormal) &gt; {metrics['study_threshold']}. 95 % intervals: percentile bootstrap,
{metrics['bootstrap']['resamples']} resamples, seed {metrics['bootstrap']['seed']}.</p>
{metrics_table(metrics)}
<h2>Flags</h2>{flags}
{methods}
<h2>Plots</h2>{plot_html}
<h2>Galleries</h2>{gallery_html}
</body></html>
"""
