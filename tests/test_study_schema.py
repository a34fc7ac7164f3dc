"""The study table's schema fits the rows study_row builds, and the README documents it."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from transforms.study_schema import STUDY_SCHEMA, study_schema_markdown
from transforms.study_summary import StudyAccumulator, study_row


def test_study_row_fits_the_schema() -> None:
    row = study_row("s", StudyAccumulator(), 0.5, "r")
    assert list(row) == STUDY_SCHEMA.names
    assert pa.Table.from_pylist([row], schema=STUDY_SCHEMA).num_rows == 1


def test_readme_study_table_is_current() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert study_schema_markdown() in readme
