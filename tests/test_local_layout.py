"""The local runner's workers (pipeline/local_layout.py): one in-process worker, or one SDK worker process per core
for a large archive whose workers run LiteRT without TensorFlow."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions

import pipeline.build as build
import pipeline.local_layout as local_layout
import transforms.inference as inference
from pipeline.build import AuditPlan, plan_audit
from tests.conftest import TinyArchive
from tests.test_build import audit_options, base_args


def litert_plan_on_four_cores(
    archive: TinyArchive, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[AuditPlan, list[str]]:
    """A local LiteRT audit's plan and command line, on a machine taken to have 4 cores and no GPU."""
    pytest.importorskip("ai_edge_litert")
    monkeypatch.setattr(build, "usable_cores", lambda: 4)
    monkeypatch.setattr(local_layout, "usable_cores", lambda: 4)
    monkeypatch.setattr(build, "gpu_names", lambda: [])
    monkeypatch.setattr(inference, "gpu_driver_present", lambda: False)
    argv = [*base_args(archive, model, tmp_path / "out"), "--backend", "litert"]
    return plan_audit(audit_options(argv)), argv


def test_a_large_local_litert_run_gets_one_worker_process_per_core(
    tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan, argv = litert_plan_on_four_cores(tiny_archive, tiny_model_path, tmp_path, monkeypatch)
    monkeypatch.setattr(local_layout, "LOCAL_PROCESSES_MIN_IMAGES", plan.images_to_audit)
    options = PipelineOptions(argv)
    chosen = local_layout.with_local_processes(plan, options, argv)
    direct = options.view_as(DirectOptions)
    assert (direct.direct_num_workers, direct.direct_running_mode) == (4, "multi_processing")
    assert chosen.local_processes == 4 and chosen.redistribute
    assert chosen.loader.cores == 1 and chosen.image_threads.count() == 2  # one core each, two threads per stage
    assert build.local_worker_processes(options) == 4


def test_the_local_runner_keeps_its_one_worker_unless_processes_pay_and_the_user_left_it_to_us(
    tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan, argv = litert_plan_on_four_cores(tiny_archive, tiny_model_path, tmp_path, monkeypatch)
    tensorflow_argv = [*base_args(tiny_archive, tiny_model_path, tmp_path / "tf"), "--backend", "tensorflow"]
    tensorflow_plan = plan_audit(audit_options(tensorflow_argv))
    monkeypatch.setattr(local_layout, "LOCAL_PROCESSES_MIN_IMAGES", plan.images_to_audit)
    for extra in (["--direct_num_workers", "1"], ["--direct_num_workers=2"], ["--direct_running_mode=in_memory"],
                  ["--runner", "DirectRunner"]):
        assert local_layout.local_processes(plan, PipelineOptions([*argv, *extra]), [*argv, *extra]) == 0, extra
    assert local_layout.local_processes(tensorflow_plan, PipelineOptions(tensorflow_argv), tensorflow_argv) == 0
    assert local_layout.local_processes(plan, PipelineOptions(argv), argv) == 4
    monkeypatch.setattr(local_layout, "LOCAL_PROCESSES_MIN_IMAGES", plan.images_to_audit + 1)
    assert local_layout.local_processes(plan, PipelineOptions(argv), argv) == 0  # too few images to pay the start-up
    monkeypatch.setattr(local_layout, "LOCAL_PROCESSES_MIN_IMAGES", plan.images_to_audit)
    monkeypatch.setattr(local_layout, "usable_cores", lambda: 1)
    assert local_layout.local_processes(plan, PipelineOptions(argv), argv) == 0
    unchanged = PipelineOptions(argv)
    assert local_layout.with_local_processes(plan, unchanged, argv) is plan
    assert unchanged.view_as(DirectOptions).direct_running_mode == "in_memory"


def test_a_resumed_run_counts_only_the_images_still_to_audit(
    tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan, argv = litert_plan_on_four_cores(tiny_archive, tiny_model_path, tmp_path, monkeypatch)
    monkeypatch.setattr(local_layout, "LOCAL_PROCESSES_MIN_IMAGES", plan.images_to_audit)
    done = frozenset(list(plan.path_counts)[:1])
    resumed = dataclasses.replace(plan, done_paths=done)
    assert resumed.images_to_audit == plan.images_to_audit - plan.path_counts[next(iter(done))]
    assert local_layout.local_processes(resumed, PipelineOptions(argv), argv) == 0


def test_the_plan_given_keeps_its_loader(
    tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan, argv = litert_plan_on_four_cores(tiny_archive, tiny_model_path, tmp_path, monkeypatch)
    monkeypatch.setattr(local_layout, "LOCAL_PROCESSES_MIN_IMAGES", 1)
    cores = plan.loader.cores
    chosen = local_layout.with_local_processes(plan, PipelineOptions(argv), argv)
    assert chosen.loader is not plan.loader and plan.loader.cores == cores and chosen.loader.cores == 1
