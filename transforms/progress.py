"""ReportProgress stage: each worker's running count of finished records, in a small file the launcher polls."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import apache_beam as beam

from transforms import files
from transforms.output_paths import join_path
from transforms.schema import STATUS_OK


class _CountRecordsDoFn(beam.DoFn):
    """Counts records by status and rewrites this instance's tally file at most once per `interval_s`.

    A file, not a metric: the launcher cannot read worker metrics while a job runs on every runner
    (Beam's local FnApiRunner returns its result only at the end), but every runner's workers can
    write where the records go. Each DoFn instance owns one file and rewrites it whole, so the
    launcher sums the latest tallies; a retried bundle counts twice (progress is approximate, the
    final figures come from the records).
    """

    def __init__(self, progress_dir: str, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._progress_dir = progress_dir
        self._interval_s = interval_s
        self._clock = clock
        self._path = ""
        self._counts: dict[str, int] = {}
        self._written_at = 0.0

    def setup(self) -> None:
        self._path = join_path(self._progress_dir, uuid.uuid4().hex + ".json")
        self._counts = {"ok": 0, "error": 0}
        self._written_at = self._clock()

    def process(self, record: dict[str, Any]) -> None:
        self._counts["ok" if record["status"] == STATUS_OK else "error"] += 1
        if self._clock() - self._written_at >= self._interval_s:
            self._write()

    def finish_bundle(self) -> None:
        self._write()  # writes a file, emits nothing

    def _write(self) -> None:
        files.write_bytes(self._path, json.dumps(self._counts).encode("utf-8"))
        self._written_at = self._clock()


class ReportProgress(beam.PTransform):
    """Tallies the records of one branch (ok or error) into `progress_dir`; outputs nothing the graph uses."""

    def __init__(self, progress_dir: str, interval_s: float) -> None:
        super().__init__()
        self._dofn = _CountRecordsDoFn(progress_dir, interval_s)

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        return records | "CountRecords" >> beam.ParDo(self._dofn)


def read_tallies(progress_dir: str) -> tuple[int, int]:
    """(ok, error) records counted so far, summed over every worker's latest tally file."""
    ok = error = 0
    for path in files.matching(join_path(progress_dir, "*.json")):
        try:
            counts = json.loads(files.read_bytes(path))
        except (OSError, ValueError):
            continue  # a tally being rewritten right now: counted at the next poll
        ok, error = ok + counts["ok"], error + counts["error"]
    return ok, error
