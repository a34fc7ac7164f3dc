"""cProfile of one in-process cam-audit run: where the launching thread's time goes, stage by stage.

cProfile sees the thread that runs Beam's bundles (FnApiRunner in-memory runs them in the launching
thread); the forward passes run on cam-audit's forward threads, so here they appear as waiting for them
(`lock.acquire`). `python -m bench.profile_run --manifest M --model X [cam-audit flags...]`.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import logging
import os
import pstats
import time
from collections.abc import Sequence

# Entry points whose cumulative time says what a stage costs, as (label, file suffix, function name).
STAGE_ENTRY_POINTS = (
    ("start-up: launcher checks (plan_audit)", "pipeline/build.py", "plan_audit"),
    ("start-up: worker model load + trace", "transforms/inference.py", "load_model"),
    ("decode: read + decode + resize", "transforms/images.py", "process"),
    ("inference DoFn: forward (or wait for it)", "transforms/inference.py", "process"),
    ("explain DoFn: all of it", "transforms/explain.py", "process"),
    ("explain: CAM upsample, peak, coverage", "transforms/cam.py", "explain_cam"),
    ("explain: overlay render", "transforms/overlay.py", "render_overlay"),
    ("explain: heatmap encode", "transforms/overlay.py", "encode_image"),
    ("explain: heatmap file write", "transforms/files.py", "write_bytes_atomic"),
    ("explain: record dict", "transforms/schema.py", "to_record"),
    ("records: Parquet files", "transforms/records.py", "_commit"),
)


def stage_times(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Cumulative seconds of each stage entry point found in the profile."""
    found = []
    for label, suffix, name in STAGE_ENTRY_POINTS:
        total = sum(
            entry[3] for (path, _, function), entry in stats.stats.items()  # type: ignore[attr-defined]
            if path.endswith(suffix) and function == name
        )
        if total:
            found.append((label, total))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Profile one run and print stage shares and the top functions by own time."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile_run", description=__doc__)
    parser.add_argument("--top", type=int, default=25, help="functions to list by own time")
    parser.add_argument("--save", default=None, help="also save the raw profile (pstats) here")
    args, audit_argv = parser.parse_known_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger().setLevel(logging.ERROR)
    from pipeline.run import run

    profile = cProfile.Profile()
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        profile.runcall(run, audit_argv)
    wall = time.perf_counter() - start
    if args.save:
        profile.dump_stats(args.save)
    stats = pstats.Stats(profile)
    print(f"wall {wall:.2f} s (profiled, so slower than unprofiled)\n")
    print(f"{'stage (cumulative, launching thread)':44s} {'s':>7s} {'share':>6s}")
    for label, seconds in stage_times(stats):
        print(f"{label:44s} {seconds:7.2f} {seconds / wall:6.1%}")
    print()
    listing = io.StringIO()
    pstats.Stats(profile, stream=listing).sort_stats("tottime").print_stats(args.top)
    print(listing.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
