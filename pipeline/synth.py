"""Deterministic generator of synthetic MURA-v1.1-shaped X-ray archives with known lesion boxes."""

from __future__ import annotations

import argparse
import csv
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ARCHIVE_NAME = "MURA-v1.1"
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
GROUND_TRUTH_HEADER = "image_path,label,x0,y0,x1,y1"

# Images per study; weights give a mean of 2.7, MURA's 40,005 images / 14,863 studies.
STUDY_SIZES = (1, 2, 3, 4)
STUDY_SIZE_WEIGHTS = (0.1, 0.3, 0.4, 0.2)
# Studies per patient: MURA has ~1.2 studies per patient; small archives use more for variety.
PATIENT_STUDIES = (1, 2, 3)
FULL_PATIENT_STUDY_WEIGHTS = (0.82, 0.14, 0.04)
SMALL_PATIENT_STUDY_WEIGHTS = (0.5, 0.3, 0.2)
POSITIVE_STUDY_RATE = 0.4
RGB_IMAGE_RATE = 0.03
MARKER_RATE = 0.35
IMAGE_SIDE_RANGE = (250, 520)  # inclusive, drawn independently for width and height
LESION_SIDE_FRACTION = (0.14, 0.25)  # square the lesion is drawn in, of the shorter side;
# the drawn lesion fills most of it, so its box spans ~12-22% of the shorter side.
# Fast PNG compression: the full archive is 40k images and size on disk matters little.
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1]
# OpenCV drawing takes fixed-point coordinates with this many fractional bits (sub-pixel AA).
DRAW_SHIFT = 4
DRAW_SCALE = 1 << DRAW_SHIFT
# Tissue glow is blurred heavily, so it is drawn at this fraction of full resolution.
TISSUE_DOWNSCALE = 4

Box = tuple[int, int, int, int]
Point = tuple[float, float]
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
        outcome = "positive" if self.positive else "negative"
        return (
            f"{ARCHIVE_NAME}/{self.split}/{self.body_part}/"
            f"patient{self.patient:05d}/study{self.study}_{outcome}/"
        )


@dataclass(frozen=True)
class ImageJob:
    """One image to render: its archive-wide index (which seeds its RNG) and path."""

    index: int
    path: str
    body_part: str
    positive: bool


@dataclass(frozen=True)
class ImageRecord:
    """What was written for one image: path, label and lesion box (None for negatives)."""

    path: str
    label: int
    box: Box | None


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


@dataclass(frozen=True)
class Bone:
    """A long or flat bone as a tapered shaft, in pixel coordinates."""

    start: Point
    end: Point
    widths: tuple[float, float, float]  # at start, middle and end
    density: float = 1.0
    lesion_site: bool = True  # whether a planted abnormality may sit on it


@dataclass(frozen=True)
class Knob:
    """A round bone or bone end (carpal, humeral head, condyle), in pixel coordinates."""

    center: Point
    radii: tuple[float, float]
    angle: float  # degrees
    density: float = 0.92


@dataclass(frozen=True)
class Skeleton:
    """The bones of one image."""

    bones: tuple[Bone, ...]
    knobs: tuple[Knob, ...]


@dataclass(frozen=True)
class Pose:
    """Maps a body part's canonical frame (1 unit = shorter image side) to pixels."""

    center: Point
    unit: float
    angle: float  # degrees
    mirror: bool

    def point(self, frame_point: Point) -> Point:
        """Pixel position of a canonical-frame point."""
        u = -frame_point[0] if self.mirror else frame_point[0]
        v = frame_point[1]
        cos, sin = math.cos(math.radians(self.angle)), math.sin(math.radians(self.angle))
        return (
            self.center[0] + self.unit * (u * cos - v * sin),
            self.center[1] + self.unit * (u * sin + v * cos),
        )

    def bone(self, start: Point, end: Point, widths: tuple[float, float, float],
             density: float = 1.0, lesion_site: bool = True) -> Bone:
        """A canonical-frame bone placed in pixels."""
        return Bone(self.point(start), self.point(end), tuple(w * self.unit for w in widths),
                    density, lesion_site)

    def knob(self, center: Point, radii: tuple[float, float], angle: float = 0.0,
             density: float = 0.92) -> Knob:
        """A canonical-frame knob placed in pixels."""
        local_angle = -angle if self.mirror else angle
        return Knob(self.point(center), (radii[0] * self.unit, radii[1] * self.unit),
                    self.angle + local_angle, density)


