"""The runner matrix: the same small audit on every runner reachable here, with identical records.

Local FnApiRunner (in_memory, and multi_processing with 2 SDK worker processes), and the portable Job
API (Beam's own job service, which speaks the protocol Flink's and Spark's job servers speak) with
LOOPBACK workers and with EXTERNAL workers from a separate worker pool, as a cluster runs them. The
services are started here on 127.0.0.1 and stopped by PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import pipeline.build as build
import pipeline.local_layout as local_layout
import transforms.inference as inference
from pipeline.run import run
from tests.conftest import TinyArchive
from tests.test_end_to_end import read_rows

ROOT = Path(__file__).resolve().parent.parent
# What must agree between runners; heatmap_path differs with the output folder by design.
EXACT = ("image_path", "status", "error", "width", "height", "predicted_class", "cam_class", "peak_x", "peak_y")
CLOSE = ("probabilities", "cam", "coverage", "peak_value")

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout_s: float = 60.0) -> None:
    """Poll until something accepts connections on the port (or fail if the service died)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"service exited with {process.returncode}"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


@contextlib.contextmanager
def running_service(module: str, port_flag: str, log: Path) -> Iterator[int]:
    """A Beam service (`python -m module port_flag PORT`) from this virtualenv, its workers importing this
    checkout, on a free loopback port; stopped by its PID on the way out."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    process = subprocess.Popen(
        [sys.executable, "-m", module, port_flag, str(port)], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    try:
        wait_for_port(port, process)
        yield port
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    """Stop one process this module started, by its PID."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# The portable Job API as Beam's own job service serves it, and an SDK worker pool (SDK harnesses in
# processes of their own, as on a cluster's workers): module -> its port flag.
SERVICES = {
    "job_service": ("apache_beam.runners.portability.local_job_service_main", "--port"),
    "worker_pool": ("apache_beam.runners.worker.worker_pool_main", "--service_port"),
}


@pytest.fixture(scope="module")
def job_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with running_service(*SERVICES["job_service"], tmp_path_factory.mktemp("services") / "job_service") as port:
        yield port


@pytest.fixture(scope="module")
def worker_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with running_service(*SERVICES["worker_pool"], tmp_path_factory.mktemp("services") / "worker_pool") as port:
        yield port


# mode -> (extra Beam flags, SDK worker processes running the inference stage)
MODES = {
    "in_memory": ([], 1),
    "multi_processing": (["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"], 2),
    # No flags, on an archive taken as large enough (pipeline/build.py: with_local_processes) and 2 cores: cam-audit
    # starts a LiteRT worker process per core itself, each without TensorFlow.
    "local_processes_by_default": (["--backend", "litert"], 2),
    "portable_loopback": (["--runner", "PortableRunner", "--environment_type", "LOOPBACK"], 1),
    "portable_external": (["--runner", "PortableRunner", "--environment_type", "EXTERNAL"], 1),
}


def audit(mode: str, archive: TinyArchive, model: Path, output: Path, request: pytest.FixtureRequest) -> dict:
    """Run the audit in one mode; (rows by image path, run_info.json)."""
    flags = list(MODES[mode][0])
    if mode.startswith("portable"):
        flags += ["--job_endpoint", f"127.0.0.1:{request.getfixturevalue('job_service')}"]
    if mode == "portable_external":
        flags += ["--environment_config", f"127.0.0.1:{request.getfixturevalue('worker_pool')}"]
    run([
        "--manifest", str(archive.manifest), "--model", str(model), "--output", str(output),
        "--batch_size", "4", "--run_id", "matrix", "--progress_seconds", "0", *flags,
    ])
    return {
        "rows": {row["image_path"]: row for row in read_rows(output)},
        "info": json.loads((output / "run_info.json").read_text()),
    }


@pytest.fixture(scope="module")
def reference(tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory,
              request: pytest.FixtureRequest) -> dict:
    return audit("in_memory", tiny_archive, tiny_model_path, tmp_path_factory.mktemp("in_memory"), request)


@pytest.mark.parametrize("mode", list(MODES))
def test_same_records_every_row_and_one_model_load_per_worker_process(
    mode: str, reference: dict, tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path,
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    if mode == "local_processes_by_default":
        pytest.importorskip("ai_edge_litert")
        monkeypatch.setattr(local_layout, "LOCAL_PROCESSES_MIN_IMAGES", 1)
        monkeypatch.setattr(local_layout, "usable_cores", lambda: 2)
        monkeypatch.setattr(build, "usable_cores", lambda: 2)
        monkeypatch.setattr(build, "gpu_names", lambda: [])  # the launcher picks LiteRT on any host
        monkeypatch.setattr(inference, "gpu_driver_present", lambda: False)
    result = reference if mode == "in_memory" else audit(mode, tiny_archive, tiny_model_path, tmp_path, request)
    if mode == "local_processes_by_default":
        assert "cam-audit: 2 local worker processes, one per core" in capsys.readouterr().out
    rows, metrics = result["rows"], result["info"]["metrics"]
    # Conservation: one row per manifest entry, each once, and the counters agree with the rows.
    assert sorted(rows) == sorted([*tiny_archive.good, *tiny_archive.bad])
    ok = [row for row in rows.values() if row["status"] == "ok"]
    assert len(ok) == len(tiny_archive.good) == metrics["counters"]["images_loaded"]
    assert len(rows) - len(ok) == len(tiny_archive.bad) == metrics["counters"]["images_failed"]
    assert metrics["counters"]["heatmaps_written"] == len(ok)
    assert metrics["distributions"]["batch_size"]["sum"] == len(ok)
    # Identical records: every field that does not name the output folder.
    for path, row in rows.items():
        expected = reference["rows"][path]
        assert {key: row[key] for key in EXACT} == {key: expected[key] for key in EXACT}, path
        for key in CLOSE:
            assert (row[key] is None) == (expected[key] is None), (path, key)
            if row[key] is not None:
                np.testing.assert_allclose(row[key], expected[key], rtol=1e-5, atol=1e-6, err_msg=f"{path} {key}")
    # Beam's shared.Shared: the model is loaded once per SDK worker process, never once per bundle or DoFn.
    loads = metrics["distributions"]["model_load_ms"]["count"]
    processes = MODES[mode][1]
    assert 1 <= loads <= processes, (loads, processes)
