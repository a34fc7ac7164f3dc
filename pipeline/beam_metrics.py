"""The run's Beam metrics (namespace `cam_audit`), read from the PipelineResult once the run has finished."""

from __future__ import annotations

from typing import Any

from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.runner import PipelineResult

from transforms.images import METRICS_NAMESPACE


def _value(result: Any) -> Any:
    """A metric's committed value where the runner reports one, else its attempted value."""
    return result.committed if result.committed is not None else result.attempted


def metric_totals(counters: list[Any], distributions: list[Any]) -> dict[str, Any]:
    """Counters summed and distributions merged over the steps that report them, under their Beam names.

    The names are the ones declared with `Metrics.counter/distribution(namespace, name)`: what Dataflow's
    "Custom counters" panel and Flink's metric list show, beside the namespace.
    """
    totals: dict[str, int] = {}
    for result in counters:
        totals[result.key.metric.name] = totals.get(result.key.metric.name, 0) + int(_value(result))
    merged: dict[str, dict[str, float]] = {}
    for result in distributions:
        value = _value(result)
        if value is None or not value.count:
            continue
        seen = merged.setdefault(
            result.key.metric.name, {"count": 0, "sum": 0, "min": value.min, "max": value.max}
        )
        seen["count"] += value.count
        seen["sum"] += value.sum
        seen["min"], seen["max"] = min(seen["min"], value.min), max(seen["max"], value.max)
    for seen in merged.values():
        seen["mean"] = round(seen["sum"] / seen["count"], 3)
    return {
        "namespace": METRICS_NAMESPACE,
        "counters": dict(sorted(totals.items())),
        "distributions": dict(sorted(merged.items())),
    }


def read_metrics(result: PipelineResult) -> dict[str, Any] | None:
    """The run's cam_audit metrics, or None where the runner keeps none (Beam 2.77's DaskRunner raises)."""
    try:
        query = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))
    except NotImplementedError:
        return None
    return metric_totals(query["counters"], query["distributions"])


def render_metrics(metrics: dict[str, Any] | None) -> str:
    """The metrics for people: one line per counter and per distribution."""
    if metrics is None:
        return "Beam metrics: this runner reports none"
    lines = [f"Beam metrics ({metrics['namespace']}):"]
    lines += [f"  {name}: {value}" for name, value in metrics["counters"].items()]
    for name, seen in metrics["distributions"].items():
        lines.append(
            f"  {name}: count {seen['count']}, mean {seen['mean']}, min {seen['min']}, max {seen['max']}"
        )
    return "\n".join(lines)
