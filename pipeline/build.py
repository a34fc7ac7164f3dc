"""Assembly of the cam-audit graph: check the configuration (no side effects), prepare the output, compose."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import uuid

import apache_beam as beam
from apache_beam.options.pipeline_options import DebugOptions, DirectOptions, PipelineOptions, StandardOptions

from pipeline.checks import check_image_options, check_labels_match, check_output_writable, check_resumable
from pipeline.consolidate import committed_files, read_committed, scan_manifest
from pipeline.options import CamAuditOptions
from pipeline.summary import study_files
from transforms import files
from transforms.backends.choice import check_backend, flatbuffer_or_warn, wants_litert
from transforms.backends.litert_cache import (
    LiteRtCache,
    check_cache_dir,
    conversion_key,
    default_cache_dir,
    unsafe_cache_dir,
)
from transforms.cam_head import model_input_size
from transforms.devices import ImageThreads, gpu_names, usable_cores
from transforms.explain import ExplainCams
from transforms.flags import FlagThresholds
from transforms.images import LoadImages
from transforms.imaging import DEFAULT_MAX_PIXELS, DecodePolicy
from transforms.inference import CamModelLoader, InferCams
from transforms.manifest import ReadManifest, inspect_manifest, read_labels
from transforms.methods import METHODS, default_method
from transforms.model_files import file_sha256, load_keras_model
from transforms.mura import default_data_root
from transforms.output_paths import heatmaps_dir, join_path, litert_model_path, progress_dir
from transforms.overlay import DEFAULT_HEATMAP_MAX_SIDE
from transforms.progress import ReportProgress
from transforms.records import ROWS_PER_BUNDLE_FILE, WriteRecords
from transforms.schema import RunFacts
from transforms.studies import BuildStudies

_LOGGER = logging.getLogger(__name__)


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
    progress_dir: str | None  # None: --progress_seconds 0
    progress_seconds: float
    flag_thresholds: FlagThresholds
    study_threshold: float
    abnormal_class: int  # the class whose probability is the abnormality probability
    path_counts: dict[str, int]  # manifest lines naming each image path: the rows a complete run holds
    done_paths: frozenset[str] = frozenset()  # --resume: image paths that already have a row
    max_pixels: int = DEFAULT_MAX_PIXELS
    sixteen_bit: str = "minmax"
    heatmap_max_side: int = DEFAULT_HEATMAP_MAX_SIDE
    records_per_commit: int = ROWS_PER_BUNDLE_FILE
    litert_flatbuffer: bytes | None = None  # the checked LiteRT model, staged by prepare_output for the workers
    litert_cache: LiteRtCache | None = None  # where prepare_output keeps the checked LiteRT model for later runs
    explainer: str = ""  # method and target layer, for the start-up line
    image_threads: ImageThreads = ImageThreads()  # per-image stages' threads, settled on each worker
    redistribute: bool = True  # reshuffle the manifest's rows over the workers (not on a single local worker)
    local_processes: int = 0  # SDK worker processes cam-audit chose for a local run (`with_local_processes`); 0: none

    @property
    def images_to_audit(self) -> int:
        """Manifest lines this run audits: all of them, less those a resumed run already has a row for."""
        return sum(count for path, count in self.path_counts.items() if path not in self.done_paths)


def new_run_id() -> str:
    """UTC timestamp plus a random suffix: sortable and unique."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def _require(value: object, flag: str) -> None:
    if value in (None, ""):
        raise ValueError(f"{flag} is required (see --help)")


def previous_records(output_dir: str, overwrite: bool, resume: bool = False) -> list[str]:
    """The record files an earlier run left, which only --overwrite may replace (two runs never mix).

    They include the per-bundle files of an interrupted run; --resume continues from them instead.
    """
    if overwrite and resume:
        raise ValueError("--resume continues the run in --output and --overwrite replaces it: pass one, not both")
    previous = committed_files(output_dir)
    if previous and not (overwrite or resume):
        raise ValueError(
            f"--output {output_dir!r} already holds {len(previous)} record file(s) from an earlier run; "
            "pass --resume to continue it, --overwrite to replace it, or choose another --output"
        )
    if resume:
        # The study table of a resumed run is rebuilt from the consolidated records (pipeline/run.py).
        return []
    # The study table's files carry random names: an earlier run's would sit beside the new ones.
    return previous + study_files(output_dir)


