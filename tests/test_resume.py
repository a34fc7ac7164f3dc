"""Atomic outputs and --resume, end to end: a run that fails or is killed partway, then resumed,
ends with the records an uninterrupted run writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import apache_beam as beam
import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.build import build_audit, plan_audit, prepare_output
from pipeline.options import CamAuditOptions
from pipeline.run import local_runner, run
from transforms.inference import InferCams

RUN_ID = "resume-test"


def write_images(folder: Path, count: int, side: int) -> Path:
    """`count` grey PNGs of side x side and a CSV manifest naming them (and one missing file)."""
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True)
    for index in range(count):
        cv2.imwrite(str(folder / f"img{index:03d}.png"), rng.integers(0, 256, (side, side), dtype=np.uint8))
    manifest = folder / "manifest.csv"
    lines = "".join(f"img{i:03d}.png,s{i % 5}\n" for i in range(count))
    manifest.write_text("image_path,study_id\n" + lines + "missing.png,s0\n")
    return manifest


def args(manifest: Path, model: Path, output: Path, *extra: str) -> list[str]:
    return ["--manifest", str(manifest), "--model", str(model), "--output", str(output), "--batch_size", "4",
            "--run_id", RUN_ID, "--records_per_commit", "4", *extra]  # fmt: skip


def comparable(output: Path) -> list[dict]:
    """Records sorted by path, heatmap paths relative to the output: what two runs must agree on."""
    rows = pq.read_table(output / "records").to_pylist()
    for row in rows:
        if row["heatmap_path"]:
            row["heatmap_path"] = str(Path(row["heatmap_path"]).relative_to(output))
    return sorted(rows, key=lambda r: r["image_path"])


def study_rows(output: Path) -> list[dict]:
    """The study table sorted by study: a resumed run's must equal an uninterrupted run's."""
    return sorted(pq.read_table(output / "studies").to_pylist(), key=lambda r: r["study_id"])


def assert_clean_and_decodable(output: Path, heatmaps_expected: int, extension: str = "jpg") -> None:
    """No temporary file or bundle folder left, and every heatmap there decodes."""
    assert not [p for p in output.rglob("*") if p.name.startswith((".cam-audit-tmp-", "beam-temp-"))]
    assert not (output / "records" / "_bundles").exists()
    heatmaps = sorted((output / "heatmaps").rglob(f"*.{extension}"))
    assert len(heatmaps) == heatmaps_expected and all(cv2.imread(str(path)) is not None for path in heatmaps)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_images(tmp_path_factory.mktemp("resume") / "images", 24, 64)


@pytest.fixture(scope="module")
def uninterrupted(images: Path, tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    output = tmp_path_factory.mktemp("uninterrupted") / "out"
    run(args(images, tiny_model_path, output))
    return comparable(output)


class _FailOnce(beam.DoFn):
    """Passes images on, but raises at the `at`-th one the first time (a marker file remembers)."""

    def __init__(self, marker: str, at: int) -> None:
        self._marker = marker
        self._at = at
        self._seen = 0

    def process(self, inferred: object):  # noqa: ANN201 - a DoFn generator
        self._seen += 1
        if self._seen == self._at and not os.path.exists(self._marker):
            Path(self._marker).write_text("failed once")
            raise RuntimeError("injected failure mid-bundle")
        yield inferred


def test_a_run_that_fails_mid_bundle_then_resumes_equals_an_uninterrupted_run(
    images: Path, tiny_model_path: Path, tmp_path: Path, uninterrupted: list[dict]
) -> None:
    # Beam's local FnApiRunner does not retry a failed bundle (it fails the job), so the retry is
    # the --resume: it must find no partial heatmap and no half-written record file, and finish.
    output = tmp_path / "out"
    # One image thread: a stage then holds at most two chunks of 8 images in flight (ordered_threads.py), so the
    # 20th image reaches the failure only after the first 8 records were handed on and committed, on any machine.
    argv = args(images, tiny_model_path, output, "--image_threads", "1")
    options = PipelineOptions(argv)
    plan = plan_audit(options.view_as(CamAuditOptions))
    prepare_output(plan)
    failing = InferCams(plan.loader, plan.min_batch_size, plan.max_batch_size) | beam.ParDo(
        _FailOnce(str(tmp_path / "marker"), at=20)
    )
    pipeline = beam.Pipeline(runner=local_runner(options), options=options)
    build_audit(pipeline, plan, inference=failing)
    with pytest.raises(Exception, match="injected failure"):
        pipeline.run().wait_until_finish()
    committed = list((output / "records" / "_bundles").glob("*.parquet"))
    assert committed and not list((output / "records").glob("part-*"))  # a partial run, not a finished one

    run([*argv, "--resume"])
    assert comparable(output) == uninterrupted
    assert_clean_and_decodable(output, 24)
    assert json.loads((output / "run_info.json").read_text())["resumed_from"] > 0


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_records_of_an_uninterrupted_run(
    tiny_model_path: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Bigger images with PNG heatmaps make the run last long enough to be killed partway.
    manifest = write_images(tmp_path / "images", 160, 400)
    extra = ("--heatmap_format", "png")
    whole = tmp_path / "whole"
    run(args(manifest, tiny_model_path, whole, *extra))
    output = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    process = subprocess.Popen([sys.executable, "-m", "pipeline.run", *args(manifest, tiny_model_path, output, *extra)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    bundles = output / "records" / "_bundles"
    deadline = time.monotonic() + 240
    while not list(bundles.glob("*.parquet")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not list((output / "records").glob("part-*")), "the run finished before it could be killed"
    committed = pq.read_table(bundles).column("image_path").to_pylist()
    assert 0 < len(committed) < 161
    before = {path: (output / "heatmaps" / f"{path}.png").stat().st_mtime_ns for path in committed
              if path != "missing.png"}  # fmt: skip

    run(args(manifest, tiny_model_path, output, *extra, "--resume"))
    assert comparable(output) == comparable(whole)
    # the study table covers the images of both parts of the run, not only the resumed part's
    # (means are sums over the study's images in whatever order the combine met them: equal to rounding)
    resumed, expected = study_rows(output), study_rows(whole)
    assert len(expected) == 5 and [row.keys() for row in resumed] == [row.keys() for row in expected]
    for got, want in zip(resumed, expected, strict=True):
        assert got == {key: pytest.approx(value, rel=1e-12) if isinstance(value, float) else value
                       for key, value in want.items()}  # fmt: skip
    assert_clean_and_decodable(output, 160, "png")
    # what was committed before the kill was not recomputed: its heatmaps were not rewritten
    assert {path: (output / "heatmaps" / f"{path}.png").stat().st_mtime_ns for path in before} == before
    info = json.loads((output / "run_info.json").read_text())
    assert info["resumed_from"] == len(set(committed)) and info["summary"]["rows"] == 161

