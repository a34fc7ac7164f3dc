"""Assembly of the cam-audit graph: check the configuration (no side effects), prepare the output, compose."""

from __future__ import annotations

import dataclasses
import datetime
import os
import uuid

import apache_beam as beam
from apache_beam.options.pipeline_options import DebugOptions, DirectOptions, PipelineOptions, StandardOptions

from pipeline.options import CamAuditOptions
from pipeline.summary import record_files
from transforms import files
from transforms.cam_head import model_input_size
from transforms.devices import usable_cores
from transforms.explain import ExplainCams
from transforms.images import LoadImages
from transforms.inference import CamModelLoader, InferCams
from transforms.manifest import ReadManifest, inspect_manifest, read_labels
from transforms.methods import METHODS, default_method
from transforms.model_files import load_keras_model
from transforms.mura import default_data_root
from transforms.output_paths import heatmaps_dir
from transforms.records import WriteRecords
from transforms.schema import RunFacts


@dataclasses.dataclass(frozen=True)
class AuditPlan:
    """Everything the graph needs, resolved and checked before any image is read."""

    manifest: str
    manifest_format: str
    csv_columns: list[str] | None
    labels: dict[str, int] | None
    data_root: str
    output_dir: str
    loader: CamModelLoader
    input_size: tuple[int, int]
    facts: RunFacts
    min_batch_size: int
    max_batch_size: int
    previous_records: list[str]  # what --overwrite will delete, once every check has passed
    heatmap_dir: str | None
    heatmap_format: str
    record_shards: int
    explainer: str = ""  # method and target layer, for the start-up line