def prepare_output(plan: AuditPlan) -> None:
    """The one step that changes the output folder before the run: remove what --overwrite replaces.

    It takes a plan, so it can only run once every check of `plan_audit` has passed. A probe file is
    written and deleted first, so an output folder that cannot be written (a read-only bucket) fails
    here, with exit 2, before anything is deleted or any image read. It also stages the LiteRT model
    the launcher converted, where the workers read it, and keeps it in the LiteRT cache for later runs.
    """
    probe = join_path(plan.output_dir, files.TEMP_PREFIX + "probe")
    try:
        files.write_bytes(probe, b"")
        files.delete([probe])
    except Exception as exc:  # noqa: BLE001 - any failure to write there is the same configuration error
        raise ValueError(f"--output {plan.output_dir!r} is not writable: {type(exc).__name__}: {exc}") from exc
    files.delete(plan.previous_records)
    if plan.litert_flatbuffer is not None:
        files.write_bytes_atomic(litert_model_path(plan.output_dir), plan.litert_flatbuffer)
    if plan.litert_cache is not None and plan.litert_flatbuffer is not None:
        plan.litert_cache.keep(plan.litert_flatbuffer)


def runner_kind(options: PipelineOptions) -> str:
    """The --runner as Beam reads it, reduced to a lower-case kind: 'direct' (also when unset), 'dataflow', ..."""
    name = (options.view_as(StandardOptions).runner or "direct").split(".")[-1].lower()
    return name.removesuffix("runner") or "direct"


def local_workers(options: PipelineOptions) -> int:
    """Workers Beam's local runner runs (threads or processes, by --direct_running_mode); 0 reads as one per core."""
    return options.view_as(DirectOptions).direct_num_workers or os.cpu_count() or 1


def local_worker_processes(options: PipelineOptions) -> int:
    """SDK worker processes a local run starts on this machine: >1 only for multi_processing."""
    direct = options.view_as(DirectOptions)
    if runner_kind(options) not in ("direct", "fnapi") or direct.direct_running_mode != "multi_processing":
        return 1
    return local_workers(options)


def local_single_worker(options: PipelineOptions) -> bool:
    """Whether the run is a local one on a single worker (Beam's default there): one bundle at a time."""
    return runner_kind(options) in ("direct", "fnapi") and local_workers(options) == 1


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


# Beam 2.77's DaskRunner, run on a loopback dask.distributed cluster (tests/test_runners_dask.py, README
# "Dask"): it drops what a DoFn emits from finish_bundle (BatchElements' last batch, the inference stage's
# batch in flight, the Parquet sink's file names) and sends every element to every tagged output.
DASK_REFUSAL = (
    "--runner {runner!r}: Beam 2.77's DaskRunner loses rows of this audit (it drops what a DoFn emits "
    "from finish_bundle, such as BatchElements' last batch and the Parquet sink's files, and sends "
    "every element to every tagged output, so decoded images reach the error records), so it is "
    "refused; see README.md, 'Dask'"
)


def check_runner(options: PipelineOptions) -> None:
    """Refuse a runner known to lose rows of this graph, naming why."""
    if runner_kind(options) == "dask":
        raise ValueError(DASK_REFUSAL.format(runner=options.view_as(StandardOptions).runner))


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
    if options.image_threads < 0:
        raise ValueError(f"--image_threads must be >= 0 (0: automatic), got {options.image_threads}")
    return min_batch, max_batch


def flag_levels(options: CamAuditOptions) -> FlagThresholds:
    """The --flag_* options as checked FlagThresholds."""
    thresholds = FlagThresholds(
        border_margin=options.flag_border_margin,
        window=options.flag_window,
        background_level=options.flag_background_level,
        saturation_level=options.flag_saturation_level,
        confidence=options.flag_confidence,
        diffuse_coverage=options.flag_diffuse_coverage,
    )
    thresholds.check()
    return thresholds


def abnormal_class(class_names: tuple[str, ...]) -> int:
    """Index of the class named 'abnormal' (any case), else the last class (MURA: 1 = abnormal)."""
    lowered = [name.lower() for name in class_names]
    return lowered.index("abnormal") if "abnormal" in lowered else len(class_names) - 1


