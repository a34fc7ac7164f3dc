"""The audit report: `python -m pipeline.report OUTPUT` rebuilds the study table, metrics.json and index.html."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import pyarrow as pa

from pipeline.build import abnormal_class
from pipeline.report_data import (
    AuditTables,
    audit_metrics,
    audit_tables,
    error_reasons,
    extra_numeric_columns,
    flag_counts,
    galleries,
    per_method,
    rebuild_studies,
    shortcut_signal,
    verdict,
)
from pipeline.report_html import Thumbnail, flags_table, methods_table, render_page
from pipeline.report_plots import calibration_png, distributions_png, flag_counts_png, peak_density_png, roc_png
from pipeline.summary import read_records, read_studies, study_files
from transforms import files
from transforms.metrics import format_metric
from transforms.output_paths import RUN_INFO_FILE, is_uri, join_path, report_dir, studies_dir
from transforms.study_schema import STUDY_SCHEMA

REPORT_PAGE = "index.html"
METRICS_FILE = "metrics.json"
THUMBNAIL_WIDTH = 160


@dataclasses.dataclass(frozen=True)
class ReportResult:
    """Where the report went and what it says first."""

    page: str
    metrics_path: str
    metrics: dict[str, Any]
    verdict: str
    alert: bool

    def headline(self) -> str:
        """Two lines for a console: study-level numbers, then the verdict."""
        study = self.metrics["study"]["overall"]
        image = self.metrics["image"]["overall"]
        return (f"  study kappa {format_metric(study['kappa'])}, study AUROC {format_metric(study['auroc'])}, "
                f"image AUROC {format_metric(image['auroc'])} ({study['n']} labelled studies)\n"
                f"  {self.verdict}\n  report: {self.page}")


def read_run_info(output_dir: str) -> dict[str, Any]:
    """run_info.json of a run, or {} when it is not there."""
    path = join_path(output_dir, RUN_INFO_FILE)
    return json.loads(files.read_bytes(path)) if files.exists(path) else {}


def heatmap_href(heatmap_path: str, output_dir: str) -> str:
    """The heatmap's link from report/index.html: relative inside the output folder, else as written."""
    prefix = output_dir.rstrip("/") + "/"
    if heatmap_path.startswith(prefix) and not is_uri(output_dir):
        return "../" + heatmap_path[len(prefix):]
    return heatmap_path if is_uri(heatmap_path) else "file://" + heatmap_path