# ---------------------------------------------------------------------------------------------
# Planning: which patients, studies and images exist (no pixels involved).
# ---------------------------------------------------------------------------------------------


def load_counts(path: Path = COUNTS_CSV) -> list[PartCount]:
    """MURA v1.1's per-split, per-body-part image counts from the bundled CSV."""
    with path.open(newline="") as handle:
        return [
            PartCount(row["split"], row["body_part"], int(row["images"]),
                      int(row["abnormal_images"]))
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


def number_patients(rng: np.random.Generator,
                    drafts: dict[str, list[PatientDraft]]) -> list[StudyPlan]:
    """Give patients archive-unique 5-digit numbers (train first, like MURA) -> sorted studies."""
    studies: list[StudyPlan] = []
    next_number = 1
    for split in SPLITS:
        patients = drafts.get(split, [])
        # Shuffle so patient numbers interleave body parts, as in MURA.
        for position in rng.permutation(len(patients)):
            body_part, patient_studies = patients[position]
            for study_number, (positive, images) in enumerate(patient_studies, start=1):
                studies.append(StudyPlan(split, body_part, next_number, study_number, positive,
                                         images))
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
        negatives = partition_total(rng, count.images - count.abnormal_images, STUDY_SIZES,
                                    STUDY_SIZE_WEIGHTS)
        studies = [(True, size) for size in positives] + [(False, size) for size in negatives]
        studies = [studies[i] for i in rng.permutation(len(studies))]
        start = 0
        for patient_size in partition_total(rng, len(studies), PATIENT_STUDIES,
                                            FULL_PATIENT_STUDY_WEIGHTS):
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


def plan_small_archive(patients: int, seed: int = 0,
                       valid_fraction: float = 0.25) -> list[StudyPlan]:
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
            jobs.append(ImageJob(len(jobs), f"{study.directory}image{number}.png",
                                 study.body_part, study.positive))
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


# ---------------------------------------------------------------------------------------------
# Skeleton layouts: each body part in a canonical frame (limb axis along +v, 1 unit = short side).
# ---------------------------------------------------------------------------------------------


def phalanx_chain(pose: Pose, start: Point, direction: Point, lengths: Sequence[float],
                  widths: Sequence[float], gap: float, lesion_sites: int) -> list[Bone]:
    """Consecutive bones along a direction separated by joint gaps (a digit)."""
    norm = math.hypot(*direction)
    dx, dy = direction[0] / norm, direction[1] / norm
    bones = []
    x, y = start
    for i, (length, width) in enumerate(zip(lengths, widths, strict=True)):
        end = (x + dx * length, y + dy * length)
        bones.append(pose.bone((x, y), end, (width * 1.15, width * 0.8, width * 1.05),
                               lesion_site=i < lesion_sites))
        x, y = end[0] + dx * gap, end[1] + dy * gap
    return bones


def forearm_skeleton(rng: np.random.Generator, pose: Pose) -> Skeleton:
    """Radius and ulna side by side with their joint ends."""
    gap = rng.uniform(0.13, 0.2)
    half = rng.uniform(0.55, 0.75)
    bones = (
        pose.bone((-gap / 2, -half), (-gap / 2 - 0.02, half), (0.09, 0.065, 0.13)),
        pose.bone((gap / 2, -half - 0.05), (gap / 2 + 0.01, half), (0.12, 0.06, 0.07)),
    )
    knobs = (
        pose.knob((-gap / 2 - 0.02, half + 0.02), (0.08, 0.05)),
        pose.knob((gap / 2, -half - 0.07), (0.07, 0.06)),
    )
    return Skeleton(bones, knobs)


def humerus_skeleton(rng: np.random.Generator, pose: Pose) -> Skeleton:
    """One thick humeral shaft with a round head and a flat condyle."""
    top, bottom = -rng.uniform(0.45, 0.6), rng.uniform(0.5, 0.7)
    bones = (pose.bone((0.0, top), (0.02, bottom), (0.17, 0.12, 0.19)),)
    knobs = (
        pose.knob((0.03, top - 0.05), (0.17, 0.15), rng.uniform(-20, 20)),
        pose.knob((0.02, bottom + 0.03), (0.17, 0.07)),
    )
    return Skeleton(bones, knobs)


def elbow_skeleton(rng: np.random.Generator, pose: Pose) -> Skeleton:
    """Distal humerus meeting radius and ulna at a random flexion angle."""
    flexion = rng.uniform(0.0, 1.2)
    axis = (math.sin(flexion), math.cos(flexion))
    normal = (math.cos(flexion), -math.sin(flexion))
    length = rng.uniform(0.75, 0.95)

    def forearm_bone(offset: float, widths: tuple[float, float, float]) -> Bone:
        start = (normal[0] * offset, 0.1 + normal[1] * offset)
        end = (start[0] + axis[0] * length, start[1] + axis[1] * length)
        return pose.bone(start, end, widths)

    bones = (
        pose.bone((0.0, -0.9), (0.0, -0.03), (0.13, 0.11, 0.22)),
        forearm_bone(-0.065, (0.09, 0.06, 0.08)),
        forearm_bone(0.07, (0.12, 0.07, 0.08)),
    )
    knobs = (
        pose.knob((0.0, 0.0), (0.16, 0.08)),
        pose.knob((normal[0] * 0.07, 0.06 + normal[1] * 0.07), (0.07, 0.06)),
    )
    return Skeleton(bones, knobs)


def wrist_skeleton(rng: np.random.Generator, pose: Pose) -> Skeleton:
    """Distal radius and ulna, two rows of carpals and the metacarpal bases."""
    bones = [
        pose.bone((-0.07, -0.95), (-0.06, -0.06), (0.1, 0.09, 0.18)),
        pose.bone((0.11, -0.95), (0.1, -0.1), (0.08, 0.065, 0.08)),
    ]
    for i, x in enumerate(np.linspace(-0.14, 0.16, 4)):
        bones.append(pose.bone((x, 0.28), (x * 1.4, 0.9), (0.06, 0.04, 0.05), lesion_site=False))
        if i == 0:
            # The thumb metacarpal leaves the carpus at an angle.
            bones.append(pose.bone((-0.2, 0.22), (-0.42, 0.6), (0.06, 0.045, 0.05),
                                   lesion_site=False))
    knobs = []
    for row, v in enumerate((0.07, 0.17)):
        for x in np.linspace(-0.15, 0.13, 4 - row):
            jitter = rng.normal(0, 0.008, 2)
            knobs.append(pose.knob((x + jitter[0], v + jitter[1]),
                                   (rng.uniform(0.042, 0.055), rng.uniform(0.038, 0.05)),
                                   rng.uniform(0, 180)))
    return Skeleton(tuple(bones), tuple(knobs))


def hand_skeleton(rng: np.random.Generator, pose: Pose) -> Skeleton:
    """Carpals, five metacarpals and their phalanges fanning out."""
    bones: list[Bone] = []
    spread = rng.uniform(0.9, 1.2)
    for x in np.linspace(-0.13, 0.17, 4):
        start = (x, -0.3)
        direction = (x * spread, 0.6)
        bones += phalanx_chain(pose, start, direction, (0.3, 0.22, 0.14, 0.1),
                               (0.05, 0.045, 0.04, 0.035), 0.025, lesion_sites=2)
    bones += phalanx_chain(pose, (-0.2, -0.32), (-0.45, 0.55), (0.2, 0.16, 0.11),
                           (0.055, 0.05, 0.04), 0.025, lesion_sites=1)
    knobs = [
        pose.knob((x, v), (0.04, 0.035), rng.uniform(0, 180))
        for v in (-0.45, -0.37) for x in np.linspace(-0.14, 0.14, 4)
    ]
    return Skeleton(tuple(bones), tuple(knobs))


def finger_skeleton(rng: np.random.Generator, pose: Pose) -> Skeleton:
    """One finger (metacarpal head and three phalanges), sometimes a neighbour at the edge."""
    widths = (0.13, 0.12, 0.1, 0.085)
    bones = phalanx_chain(pose, (0.0, -0.95), (rng.uniform(-0.05, 0.05), 1.0),
                          (0.4, 0.45, 0.3, 0.22), widths, 0.04, lesion_sites=3)
    bones[0] = Bone(bones[0].start, bones[0].end, bones[0].widths, lesion_site=False)
    if rng.random() < 0.5:
        side = 0.42 if rng.random() < 0.5 else -0.42
        bones += phalanx_chain(pose, (side, -0.9), (side * 0.15, 1.0), (0.45, 0.4, 0.25),
                               (0.11, 0.1, 0.08), 0.04, lesion_sites=0)
    return Skeleton(tuple(bones), ())


def shoulder_skeleton(rng: np.random.Generator, pose: Pose) -> Skeleton:
    """Humeral head and shaft, glenoid, scapula body, clavicle and acromion."""
    bones = (
        pose.bone((-0.25, -0.15), (-0.6, 0.7), (0.32, 0.24, 0.1), density=0.6, lesion_site=False),
        pose.bone((0.07, 0.12), (0.12, 1.0), (0.2, 0.16, 0.16)),
        pose.bone((-0.8, -0.45), (0.3, -0.33), (0.09, 0.075, 0.1)),
    )
    knobs = (
        pose.knob((0.05, -0.04), (0.21, 0.19), rng.uniform(-30, 30)),
        pose.knob((-0.22, -0.05), (0.06, 0.17), density=0.75),
        pose.knob((0.22, -0.32), (0.11, 0.05), 10.0),
    )
    return Skeleton(bones, knobs)


SKELETONS: dict[str, Callable[[np.random.Generator, Pose], Skeleton]] = {
    "XR_ELBOW": elbow_skeleton,
    "XR_FINGER": finger_skeleton,
    "XR_FOREARM": forearm_skeleton,
    "XR_HAND": hand_skeleton,
    "XR_HUMERUS": humerus_skeleton,
    "XR_SHOULDER": shoulder_skeleton,
    "XR_WRIST": wrist_skeleton,
}


def random_pose(rng: np.random.Generator, body_part: str, height: int, width: int) -> Pose:
    """Random placement: limbs mostly upright, sometimes lying across; shoulders stay upright."""
    short_side = min(height, width)
    if body_part == "XR_SHOULDER":
        angle = rng.uniform(-15, 15)
    else:
        angle = rng.uniform(-25, 25) + (90.0 if rng.random() < 0.2 else 0.0)
    center = (width / 2 + rng.uniform(-0.08, 0.08) * short_side,
              height / 2 + rng.uniform(-0.08, 0.08) * short_side)
    return Pose(center, short_side * rng.uniform(0.85, 1.15), angle, bool(rng.random() < 0.5))


# ---------------------------------------------------------------------------------------------
# Rendering: skeleton -> X-ray-like pixels, plus the planted lesion.
# ---------------------------------------------------------------------------------------------


def to_fixed(points: np.ndarray) -> np.ndarray:
    """Float pixel coordinates -> OpenCV fixed-point int32 coordinates."""
    return np.round(np.asarray(points) * DRAW_SCALE).astype(np.int32)


def width_at(widths: tuple[float, float, float], t: np.ndarray | float) -> np.ndarray:
    """Shaft width at fractions t along a bone (quadratic through start, middle, end)."""
    w0, wm, w1 = widths
    t = np.asarray(t, dtype=float)
    width = w0 * (1 - t) * (1 - 2 * t) + wm * 4 * t * (1 - t) + w1 * t * (2 * t - 1)
    return np.maximum(width, 0.3 * wm)


def shaft_outline(bone: Bone, width_scale: float, t0: float, t1: float) -> np.ndarray:
    """Polygon of a bone's shaft between fractions t0..t1, widths scaled."""
    start, end = np.asarray(bone.start), np.asarray(bone.end)
    axis = end - start
    length = max(float(np.hypot(*axis)), 1e-6)
    normal = np.array([-axis[1], axis[0]]) / length
    ts = np.linspace(t0, t1, 9)
    centers = start + ts[:, None] * axis
    offsets = normal * (width_at(bone.widths, ts) * width_scale / 2)[:, None]
    return np.vstack([centers + offsets, (centers - offsets)[::-1]])


def draw_bone(layer: np.ndarray, bone: Bone, medulla_ratio: float) -> None:
    """Bright cortex with rounded ends and a darker medullary canal along the shaft."""
    cortex = int(255 * bone.density)
    cv2.fillPoly(layer, [to_fixed(shaft_outline(bone, 1.0, 0, 1))], cortex, cv2.LINE_AA,
                 DRAW_SHIFT)
    for point, width in ((bone.start, bone.widths[0]), (bone.end, bone.widths[2])):
        cv2.circle(layer, tuple(to_fixed(point)), int(width / 2 * DRAW_SCALE), cortex, -1,
                   cv2.LINE_AA, DRAW_SHIFT)
    cv2.fillPoly(layer, [to_fixed(shaft_outline(bone, 0.5, 0.12, 0.88))],
                 int(cortex * medulla_ratio), cv2.LINE_AA, DRAW_SHIFT)


def draw_knob(layer: np.ndarray, knob: Knob, medulla_ratio: float) -> None:
    """A round bone: bright rim, softer cancellous core."""
    center = tuple(to_fixed(knob.center))
    for fraction, value in ((1.0, 255 * knob.density), (0.7, 255 * knob.density * medulla_ratio)):
        axes = tuple(int(r * fraction * DRAW_SCALE) for r in knob.radii)
        cv2.ellipse(layer, center, axes, knob.angle, 0, 360, int(value), -1, cv2.LINE_AA,
                    DRAW_SHIFT)


def tissue_glow(skeleton: Skeleton, height: int, width: int, short_side: int) -> np.ndarray:
    """Soft-tissue envelope around the bones, 0..255 uint8 at full resolution."""
    scale = 1 / TISSUE_DOWNSCALE
    small = np.zeros((-(-height // TISSUE_DOWNSCALE), -(-width // TISSUE_DOWNSCALE)), np.uint8)
    margin = 0.09 * short_side
    for bone in skeleton.bones:
        thickness = max(1, int((max(bone.widths) * 2.2 + margin) * scale))
        cv2.line(small, tuple(to_fixed(np.asarray(bone.start) * scale)),
                 tuple(to_fixed(np.asarray(bone.end) * scale)), 255, thickness, cv2.LINE_AA,
                 DRAW_SHIFT)
    for knob in skeleton.knobs:
        axes = tuple(int((r * 1.8 + margin) * scale * DRAW_SCALE) for r in knob.radii)
        cv2.ellipse(small, tuple(to_fixed(np.asarray(knob.center) * scale)), axes, knob.angle,
                    0, 360, 255, -1, cv2.LINE_AA, DRAW_SHIFT)
    small = cv2.GaussianBlur(small, (0, 0), 0.05 * short_side * scale)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def marker_patch(rng: np.random.Generator, short_side: int) -> np.ndarray:
    """A bright radiographer's side marker ('L' or 'R'), sometimes boxed, as a uint8 patch."""
    letter = "L" if rng.random() < 0.5 else "R"
    font = cv2.FONT_HERSHEY_SIMPLEX if rng.random() < 0.5 else cv2.FONT_HERSHEY_DUPLEX
    font_scale = short_side * rng.uniform(0.0028, 0.0042)
    thickness = max(2, round(font_scale * 2))
    (text_width, text_height), baseline = cv2.getTextSize(letter, font, font_scale, thickness)
    pad = thickness + 3
    patch = np.zeros((text_height + baseline + 2 * pad, text_width + 2 * pad), np.uint8)
    value = int(rng.uniform(225, 256))
    cv2.putText(patch, letter, (pad, pad + text_height), font, font_scale, value, thickness,
                cv2.LINE_AA)
    if rng.random() < 0.3:
        cv2.rectangle(patch, (0, 0), (patch.shape[1] - 1, patch.shape[0] - 1), value, 2)
    return patch


def place_marker(rng: np.random.Generator, image: np.ndarray, patch: np.ndarray,
                 short_side: int) -> Box:
    """Burn the marker into a random corner; returns the box it covers."""
    height, width = image.shape
    margin = int(rng.uniform(0.02, 0.07) * short_side)
    right, bottom = rng.random() < 0.5, rng.random() < 0.5
    x0 = width - margin - patch.shape[1] if right else margin
    y0 = height - margin - patch.shape[0] if bottom else margin
    region = image[y0:y0 + patch.shape[0], x0:x0 + patch.shape[1]]
    np.maximum(region, patch, out=region)
    return (x0, y0, x0 + patch.shape[1], y0 + patch.shape[0])


def boxes_overlap(a: Box, b: Box) -> bool:
    """Whether two half-open boxes share any pixel."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def square_box(center: Point, side: float, height: int, width: int) -> Box:
    """Half-open box of a square around a point, clipped to the image."""
    half = side / 2
    return (max(0, int(center[0] - half)), max(0, int(center[1] - half)),
            min(width, int(math.ceil(center[0] + half))),
            min(height, int(math.ceil(center[1] + half))))


def choose_lesion_site(rng: np.random.Generator, skeleton: Skeleton, bone_mask: np.ndarray,
                       side: float, avoid: Box | None) -> tuple[Point, Point, float]:
    """A point on a lesion-bearing bone, fully inside the image and clear of the marker.

    Returns the point, the bone's unit axis there and the bone's width there.
    """
    height, width = bone_mask.shape
    half = side / 2
    candidates: list[tuple[Point, Point, float]] = []
    for bone in skeleton.bones:
        if not bone.lesion_site:
            continue
        start, end = np.asarray(bone.start), np.asarray(bone.end)
        axis = end - start
        axis_unit = tuple(axis / max(float(np.hypot(*axis)), 1e-6))
        for t in rng.uniform(0.15, 0.85, 12):
            x, y = start + t * axis
            inside = half <= x <= width - half and half <= y <= height - half
            if inside and (avoid is None
                           or not boxes_overlap(square_box((x, y), side, height, width), avoid)):
                candidates.append(((float(x), float(y)), axis_unit, float(width_at(bone.widths, t))))
    if candidates:
        return candidates[int(rng.integers(len(candidates)))]
    # No shaft point fits (bones mostly off-image): fall back to any bone pixel, else the centre.
    ys, xs = np.nonzero(bone_mask[int(half):height - int(half), int(half):width - int(half)])
    if len(xs):
        pick = int(rng.integers(len(xs)))
        return (float(xs[pick] + int(half)), float(ys[pick] + int(half))), (0.0, 1.0), side / 2
    return (width / 2, height / 2), (0.0, 1.0), side / 2


def plant_lesion(rng: np.random.Generator, image: np.ndarray, bone_mask: np.ndarray,
                 skeleton: Skeleton, avoid: Box | None) -> Box:
    """Draw a dense bright callus-like blob with a dark fracture line across the bone.

    Everything is confined to a square of 14-25% of the shorter side; the returned box is the
    tight bounding box of the pixels actually changed (by at least one grey level).
    """
    height, width = image.shape
    side = rng.uniform(*LESION_SIDE_FRACTION) * min(height, width)
    center, axis, bone_width = choose_lesion_site(rng, skeleton, bone_mask, side, avoid)
    x0, y0, x1, y1 = square_box(center, side, height, width)
    patch = image[y0:y1, x0:x1]
    local_center = np.array([center[0] - x0, center[1] - y0])

    # Fracture line: roughly perpendicular to the bone, jagged, only where there is bone.
    tilt = math.radians(rng.uniform(-30, 30))
    across = np.array([-axis[1] * math.cos(tilt) - axis[0] * math.sin(tilt),
                       axis[0] * math.cos(tilt) - axis[1] * math.sin(tilt)])
    # Beside the blob rather than under it, so the line stays visible.
    line_center = local_center + np.asarray(axis) * rng.uniform(0.22, 0.36) * side \
        * (1 if rng.random() < 0.5 else -1)
    half_length = min(0.75 * bone_width, 0.48 * side)
    steps = np.linspace(-half_length, half_length, 6)
    jitter = rng.normal(0, 0.015 * side, 6)
    line = line_center + steps[:, None] * across + jitter[:, None] * np.asarray(axis)
    fracture = np.zeros(patch.shape, np.uint8)
    cv2.polylines(fracture, [to_fixed(line)], False, 255, max(2, round(0.035 * side)),
                  cv2.LINE_AA, DRAW_SHIFT)
    fracture_alpha = fracture.astype(np.float32) * (rng.uniform(0.35, 0.55) / 255)
    fracture_alpha *= bone_mask[y0:y1, x0:x1]

    # Callus/hardware blob: a union of ellipses around the site, softly edged.
    blob = np.zeros(patch.shape, np.uint8)
    for i in range(int(rng.integers(3, 7))):
        offset = np.zeros(2) if i == 0 else np.clip(rng.normal(0, 0.1 * side, 2),
                                                    -0.18 * side, 0.18 * side)
        axes = rng.uniform(0.2 if i == 0 else 0.1, 0.3, 2) * side
        cv2.ellipse(blob, tuple(to_fixed(local_center + offset)),
                    tuple(int(a * DRAW_SCALE) for a in axes), rng.uniform(0, 180), 0, 360, 255,
                    -1, cv2.LINE_AA, DRAW_SHIFT)
    blob_alpha = cv2.GaussianBlur(blob, (0, 0), max(0.8, 0.015 * side)).astype(np.float32) / 255
    texture = cv2.resize(rng.random((5, 5)).astype(np.float32), patch.shape[::-1],
                         interpolation=cv2.INTER_CUBIC)
    brightness = rng.uniform(228, 248) - 18 * texture

    lesioned = patch * (1 - fracture_alpha)
    lesioned += (brightness - lesioned) * blob_alpha
    change = lesioned - patch
    changed = np.abs(change) >= 1.0
    patch += np.where(changed, change, 0)
    ys, xs = np.nonzero(changed)
    return (x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1,
            y0 + int(ys.max()) + 1)


def child_rngs(rng: np.random.Generator, count: int) -> list[np.random.Generator]:
    """Independent sub-streams, so the scene does not depend on whether a lesion is drawn."""
    return [np.random.default_rng(int(s)) for s in rng.integers(0, 2**63 - 1, size=count)]


def render_image(rng: np.random.Generator, body_part: str,
                 positive: bool) -> tuple[np.ndarray, Box | None]:
    """One synthetic radiograph (H x W grey or H x W x 3 BGR uint8) and its lesion box.

    The scene, noise and colour depend only on `rng`, not on `positive`: rendering the same rng
    state with positive=False gives the identical image minus the lesion, pixels outside the
    box unchanged.
    """
    scene_rng, lesion_rng, noise_rng = child_rngs(rng, 3)
    height, width = (int(v) for v in scene_rng.integers(IMAGE_SIDE_RANGE[0],
                                                         IMAGE_SIDE_RANGE[1] + 1, 2))
    if height == width:
        # MURA images are never square; nudge rather than redraw to keep the stream simple.
        width += -1 if width == IMAGE_SIDE_RANGE[1] else 1
    short_side = min(height, width)
    skeleton = SKELETONS[body_part](scene_rng, random_pose(scene_rng, body_part, height, width))

    bone_layer = np.zeros((height, width), np.uint8)
    medulla_ratio = scene_rng.uniform(0.72, 0.84)
    for bone in skeleton.bones:
        draw_bone(bone_layer, bone, medulla_ratio)
    for knob in skeleton.knobs:
        draw_knob(bone_layer, knob, medulla_ratio)
    bone_mask = bone_layer > 0
    bone_layer = cv2.GaussianBlur(bone_layer, (5, 5), 1.0)

    # Exposure: background, tissue and bone levels chosen so bone peaks stay below the lesion.
    background = scene_rng.uniform(6, 24)
    tissue_level = scene_rng.uniform(35, 75)
    bone_peak = scene_rng.uniform(165, 205)
    image = cv2.addWeighted(tissue_glow(skeleton, height, width, short_side), tissue_level / 255,
                            bone_layer, (bone_peak - background - tissue_level) / 255,
                            background, dtype=cv2.CV_32F)

    # Vignetting: the exposure falls off towards the film edges.
    strength = scene_rng.uniform(0.1, 0.3)
    for axis_length, shape in ((width, (1, width)), (height, (height, 1))):
        position = (np.arange(axis_length, dtype=np.float32) / axis_length - 0.5) * 2
        image *= (1 - strength * position**2).reshape(shape)

    marker_box = None
    if scene_rng.random() < MARKER_RATE:
        marker_box = place_marker(scene_rng, image, marker_patch(scene_rng, short_side).astype(
            np.float32), short_side)
    noise_sigma = scene_rng.uniform(1.5, 4.0)
    rgb_tint = None
    if scene_rng.random() < RGB_IMAGE_RATE:
        tint = scene_rng.uniform(0.93, 1.0, 3)
        rgb_tint = (tint / tint.max()).astype(np.float32)  # one channel stays exactly grey

    box = plant_lesion(lesion_rng, image, bone_mask, skeleton, marker_box) if positive else None

    image += noise_rng.standard_normal((height, width), dtype=np.float32) * noise_sigma
    np.rint(image, out=image)
    grey = np.clip(image, 0, 255).astype(np.uint8)
    if rgb_tint is None:
        return grey, box
    rgb = np.rint(grey[..., None].astype(np.float32) * rgb_tint)
    return rgb.astype(np.uint8), box


# ---------------------------------------------------------------------------------------------
# Writing the archive.
# ---------------------------------------------------------------------------------------------


def write_image(task: tuple[str, int, ImageJob]) -> ImageRecord:
    """Render and save one image (worker entry point): (out dir, seed, job) -> record."""
    out_dir, seed, job = task
    image, box = render_image(image_rng(seed, job.index), job.body_part, job.positive)
    path = os.path.join(out_dir, job.path)
    if not cv2.imwrite(path, image, PNG_PARAMS):
        raise OSError(f"could not write {path}")
    return ImageRecord(job.path, int(job.positive), box)


def init_worker() -> None:
    """Keep each worker process to one OpenCV thread; parallelism comes from the processes."""
    cv2.setNumThreads(1)


def write_images(out_dir: Path, jobs: Sequence[ImageJob], seed: int,
                 workers: int) -> list[ImageRecord]:
    """Render and save all images, in parallel when workers > 1; records in job order."""
    tasks = [(str(out_dir), seed, job) for job in jobs]
    if workers <= 1 or len(tasks) < 2:
        return [write_image(task) for task in tasks]
    # Spawn, not fork: forking a process that already runs BLAS/OpenCV threads can deadlock.
    context = multiprocessing.get_context("spawn")
    chunk = max(1, min(64, len(tasks) // (workers * 8)))
    with context.Pool(min(workers, len(tasks)), initializer=init_worker) as pool:
        return list(pool.imap(write_image, tasks, chunksize=chunk))


def ground_truth_row(record: ImageRecord) -> str:
    """`image_path,label,x0,y0,x1,y1`, box fields empty when there is no lesion."""
    box = ",".join(str(v) for v in record.box) if record.box else ",,,"
    return f"{record.path},{record.label},{box}"


def write_lines(path: Path, lines: Sequence[str]) -> None:
    """Write lines with '\\n' endings (MURA's CSVs use Unix endings, no header)."""
    with path.open("w", newline="\n") as handle:
        handle.writelines(f"{line}\n" for line in lines)


def write_manifests(root: Path, studies: Sequence[StudyPlan],
                    records: Sequence[ImageRecord]) -> None:
    """Per split: image_paths, labeled_studies and ground_truth CSVs."""
    for split in SPLITS:
        prefix = f"{ARCHIVE_NAME}/{split}/"
        split_records = [r for r in records if r.path.startswith(prefix)]
        write_lines(root / f"{split}_image_paths.csv", [r.path for r in split_records])
        write_lines(root / f"{split}_labeled_studies.csv",
                    [f"{s.directory},{s.label}" for s in studies if s.split == split])
        write_lines(root / f"{split}_ground_truth.csv",
                    [GROUND_TRUTH_HEADER, *(ground_truth_row(r) for r in split_records)])


def write_archive(out_dir: Path, studies: Sequence[StudyPlan], seed: int,
                  workers: int | None = None) -> ArchiveSummary:
    """Write planned studies as PNGs plus MURA's CSVs and the ground truth under out_dir."""
    root = Path(out_dir) / ARCHIVE_NAME
    if root.exists() and any(root.iterdir()):
        # Stale images from an earlier run would sit unlisted next to the new ones.
        raise FileExistsError(f"{root} already exists and is not empty; choose another --out")
    root.mkdir(parents=True, exist_ok=True)
    for study in studies:
        (Path(out_dir) / study.directory).mkdir(parents=True, exist_ok=True)
    jobs = plan_images(studies)
    records = write_images(Path(out_dir), jobs, seed, workers or os.cpu_count() or 1)
    write_manifests(root, studies, records)
    return summarize(root, studies)


def generate_archive(out_dir: Path, patients: int = 60, seed: int = 0,
                     valid_fraction: float = 0.25, workers: int | None = None) -> ArchiveSummary:
    """Write a small synthetic archive of `patients` patients."""
    studies = plan_small_archive(patients, seed, valid_fraction)
    return write_archive(out_dir, studies, seed, workers)


def generate_full_archive(out_dir: Path, seed: int = 0,
                          workers: int | None = None) -> ArchiveSummary:
    """Write a synthetic archive with MURA v1.1's exact per-split, per-body-part counts."""
    return write_archive(out_dir, plan_full_archive(load_counts(), seed), seed, workers)


# ---------------------------------------------------------------------------------------------
# Command line.
# ---------------------------------------------------------------------------------------------


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
        prog="python -m pipeline.synth",
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: write the archive and print where it is and what it holds."""
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        if args.full:
            summary = generate_full_archive(args.out, args.seed, args.workers)
        else:
            summary = generate_archive(args.out, args.patients, args.seed, args.valid_fraction,
                                       args.workers)
    except FileExistsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary.describe())
    print(f"  seed {args.seed}, {args.workers} workers, {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
