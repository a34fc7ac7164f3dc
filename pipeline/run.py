"""cam-audit entry point: `python -m pipeline.run --manifest ... --model ... --output ...`."""

from __future__ import annotations

import json
import logging
import sys
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineRunner

from pipeline.build import AuditPlan, build_audit, plan_audit, prepare_output
from pipeline.options import CamAuditOptions, help_text, route_labels_flag
from pipeline.summary import AuditSummary, summarise_records
from transforms import files
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


def write_run_info(plan: AuditPlan, summary: AuditSummary, seconds: float, argv: list[str]) -> str:
    """Write `run_info.json` beside the records: what ran, on what, and what came out."""
    info = {
        "run_id": plan.facts.run_id,
        "model_sha256": plan.facts.model_sha256,
        "class_names": list(plan.facts.class_names),
        "threshold": plan.facts.threshold,
        "input_size": list(plan.input_size),
        "manifest": plan.manifest,
        "manifest_format": plan.manifest_format,
        "data_root": plan.data_root,
        "argv": argv,
        "wall_seconds": round(seconds, 3),
        "summary": summary.as_dict(),
    }
    path = join_path(plan.output_dir, RUN_INFO_FILE)
    files.write_bytes(path, json.dumps(info, indent=2).encode("utf-8"))
    return path


def run(argv: list[str] | None = None) -> AuditSummary:
    """Parse options, check them and the model, run the audit and summarise what it wrote."""
    argv = route_labels_flag(list(sys.argv[1:] if argv is None else argv))
    options = PipelineOptions(argv)
    plan = plan_audit(options.view_as(CamAuditOptions))
    print(f"cam-audit: {plan.explainer}")
    prepare_output(plan)
    runner = None if options.view_as(StandardOptions).runner else local_runner(options)
    start = time.perf_counter()
    pipeline = beam.Pipeline(runner=runner, options=options)
    build_audit(pipeline, plan)
    result = pipeline.run()
    result.wait_until_finish()
    seconds = time.perf_counter() - start
    summary = summarise_records(plan.output_dir, plan.facts.run_id)
    run_info = write_run_info(plan, summary, seconds, argv)
    print(summary.render(plan.output_dir, run_info, seconds))
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
