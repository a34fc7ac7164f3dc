"""Peak resident memory of a command and of every process it starts (Beam's SDK workers included)."""

from __future__ import annotations

import dataclasses
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

WORKER_MARKERS = ("sdk_worker_main", "worker_pool_main")


@dataclasses.dataclass(frozen=True)
class ProcessPeak:
    """The highest resident set size seen for one process."""

    pid: int
    role: str  # 'launcher' (the command itself), 'worker' (a Beam SDK worker) or 'other'
    peak_bytes: int


@dataclasses.dataclass(frozen=True)
class WatchedRun:
    """A finished command: exit code, wall time, per-process memory peaks, the end of its output."""

    returncode: int
    seconds: float
    peaks: list[ProcessPeak]
    output_tail: str

    def max_peak(self, role: str) -> int:
        """Largest peak among processes of one role (0 if there were none)."""
        return max((peak.peak_bytes for peak in self.peaks if peak.role == role), default=0)


def peak_rss_bytes(process: psutil.Process) -> int:
    """Peak RSS so far: the kernel's high-water mark (VmHWM) on Linux, so no spike falls between polls."""
    try:
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return process.memory_info().rss  # elsewhere: the current RSS, so peaks between polls can be missed


def process_role(process: psutil.Process, root_pid: int) -> str:
    """'launcher' for the command itself, 'worker' for a Beam SDK worker process, else 'other'."""
    if process.pid == root_pid:
        return "launcher"
    try:
        command, name = " ".join(process.cmdline()), process.name()
    except psutil.Error:
        return "other"
    # The runner starts each worker through a shell: only the Python process under it is the worker.
    is_python = name.startswith("python")
    return "worker" if is_python and any(marker in command for marker in WORKER_MARKERS) else "other"


def watch_command(argv: Sequence[str], poll_seconds: float = 0.25, cwd: str | None = None) -> WatchedRun:
    """Run a command to completion, polling the peak RSS of it and all its descendants."""
    peaks: dict[int, ProcessPeak] = {}
    with tempfile.TemporaryFile() as output:
        start = time.perf_counter()
        child = subprocess.Popen(list(argv), stdout=output, stderr=subprocess.STDOUT, cwd=cwd)
        root = psutil.Process(child.pid)
        while child.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                tree = []
            for process in tree:
                try:
                    peak = peak_rss_bytes(process)
                    role = peaks[process.pid].role if process.pid in peaks else process_role(process, child.pid)
                except psutil.Error:
                    continue  # exited between listing and reading
                if process.pid not in peaks or peak > peaks[process.pid].peak_bytes:
                    peaks[process.pid] = ProcessPeak(process.pid, role, peak)
            time.sleep(poll_seconds)
        seconds = time.perf_counter() - start
        output.seek(0)
        tail = output.read().decode("utf-8", errors="replace")[-4000:]
    return WatchedRun(child.returncode, seconds, sorted(peaks.values(), key=lambda p: p.pid), tail)
