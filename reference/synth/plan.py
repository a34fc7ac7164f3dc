"""Which patients, studies and images a synthetic archive holds, and the RNG streams behind them (no pixels)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transforms.mura import mura_image_path, mura_study_dir

SPLITS = ("train", "valid")
BODY_PARTS = (
    "XR_ELBOW",
    "XR_FINGER",
    "XR_FOREARM",
    "XR_HAND",
    "XR_HUMERUS",
    "XR_SHOULDER",
    "XR_WRIST",
)
COUNTS_CSV = Path(__file__).parent / "data" / "mura_v1.1_counts.csv"

# Images per study; weights give a mean of 2.7, MURA's 40,005 images / 14,863 studies.
STUDY_SIZES = (1, 2, 3, 4)
STUDY_SIZE_WEIGHTS = (0.1, 0.3, 0.4, 0.2)
# Studies per patient: MURA has ~1.2 studies per patient; small archives use more for variety.
PATIENT_STUDIES = (1, 2, 3)
FULL_PATIENT_STUDY_WEIGHTS = (0.82, 0.14, 0.04)
SMALL_PATIENT_STUDY_WEIGHTS = (0.5, 0.3, 0.2)
POSITIVE_STUDY_RATE = 0.4

# A patient before numbering: body part and its studies as (positive, image count).
PatientDraft = tuple[str, tuple[tuple[bool, int], ...]]


@dataclass(frozen=True)
class PartCount:
    """MURA's image and abnormal-image count for one split and body part."""

    split: str
    body_part: str
    images: int
    abnormal_images: int


@dataclass(frozen=True)
class StudyPlan:
    """One study to write: where it lives, its label and how many images it holds."""

    split: str
    body_part: str
    patient: int
    study: int
    positive: bool
    images: int

    @property
    def label(self) -> int:
        """1 for an abnormal (positive) study, 0 otherwise, as in labeled_studies.csv."""
        return int(self.positive)

    @property
    def directory(self) -> str:
        """Study folder relative to the output dir, with MURA's trailing slash."""
        return mura_study_dir(self.split, self.body_part, self.patient, self.study, self.label)


@dataclass(frozen=True)
class ImageJob:
    """One image to render: its archive-wide index (which seeds its RNG) and path."""

    index: int
    path: str
    body_part: str
    positive: bool


@dataclass(frozen=True)
class SplitSummary:
    """Counts of one written split."""

    split: str
    patients: int
    studies: int
    positive_studies: int
    images: int
    positive_images: int


@dataclass(frozen=True)
class ArchiveSummary:
    """Where an archive was written and what it holds."""

    root: Path
    splits: tuple[SplitSummary, ...]

    @property
    def images(self) -> int:
        """Images across all splits."""
        return sum(split.images for split in self.splits)

    def describe(self) -> str:
        """Human-readable multi-line report of the archive."""
        lines = [f"Synthetic MURA archive written to {self.root}"]
        for split in self.splits:
            lines.append(
                f"  {split.split}: {split.images} images ({split.positive_images} abnormal) in "
                f"{split.studies} studies ({split.positive_studies} positive), "
                f"{split.patients} patients"
            )
        lines.append(f"  total: {self.images} images")
        return "\n".join(lines)


def load_counts(path: Path = COUNTS_CSV) -> list[PartCount]:
    """MURA v1.1's per-split, per-body-part image counts from the bundled CSV."""
    with path.open(newline="") as handle:
        return [
            PartCount(row["split"], row["body_part"], int(row["images"]), int(row["abnormal_images"]))
            for row in csv.DictReader(handle)
        ]


def plan_rng(seed: int) -> np.random.Generator:
    """RNG for archive planning; its spawn key keeps it apart from every image's stream."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))


def image_rng(seed: int, index: int) -> np.random.Generator:
    """RNG of one image, from (seed, image index) alone so any worker can render any image."""
    return np.random.default_rng([seed, index])


def partition_total(rng: np.random.Generator, total: int, sizes: Sequence[int],
                    weights: Sequence[float]) -> list[int]:
    """Random parts drawn from `sizes` by `weights` that add up to exactly `total`.

    Only the last part is cut short to land on the total, so the size mix stays as drawn.
    """
    if total <= 0:
        return []
    probabilities = np.asarray(weights, dtype=float) / sum(weights)
    draws = rng.choice(np.asarray(sizes), size=total, p=probabilities)  # >= total, as sizes >= 1
    ends = np.cumsum(draws)
    last = int(np.searchsorted(ends, total))
    parts = draws[: last + 1].astype(int)
    parts[-1] -= int(ends[last]) - total
    return parts.tolist()


def number_patients(rng: np.random.Generator, drafts: dict[str, list[PatientDraft]]) -> list[StudyPlan]:
    """Give patients archive-unique 5-digit numbers (train first, like MURA) -> sorted studies."""
    studies: list[StudyPlan] = []
    next_number = 1
    for split in SPLITS:
        patients = drafts.get(split, [])
        # Shuffle so patient numbers interleave body parts, as in MURA.
        for position in rng.permutation(len(patients)):
            body_part, patient_studies = patients[position]
            for study_number, (positive, images) in enumerate(patient_studies, start=1):
                studies.append(StudyPlan(split, body_part, next_number, study_number, positive, images))
            next_number += 1
    if next_number - 1 > 99_999:
        raise ValueError(f"{next_number - 1} patients do not fit MURA's 5-digit patient numbers")
    return sort_studies(studies)


def sort_studies(studies: Sequence[StudyPlan]) -> list[StudyPlan]:
    """Studies in archive order: split, body part, patient, study."""
    return sorted(studies, key=lambda s: (SPLITS.index(s.split), s.body_part, s.patient, s.study))


def plan_full_archive(counts: Sequence[PartCount], seed: int = 0) -> list[StudyPlan]:
    """Studies matching every split/body part's image and abnormal-image count exactly."""
    rng = plan_rng(seed)
    drafts: dict[str, list[PatientDraft]] = {split: [] for split in SPLITS}
    for count in counts:
        if count.split not in SPLITS or count.body_part not in BODY_PARTS:
            raise ValueError(f"unknown split/body part in counts: {count}")
        if not 0 <= count.abnormal_images <= count.images:
            raise ValueError(f"abnormal images must be within 0..images: {count}")
        # Whole studies share a label, so abnormal and normal images are partitioned apart.
        positives = partition_total(rng, count.abnormal_images, STUDY_SIZES, STUDY_SIZE_WEIGHTS)
        negatives = partition_total(rng, count.images - count.abnormal_images, STUDY_SIZES, STUDY_SIZE_WEIGHTS)
        studies = [(True, size) for size in positives] + [(False, size) for size in negatives]
        studies = [studies[i] for i in rng.permutation(len(studies))]
        start = 0
        for patient_size in partition_total(rng, len(studies), PATIENT_STUDIES, FULL_PATIENT_STUDY_WEIGHTS):
            drafts[count.split].append((count.body_part, tuple(studies[start:start + patient_size])))
            start += patient_size
    return number_patients(rng, drafts)