def litert_cache(options: CamAuditOptions, model_sha256: str, method: str) -> LiteRtCache | None:
    """Where the launcher keeps this model's LiteRT conversion (--litert_cache_dir); None: nowhere."""
    folder = default_cache_dir() if options.litert_cache_dir is None else options.litert_cache_dir
    if not folder:
        return None
    if unsafe := unsafe_cache_dir(folder):
        _LOGGER.warning(
            "LiteRT cache %s not used (%s): the model is converted at every run", folder, unsafe)
        return None
    return LiteRtCache(folder, conversion_key(model_sha256, method, options.preprocess))


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
    check_runner(options)
    if options.progress_seconds < 0:
        raise ValueError(f"--progress_seconds must be >= 0 (0: off), got {options.progress_seconds}")
    if not 0.0 < options.threshold <= 1.0:
        raise ValueError(f"--threshold must be in (0, 1], got {options.threshold}")
    min_batch, max_batch = batch_bounds(options)
    flag_thresholds = flag_levels(options)
    if not 0.0 <= options.study_threshold <= 1.0:
        raise ValueError(f"--study_threshold must be within 0..1, got {options.study_threshold}")
    check_backend(options.backend, options.mixed_precision)
    check_cache_dir(options.litert_cache_dir or "")

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
            backend=options.backend,
            target_layer=options.target_layer,
            faithfulness=options.faithfulness,
        )

    class_names = tuple(name.strip() for name in options.class_names.split(",") if name.strip())
    check_image_options(options)
    check_output_writable(options.output)
    previous = previous_records(options.output, options.overwrite, options.resume)
    manifest_format, columns = inspect_manifest(options.manifest, options.manifest_format)
    scan = scan_manifest(options.manifest, columns)
    if not scan.path_counts:
        raise ValueError(f"--manifest {options.manifest!r} names no image (only blank lines or a header)")
    labels = read_labels(options.labels_file) if options.labels_file else None
    if labels is not None:
        check_labels_match(labels, scan.study_keys, options.labels_file)
    committed = read_committed(options.output) if options.resume else None

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
    litert_flatbuffer, cache = None, None
    if wants_litert(options.backend, method_name, options.mixed_precision, bool(gpu_names())):
        # Converted and checked once here, not in every worker: conversion takes seconds to tens of
        # seconds and a few hundred MiB (bench/README.md). On any failure the run uses TensorFlow.
        cache = litert_cache(options, sha256, method_name)
        litert_flatbuffer = flatbuffer_or_warn(method, cache)
        if litert_flatbuffer is None:
            loader.backend = "tensorflow"
        else:
            loader.litert_model = (litert_model_path(options.output), file_sha256(litert_flatbuffer))
            loader.model_facts = loader.facts_of(model, method)
    del model, method  # the launcher only checks them; workers load their own copy
    run_id = options.run_id
    if committed is not None:
        check_resumable(committed, sha256, float(options.threshold))
        # The resumed run keeps the interrupted run's id, so its records equal an uninterrupted run's.
        run_id = run_id or (next(iter(committed.run_ids)) if len(committed.run_ids) == 1 else None)
    run_id = run_id or new_run_id()
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
            run_id=run_id,
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
        path_counts=scan.path_counts,
        done_paths=committed.image_paths if committed is not None else frozenset(),
        max_pixels=options.max_pixels,
        sixteen_bit=options.sixteen_bit,
        heatmap_max_side=options.heatmap_max_side,
        records_per_commit=options.records_per_commit,
        progress_dir=progress_dir(options.output, run_id) if options.progress_seconds else None,
        progress_seconds=float(options.progress_seconds),
        flag_thresholds=flag_thresholds,
        study_threshold=float(options.study_threshold),
        abnormal_class=abnormal_class(class_names),
        litert_flatbuffer=litert_flatbuffer,
        litert_cache=cache,
        explainer=explainer,
        image_threads=ImageThreads(options.image_threads, cores_per_process(options)),
        redistribute=not local_single_worker(options),
    )


def build_audit(
    pipeline: beam.Pipeline, plan: AuditPlan, inference: beam.PTransform | None = None
) -> dict[str, beam.PCollection]:
    """Compose manifest -> images -> batched CAM inference -> heatmaps/records -> Parquet, and the study table.

    Returns the record writers' (empty) output under "records" and the study rows under "studies".

    `inference` replaces the inference stage (LoadedImage -> InferredImage; default `InferCams`):
    the benchmark's RunInference alternative swaps that one stage and shares the rest.
    """
    entries = pipeline | "ReadManifest" >> ReadManifest(plan.manifest, plan.csv_columns, plan.labels, plan.redistribute)
    if plan.done_paths:
        entries = entries | "SkipDone" >> beam.Filter(lambda entry, done: entry.image_path not in done, plan.done_paths)
    images, error_records = entries | "LoadImages" >> LoadImages(
        plan.data_root, plan.input_size, plan.facts, DecodePolicy(plan.max_pixels, plan.sixteen_bit), plan.image_threads
    )
    inferred = images | "InferCams" >> (
        inference or InferCams(plan.loader, plan.min_batch_size, plan.max_batch_size)
    )
    ok_records = inferred | "ExplainCams" >> ExplainCams(
        plan.facts, plan.heatmap_dir, plan.heatmap_format, plan.heatmap_max_side, plan.flag_thresholds,
        plan.image_threads,
    )
    if plan.progress_dir is not None:
        # Tallies rewritten twice per reporting interval, so every report sees a fresh count.
        interval = plan.progress_seconds / 2
        ok_records | "ProgressOk" >> ReportProgress(plan.progress_dir, interval)
        error_records | "ProgressErrors" >> ReportProgress(plan.progress_dir, interval)
    written = (ok_records, error_records) | "WriteRecords" >> WriteRecords(plan.output_dir, plan.records_per_commit)
    studies = (ok_records, error_records) | "BuildStudies" >> BuildStudies(
        plan.output_dir, plan.abnormal_class, plan.study_threshold, plan.facts.run_id
    )
    return {"records": written, "studies": studies}
