"""The report's plots as PNG bytes (matplotlib, headless Agg backend): ROC, calibration, where the CAM peaks."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from transforms.metrics import roc_curve_points

PEAK_BINS = 10  # density grid over normalised image coordinates


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display: render to memory only
    import matplotlib.pyplot as plt

    return plt


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    _pyplot().close(figure)
    return buffer.getvalue()


def roc_png(curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]) -> bytes:
    """ROC curves, one panel per level ('image', 'study'), one line per body part: {level: {group: (y, s)}}."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(curves), figsize=(5.2 * len(curves), 4.6), squeeze=False)
    for axis, (level, groups) in zip(axes[0], curves.items(), strict=True):
        for group, (labels, scores) in groups.items():
            if len(set(labels.tolist())) < 2:
                continue  # one class only: no curve
            fpr, tpr = roc_curve_points(labels, scores)
            axis.plot(fpr, tpr, lw=2.5 if group == "overall" else 1.0, color="black" if group == "overall" else None,
                      label=group)
        axis.plot([0, 1], [0, 1], ls=":", color="grey")
        axis.set(title=f"ROC, {level} level", xlabel="false-positive rate", ylabel="true-positive rate",
                 xlim=(0, 1), ylim=(0, 1.01))
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7, loc="lower right")
    return _png(figure)


def calibration_png(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> bytes:
    """Reliability diagram: observed abnormal share against mean predicted probability, per probability bin."""
    plt = _pyplot()
    figure, (axis, counts_axis) = plt.subplots(2, 1, figsize=(5, 5.4), height_ratios=(3, 1), sharex=True)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    mean_predicted, observed, counts = [], [], []
    for b in range(bins):
        chosen = which == b
        counts.append(int(chosen.sum()))
        if chosen.any():
            mean_predicted.append(float(probabilities[chosen].mean()))
            observed.append(float(labels[chosen].mean()))
    axis.plot([0, 1], [0, 1], ls=":", color="grey", label="perfect calibration")
    axis.plot(mean_predicted, observed, marker="o", label="model")
    axis.set(title="Calibration (image level)", ylabel="observed abnormal share", xlim=(0, 1), ylim=(0, 1))
    axis.legend(fontsize=8)
    counts_axis.bar((edges[:-1] + edges[1:]) / 2, counts, width=1 / bins * 0.9, color="grey")
    counts_axis.set(xlabel="predicted abnormal probability", ylabel="images")
    return _png(figure)


def peak_density_png(rows: list[dict[str, Any]], class_names: list[str]) -> bytes:
    """Density of CAM peaks over normalised image coordinates, per body part (rows) and predicted class (columns)."""
    plt = _pyplot()
    parts = ["all", *sorted({r["body_part"] or "unknown" for r in rows})]
    classes = sorted({r["predicted_class"] for r in rows})
    columns = max(1, len(classes))
    figure, axes = plt.subplots(len(parts), columns, figsize=(2.6 * columns + 0.6, 2.5 * len(parts)),
                                squeeze=False, layout="constrained")
    for i, part in enumerate(parts):
        for j, predicted in enumerate(classes or [None]):
            chosen = [r for r in rows if r["predicted_class"] == predicted and r["peak_x_norm"] is not None
                      and part in ("all", r["body_part"] or "unknown")]
            density, _, _ = np.histogram2d([r["peak_y_norm"] for r in chosen], [r["peak_x_norm"] for r in chosen],
                                           bins=PEAK_BINS, range=((0, 1), (0, 1)))
            axis = axes[i][j]
            axis.imshow(density / max(len(chosen), 1), extent=(0, 1, 1, 0), cmap="magma", vmin=0)
            name = class_names[predicted] if predicted is not None and predicted < len(class_names) else predicted
            axis.set_title(f"{part.removeprefix('XR_')}, predicted {name} (n={len(chosen)})", fontsize=8)
            axis.set_xticks([0, 0.5, 1])
            axis.set_yticks([0, 0.5, 1])
            axis.tick_params(labelsize=6)
    return _png(figure)


def distributions_png(rows: list[dict[str, Any]], class_names: list[str]) -> bytes:
    """Coverage and peak value by body part, one box per predicted class."""
    plt = _pyplot()
    parts = sorted({r["body_part"] or "unknown" for r in rows})
    classes = sorted({r["predicted_class"] for r in rows})
    figure, axes = plt.subplots(2, 1, figsize=(max(6, 1.3 * len(parts) * max(1, len(classes))), 6.4),
                                layout="constrained")
    for axis, column, title in ((axes[0], "coverage", "CAM coverage"), (axes[1], "peak_value", "CAM peak value")):
        data, positions, labels = [], [], []
        for i, part in enumerate(parts):
            for j, predicted in enumerate(classes):
                values = [r[column] for r in rows if (r["body_part"] or "unknown") == part
                          and r["predicted_class"] == predicted and r[column] is not None]
                data.append(values or [np.nan])
                positions.append(i * (len(classes) + 1) + j)
                name = class_names[predicted] if predicted < len(class_names) else str(predicted)
                labels.append(f"{part.removeprefix('XR_')}\n{name}")
        if not data:  # no audited image: an empty panel rather than no report
            axis.text(0.5, 0.5, "no audited images", ha="center", va="center", transform=axis.transAxes)
            continue
        axis.boxplot(data, positions=positions, widths=0.7)
        axis.set_xticks(positions, labels, fontsize=6)
        axis.set_title(f"{title} by body part and predicted class", fontsize=9)
    return _png(figure)


def flag_counts_png(counts: dict[str, int], total: int) -> bytes:
    """Horizontal bars: how many audited images set each flag."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 2.8))
    names = list(counts)
    axis.barh([n.removeprefix("flag_") for n in names], [counts[n] for n in names], color="#c0392b")
    axis.invert_yaxis()
    axis.set(title=f"Flags over {total} audited images", xlabel="images")
    return _png(figure)
