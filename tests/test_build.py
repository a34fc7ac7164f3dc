"""Assembly: every flag checked before anything is touched, the output prepared only after, cores shared out."""

from __future__ import annotations

from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

import pipeline.build as build
from pipeline.build import batch_bounds, plan_audit, prepare_output, previous_records
from pipeline.options import CamAuditOptions, route_labels_flag
from tests.conftest import TINY_INPUT, TinyArchive
from transforms.inference import CamModelFacts


def audit_options(argv: list[str]) -> CamAuditOptions:
    """The options the command line would give plan_audit."""
    return PipelineOptions(route_labels_flag(argv)).view_as(CamAuditOptions)


def base_args(archive: TinyArchive, model: Path, output: Path) -> list[str]:
    return ["--manifest", str(archive.manifest), "--model", str(model), "--output", str(output), "--batch_size", "4"]


def fake_records(output: Path) -> dict[Path, bytes]:
    """Two record files as an earlier run leaves them (plan_audit only lists them), with their bytes."""
    written = {
        output / "records" / "part-00000-of-00001.parquet": b"ok rows",
        output / "records" / "errors-00000-of-00001.parquet": b"error rows",
    }
    for path, data in written.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return written


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--threshold", "0"], "--threshold"),
        (["--class_names", "a,b,c"], "--class_names"),
        (["--cam_class", "5"], "--cam_class"),
        (["--batch_size", "4", "--min_batch_size", "9"], "--min_batch_size"),
        (["--batch_size", "0"], "--batch_size"),
        (["--forward_threads", "-1"], "--forward_threads"),
        (["--micro_batch_size", "-8"], "--micro_batch_size"),
        (["--image_threads", "-2"], "--image_threads"),
        (["--progress_seconds", "-1"], "--progress_seconds"),
        (["--runner", "apache_beam.runners.dask.dask_runner.DaskRunner"], "DaskRunner loses rows"),
        (["--runner", "DaskRunner"], "finish_bundle"),
        (["--study_threshold", "1.5"], "--study_threshold"),
        (["--flag_confidence", "2"], "--flag_confidence"),
        (["--flag_saturation_level", "300"], "--flag_saturation_level"),
    ],
)
def test_bad_configuration_fails_at_start(
    tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        plan_audit(audit_options([*base_args(tiny_archive, tiny_model_path, tmp_path / "out"), *extra]))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--batch_size", "0"], r"--batch_size must be >= 1, got 0"),
        (["--batch_size", "4", "--min_batch_size", "9"], r"need 1 <= --min_batch_size \(9\) <= --batch_size \(4\)"),
        (["--min_batch_size", "0"], r"need 1 <= --min_batch_size \(0\) <= --batch_size \(32\)"),
        (["--forward_threads", "-1"], r"--forward_threads must be >= 0 \(0: automatic\), got -1"),
        (["--micro_batch_size", "-8"], r"--micro_batch_size must be >= 0 \(0: automatic\), got -8"),
        (["--image_threads", "-2"], r"--image_threads must be >= 0 \(0: automatic\), got -2"),
    ],
)
def test_batch_bounds_refuse_bad_flags(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        batch_bounds(audit_options(argv))


def test_batch_bounds_default_to_fixed_size_batches() -> None:
    assert batch_bounds(audit_options([])) == (32, 32)
    assert batch_bounds(audit_options(["--batch_size", "8"])) == (8, 8)
    assert batch_bounds(audit_options(["--batch_size", "8", "--min_batch_size", "2"])) == (2, 8)


@pytest.mark.parametrize("missing", ["--manifest", "--model", "--output"])
def test_required_flags_are_named(tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path,
                                  missing: str) -> None:
    argv = base_args(tiny_archive, tiny_model_path, tmp_path / "out")
    index = argv.index(missing)
    del argv[index : index + 2]
    with pytest.raises(ValueError, match=f"{missing} is required"):
        plan_audit(audit_options(argv))


def test_previous_records_are_refused_without_overwrite(tmp_path: Path) -> None:
    assert previous_records(str(tmp_path), overwrite=False) == []
    written = fake_records(tmp_path)
    with pytest.raises(ValueError, match="already holds 2 record file.*--overwrite"):
        previous_records(str(tmp_path), overwrite=False)
    assert previous_records(str(tmp_path), overwrite=True) == sorted(str(path) for path in written)
    # An earlier run's study table goes with its records (its files carry random names).
    study = tmp_path / "studies" / "part-abc.parquet"
    study.parent.mkdir()
    study.write_bytes(b"x")
    assert previous_records(str(tmp_path), overwrite=True)[-1] == str(study)


def test_plan_audit_touches_nothing_and_prepare_output_deletes_the_previous_records(
    tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    written = fake_records(output)
    argv = [*base_args(tiny_archive, tiny_model_path, output), "--overwrite", "--cam_class", "1", "--run_id", "r7",
            "--labels", str(tiny_archive.labels)]
    plan = plan_audit(audit_options(argv))
    assert plan.previous_records == sorted(str(path) for path in written)
    assert {path: path.read_bytes() for path in written} == written  # planning deleted nothing
    assert plan.input_size == (TINY_INPUT, TINY_INPUT) and (plan.min_batch_size, plan.max_batch_size) == (4, 4)
    assert plan.facts.run_id == "r7" and plan.facts.class_names == ("normal", "abnormal")
    assert len(plan.facts.model_sha256) == 64 and plan.loader.cam_class == 1
    assert plan.manifest_format == "mura" and plan.data_root == str(tiny_archive.root)
    assert plan.labels is not None and plan.heatmap_dir == str(output / "heatmaps")
    prepare_output(plan)
    assert not any(path.exists() for path in written)


def test_litert_model_is_converted_by_the_plan_and_staged_by_prepare_output(
    tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path
) -> None:
    pytest.importorskip("ai_edge_litert")
    from transforms.model_files import file_sha256

    output = tmp_path / "out"
    plan = plan_audit(audit_options([*base_args(tiny_archive, tiny_model_path, output), "--backend", "litert"]))
    assert plan.litert_flatbuffer and not output.exists()  # converted, checked, nothing written yet
    assert plan.loader.backend == "litert"
    assert plan.loader.litert_model == (str(output / "model.tflite"), file_sha256(plan.litert_flatbuffer))
    # What a worker needs to run the staged model without TensorFlow, read from the checked model.
    assert plan.loader.model_facts == CamModelFacts(2, (0.0, 0.0), (TINY_INPUT, TINY_INPUT))
    prepare_output(plan)
    assert (output / "model.tflite").read_bytes() == plan.litert_flatbuffer
    tensorflow = plan_audit(audit_options([*base_args(tiny_archive, tiny_model_path, tmp_path / "tf"),
                                           "--backend", "tensorflow"]))
    assert tensorflow.litert_flatbuffer is None and tensorflow.loader.litert_model is None
    assert tensorflow.loader.model_facts is None


def test_model_without_the_cam_head_is_refused_by_cam_and_explained_by_hirescam(
    tiny_archive: TinyArchive, flatten_model_path: Path, tmp_path: Path
) -> None:
    from transforms.cam_head import CamModelError

    args = base_args(tiny_archive, flatten_model_path, tmp_path / "out")
    with pytest.raises(CamModelError, match="GlobalAveragePooling2D"):
        plan_audit(audit_options([*args, "--method", "cam"]))
    plan = plan_audit(audit_options(args))
    assert plan.loader.method == plan.facts.method == "hirescam"
    assert plan.facts.target_layer.startswith("conv2d") and "B x 30 x 30 x 4" in plan.explainer


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target_layer", "nope"], "no layer of that name"),
        (["--target_layer", "classifier"], "not B x h x w x C"),
    ],
)
def test_bad_target_layer_fails_at_start(
    tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        plan_audit(audit_options([*base_args(tiny_archive, tiny_model_path, tmp_path / "out"), *extra]))


def test_runner_kind_reads_the_runner_as_beam_does() -> None:
    assert build.runner_kind(PipelineOptions([])) == "direct"
    for runner in ("DataflowRunner", "dataflow", "apache_beam.runners.dataflow.dataflow_runner.DataflowRunner"):
        assert build.runner_kind(PipelineOptions(["--runner", runner])) == "dataflow", runner
    assert build.runner_kind(PipelineOptions(["--runner", "DirectRunner"])) == "direct"


def test_local_worker_processes_share_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "usable_cores", lambda: 8)
    shared = PipelineOptions(["--direct_running_mode", "multi_processing", "--direct_num_workers", "2"])
    assert build.local_worker_processes(shared) == 2 and build.cores_per_process(shared) == 4
    # In-process runners, and one SDK process per VM: each worker process settles on its own cores (0).
    for argv in ([], ["--direct_num_workers", "2"], ["--runner", "DataflowRunner", "--experiments",
                                                     "no_use_multiple_sdk_containers"]):
        assert build.cores_per_process(PipelineOptions(argv)) == 0, argv
    # Dataflow's default: one SDK process per vCPU, so one core each, however the runner is spelled.
    for runner in ("DataflowRunner", "dataflow", "apache_beam.runners.dataflow.dataflow_runner.DataflowRunner"):
        assert build.cores_per_process(PipelineOptions(["--runner", runner])) == 1, runner
    spelled = PipelineOptions(["--runner", "direct", "--direct_running_mode", "multi_processing",
                               "--direct_num_workers", "4"])
    assert build.cores_per_process(spelled) == 2


