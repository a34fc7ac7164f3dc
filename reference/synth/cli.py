"""Command line of the synthetic archive generator (`python -m reference.synth`)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from reference.synth.write import generate_archive, generate_full_archive


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (numpy seeds cannot be negative)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def fraction(text: str) -> float:
    """argparse type: a float within 0..1."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be within 0..1, got {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The CLI's options."""
    parser = argparse.ArgumentParser(
        prog="python -m reference.synth",
        description="Write a deterministic synthetic MURA-v1.1-layout archive with lesion boxes.",
    )
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder; the archive goes to OUT/MURA-v1.1/")
    parser.add_argument("--patients", type=positive_int, default=60,
                        help="patients in a small archive (ignored with --full)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--full", action="store_true",
                        help="MURA v1.1's exact image counts (40,005 images)")
    parser.add_argument("--workers", type=positive_int, default=os.cpu_count() or 1,
                        help="image-writing processes (default: all CPUs)")
    parser.add_argument("--valid_fraction", type=fraction, default=0.25,
                        help="share of patients in valid/ (ignored with --full)")
    parser.add_argument("--shortcut_marker", type=fraction, default=0.0, metavar="P",
                        help="burn a text token into abnormal images with probability P (P/20 in "
                             "normal ones), its box in the ground truth's marker_* columns; "
                             "default 0: a clean archive")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: write the archive and print where it is and what it holds."""
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        if args.full:
            summary = generate_full_archive(args.out, args.seed, args.workers, args.shortcut_marker)
        else:
            summary = generate_archive(args.out, args.patients, args.seed, args.valid_fraction,
                                       args.workers, args.shortcut_marker)
    except FileExistsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary.describe())
    print(f"  seed {args.seed}, {args.workers} workers, {time.perf_counter() - started:.1f} s")
    return 0
