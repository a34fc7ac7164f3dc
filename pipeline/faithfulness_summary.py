"""Faithfulness per explanation method, from a records table: what the report shows for --faithfulness runs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa

FAITHFULNESS_COLUMNS = ["method", "status", "deletion_auc", "insertion_auc", "confidence_drop", "confidence_increase"]


@dataclasses.dataclass(frozen=True)
class MethodFaithfulness:
    """One method's figures over the images it was measured on (README: how each is measured)."""

    method: str
    images: int  # ok rows of this method
    measured: int  # of which with faithfulness (a run without --faithfulness, or an empty map, has none)
    deletion_auc: float | None  # mean; lower is more faithful
    insertion_auc: float | None  # mean; higher is more faithful
    average_drop_percent: float | None  # Chattopadhay et al.: mean of max(0, Y - O) / Y, in %; lower is better
    increase_in_confidence_percent: float | None  # share of images with O > Y, in %; higher is better


def summarise_faithfulness(records: pa.Table) -> list[MethodFaithfulness]:
    """Per method (sorted by name), the means of the faithfulness columns over ok rows that have them.

    Takes any table with FAITHFULNESS_COLUMNS, e.g. `pipeline.summary.read_records(output, FAITHFULNESS_COLUMNS)`;
    records of several runs (one per method) concatenated compare the methods side by side.
    """
    columns = {name: records.column(name).to_pylist() for name in FAITHFULNESS_COLUMNS}
    summaries = []
    for method in sorted({m for m, s in zip(columns["method"], columns["status"], strict=True) if s == "ok"}):
        rows = [i for i, (m, s) in enumerate(zip(columns["method"], columns["status"], strict=True))
                if m == method and s == "ok"]  # fmt: skip
        measured = [i for i in rows if columns["deletion_auc"][i] is not None]

        def mean(name: str, scale: float = 1.0, rows: list[int] = measured) -> float | None:
            return float(np.mean([float(columns[name][i]) for i in rows]) * scale) if rows else None

        summaries.append(
            MethodFaithfulness(
                method=method,
                images=len(rows),
                measured=len(measured),
                deletion_auc=mean("deletion_auc"),
                insertion_auc=mean("insertion_auc"),
                average_drop_percent=mean("confidence_drop", 100.0),
                increase_in_confidence_percent=mean("confidence_increase", 100.0),
            )
        )
    return summaries