def new_run_id() -> str:
    """UTC timestamp plus a random suffix: sortable and unique."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def _require(value: object, flag: str) -> None:
    if value in (None, ""):
        raise ValueError(f"{flag} is required (see --help)")


def previous_records(output_dir: str, overwrite: bool) -> list[str]:
    """The record files an earlier run left, which only --overwrite may replace (two runs never mix)."""
    previous = record_files(output_dir)
    if previous and not overwrite:
        raise ValueError(
            f"--output {output_dir!r} already holds {len(previous)} record file(s) from an earlier run; "
            "pass --overwrite to replace them or choose another --output"
        )
    return previous


def prepare_output(plan: AuditPlan) -> None:
    """The one step that changes the output folder before the run: remove what --overwrite replaces.

    It takes a plan, so it can only run once every check of `plan_audit` has passed.
    """
    files.delete(plan.previous_records)


def runner_kind(options: PipelineOptions) -> str:
    """The --runner as Beam reads it, reduced to a lower-case kind: 'direct' (also when unset), 'dataflow', ..."""
    name = (options.view_as(StandardOptions).runner or "direct").split(".")[-1].lower()
    return name.removesuffix("runner") or "direct"


def local_worker_processes(options: PipelineOptions) -> int:
    """SDK worker processes a local run starts on this machine: >1 only for multi_processing."""
    direct = options.view_as(DirectOptions)
    if runner_kind(options) not in ("direct", "fnapi") or direct.direct_running_mode != "multi_processing":
        return 1
    # Beam's FnApiRunner reads 0 as one worker per core.
    return direct.direct_num_workers or os.cpu_count() or 1


def dataflow_process_per_vcpu(options: PipelineOptions) -> bool:
    """Whether Dataflow will start one Python SDK process per worker vCPU (its default)."""
    experiments = options.view_as(DebugOptions).experiments or []
    return runner_kind(options) == "dataflow" and "no_use_multiple_sdk_containers" not in experiments


def cores_per_process(options: PipelineOptions) -> int:
    """Each worker process's share of its machine's cores when several share it; 0 (all of them) otherwise."""
    if dataflow_process_per_vcpu(options):
        return 1
    processes = local_worker_processes(options)
    return 0 if processes == 1 else max(1, usable_cores() // processes)


def batch_bounds(options: CamAuditOptions) -> tuple[int, int]:
    """(min, max) batch size, with the batching and threading flags checked: the one place they are."""
    max_batch = options.batch_size
    min_batch = options.min_batch_size if options.min_batch_size is not None else max_batch
    if max_batch < 1:
        raise ValueError(f"--batch_size must be >= 1, got {max_batch}")
    if not 1 <= min_batch <= max_batch:
        raise ValueError(f"need 1 <= --min_batch_size ({min_batch}) <= --batch_size ({max_batch})")
    if options.forward_threads < 0:
        raise ValueError(f"--forward_threads must be >= 0 (0: automatic), got {options.forward_threads}")
    if options.micro_batch_size < 0:
        raise ValueError(f"--micro_batch_size must be >= 0 (0: automatic), got {options.micro_batch_size}")
    return min_batch, max_batch


def plan_audit(options: CamAuditOptions) -> AuditPlan:
    """Check every option, the manifest, the output folder and the model; touch nothing.

    Raises ValueError (or FileNotFoundError) naming what is wrong. The model is loaded here once,
    in the launching process, so that a model the method cannot explain is refused before any
    worker starts or any image is read. TensorFlow's threading is set for this process first (it
    only takes before TensorFlow's runtime starts): in-process runners run the forward passes here.
    """
    _require(options.manifest, "--manifest")
    _require(options.model, "--model")
    _require(options.output, "--output")
    if not 0.0 < options.threshold <= 1.0:
        raise ValueError(f"--threshold must be in (0, 1], got {options.threshold}")
    min_batch, max_batch = batch_bounds(options)

    def make_loader(method: str) -> CamModelLoader:
        return CamModelLoader(
            options.model,
            method=method,
            preprocess=options.preprocess,
            mixed_precision=options.mixed_precision,
            align_cams=options.cam_alignment == "receptive_field",
            cam_class=options.cam_class,
            batch_size=max_batch,
            forward_threads=options.forward_threads,
            micro_batch_size=options.micro_batch_size,
            cores=cores_per_process(options),
            target_layer=options.target_layer,
            faithfulness=options.faithfulness,
        )

    class_names = tuple(name.strip() for name in options.class_names.split(",") if name.strip())
    previous = previous_records(options.output, options.overwrite)
    manifest_format, columns = inspect_manifest(options.manifest, options.manifest_format)
    labels = read_labels(options.labels_file) if options.labels_file else None

    make_loader(options.method or "cam").configure_process()
    model, sha256 = load_keras_model(options.model)
    # A --target_layer alone asks for a gradient method: classic CAM has no choice of layer.
    method_name = options.method or ("hirescam" if options.target_layer else default_method(model))
    # Building the method checks the model for it: CAM's head, the target layer, the output kind.
    method = METHODS[method_name](model, options.preprocess, options.cam_class, options.target_layer)
    loader = make_loader(method_name)
    input_size = model_input_size(model)
    if len(class_names) != method.num_classes:
        raise ValueError(
            f"--class_names has {len(class_names)} names {list(class_names)} but the model has "
            f"{method.num_classes} classes"
        )
    if options.cam_class is not None and not 0 <= options.cam_class < method.num_classes:
        raise ValueError(f"--cam_class must be in [0, {method.num_classes - 1}], got {options.cam_class}")
    features = " x ".join("B" if size is None else str(size) for size in method.features.shape)
    explainer = f"method {method_name}, target layer {method.target_name} ({features})"
    target_layer = method.target_name
    del model, method  # the launcher only checks it; workers load their own copy

    return AuditPlan(
        manifest=options.manifest,
        manifest_format=manifest_format,
        csv_columns=columns,
        labels=labels,
        data_root=options.data_root or default_data_root(options.manifest, manifest_format),
        output_dir=options.output,
        loader=loader,
        input_size=input_size,
        facts=RunFacts(
            run_id=options.run_id or new_run_id(),
            model_sha256=sha256,
            threshold=float(options.threshold),
            class_names=class_names,
            method=method_name,
            target_layer=target_layer,
        ),
        min_batch_size=min_batch,
        max_batch_size=max_batch,
        previous_records=previous,
        heatmap_dir=None if options.no_heatmaps else heatmaps_dir(options.output),
        heatmap_format=options.heatmap_format,
        record_shards=options.record_shards,
        explainer=explainer,
    )


def build_audit(
    pipeline: beam.Pipeline, plan: AuditPlan, inference: beam.PTransform | None = None
) -> dict[str, beam.PCollection]:
    """Compose manifest -> images -> batched CAM inference -> heatmaps/records -> Parquet (the sinks' results).

    `inference` replaces the inference stage (LoadedImage -> InferredImage; default `InferCams`):
    the benchmark's RunInference alternative swaps that one stage and shares the rest.
    """
    entries = pipeline | "ReadManifest" >> ReadManifest(plan.manifest, plan.csv_columns, plan.labels)
    images, error_records = entries | "LoadImages" >> LoadImages(plan.data_root, plan.input_size, plan.facts)
    inferred = images | "InferCams" >> (
        inference or InferCams(plan.loader, plan.min_batch_size, plan.max_batch_size)
    )
    ok_records = inferred | "ExplainCams" >> ExplainCams(plan.facts, plan.heatmap_dir, plan.heatmap_format)
    return (ok_records, error_records) | "WriteRecords" >> WriteRecords(plan.output_dir, plan.record_shards)
