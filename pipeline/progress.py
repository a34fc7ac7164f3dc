"""Live progress of a running audit: a launcher thread that sums the workers' tallies at a steady interval."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from transforms.progress import read_tallies


def _duration(seconds: float) -> str:
    """A duration for people: 45 s, 12 min, 2.5 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def progress_line(ok: int, errors: int, total: int, elapsed_s: float) -> str:
    """One progress line: images done of the manifest's total, rate, ETA, errors so far."""
    done = ok + errors
    share = f" ({100 * done / total:.1f} %)" if total else ""
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    eta = _duration((total - done) / rate) if rate > 0 and total > done else "n/a"
    return (
        f"progress: {done:,} of {total:,} images{share}, {rate:.1f} images/s, ETA {eta}, "
        f"{errors:,} errors so far ({_duration(elapsed_s)} elapsed)"
    )


class ProgressReporter:
    """Prints `progress_line` every `interval_s` seconds from a daemon thread, and once more at the end.

    Used as a context manager around the run: `pipeline.run()` blocks on in-process runners, so the
    reporting has to happen beside it.
    """

    def __init__(
        self, progress_dir: str, total: int, interval_s: float, emit: Callable[[str], None] = print
    ) -> None:
        self._progress_dir = progress_dir
        self._total = total
        self._interval_s = interval_s
        self._emit = emit
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cam_audit_progress", daemon=True)
        self._start = 0.0

    def __enter__(self) -> ProgressReporter:
        self._start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._thread.join()
        self._report()  # the final tally, once every worker has written its last

    def _loop(self) -> None:
        while not self._stopped.wait(self._interval_s):
            self._report()

    def _report(self) -> None:
        ok, errors = read_tallies(self._progress_dir)
        self._emit(progress_line(ok, errors, self._total, time.monotonic() - self._start))
