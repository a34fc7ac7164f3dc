"""`make bench-full`: the whole synthetic MURA (train + valid, 40,005 images) through cam-audit, checked."""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.report import MIB
from bench.rss import watch_command
from bench.set_aside import empty_set_aside, set_aside
from bench.workload import (
    ARCHIVE_NAME,
    MODEL_FILE,
    archive_complete,
    audit_argv,
    concatenate_files,
    ensure_model,
    manifest_image_paths,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
FULL_SPLITS = ("train", "valid")  # concatenated in this order
MURA_IMAGES = 40_005


@dataclasses.dataclass(frozen=True)
class RecordCheck:
    """Whether the records account for every manifest line exactly once."""

    expected: int
    rows: int
    missing: int  # manifest paths with no row
    unexpected: int  # rows whose path is not in the manifest
    duplicated: int  # paths with more than one row
    ok_rows: int

    @property
    def passed(self) -> bool:
        return self.rows == self.expected and not (self.missing or self.unexpected or self.duplicated)


def check_records(manifest_paths: Sequence[str], row_paths: Sequence[str], statuses: Sequence[str]) -> RecordCheck:
    """Compare the image paths of the records with the manifest's lines."""
    expected = set(manifest_paths)
    counts = collections.Counter(row_paths)
    return RecordCheck(
        expected=len(manifest_paths),
        rows=len(row_paths),
        missing=len(expected - counts.keys()),
        unexpected=len(counts.keys() - expected),
        duplicated=sum(1 for count in counts.values() if count > 1),
        ok_rows=sum(1 for status in statuses if status == "ok"),
    )


def ensure_full_archive(archive: Path, patients: int | None) -> Path:
    """The full-scale archive (or a small one with --patients, for a dry run), generated unless present."""
    mura = archive / ARCHIVE_NAME
    if archive_complete(mura):
        print(f"[bench-full] re-using archive {mura}", flush=True)
        return mura
    size = ["--full"] if patients is None else ["--patients", str(patients)]
    print(f"[bench-full] generating {archive} ({' '.join(size)}; the full archive takes minutes and ~3.6 GB)",
          flush=True)
    subprocess.run([sys.executable, "-m", "reference.synth", "--out", str(archive), *size], check=True, cwd=REPO_ROOT)
    return mura


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """bench-full's options."""
    parser = argparse.ArgumentParser(prog="python -m bench.full", description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "out", help="work and results folder")
    parser.add_argument("--archive", type=Path, help="archive folder (default: OUT/full, or OUT/full_<N>p)")
    parser.add_argument("--patients", type=int, help="a small archive of N patients instead of the full one")
    parser.add_argument("--workers", type=int, default=2, help="--direct_num_workers (multi_processing)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--no_heatmaps", action="store_true", help="records only")
    parser.add_argument("--mixed_precision", action="store_true")
    args = parser.parse_args(argv)
    if args.archive is None:
        args.archive = args.out / ("full" if args.patients is None else f"full_{args.patients}p")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Generate or re-use the archive, run cam-audit over train + valid, check and report; 1 if the check fails."""
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    mura = ensure_full_archive(args.archive, args.patients)
    # Paths stay as the MURA manifests write them (MURA-v1.1/...), relative to the archive root.
    manifest = concatenate_files([mura / f"{split}_image_paths.csv" for split in FULL_SPLITS],
                                 mura / "all_image_paths.csv")
    labels = concatenate_files([mura / f"{split}_labeled_studies.csv" for split in FULL_SPLITS],
                               mura / "all_labeled_studies.csv")
    manifest_paths = manifest_image_paths(manifest)
    model = ensure_model(args.out / MODEL_FILE)
    output = args.out / f"{args.archive.name}_audit"
    extra = ["--labels", str(labels), "--direct_num_workers", str(args.workers),
             "--direct_running_mode", "multi_processing"]
    extra += (["--no_heatmaps"] if args.no_heatmaps else []) + (["--mixed_precision"] if args.mixed_precision else [])
    command = [sys.executable, "-m", "pipeline.run", *audit_argv(manifest, model, output, args.batch_size, extra)]
    print(f"[bench-full] {len(manifest_paths)} images, {args.workers} SDK worker processes:\n  {' '.join(command)}",
          flush=True)
    # Into an empty folder, as a first run: over the last run's heatmaps every rename would replace one.
    set_aside(output)
    started = time.time()
    watched = watch_command(command, cwd=str(REPO_ROOT))
    empty_set_aside(args.out)  # the last run's output, once the run is timed (failed or not)
    if watched.returncode != 0:
        print(watched.output_tail, file=sys.stderr)
        return 1

    from pipeline.summary import read_records

    table = read_records(str(output), columns=["image_path", "status"])
    check = check_records(manifest_paths, table.column("image_path").to_pylist(), table.column("status").to_pylist())
    pipeline_seconds = json.loads((output / "run_info.json").read_text())["wall_seconds"]
    n = len(manifest_paths)
    workers = [peak.peak_bytes for peak in watched.peaks if peak.role == "worker"]
    summary = {
        "images": n,
        "full_mura_count": n == MURA_IMAGES,
        "wall_seconds": watched.seconds,
        "pipeline_seconds": pipeline_seconds,
        "images_per_second_wall": n / watched.seconds,
        "images_per_second_pipeline": n / pipeline_seconds,
        "launcher_peak_bytes": watched.max_peak("launcher"),
        "worker_peak_bytes": workers,
        "check": {**dataclasses.asdict(check), "passed": check.passed},
        "started_unix": started,
        "command": command,
    }
    (args.out / "bench_full.json").write_text(json.dumps(summary, indent=2))
    print(f"\ncam-audit bench-full: {n} images{'' if n == MURA_IMAGES else f' (full MURA is {MURA_IMAGES})'}, "
          f"{args.workers} SDK worker processes")
    print(f"  wall {watched.seconds:.0f} s ({n / watched.seconds:.1f} images/s, launcher start-up included); "
          f"pipeline {pipeline_seconds:.0f} s ({n / pipeline_seconds:.1f} images/s)")
    print(f"  peak RSS: launcher {watched.max_peak('launcher') / MIB:.0f} MiB, SDK workers "
          f"{', '.join(f'{w / MIB:.0f}' for w in workers)} MiB")
    verdict = "PASS" if check.passed else "FAIL"
    print(f"  {verdict}: {check.rows} Parquet rows for {check.expected} manifest lines ({check.ok_rows} ok); "
          f"missing {check.missing}, unexpected {check.unexpected}, duplicated {check.duplicated}")
    print(f"  raw figures: {args.out / 'bench_full.json'}")
    return 0 if check.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
