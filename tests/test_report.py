"""python -m pipeline.report: study table, metrics.json and index.html rebuilt from a finished run's records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.report import build_report, heatmap_href, main
from tests.conftest import write_audited_run
from transforms.flags import FLAG_NAMES

sklearn_metrics = pytest.importorskip("sklearn.metrics")


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    output = tmp_path_factory.mktemp("run")
    records = write_audited_run(output)
    assert main([str(output), "--resamples", "100"]) == 0
    return output, records


def test_study_table_has_one_row_per_distinct_study(reported: tuple[Path, list[dict]]) -> None:
    output, records = reported
    studies = pq.read_table(output / "studies").to_pylist()
    assert sorted(s["study_id"] for s in studies) == sorted({r["study_id"] for r in records if r["study_id"]})
    assert sum(s["n_images"] for s in studies) == sum(1 for r in records if r["study_id"])
    assert sum(s["n_errors"] for s in studies) == 1


def test_metrics_equal_scikit_learn_on_the_same_rows(reported: tuple[Path, list[dict]]) -> None:
    output, records = reported
    metrics = json.loads((output / "report" / "metrics.json").read_text())
    labelled = [r for r in records if r["status"] == "ok" and r["label"] is not None]
    for part in ("overall", "XR_HAND"):
        rows = [r for r in labelled if part in ("overall", r["body_part"])]
        labels = np.array([r["label"] for r in rows])
        scores = np.array([r["probabilities"][1] for r in rows])
        image = metrics["image"][part]
        assert image["n"] == len(rows)
        assert image["auroc"] == pytest.approx(sklearn_metrics.roc_auc_score(labels, scores))
        assert image["kappa"] == pytest.approx(sklearn_metrics.cohen_kappa_score(labels, scores > 0.5))
    studies = pq.read_table(output / "studies").to_pylist()
    labels = np.array([s["label"] for s in studies if s["mean_abnormal_probability"] is not None])
    scores = np.array([s["mean_abnormal_probability"] for s in studies if s["mean_abnormal_probability"] is not None])
    assert metrics["study"]["overall"]["auroc"] == pytest.approx(sklearn_metrics.roc_auc_score(labels, scores))


def test_flag_counts_equal_the_records(reported: tuple[Path, list[dict]]) -> None:
    output, records = reported
    metrics = json.loads((output / "report" / "metrics.json").read_text())
    for name in FLAG_NAMES:
        assert metrics["flags"]["counts"][name] == sum(1 for r in records if r[name])
    page = (output / "report" / "index.html").read_text()
    assert "images without a study (in no study row)</th><td>1<" in page


def test_page_names_gallery_images_and_links_their_heatmaps(reported: tuple[Path, list[dict]]) -> None:
    output, records = reported
    page = (output / "report" / "index.html").read_text()
    for plot in ("roc.png", "calibration.png", "peak_density.png", "distributions.png", "flags.png"):
        assert f'src="{plot}"' in page and (output / "report" / plot).stat().st_size > 0
    shown = [r for r in records if r["status"] == "ok" and r["flag_border_peak"]]
    assert shown and all(r["image_path"] in page for r in shown[:8])
    assert 'href="../heatmaps/' in page and list((output / "report" / "thumbs").glob("*.jpg"))


def test_report_keeps_the_pipelines_study_table_unless_rebuilding(tmp_path: Path) -> None:
    write_audited_run(tmp_path)
    (tmp_path / "studies").mkdir()
    build_report(str(tmp_path), resamples=20)  # no study files: rebuilt from the records
    first = sorted((tmp_path / "studies").glob("*.parquet"))
    assert len(first) == 1
    build_report(str(tmp_path), resamples=20)
    assert sorted((tmp_path / "studies").glob("*.parquet")) == first


def test_heatmap_links() -> None:
    assert heatmap_href("/out/heatmaps/a/b.png.jpg", "/out") == "../heatmaps/a/b.png.jpg"
    assert heatmap_href("gs://bucket/out/heatmaps/a.jpg", "gs://bucket/out") == "gs://bucket/out/heatmaps/a.jpg"
    assert heatmap_href("/elsewhere/a.jpg", "/out") == "file:///elsewhere/a.jpg"


def test_a_run_of_error_rows_only_still_gets_a_report(tmp_path: Path) -> None:
    import pyarrow as pa

    from tests.conftest import TEST_FACTS
    from transforms import files
    from transforms.mura import ManifestEntry
    from transforms.schema import RECORD_SCHEMA, to_record

    entry = ManifestEntry(image_path="a.png", study_id="s1", body_part="XR_HAND", label=1)
    rows = [to_record(entry, "/x", TEST_FACTS, error="file not found: /x")]
    table = pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)
    files.write_parquet(str(tmp_path / "records" / "errors-0.parquet"), table)
    result = build_report(str(tmp_path), resamples=10)
    assert result.metrics["image"]["XR_HAND"]["notes"] == {"all": "no labelled rows"}
    assert result.verdict.startswith("no abnormal predictions") and Path(result.page).stat().st_size > 0
