"""BuildStudies: ok and error records become one row per study, combined in the pipeline and written."""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.testing.util import assert_that, equal_to

from tests.conftest import local_pipeline
from transforms.studies import BuildStudies


def rec(path: str, study: str | None, probability: float | None) -> dict:
    ok = probability is not None
    return {"image_path": path, "study_id": study, "status": "ok" if ok else "error", "patient_id": "p",
            "body_part": "XR_HAND", "split": "valid", "label": 0,
            "probabilities": [1 - probability, probability] if ok else None, "coverage": 0.5 if ok else None,
            "flag_diffuse": False if ok else None}


def test_studies_from_both_sides_and_written(tmp_path: Path) -> None:
    ok = [rec("s1/a", "s1", 0.8), rec("s1/b", "s1", 0.4), rec("s2/a", "s2", 0.1), rec("loose.png", None, 0.9)]
    errors = [rec("s1/c", "s1", None), rec("s3/a", "s3", None)]
    with local_pipeline() as p:
        rows = (p | "Ok" >> beam.Create(ok), p | "Err" >> beam.Create(errors)) | BuildStudies(
            str(tmp_path), 1, 0.5, "run"
        )
        fields = rows | beam.Map(lambda r: (r["study_id"], r["n_images"], r["n_errors"], r["predicted_label"],
                                            r["top_image_path"]))
        assert_that(fields, equal_to([("s1", 3, 1, 1, "s1/a"), ("s2", 1, 0, 0, "s2/a"), ("s3", 1, 1, None, None)]))
    table = pq.read_table(tmp_path / "studies")
    assert sorted(table["study_id"].to_pylist()) == ["s1", "s2", "s3"]  # the image without a study is in none
