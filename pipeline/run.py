"""cam-audit entry point: `python -m pipeline.run --manifest ... --model ... --output ...`."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from contextlib import nullcontext
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineRunner

from pipeline.beam_metrics import read_metrics, render_metrics
from pipeline.build import AuditPlan, build_audit, plan_audit, prepare_output
from pipeline.consolidate import Consolidation, consolidate
from pipeline.known_options import check_known_options
from pipeline.local_layout import with_local_processes
from pipeline.options import CamAuditOptions, help_text, route_labels_flag
from pipeline.progress import ProgressReporter
from pipeline.report import build_report
from pipeline.summary import AuditSummary, summarise_records
from transforms import files
from transforms.allocator import arrow_pool_for_workers
from transforms.output_paths import RUN_INFO_FILE, join_path


def local_runner(options: PipelineOptions) -> PipelineRunner:
    """Beam's FnApiRunner, set up as DirectRunner sets it up, but never trying Prism first.

    Beam 2.77's DirectRunner first tries to download and start the Prism runner; on a machine
    without internet that is a delay at best. The FnApiRunner honours --direct_num_workers and
    --direct_running_mode (in_memory, multi_threading, multi_processing) all the same.
    """
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    return fn_runner.FnApiRunner(provision_info=provision)


def write_run_info(
    plan: AuditPlan,
    summary: AuditSummary,
    seconds: float,
    argv: list[str],
    consolidation: Consolidation,
    metrics: dict[str, Any] | None = None,
) -> str:
    """Write `run_info.json` beside the records: what ran, on what, and what came out."""
    info = {
        "run_id": plan.facts.run_id,
        "model_sha256": plan.facts.model_sha256,
        "class_names": list(plan.facts.class_names),
        "threshold": plan.facts.threshold,
        "study_threshold": plan.study_threshold,
        "flag_thresholds": dataclasses.asdict(plan.flag_thresholds),
        "input_size": list(plan.input_size),
        "manifest": plan.manifest,
        "manifest_format": plan.manifest_format,
        "data_root": plan.data_root,
        "argv": argv,
        "wall_seconds": round(seconds, 3),
        "resumed_from": len(plan.done_paths),
        "consolidation": dataclasses.asdict(consolidation),
        "summary": summary.as_dict(),
        # Beam's metrics under their own names (namespace cam_audit), as Dataflow and Flink show them; null
        # where the runner reports none.
        "metrics": metrics,
    }
    path = join_path(plan.output_dir, RUN_INFO_FILE)
    files.write_bytes_atomic(path, json.dumps(info, indent=2).encode("utf-8"))
    return path


def progress_reporter(plan: AuditPlan) -> ProgressReporter | nullcontext:
    """Live progress while the job runs, or nothing with --progress_seconds 0."""
    if plan.progress_dir is None:
        return nullcontext()
    # This run's rows: a resumed run only audits the manifest lines still without a record.
    return ProgressReporter(plan.progress_dir, plan.images_to_audit, plan.progress_seconds)


def run(argv: list[str] | None = None) -> AuditSummary:
    """Parse options, check them and the model, run the audit and summarise what it wrote."""
    argv = route_labels_flag(list(sys.argv[1:] if argv is None else argv))
    check_known_options(argv)
    options = PipelineOptions(argv)
    plan = with_local_processes(plan_audit(options.view_as(CamAuditOptions)), options, argv)
    print(f"cam-audit: {plan.explainer}")
    if plan.local_processes:
        print(
            f"cam-audit: {plan.local_processes} local worker processes, one per core, for {plan.images_to_audit} "
            "images (--direct_num_workers 1 keeps one in-process worker)"
        )
    prepare_output(plan)
    arrow_pool_for_workers()
    runner = None if options.view_as(StandardOptions).runner else local_runner(options)
    start = time.perf_counter()
    pipeline = beam.Pipeline(runner=runner, options=options)
    build_audit(pipeline, plan)
    with progress_reporter(plan):
        result = pipeline.run()
        result.wait_until_finish()
    if plan.progress_dir is not None and files.exists(plan.progress_dir):
        files.delete([plan.progress_dir])
    consolidation = consolidate(plan.output_dir, plan.path_counts, plan.record_shards)
    seconds = time.perf_counter() - start
    if consolidation.missing:
        logging.warning("%d manifest line(s) have no record: please report this", consolidation.missing)
    metrics = read_metrics(result)
    # After consolidation records/ holds exactly this run's rows, a resumed run's earlier ones included.
    summary = summarise_records(plan.output_dir)
    run_info = write_run_info(plan, summary, seconds, argv, consolidation, metrics)
    print(render_metrics(metrics))
    print(summary.render(plan.output_dir, run_info, seconds))
    # The report reads what the run wrote (records, study table), after the run, on the launcher. A
    # resumed run's study table is rebuilt from the consolidated records: its pipeline saw only the
    # images it audited, not those of the interrupted run.
    print(build_report(plan.output_dir, rebuild=bool(plan.done_paths)).headline())
    return summary


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: --help, or run and exit 0 (configuration errors exit 2 with the reason)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print(help_text())
        return 0
    try:
        run(argv)
    except (ValueError, FileNotFoundError) as exc:
        print(f"cam-audit: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.WARNING)
    raise SystemExit(main())
