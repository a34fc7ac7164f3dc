"""How many cores other processes kept busy while the bench measured: the noise in its figures."""

from __future__ import annotations

import time
from types import TracebackType

import psutil


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (all processes, all cores)."""
    times = psutil.cpu_times()
    return times.user + times.nice + times.system + sum(
        getattr(times, name, 0.0) for name in ("irq", "softirq", "steal", "guest")
    )


def own_seconds() -> float:
    """CPU seconds of this process and of its children that have been waited for."""
    times = psutil.Process().cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def steal_seconds() -> float:
    """CPU seconds the hypervisor has taken from this virtual machine since boot (0 where not reported)."""
    return getattr(psutil.cpu_times(), "steal", 0.0)


class OtherLoad:
    """Context manager: `cores` is the average number of cores other processes kept busy inside it (the host's
    steal included), `steal_cores` the part of it the hypervisor took from this VM."""

    def __init__(self) -> None:
        self.cores = 0.0
        self.steal_cores = 0.0
        self._start: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def __enter__(self) -> OtherLoad:
        self._start = (time.perf_counter(), busy_seconds(), own_seconds(), steal_seconds())
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        wall, busy, own = time.perf_counter(), busy_seconds(), own_seconds()
        elapsed = wall - self._start[0]
        other = (busy - self._start[1]) - (own - self._start[2])
        self.cores = max(other, 0.0) / elapsed if elapsed > 0 else 0.0
        self.steal_cores = max(steal_seconds() - self._start[3], 0.0) / elapsed if elapsed > 0 else 0.0