def valid_patient_count(part_patients: int, valid_fraction: float) -> int:
    """Validation patients of one body part: the fraction, but both splits get one when possible."""
    wanted = round(part_patients * valid_fraction)
    if 0 < valid_fraction < 1 and part_patients >= 2:
        return min(max(wanted, 1), part_patients - 1)
    return wanted


def with_both_outcomes(patients: list[PatientDraft]) -> list[PatientDraft]:
    """Flip the first study's label if all of a split's (2+) studies share one outcome."""
    outcomes = {positive for _, studies in patients for positive, _ in studies}
    if len(outcomes) != 1 or sum(len(studies) for _, studies in patients) < 2:
        return patients
    body_part, studies = patients[0]
    (positive, images), *rest = studies
    return [(body_part, ((not positive, images), *rest)), *patients[1:]]


def plan_small_archive(patients: int, seed: int = 0, valid_fraction: float = 0.25) -> list[StudyPlan]:
    """Studies of a small archive: `patients` spread over all body parts and both splits."""
    if patients < 1:
        raise ValueError(f"patients must be >= 1, got {patients}")
    if not 0 <= valid_fraction <= 1:
        raise ValueError(f"valid_fraction must be within 0..1, got {valid_fraction}")
    rng = plan_rng(seed)
    # Round-robin over a shuffled part order: every part appears once patients >= 7.
    part_order = [BODY_PARTS[i] for i in rng.permutation(len(BODY_PARTS))]
    per_part = {part: 0 for part in BODY_PARTS}
    for i in range(patients):
        per_part[part_order[i % len(part_order)]] += 1
    # (split, part, study count) per patient, then study sizes, then which studies are positive.
    patient_slots: list[tuple[str, str, int]] = []
    for part in BODY_PARTS:
        valid_patients = valid_patient_count(per_part[part], valid_fraction)
        for k in range(per_part[part]):
            study_count = int(rng.choice(PATIENT_STUDIES, p=SMALL_PATIENT_STUDY_WEIGHTS))
            patient_slots.append(("valid" if k < valid_patients else "train", part, study_count))
    total_studies = sum(count for _, _, count in patient_slots)
    sizes = rng.choice(STUDY_SIZES, size=total_studies, p=STUDY_SIZE_WEIGHTS).tolist()
    # A fixed positive count, not a coin per study: small archives stay near 40% for any seed.
    positive_count = round(POSITIVE_STUDY_RATE * total_studies)
    positive_ids = set(rng.permutation(total_studies)[:positive_count].tolist())
    drafts: dict[str, list[PatientDraft]] = {split: [] for split in SPLITS}
    next_study = 0
    for split, part, study_count in patient_slots:
        ids = range(next_study, next_study + study_count)
        drafts[split].append((part, tuple((i in positive_ids, int(sizes[i])) for i in ids)))
        next_study += study_count
    drafts = {split: with_both_outcomes(split_drafts) for split, split_drafts in drafts.items()}
    return number_patients(rng, drafts)


def plan_images(studies: Sequence[StudyPlan]) -> list[ImageJob]:
    """Every image of the studies, indexed in archive order (image1..imageN per study)."""
    jobs: list[ImageJob] = []
    for study in studies:
        for number in range(1, study.images + 1):
            jobs.append(ImageJob(len(jobs), mura_image_path(study.directory, number), study.body_part, study.positive))
    return jobs


def summarize(root: Path, studies: Sequence[StudyPlan]) -> ArchiveSummary:
    """Per-split counts of planned studies."""
    splits = []
    for split in SPLITS:
        in_split = [s for s in studies if s.split == split]
        splits.append(SplitSummary(
            split=split,
            patients=len({s.patient for s in in_split}),
            studies=len(in_split),
            positive_studies=sum(s.positive for s in in_split),
            images=sum(s.images for s in in_split),
            positive_images=sum(s.images for s in in_split if s.positive),
        ))
    return ArchiveSummary(root, tuple(splits))
