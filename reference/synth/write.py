"""Writing a planned archive: PNGs in a process pool, MURA's manifests and the ground-truth CSV."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2

from reference.synth.plan import (
    SPLITS,
    ArchiveSummary,
    ImageJob,
    StudyPlan,
    image_rng,
    load_counts,
    plan_full_archive,
    plan_images,
    plan_small_archive,
    summarize,
)
from reference.synth.render import render_image
from reference.synth.shortcut import burn_token, shortcut_rng, token_rate
from transforms.localization import Box
from transforms.mura import MURA_ROOT

GROUND_TRUTH_HEADER = "image_path,label,x0,y0,x1,y1"
# Only shortcut archives carry these columns: a clean archive's CSV stays byte for byte as before.
MARKER_COLUMNS = ",marker_x0,marker_y0,marker_x1,marker_y1"
# Fast PNG compression: the full archive is 40k images and size on disk matters little.
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1]


@dataclass(frozen=True)
class ImageRecord:
    """What was written for one image: path, label, lesion box (None for negatives), shortcut token box."""

    path: str
    label: int
    box: Box | None
    marker: Box | None = None


def write_image(task: tuple[str, int, ImageJob, float]) -> ImageRecord:
    """Render and save one image (worker entry point): (out dir, seed, job, shortcut rate) -> record."""
    out_dir, seed, job, shortcut = task
    image, box = render_image(image_rng(seed, job.index), job.body_part, job.positive)
    marker = None
    if shortcut > 0:
        rng = shortcut_rng(seed, job.index)
        if rng.random() < token_rate(shortcut, job.positive):
            marker = burn_token(rng, image, box)
    path = os.path.join(out_dir, job.path)
    if not cv2.imwrite(path, image, PNG_PARAMS):
        raise OSError(f"could not write {path}")
    return ImageRecord(job.path, int(job.positive), box, marker)


def init_worker() -> None:
    """Keep each worker process to one OpenCV thread; parallelism comes from the processes."""
    cv2.setNumThreads(1)


def write_images(out_dir: Path, jobs: Sequence[ImageJob], seed: int,
                 workers: int, shortcut: float = 0.0) -> list[ImageRecord]:
    """Render and save all images, in parallel when workers > 1; records in job order."""
    tasks = [(str(out_dir), seed, job, shortcut) for job in jobs]
    if workers <= 1 or len(tasks) < 2:
        return [write_image(task) for task in tasks]
    # Spawn, not fork: forking a process that already runs BLAS/OpenCV threads can deadlock.
    context = multiprocessing.get_context("spawn")
    chunk = max(1, min(64, len(tasks) // (workers * 8)))
    with context.Pool(min(workers, len(tasks)), initializer=init_worker) as pool:
        return list(pool.imap(write_image, tasks, chunksize=chunk))


def box_fields(box: Box | None) -> str:
    """`x0,y0,x1,y1`, or four empty fields."""
    return ",".join(str(v) for v in box) if box else ",,,"


def ground_truth_row(record: ImageRecord, with_marker: bool = False) -> str:
    """`image_path,label,x0,y0,x1,y1` (+ the token's box in a shortcut archive), empty fields when absent."""
    row = f"{record.path},{record.label},{box_fields(record.box)}"
    return f"{row},{box_fields(record.marker)}" if with_marker else row


def write_lines(path: Path, lines: Sequence[str]) -> None:
    """Write lines with '\\n' endings (MURA's CSVs use Unix endings, no header)."""
    with path.open("w", newline="\n") as handle:
        handle.writelines(f"{line}\n" for line in lines)


def write_manifests(root: Path, studies: Sequence[StudyPlan],
                    records: Sequence[ImageRecord], with_marker: bool = False) -> None:
    """Per split: image_paths, labeled_studies and ground_truth CSVs."""
    for split in SPLITS:
        prefix = f"{MURA_ROOT}/{split}/"
        split_records = [r for r in records if r.path.startswith(prefix)]
        write_lines(root / f"{split}_image_paths.csv", [r.path for r in split_records])
        write_lines(root / f"{split}_labeled_studies.csv",
                    [f"{s.directory},{s.label}" for s in studies if s.split == split])
        header = GROUND_TRUTH_HEADER + (MARKER_COLUMNS if with_marker else "")
        write_lines(root / f"{split}_ground_truth.csv",
                    [header, *(ground_truth_row(r, with_marker) for r in split_records)])


def write_archive(out_dir: Path, studies: Sequence[StudyPlan], seed: int,
                  workers: int | None = None, shortcut: float = 0.0) -> ArchiveSummary:
    """Write planned studies as PNGs plus MURA's CSVs and the ground truth under out_dir.

    `shortcut` > 0 burns a text token into that share of abnormal images (and a twentieth of it
    into normal ones), its box in the ground truth's marker_* columns (reference/synth/shortcut.py).
    """
    root = Path(out_dir) / MURA_ROOT
    if root.exists() and any(root.iterdir()):
        # Stale images from an earlier run would sit unlisted next to the new ones.
        raise FileExistsError(f"{root} already exists and is not empty; choose another --out")
    root.mkdir(parents=True, exist_ok=True)
    for study in studies:
        (Path(out_dir) / study.directory).mkdir(parents=True, exist_ok=True)
    jobs = plan_images(studies)
    records = write_images(Path(out_dir), jobs, seed, workers or os.cpu_count() or 1, shortcut)
    write_manifests(root, studies, records, with_marker=shortcut > 0)
    return summarize(root, studies)


def generate_archive(out_dir: Path, patients: int = 60, seed: int = 0,
                     valid_fraction: float = 0.25, workers: int | None = None,
                     shortcut: float = 0.0) -> ArchiveSummary:
    """Write a small synthetic archive of `patients` patients."""
    studies = plan_small_archive(patients, seed, valid_fraction)
    return write_archive(out_dir, studies, seed, workers, shortcut)


def generate_full_archive(out_dir: Path, seed: int = 0,
                          workers: int | None = None, shortcut: float = 0.0) -> ArchiveSummary:
    """Write a synthetic archive with MURA v1.1's exact per-split, per-body-part counts."""
    return write_archive(out_dir, plan_full_archive(load_counts(), seed), seed, workers, shortcut)

