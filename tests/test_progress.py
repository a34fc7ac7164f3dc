"""Live progress: the workers' tallies (transforms/progress.py) and the launcher's lines (pipeline/progress.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import apache_beam as beam

from pipeline.progress import ProgressReporter, progress_line
from tests.conftest import local_pipeline
from transforms.progress import ReportProgress, _CountRecordsDoFn, read_tallies


def test_progress_line_done_rate_eta_errors() -> None:
    # 40 done in 20 s: 2 images/s; 60 left: 30 s.
    assert progress_line(30, 10, 100, 20.0) == (
        "progress: 40 of 100 images (40.0 %), 2.0 images/s, ETA 30 s, 10 errors so far (20 s elapsed)"
    )
    # 1,000 in 100 s: 10 images/s; 39,005 left: 3,900.5 s = 65 min.
    assert "1,000 of 40,005 images (2.5 %), 10.0 images/s, ETA 65 min" in progress_line(990, 10, 40_005, 100.0)
    # 9,000 s left: 2.5 h.
    assert "ETA 2.5 h" in progress_line(1, 0, 9_001, 1.0)
    assert "ETA n/a" in progress_line(0, 0, 100, 5.0) and "ETA n/a" in progress_line(100, 0, 100, 5.0)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def tally(path: Path) -> dict[str, int]:
    (only,) = path.glob("*.json")
    return json.loads(only.read_text())


def test_tally_rewritten_at_most_once_per_interval_and_at_bundle_end(tmp_path: Path) -> None:
    clock = _Clock()
    dofn = _CountRecordsDoFn(str(tmp_path), interval_s=10.0, clock=clock)
    dofn.setup()
    dofn.process({"status": "ok"})
    assert list(tmp_path.glob("*.json")) == []  # 0 s since the last write: nothing yet
    clock.now = 10.0
    dofn.process({"status": "error"})
    assert tally(tmp_path) == {"ok": 1, "error": 1}
    clock.now = 15.0
    dofn.process({"status": "ok"})
    assert tally(tmp_path) == {"ok": 1, "error": 1}  # 5 s: not rewritten
    assert list(dofn.finish_bundle() or []) == []  # writes, emits nothing
    assert tally(tmp_path) == {"ok": 2, "error": 1}


def test_read_tallies_sums_every_worker_and_skips_a_torn_file(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"ok": 3, "error": 1}')
    (tmp_path / "b.json").write_text('{"ok": 4, "error": 0}')
    (tmp_path / "c.json").write_text('{"ok": 4')
    assert read_tallies(str(tmp_path)) == (7, 1)
    assert read_tallies(str(tmp_path / "none_yet")) == (0, 0)


def test_report_progress_counts_every_record(tmp_path: Path) -> None:
    records = [{"status": "ok"}] * 7 + [{"status": "error"}] * 3
    with local_pipeline() as p:
        p | beam.Create(records) | ReportProgress(str(tmp_path), interval_s=60.0)
    assert read_tallies(str(tmp_path)) == (7, 3)


def test_reporter_prints_at_its_interval_and_once_at_the_end(tmp_path: Path) -> None:
    lines: list[str] = []
    (tmp_path / "w.json").write_text('{"ok": 5, "error": 2}')
    with ProgressReporter(str(tmp_path), total=10, interval_s=0.05, emit=lines.append):
        while len(lines) < 2:
            time.sleep(0.01)
    assert len(lines) >= 3 and all(line.startswith("progress: 7 of 10 images (70.0 %)") for line in lines)
    assert all("2 errors so far" in line for line in lines)
