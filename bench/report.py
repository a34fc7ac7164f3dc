"""Benchmark figures and their presentation: raw measurements, steady-state rates, the printed tables."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

MIB = 1024 * 1024
# Label suffix of the small run of a throughput pair ("cam_audit_jpg" and "cam_audit_jpg_base").
BASE_SUFFIX = "_base"


@dataclasses.dataclass
class Measurements:
    """Raw figures of one bench run, as written to bench.json."""

    args: dict[str, Any]
    environment: dict[str, Any]
    load_average_start: tuple[float, float, float]
    load_average_end: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # Every limit measurement: bench.forward.ForwardLimit's fields, its rate and the other-process load.
    limits: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # model name -> every non-model tight-loop measurement (bench.nonmodel.NonModelRate's fields, rate, load)
    non_model: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    walls: dict[str, list[float]] = dataclasses.field(default_factory=dict)  # label -> wall seconds, per repeat
    rates: dict[str, float] = dataclasses.field(default_factory=dict)  # label -> images per second
    rss: dict[str, Any] = dataclasses.field(default_factory=dict)
    share_with_peak: float | None = None
    # label -> cores other processes kept busy during each of its measurements (same order as walls)
    other_cores: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    methods: dict[str, Any] = dataclasses.field(default_factory=dict)  # bench.methods: label -> figures
    # label -> (started, ended) of each measurement on the bench's monotonic clock, and the cores the host
    # stole meanwhile (same order as walls); limits and non-model figures carry the same keys in their dicts.
    spans: dict[str, list[tuple[float, float]]] = dataclasses.field(default_factory=dict)
    steal_cores: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    # label -> (N, n): the images of a throughput pair's large and small run, where they are not --images and
    # --base_images (the pairs that run a worker process per core: --archive_images, --archive_base_images)
    pair_images: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)

    def pair_sizes(self, label: str, default: tuple[int, int]) -> tuple[int, int]:
        """(N, n) of a throughput pair: its own sizes, or `default` (the bench's --images and --base_images)."""
        return self.pair_images.get(label, default)

    def record(
        self, label: str, seconds: float, other_cores: float, span: tuple[float, float] = (0.0, 0.0),
        steal_cores: float = 0.0,
    ) -> None:
        """Append one wall time, the other-process load during it, when it ran and the host's steal, under its label."""
        self.walls.setdefault(label, []).append(seconds)
        self.other_cores.setdefault(label, []).append(other_cores)
        self.spans.setdefault(label, []).append(span)
        self.steal_cores.setdefault(label, []).append(steal_cores)

    def limits_of(self, layouts: Sequence[str], model: str = "model") -> list[dict[str, Any]]:
        """Every limit measurement of a model in any of `layouts`, in the order they were taken."""
        return [limit for limit in self.limits if limit["layout"] in layouts and limit.get("model", "model") == model]

    def best_limit(self, layouts: Sequence[str], model: str = "model") -> dict[str, Any]:
        """The fastest limit measurement of a model in any of `layouts`; raises ValueError when there is none."""
        return max(self.limits_of(layouts, model), key=lambda limit: limit["images_per_second"])

    def best_non_model(self, model: str = "model") -> dict[str, Any] | None:
        """The fastest non-model tight-loop measurement of a model, or None."""
        return max(self.non_model.get(model, []), key=lambda rate: rate["images_per_second"], default=None)

    def best(self, label: str) -> tuple[float, float]:
        """(shortest wall time of a label, other-process cores during that measurement)."""
        index = min(range(len(self.walls[label])), key=self.walls[label].__getitem__)
        return self.walls[label][index], self.other_cores[label][index]


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the results table."""

    name: str
    images: int
    seconds: float | None  # the wall time the rate is computed from; None when not applicable
    images_per_second: float | None
    ratio: str  # the ratio this row is judged by, already formatted ('' when none)
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Target:
    """A goal from issue 4 and whether this run met it."""

    name: str
    goal: str
    measured: str
    met: bool

    @property
    def verdict(self) -> str:
        return "PASS" if self.met else "MISS"


def steady_rate(images: int, seconds: float, base_images: int, base_seconds: float) -> float:
    """Images per second beyond a run's fixed cost: (N - n) / (T(N) - T(n)), from two runs of one pipeline.

    Both runs pay the same one-off costs -- launcher checks, graph construction, the worker's model
    load and warm-up, the first bundle's start, Parquet finalisation -- so the difference is the
    marginal cost of the extra images, which is what decides a 40,000-image run.
    """
    extra_seconds = seconds - base_seconds
    if images <= base_images or extra_seconds <= 0:
        raise ValueError(f"cannot take a steady rate from {images} images in {seconds:.2f} s "
                         f"against {base_images} in {base_seconds:.2f} s")
    return (images - base_images) / extra_seconds


@dataclasses.dataclass(frozen=True)
class SteadyRate:
    """One pipeline's steady rate, from the fastest large and the fastest small run over the rounds."""

    images_per_second: float
    seconds: float  # the fastest large run
    base_seconds: float  # the fastest small run
    other_cores: float  # the larger other-process load of the two

    @property
    def extra_seconds(self) -> float:
        """What the extra N - n images took: T(N) - T(n)."""
        return self.seconds - self.base_seconds

    def fixed_seconds(self, base_images: int) -> float:
        """The one-off cost extrapolated to zero images: T(n) - n / rate."""
        return self.base_seconds - base_images / self.images_per_second


def best_steady_rate(results: Measurements, label: str, images: int, base_images: int) -> SteadyRate:
    """(N - n) / (min T(N) - min T(n)) over the rounds.

    Noise on a shared machine only ever adds time, so the fastest run of each size is the best
    estimate of its undisturbed time. Taking the best round's *rate* instead would reward a round
    whose small run happened to be slowed (a longer T(n) makes a higher rate).
    """
    wall, noise = results.best(label)
    base_wall, base_noise = results.best(label + BASE_SUFFIX)
    return SteadyRate(steady_rate(images, wall, base_images, base_wall), wall, base_wall, max(noise, base_noise))


def essential_limit(forward_rate: float, non_model_rate: float) -> float:
    """Images per second if the forward pass and the non-model work were all there is, done one after
    the other on the same cores: 1 / (1 / forward + 1 / non-model)."""
    return 1.0 / (1.0 / forward_rate + 1.0 / non_model_rate)


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, inf when the denominator is 0."""
    return numerator / denominator if denominator else float("inf")


def growth(small: float, large: float) -> float:
    """Relative growth from small to large (0.05 = 5 % more)."""
    return large / small - 1.0 if small else float("inf")


def format_rate(value: float | None) -> str:
    """Images per second, or a dash."""
    return "-" if value is None else f"{value:8.1f}"


def render_table(rows: Sequence[Row]) -> str:
    """The results as a fixed-width text table."""
    header = f"{'':46s} {'images':>6s} {'wall s':>8s} {'img/s':>8s}  {'ratio':<22s} note"
    lines = [header, "-" * len(header)]
    for row in rows:
        seconds = "-" if row.seconds is None else f"{row.seconds:8.2f}"
        lines.append(
            f"{row.name:46s} {row.images:6d} {seconds:>8s} {format_rate(row.images_per_second):>8s}  "
            f"{row.ratio:<22s} {row.note}".rstrip()
        )
    return "\n".join(lines)


def render_targets(targets: Sequence[Target]) -> str:
    """One line per target: verdict, goal, what was measured."""
    width = max((len(t.name) for t in targets), default=0)
    return "\n".join(f"  {t.verdict}  {t.name:{width}s} goal {t.goal:22s} measured {t.measured}" for t in targets)


def render_rss(results: Measurements) -> str:
    """The memory runs as text lines."""
    lines = []
    for size, run in results.rss.items():
        workers = ", ".join(f"{peak / MIB:.0f}" for peak in run["worker_peak_bytes"]) or "none (in-process)"
        launcher = run["launcher_peak_bytes"] / MIB
        lines.append(f"  {int(size):6d} images  {run['seconds']:7.1f} s   launcher {launcher:6.0f} MiB   "
                     f"SDK workers {workers} MiB")
    return "\n".join(lines)