def write_thumbnail(heatmap_path: str, target: str) -> bool:
    """A THUMBNAIL_WIDTH-wide JPEG of a heatmap; False when the heatmap cannot be read."""
    try:
        image = cv2.imdecode(np.frombuffer(files.read_bytes(heatmap_path), np.uint8), cv2.IMREAD_COLOR)
    except OSError:
        return False
    if image is None:
        return False
    height = max(1, round(image.shape[0] * THUMBNAIL_WIDTH / image.shape[1]))
    small = cv2.resize(image, (THUMBNAIL_WIDTH, height), interpolation=cv2.INTER_AREA)
    files.write_bytes(target, cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    return True


def gallery_thumbnails(tables: AuditTables, output_dir: str, folder: str) -> list[tuple[str, list[Thumbnail]]]:
    """Every gallery with its thumbnails written under report/thumbs/ (one file per shown image)."""
    written: dict[str, str | None] = {}
    shown = []
    for title, rows in galleries(tables).items():
        entries = []
        for row in rows:
            path = row.get("heatmap_path")
            if path and path not in written:
                name = f"thumbs/{len(written):04d}.jpg"
                written[path] = name if write_thumbnail(path, join_path(folder, name)) else None
            thumbnail = written.get(path) if path else None
            probability = row["probabilities"][tables.abnormal_class]
            caption = f"P(abnormal) {probability:.3f}, label {row['label']}, coverage {row['coverage']:.2f}"
            entries.append(Thumbnail(row["image_path"], caption, thumbnail,
                                     heatmap_href(path, output_dir) if path else None))
        shown.append((title, entries))
    return shown


def curves(tables: AuditTables) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """(labels, scores) per level and group, for the ROC plot."""
    result: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    levels = {
        "image": [(r["body_part"], r["label"], r["probabilities"][tables.abnormal_class]) for r in tables.ok],
        "study": [(s["body_part"], s["label"], s["mean_abnormal_probability"]) for s in tables.studies],
    }
    for level, items in levels.items():
        labelled = [(p or "unknown", y, s) for p, y, s in items if y is not None and s is not None]
        groups = ["overall", *sorted({p for p, _, _ in labelled})]
        result[level] = {
            g: (np.array([y for p, y, _ in labelled if g in ("overall", p)], dtype=np.int64),
                np.array([s for p, _, s in labelled if g in ("overall", p)], dtype=np.float64))
            for g in groups
        }
    return result


def write_png(folder: str, name: str, data: bytes) -> str:
    """Write a plot beside the page; returns its name, the page's link to it."""
    files.write_bytes(join_path(folder, name), data)
    return name


def argv_value(argv: list[str], flag: str) -> str:
    """The value after `flag` in a run's argv (run_info.json), or 'unknown'."""
    return argv[argv.index(flag) + 1] if flag in argv[:-1] else "unknown"


def build_report(output_dir: str, study_threshold: float | None = None, rebuild: bool = False,
                 resamples: int = 1000, seed: int = 0) -> ReportResult:
    """Metrics, plots and the page from a finished run's records (and study table, rebuilt if asked or missing)."""
    info = read_run_info(output_dir)
    class_names = info.get("class_names", ["normal", "abnormal"])
    abnormal = abnormal_class(tuple(class_names))
    threshold = study_threshold if study_threshold is not None else info.get("study_threshold", 0.5)
    records = read_records(output_dir)
    # The raw CAMs are most of a record's bytes and the report never reads them.
    records = records.drop_columns([c for c in ("cam",) if c in records.column_names])
    if rebuild or not study_files(output_dir):
        rows = rebuild_studies(records.to_pylist(), abnormal, threshold, info.get("run_id", "rebuilt"))
        files.delete(study_files(output_dir))
        files.write_parquet(join_path(studies_dir(output_dir), "part-rebuilt.parquet"),
                            pa.Table.from_pylist(rows, schema=STUDY_SCHEMA))
    studies = read_studies(output_dir)
    threshold = studies["study_threshold"][0].as_py() if studies.num_rows else threshold
    tables = audit_tables(records, studies, abnormal)
    metrics = audit_metrics(tables, threshold, resamples, seed)
    signal = shortcut_signal(tables)
    counts = flag_counts(tables.ok)
    by_part = {part: flag_counts([r for r in tables.ok if (r["body_part"] or "unknown") == part])
               for part in sorted({r["body_part"] or "unknown" for r in tables.ok})}
    without_study = sum(1 for r in tables.records if r.get("study_id") is None)
    metrics["flags"] = {"counts": counts, "by_body_part": by_part, "shortcut": signal}
    metrics["methods"] = per_method(tables, extra_numeric_columns(records))

    folder = report_dir(output_dir)
    metrics_path = join_path(folder, METRICS_FILE)
    files.write_bytes(metrics_path, json.dumps(metrics, indent=2).encode("utf-8"))
    labels = np.array([r["label"] for r in tables.ok if r["label"] is not None], dtype=np.int64)
    probabilities = np.array([r["probabilities"][abnormal] for r in tables.ok if r["label"] is not None])
    plots = [
        ("ROC curves per body part", write_png(folder, "roc.png", roc_png(curves(tables)))),
        ("Calibration", write_png(folder, "calibration.png", calibration_png(labels, probabilities))),
        ("Where the CAM peaks (density over normalised image coordinates)",
         write_png(folder, "peak_density.png", peak_density_png(tables.ok, class_names))),
        ("Coverage and peak value", write_png(folder, "distributions.png", distributions_png(tables.ok, class_names))),
        ("Flag counts", write_png(folder, "flags.png", flag_counts_png(counts, len(tables.ok)))),
    ]
    study, image = metrics["study"]["overall"], metrics["image"]["overall"]
    summary = [
        ("model", argv_value(info.get("argv", []), "--model")),
        ("model SHA-256", info.get("model_sha256", "unknown")),
        ("run id", info.get("run_id", "unknown")),
        ("manifest", info.get("manifest", "unknown")),
        ("images (manifest lines)", len(tables.records)),
        ("audited (ok)", sum(1 for r in tables.records if r["status"] == "ok")),
        ("errors", sum(1 for r in tables.records if r["status"] != "ok")),
        ("studies", len(tables.studies)),
        ("images without a study (in no study row)", without_study),
        ("explanation methods", ", ".join(tables.methods) or "cam"),
    ]
    page = render_page(
        verdict=verdict(signal),
        alert=signal["alert"],
        headline=[("study kappa", format_metric(study["kappa"])), ("study AUROC", format_metric(study["auroc"])),
                  ("image AUROC", format_metric(image["auroc"])), ("images", str(len(tables.records))),
                  ("studies", str(len(tables.studies))),
                  ("flagged images", str(sum(1 for r in tables.ok if any(r.get(n) for n in counts))))],
        summary=summary,
        errors=error_reasons(tables.records),
        metrics=metrics,
        flags=flags_table(counts, by_part, len(tables.ok)),
        methods=methods_table(metrics["methods"]),
        plots=plots,
        galleries=gallery_thumbnails(tables, output_dir, folder),
    )
    page_path = join_path(folder, REPORT_PAGE)
    files.write_bytes(page_path, page.encode("utf-8"))
    return ReportResult(page_path, metrics_path, metrics, verdict(signal), signal["alert"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.report", description=__doc__)
    parser.add_argument("output", help="a finished run's --output folder")
    parser.add_argument("--study_threshold", type=float, default=None,
                        help="MURA study rule threshold (default: the run's, else 0.5)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args(argv)
    result = build_report(args.output, args.study_threshold, rebuild=True, resamples=args.resamples, seed=args.seed)
    print(result.headline())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