def test_only_a_single_local_worker_skips_redistributing_the_manifest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build.os, "cpu_count", lambda: 4)
    for argv in ([], ["--runner", "DirectRunner"], ["--direct_running_mode", "multi_threading"]):
        assert build.local_single_worker(PipelineOptions(argv)), argv
    for argv in (["--direct_num_workers", "2"], ["--direct_num_workers", "0"],
                 ["--direct_running_mode", "multi_processing", "--direct_num_workers", "2"],
                 ["--runner", "DataflowRunner"], ["--runner", "PortableRunner"], ["--runner", "DaskRunner"]):
        assert not build.local_single_worker(PipelineOptions(argv)), argv


def test_prepare_output_probes_the_folder_before_deleting_anything(
    tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "out"
    written = fake_records(output)
    plan = plan_audit(audit_options([*base_args(tiny_archive, tiny_model_path, output), "--overwrite"]))

    def refuse(path: str, data: bytes) -> None:
        raise PermissionError(f"read-only bucket: {path}")

    monkeypatch.setattr(build.files, "write_bytes", refuse)
    with pytest.raises(ValueError, match="is not writable: PermissionError: read-only bucket"):
        prepare_output(plan)
    assert {path: path.read_bytes() for path in written} == written  # nothing deleted


def test_an_interrupted_runs_bundle_files_count_as_previous_records(tmp_path: Path) -> None:
    bundle = tmp_path / "records" / "_bundles" / "part-abc.parquet"
    bundle.parent.mkdir(parents=True)
    bundle.write_bytes(b"committed rows")
    with pytest.raises(ValueError, match="already holds 1 record file.*--resume to continue it"):
        previous_records(str(tmp_path), overwrite=False)
    assert previous_records(str(tmp_path), overwrite=False, resume=True) == []  # kept, to continue from
    assert previous_records(str(tmp_path), overwrite=True) == [str(bundle)]


@pytest.mark.parametrize("alignment", ["receptive_field", "naive"])
def test_the_facts_handed_to_litert_workers_are_what_a_tensorflow_worker_finds(
    tiny_archive: TinyArchive, tmp_path: Path, alignment: str
) -> None:
    pytest.importorskip("ai_edge_litert")
    from reference.classifier import build_cam_classifier
    from transforms.inference import CamModelLoader

    # MobileNetV2's bottom/right padding moves its CAM cells off the naive grid (tests/test_receptive_field.py).
    model_path = tmp_path / "mobilenet.keras"
    build_cam_classifier(64, 0.35, feature_stride=16).save(model_path)
    argv = [*base_args(tiny_archive, model_path, tmp_path / "out"), "--backend", "litert", "--cam_alignment", alignment]
    facts = plan_audit(audit_options(argv)).loader.model_facts
    aligned = alignment == "receptive_field"
    worker = CamModelLoader(str(model_path), backend="tensorflow", align_cams=aligned).load_model()
    assert facts == CamModelFacts(worker.num_classes, worker.cam_shift, worker.input_size)
    assert facts.cam_shift == ((0.46875, 0.46875) if aligned else (0.0, 0.0))
