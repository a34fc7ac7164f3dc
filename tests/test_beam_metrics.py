"""The run's Beam metrics, read from a real PipelineResult, summed and merged over steps."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline.beam_metrics import read_metrics, render_metrics
from tests.conftest import local_pipeline


class _Report(beam.DoFn):
    """Counts elements and records their values, in cam_audit and in another namespace."""

    def __init__(self) -> None:
        self._seen = Metrics.counter("cam_audit", "images_loaded")
        self._sizes = Metrics.distribution("cam_audit", "batch_size")
        self._other = Metrics.counter("elsewhere", "ignored")

    def process(self, value: int) -> None:
        self._seen.inc()
        self._sizes.update(value)
        self._other.inc()


def test_read_metrics_sums_counters_and_merges_distributions_over_steps() -> None:
    p = local_pipeline()
    p | "A" >> beam.Create([2, 4, 6]) | "ReportA" >> beam.ParDo(_Report())
    p | "B" >> beam.Create([1, 9]) | "ReportB" >> beam.ParDo(_Report())
    result = p.run()
    result.wait_until_finish()
    metrics = read_metrics(result)
    assert metrics == {
        "namespace": "cam_audit",
        "counters": {"images_loaded": 5},
        "distributions": {"batch_size": {"count": 5, "sum": 22, "min": 1, "max": 9, "mean": 4.4}},
    }
    assert render_metrics(metrics).splitlines() == [
        "Beam metrics (cam_audit):",
        "  images_loaded: 5",
        "  batch_size: count 5, mean 4.4, min 1, max 9",
    ]


class _NoMetricsResult:
    def metrics(self) -> None:
        raise NotImplementedError  # as Beam 2.77's DaskRunner result does


def test_a_runner_without_metrics_gives_none() -> None:
    assert read_metrics(_NoMetricsResult()) is None
    assert render_metrics(None) == "Beam metrics: this runner reports none"
