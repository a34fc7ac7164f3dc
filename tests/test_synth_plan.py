"""Tests for the synthetic archive's planning (reference.plan.plan): studies, patients, images, counts."""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import numpy as np
import pytest

from reference.synth import plan

MURA_IMAGE_PATH = re.compile(
    r"^MURA-v1\.1/(train|valid)/XR_[A-Z]+/patient\d{5}/study\d+_(positive|negative)/image\d+\.png$"
)


@pytest.mark.parametrize("patients", [28, 29, 40, 60, 97])
def test_small_plan_covers_every_part_in_both_splits(patients: int) -> None:
    for seed in range(5):
        studies = plan.plan_small_archive(patients, seed, valid_fraction=0.25)
        for split in plan.SPLITS:
            in_split = [s for s in studies if s.split == split]
            assert {s.body_part for s in in_split} == set(plan.BODY_PARTS)
            assert {s.positive for s in in_split} == {True, False}
        assert len({s.patient for s in studies}) == patients
        assert all(1 <= s.images <= 4 for s in studies)
        valid_patients = len({s.patient for s in studies if s.split == "valid"})
        assert 0.1 * patients <= valid_patients <= 0.4 * patients
        # Train patients are numbered first, as in MURA.
        train_max = max(s.patient for s in studies if s.split == "train")
        assert train_max < min(s.patient for s in studies if s.split == "valid")


@pytest.mark.parametrize("patients", [10, 60, 2000])
def test_small_plan_positive_rate_is_about_forty_percent(patients: int) -> None:
    for seed in range(4):
        studies = plan.plan_small_archive(patients, seed)
        rate = sum(s.positive for s in studies) / len(studies)
        assert abs(rate - 0.4) < 0.06, (seed, rate)


def test_partition_total_hits_totals_exactly() -> None:
    rng = np.random.default_rng(0)
    for total in (0, 1, 2, 3, 5, 17, 1000):
        parts = plan.partition_total(rng, total, plan.STUDY_SIZES, plan.STUDY_SIZE_WEIGHTS)
        assert sum(parts) == total and all(1 <= p <= 4 for p in parts)


def test_full_plan_matches_mura_counts_exactly() -> None:
    counts = plan.load_counts()
    studies = plan.plan_full_archive(counts, seed=0)
    images: Counter[tuple[str, str]] = Counter()
    abnormal: Counter[tuple[str, str]] = Counter()
    for study in studies:
        assert 1 <= study.images <= 4
        images[study.split, study.body_part] += study.images
        if study.positive:  # a positive study's images are all abnormal
            abnormal[study.split, study.body_part] += study.images
    for count in counts:
        assert images[count.split, count.body_part] == count.images
        assert abnormal[count.split, count.body_part] == count.abnormal_images
    assert len(counts) == 14 and sum(images.values()) == 40_005

    jobs = plan.plan_images(studies)
    assert len(jobs) == 40_005 and len({job.path for job in jobs}) == 40_005
    assert [job.index for job in jobs] == list(range(40_005))
    assert all(MURA_IMAGE_PATH.match(job.path) for job in jobs[::97])
    assert sum(job.positive for job in jobs) == sum(c.abnormal_images for c in counts)

    mean_size = 40_005 / len(studies)
    assert 2.5 < mean_size < 2.9  # MURA: 40,005 images in 14,863 studies
    patients: dict[int, set[tuple[str, str]]] = defaultdict(set)
    for study in studies:
        patients[study.patient].add((study.split, study.body_part))
    assert all(len(owner) == 1 for owner in patients.values())
    assert max(patients) <= 99_999
    keys = [(s.patient, s.study) for s in studies]
    assert len(set(keys)) == len(keys)
    assert plan.plan_full_archive(counts, seed=0) == studies

