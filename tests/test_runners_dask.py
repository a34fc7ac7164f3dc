"""Why Beam 2.77's DaskRunner is refused: the real audit graph on a loopback dask.distributed cluster loses rows.

A `dask scheduler` and `dask worker --nworkers 2` are started here on 127.0.0.1 (this checkout on their
PYTHONPATH: the scheduler unpickles the graph) and stopped by PID.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.build import build_audit, plan_audit, prepare_output
from pipeline.options import CamAuditOptions
from pipeline.run import main
from tests.conftest import TinyArchive, loaded_image
from tests.test_runners import ROOT, free_port, stop, wait_for_port
from transforms import files
from transforms.inference import CamModelLoader, InferCams
from transforms.manifest import ReadManifest
from transforms.output_paths import join_path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dask_scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A dask.distributed scheduler and one `dask worker` with 2 worker processes, on loopback."""
    pytest.importorskip("distributed")
    logs = tmp_path_factory.mktemp("dask")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    port, dashboard = free_port(), free_port()
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--dashboard-address", f"127.0.0.1:{dashboard}"],
        env=env, stdout=(logs / "scheduler").open("wb"), stderr=subprocess.STDOUT,
    )
    wait_for_port(port, scheduler)
    workers = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", f"tcp://127.0.0.1:{port}",
         "--nworkers", "2", "--nthreads", "1", "--no-dashboard"],
        env=env, stdout=(logs / "workers").open("wb"), stderr=subprocess.STDOUT,
    )
    from distributed import Client

    with Client(f"127.0.0.1:{port}", timeout=60) as client:
        client.wait_for_workers(2, timeout=60)
    yield f"127.0.0.1:{port}"
    stop(workers)
    stop(scheduler)


class _OneFilePerBundle(beam.DoFn):
    """A terminal writer as issue 10's records writer works: rows gathered in a bundle, one file written
    (temporary name, then renamed) in finish_bundle, and nothing emitted from there."""

    def __init__(self, folder: str) -> None:
        self._folder = folder
        self._names: list[str] = []

    def start_bundle(self) -> None:
        self._names = []

    def process(self, name: str) -> None:
        self._names.append(name)

    def finish_bundle(self) -> None:
        if self._names:
            final = join_path(self._folder, uuid.uuid4().hex + ".json")
            files.write_bytes(final + ".tmp", json.dumps(self._names).encode())
            FileSystems.rename([final + ".tmp"], [final])


def reached(folder: Path) -> list[str]:
    return sorted(name for path in folder.glob("*.json") for name in json.loads(path.read_text()))


def on_dask(address: str) -> beam.Pipeline:
    from apache_beam.runners.dask.dask_runner import DaskRunner

    return beam.Pipeline(runner=DaskRunner(), options=PipelineOptions(["--dask_client_address", address]))


def run_to_the_end(pipeline: beam.Pipeline) -> None:
    """Run on Dask and wait; the runner's client is closed after, or it retries the stopped scheduler."""
    result = pipeline.run()
    try:
        result.wait_until_finish()
    finally:
        result.client.close()


def test_the_manifest_read_is_whole_on_dask(dask_scheduler: str, tiny_archive: TinyArchive, tmp_path: Path) -> None:
    # ReadFromText's Read has no Dask translation; the Create + FlatMap read does, and loses nothing; nor
    # does a writer that writes (and emits nothing) in finish_bundle.
    pipeline = on_dask(dask_scheduler)
    (pipeline | ReadManifest(str(tiny_archive.manifest), None) | beam.Map(lambda entry: entry.image_path)
     | beam.ParDo(_OneFilePerBundle(str(tmp_path))))
    run_to_the_end(pipeline)
    assert reached(tmp_path) == sorted([*tiny_archive.good, *tiny_archive.bad])


def test_batched_inference_on_dask_drops_what_finish_bundle_emits(
    dask_scheduler: str, tiny_model_path: Path, tmp_path: Path
) -> None:
    # BatchElements emits each bundle's last batch from finish_bundle, and so does the inference DoFn
    # (one batch in flight); Beam 2.77's DaskRunner copies a bundle's outputs before finish_bundle runs.
    images = [loaded_image(index) for index in range(24)]
    pipeline = on_dask(dask_scheduler)
    (pipeline | beam.Create(images) | InferCams(CamModelLoader(str(tiny_model_path), batch_size=4), 4, 4)
     | beam.Map(lambda inferred: inferred.image.entry.image_path) | beam.ParDo(_OneFilePerBundle(str(tmp_path))))
    run_to_the_end(pipeline)
    got = reached(tmp_path)
    assert set(got) < {image.entry.image_path for image in images}, got


def test_the_audit_on_dask_cannot_write_every_row(
    dask_scheduler: str, tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path
) -> None:
    # The real graph: every element reaches every tagged output of LoadImages, so the error sink gets
    # decoded images; what the sinks do write (if the run gets that far) is short of the manifest.
    output = tmp_path / "out"
    argv = ["--manifest", str(tiny_archive.manifest), "--model", str(tiny_model_path), "--output", str(output),
            "--batch_size", "4", "--progress_seconds", "0"]
    plan = plan_audit(PipelineOptions(argv).view_as(CamAuditOptions))
    prepare_output(plan)  # as pipeline.run does: stages what workers read (e.g. the LiteRT model)
    pipeline = on_dask(dask_scheduler)
    build_audit(pipeline, plan)
    try:
        run_to_the_end(pipeline)
        failure = None
    except Exception as exc:  # noqa: BLE001 - the failure is the finding
        failure = f"{type(exc).__name__}: {exc}"
    # Workers commit per-bundle files under records/_bundles/ (the launcher's consolidation never ran).
    written = sum(pq.read_metadata(path).num_rows for path in (output / "records").rglob("*.parquet"))
    assert failure is not None or written < len(tiny_archive.good) + len(tiny_archive.bad), (failure, written)
    if failure is not None:
        # Elements crossed LoadImages' tagged outputs: a decoded image reached the error records' writer,
        # or an error record (a dict) reached the inference stage; which one fails first varies by run.
        assert "LoadedImage" in failure or "'dict' object has no attribute 'model_input'" in failure, failure


def test_the_command_line_refuses_dask_with_the_reason(
    tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--manifest", str(tiny_archive.manifest), "--model", str(tiny_model_path),
            "--output", str(tmp_path / "out"), "--runner", "apache_beam.runners.dask.dask_runner.DaskRunner",
            "--dask_client_address", "127.0.0.1:1"]
    assert main(argv) == 2
    assert "DaskRunner loses rows" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
