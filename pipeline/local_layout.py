"""The local runner's workers: one in-process worker (Beam's default), or one SDK worker process per core."""

from __future__ import annotations

import copy
import dataclasses

from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from pipeline.build import AuditPlan, cores_per_process
from transforms.devices import ImageThreads, usable_cores

# A local run of at least this many images whose workers run the staged LiteRT model without TensorFlow (cheap to
# start) gets one SDK worker process per core instead of Beam's one in-process worker, whose Python work per image
# the GIL holds below the cores it has; below it, the processes' start-up costs more than they save (the break-even
# is measured in bench/README.md, session 8).
LOCAL_PROCESSES_MIN_IMAGES = 5_000
LOCAL_LAYOUT_FLAGS = ("--direct_num_workers", "--direct_running_mode")


def sets_local_layout(argv: list[str]) -> bool:
    """Whether the command line chooses the local runner's workers itself (then cam-audit leaves them be)."""
    return any(arg == flag or arg.startswith(flag + "=") for arg in argv for flag in LOCAL_LAYOUT_FLAGS)


def local_processes(plan: AuditPlan, options: PipelineOptions, argv: list[str]) -> int:
    """SDK worker processes cam-audit starts for a local run left to the defaults: one per usable core for an archive
    of LOCAL_PROCESSES_MIN_IMAGES images or more whose workers need no TensorFlow; 0 keeps Beam's one in-process
    worker (a smaller archive, one core, TensorFlow workers, --runner or the local layout given)."""
    if options.view_as(StandardOptions).runner or sets_local_layout(argv):
        return 0
    cores = usable_cores()
    if cores < 2 or plan.images_to_audit < LOCAL_PROCESSES_MIN_IMAGES or not plan.loader.runs_without_tensorflow():
        return 0
    return cores


def with_local_processes(plan: AuditPlan, options: PipelineOptions, argv: list[str]) -> AuditPlan:
    """The plan, and `options`' local runner, set for `local_processes` worker processes when it chooses any."""
    processes = local_processes(plan, options, argv)
    if not processes:
        return plan
    direct = options.view_as(DirectOptions)
    direct.direct_num_workers, direct.direct_running_mode = processes, "multi_processing"
    loader = copy.copy(plan.loader)  # the given plan keeps its own
    loader.cores = cores_per_process(options)
    return dataclasses.replace(
        plan,
        loader=loader,
        image_threads=ImageThreads(plan.image_threads.requested, loader.cores),
        redistribute=True,
        local_processes=processes,
    )
