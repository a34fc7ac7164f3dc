"""Issue 14's ratios from bracketed measurements: each end-to-end pair against its limits measured just before
and just after it.

On a shared VM the machine's speed moves within minutes (bench/README.md, session 6: one round's own ratios
reached 1.20x of an essential limit that the pipeline cannot beat). A ratio is only as good as the distance
between its numerator and its denominator, so `make bench` measures each pair's limits right before and right
after it, and each ratio divides the pair's steady rate by the mean of those two; the verdict takes the median
over the rounds, and the spread says how far the machine moved.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from bench.forward import LITERT_LAYOUT
from bench.report import BASE_SUFFIX, Measurements, essential_limit, steady_rate

# The forward layout a pipeline itself runs on TensorFlow (bench/forward.py); its brackets measure that one.
PIPELINE_LAYOUT = "cam_audit"


@dataclasses.dataclass(frozen=True)
class EssentialLine:
    """One of issue 14's end-to-end lines: its pair's label, its model and the forward layout of its backend."""

    label: str
    model: str
    layout: str
    text: str


def essential_lines(skip: set[str]) -> tuple[EssentialLine, ...]:
    """The lines `make bench` runs: both seed-model backends (TensorFlow alone under --skip litert) and the
    near-free model."""
    if "litert" in skip:
        lines = [EssentialLine("cam_audit_jpg", "model", PIPELINE_LAYOUT, "seed model, TensorFlow")]
    else:
        lines = [EssentialLine("cam_audit_jpg_tensorflow", "model", PIPELINE_LAYOUT, "seed model, TensorFlow"),
                 EssentialLine("cam_audit_jpg", "model", LITERT_LAYOUT, "seed model, LiteRT")]
    if "near_free" not in skip:
        layout = PIPELINE_LAYOUT if "litert" in skip else LITERT_LAYOUT
        lines.append(EssentialLine("near_free_jpg", "near_free_model", layout, "near-free model"))
    return tuple(lines)


@dataclasses.dataclass(frozen=True)
class Bracketed:
    """One round's end-to-end rate against a denominator measured just before and just after the pair."""

    round: int  # 1-based
    end_to_end: float  # the pair's steady rate, images/s
    before: float  # the denominator (essential limit or bare forward, images/s) measured just before the pair
    after: float  # ... and just after it
    other_cores: float  # the most cores other processes (host steal included) kept busy in any of its measurements
    steal_cores: float  # the most cores the host stole in any of them

    @property
    def denominator(self) -> float:
        return (self.before + self.after) / 2

    @property
    def ratio(self) -> float:
        return self.end_to_end / self.denominator

    @property
    def drift(self) -> float:
        """How far the denominator moved across the pair: after / before - 1."""
        return self.after / self.before - 1.0


def adjacent(
    measurements: Sequence[dict[str, Any]], start: float, end: float
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The last measurement that ended by `start` and the first that started from `end` (None where there is none)."""
    before = [m for m in measurements if m.get("ended", 0.0) <= start and "started" in m]
    after = [m for m in measurements if m.get("started", -1.0) >= end]
    return (max(before, key=lambda m: m["ended"], default=None),
            min(after, key=lambda m: m["started"], default=None))


def bracketed_rounds(
    results: Measurements, label: str, images: int, base_images: int,
    denominator: Callable[[float, float], tuple[list[dict[str, Any]], list[dict[str, Any]]] | None],
) -> list[Bracketed]:
    """Each round's pair of `label` against `denominator(start, end)`: the measurements just before and just after
    the pair whose rates give it (figures are combined as `_combine` says); rounds without both sides are left out."""
    walls, base_walls = results.walls.get(label, []), results.walls.get(label + BASE_SUFFIX, [])
    spans, base_spans = results.spans.get(label, []), results.spans.get(label + BASE_SUFFIX, [])
    rounds = []
    for index in range(min(len(walls), len(base_walls), len(spans), len(base_spans))):
        start, end = base_spans[index][0], spans[index][1]
        sides = denominator(start, end)
        if sides is None:
            continue
        before, after = sides
        figures = [*before, *after]
        others = [*(results.other_cores[name][index] for name in (label, label + BASE_SUFFIX)),
                  *(m.get("other_cores", 0.0) for m in figures)]
        steals = [*(results.steal_cores[name][index] for name in (label, label + BASE_SUFFIX)),
                  *(m.get("steal_cores", 0.0) for m in figures)]
        rounds.append(Bracketed(index + 1, steady_rate(images, walls[index], base_images, base_walls[index]),
                                _combine(before), _combine(after), max(others), max(steals)))
    return rounds


def _combine(figures: list[dict[str, Any]]) -> float:
    """One side's denominator: a bare forward rate alone, or the essential limit of a forward rate and a loop's."""
    rates = [figure["images_per_second"] for figure in figures]
    return rates[0] if len(rates) == 1 else essential_limit(*rates)


def essential_denominator(
    results: Measurements, line: EssentialLine
) -> Callable[[float, float], tuple[list[dict[str, Any]], list[dict[str, Any]]] | None]:
    """For a pair's span: ([forward, non-model loop] just before, [forward, non-model loop] just after), or None."""
    forward = results.limits_of([line.layout], line.model)
    loops = results.non_model.get(line.model, [])

    def sides(start: float, end: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        (forward_before, forward_after), (loop_before, loop_after) = adjacent(forward, start, end), adjacent(
            loops, start, end)
        if None in (forward_before, forward_after, loop_before, loop_after):
            return None
        return [forward_before, loop_before], [forward_after, loop_after]

    return sides


def forward_denominator(
    results: Measurements, layout: str, model: str = "model"
) -> Callable[[float, float], tuple[list[dict[str, Any]], list[dict[str, Any]]] | None]:
    """For a pair's span: ([bare forward] just before, [bare forward] just after), or None."""
    forward = results.limits_of([layout], model)

    def sides(start: float, end: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        before, after = adjacent(forward, start, end)
        return None if before is None or after is None else ([before], [after])

    return sides


def median_ratio(rounds: Sequence[Bracketed]) -> float:
    """The verdict's figure: the median of the rounds' ratios."""
    return statistics.median(bracketed.ratio for bracketed in rounds)


def spread_text(rounds: Sequence[Bracketed]) -> str:
    """'median of N bracketed rounds: a, b, c' for a target's measured column."""
    ratios = ", ".join(f"{bracketed.ratio:.3f}" for bracketed in rounds)
    return f"median of {len(rounds)} bracketed round(s): {ratios}"


def round_lines(text: str, rounds: Sequence[Bracketed], unit: str) -> list[str]:
    """One text line per round of a line: the ratio, its denominator before and after, and the machine's noise."""
    return [f"  round {bracketed.round}, {text}: {bracketed.ratio:.3f}x {unit} (end to end "
            f"{bracketed.end_to_end:.1f} img/s; {unit} {bracketed.before:.1f} before, "
            f"{bracketed.after:.1f} after, {bracketed.drift:+.0%}; other processes "
            f"{bracketed.other_cores:.2f} cores, host steal {bracketed.steal_cores:.2f})"
            for bracketed in rounds]
