"""The C allocator's settings for a worker process: per-image buffers reuse freed memory instead of new pages.

Every image allocates and frees the same few buffers of up to a few MB (decoded pixels, the CAM at the original
size, the overlay, the encoded heatmap) on the stage threads. glibc gives each thread an arena and hands the
free top of an arena back to the kernel once it exceeds a threshold it adapts to the freed sizes (or maps big
buffers afresh), so the next image's buffers fault fresh pages in and the kernel zeroes them. Raising the two
thresholds keeps that memory in the process for the next image: the numbers are in bench/README.md (session 7).
What an arena keeps is memory it already held at its peak, so the process's peak memory does not grow; its memory
between peaks stays nearer the peak (up to the trim threshold per thread arena).

Arrow's buffers (the record writers' tables and Parquet pages) come from that same C allocator, not from the
mimalloc pyarrow bundles: mimalloc's heaps, filled at a worker's first 1,000-row commit, stayed resident beside
glibc's arenas, a ~30 MiB step in every worker's memory (bench/README.md, session 15).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

_LOGGER = logging.getLogger(__name__)

# mallopt parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Buffers below this come from the arenas (glibc's own ceiling for its adaptive threshold: 32 MiB on 64 bits);
# an arena keeps this much free memory at its top before giving any back (twice that, as glibc's adaptive rule).
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 2 * MMAP_THRESHOLD_BYTES
# Arrow reads its default pool's name from this variable once, at the process's first Arrow allocation, and the
# Parquet writer's C++ takes that pool whatever pyarrow.set_memory_pool says; so it is set in the environment.
ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds for this process; False (and nothing changed) where libc has no mallopt."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): its allocator stays as it is
        mallopt = None
    if mallopt is None:
        _LOGGER.debug("no mallopt in this C library: allocator settings left as they are")
        return False
    # mallopt returns 1 on success, 0 on a bad parameter or value.
    mapped = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    trimmed = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    return bool(mapped and trimmed)


def arrow_pool_for_workers() -> None:
    """Have worker processes started from here (Beam's local runner's) give Arrow the C allocator, unless set already.

    Container workers (Dataflow, Flink) get the same variable from the Dockerfile.
    """
    os.environ.setdefault(ARROW_POOL_VARIABLE, "system")
