"""The kernel's scheduling policy for cam-audit's own compute threads: SCHED_BATCH where Linux offers it.

A worker process runs several CPU-bound threads per core (decode, CAM statistics and heatmaps, the forward pass)
that hand elements to each other. Under the default policy a woken thread preempts the one running on its core,
so the threads keep interrupting each other mid-image and each resumes on caches the other evicted. SCHED_BATCH
tells the kernel the thread is CPU-bound: it still gets its fair share, but a wake-up no longer preempts the thread
that is running (bench/README.md, session 14: the measured gain). Any user may set it on their own threads; Beam's
threads (control, data and progress channels) keep the default policy.
"""

from __future__ import annotations

import logging
import os

_LOGGER = logging.getLogger(__name__)


def run_as_batch_thread() -> bool:
    """Mark the calling thread SCHED_BATCH; False (and nothing changed) where the platform has no such policy."""
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None or not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))  # 0: the calling thread, on Linux
    except OSError as exc:  # e.g. a seccomp profile that forbids it: the default policy stays
        _LOGGER.debug("SCHED_BATCH refused for a compute thread: %s", exc)
        return False
    return True
