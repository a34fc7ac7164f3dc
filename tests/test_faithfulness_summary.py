"""The per-method faithfulness summary of a records table."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline.faithfulness_summary import FAITHFULNESS_COLUMNS, summarise_faithfulness
from transforms.schema import RECORD_SCHEMA


def test_means_per_method_over_measured_ok_rows() -> None:
    rows = [
        ("hirescam", "ok", 0.2, 0.8, 0.1, True),
        ("hirescam", "ok", 0.4, 0.6, 0.3, False),
        ("hirescam", "ok", None, None, None, None),  # an empty map
        ("hirescam", "error", None, None, None, None),
        ("cam", "ok", None, None, None, None),  # a run without --faithfulness
    ]
    schema = pa.schema([RECORD_SCHEMA.field(name) for name in FAITHFULNESS_COLUMNS])
    table = pa.Table.from_pylist([dict(zip(FAITHFULNESS_COLUMNS, row, strict=True)) for row in rows], schema)
    cam, hirescam = summarise_faithfulness(table)
    assert (cam.method, cam.images, cam.measured, cam.deletion_auc) == ("cam", 1, 0, None)
    assert (hirescam.images, hirescam.measured) == (3, 2)
    assert hirescam.deletion_auc == pytest.approx(0.3) and hirescam.insertion_auc == pytest.approx(0.7)
    assert hirescam.average_drop_percent == pytest.approx(20.0)
    assert hirescam.increase_in_confidence_percent == pytest.approx(50.0)
