"""Tests for the synthetic MURA archive generator (pipeline.synth)."""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline import synth

MURA_IMAGE_PATH = re.compile(
    r"^MURA-v1\.1/(train|valid)/XR_[A-Z]+/patient\d{5}/study\d+_(positive|negative)/image\d+\.png$"
)


def read_lines(path: Path) -> list[str]:
    """Lines of a CSV, checking it uses Unix endings and ends with a newline."""
    data = path.read_bytes()
    assert b"\r" not in data
    assert data == b"" or data.endswith(b"\n")
    return data.decode().splitlines()


def archive_hashes(out_dir: Path) -> dict[str, str]:
    """SHA-256 of every file under out_dir, keyed by relative path."""
    return {
        str(path.relative_to(out_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(out_dir.rglob("*"))
        if path.is_file()
    }


def study_of(image_path: str) -> str:
    """The study directory (with trailing slash) of an image path."""
    return image_path.rsplit("/", 1)[0] + "/"


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, synth.ArchiveSummary]:
    """A default-sized archive written once for the layout and ground-truth tests."""
    out_dir = tmp_path_factory.mktemp("synth")
    summary = synth.generate_archive(out_dir, patients=60, seed=3, valid_fraction=0.25, workers=1)
    return out_dir, summary


def test_layout_matches_mura(small_archive: tuple[Path, synth.ArchiveSummary]) -> None:
    out_dir, summary = small_archive
    root = out_dir / "MURA-v1.1"
    all_paths: list[str] = []
    for split in synth.SPLITS:
        paths = read_lines(root / f"{split}_image_paths.csv")
        assert paths, f"{split} has no images"
        for path in paths:
            assert MURA_IMAGE_PATH.match(path), path
            assert path.startswith(f"MURA-v1.1/{split}/")
            assert (out_dir / path).is_file(), path
        assert {path.split("/")[2] for path in paths} == set(synth.BODY_PARTS)

        labels: dict[str, str] = {}
        for line in read_lines(root / f"{split}_labeled_studies.csv"):
            study, label = line.rsplit(",", 1)
            assert study.endswith("/") and study not in labels
            labels[study] = label
            assert label == ("1" if study.endswith("_positive/") else "0")
        assert set(labels) == {study_of(path) for path in paths}
        assert {"0", "1"} <= set(labels.values())
        all_paths += paths

    # Every PNG on disk is listed; numbering starts at 1 with no gaps.
    on_disk = {str(p.relative_to(out_dir)) for p in root.rglob("*.png")}
    assert on_disk == set(all_paths) and len(all_paths) == summary.images
    images_per_study: dict[str, list[int]] = defaultdict(list)
    studies_per_patient: dict[str, set[int]] = defaultdict(set)
    for path in all_paths:
        study = study_of(path)
        images_per_study[study].append(int(re.search(r"image(\d+)\.png$", path)[1]))
        patient, study_name = study.rstrip("/").rsplit("/", 2)[-2:]
        studies_per_patient[patient].add(int(re.match(r"study(\d+)_", study_name)[1]))
    assert all(sorted(n) == list(range(1, len(n) + 1)) and len(n) <= 4
               for n in images_per_study.values())
    assert all(sorted(s) == list(range(1, len(s) + 1)) and len(s) <= 3
               for s in studies_per_patient.values())

    # A patient number belongs to exactly one split and body part.
    owners: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for path in all_paths:
        _, split, part, patient = path.split("/")[:4]
        owners[patient].add((split, part))
    assert all(len(owner) == 1 for owner in owners.values())
    assert sum(s.patients for s in summary.splits) == len(owners) == 60


def test_images_are_8_bit_non_square_pngs(
    small_archive: tuple[Path, synth.ArchiveSummary],
) -> None:
    out_dir, _ = small_archive
    for path in read_lines(out_dir / "MURA-v1.1" / "valid_image_paths.csv")[:20]:
        assert (out_dir / path).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        image = cv2.imread(str(out_dir / path), cv2.IMREAD_UNCHANGED)
        assert image is not None and image.dtype == np.uint8 and image.ndim in (2, 3)
        assert image.shape[0] != image.shape[1]


def test_ground_truth_boxes(small_archive: tuple[Path, synth.ArchiveSummary]) -> None:
    out_dir, _ = small_archive
    root = out_dir / "MURA-v1.1"
    for split in synth.SPLITS:
        lines = read_lines(root / f"{split}_ground_truth.csv")
        assert lines[0] == "image_path,label,x0,y0,x1,y1"
        rows = [line.split(",") for line in lines[1:]]
        assert [row[0] for row in rows] == read_lines(root / f"{split}_image_paths.csv")
        assert {row[1] for row in rows} == {"0", "1"}
        for path, label, *box in rows:
            assert label == ("1" if "_positive/" in path else "0")
            if label == "0":
                assert box == ["", "", "", ""]
                continue
            x0, y0, x1, y1 = map(int, box)
            grey = cv2.imread(str(out_dir / path), cv2.IMREAD_GRAYSCALE)
            height, width = grey.shape
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
            # The planted callus is the brightest dense thing on the bone.
            assert np.percentile(grey[y0:y1, x0:x1], 90) > np.percentile(grey, 90) + 15


@pytest.mark.parametrize("body_part", synth.BODY_PARTS)
def test_lesion_changes_only_its_tight_box(body_part: str) -> None:
    for index in range(6):
        positive, box = synth.render_image(synth.image_rng(11, index), body_part, True)
        negative, no_box = synth.render_image(synth.image_rng(11, index), body_part, False)
        assert no_box is None and box is not None
        assert positive.shape == negative.shape
        x0, y0, x1, y1 = box
        short_side = min(positive.shape[:2])
        assert 0.06 * short_side <= max(x1 - x0, y1 - y0) <= 0.25 * short_side

        diff = np.abs(positive.astype(int) - negative.astype(int))
        if diff.ndim == 3:
            diff = diff.max(axis=2)
        outside = diff.copy()
        outside[y0:y1, x0:x1] = 0
        assert not outside.any(), "lesion leaked outside its box"
        # Tight: the changed pixels reach every edge of the box.
        ys, xs = np.nonzero(diff)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == box
        assert diff[y0:y1, x0:x1].mean() > 20


def test_render_sizes_vary_and_some_images_are_rgb() -> None:
    shapes, channels = [], Counter()
    for index in range(400):
        image, _ = synth.render_image(synth.image_rng(5, index), synth.BODY_PARTS[index % 7],
                                      index % 2 == 0)
        assert image.dtype == np.uint8
        shapes.append(image.shape[:2])
        channels[image.ndim] += 1
        if image.ndim == 3:
            assert image.shape[2] == 3
            assert np.abs(image.astype(int) - image[..., :1]).max() <= 20  # grey, faint tint
    heights, widths = zip(*shapes, strict=True)
    assert all(h != w for h, w in shapes)
    assert min(heights) >= 250 and max(heights) <= 520 and min(widths) >= 250
    assert max(widths) <= 520 and len(set(shapes)) > 300
    assert np.std(heights) > 50 and np.std(widths) > 50
    assert 2 <= channels[3] <= 30  # ~3% of 400
    assert channels[2] + channels[3] == 400


def test_render_is_deterministic_per_rng_seed() -> None:
    first, box_a = synth.render_image(synth.image_rng(1, 7), "XR_WRIST", True)
    second, box_b = synth.render_image(synth.image_rng(1, 7), "XR_WRIST", True)
    other, _ = synth.render_image(synth.image_rng(1, 8), "XR_WRIST", True)
    assert np.array_equal(first, second) and box_a == box_b
    assert first.shape != other.shape or not np.array_equal(first, other)


def test_archive_is_byte_deterministic(tmp_path: Path) -> None:
    serial = synth.generate_archive(tmp_path / "a", patients=28, seed=9, workers=1)
    synth.generate_archive(tmp_path / "b", patients=28, seed=9, workers=2)
    synth.generate_archive(tmp_path / "c", patients=28, seed=10, workers=1)
    hashes_a = archive_hashes(tmp_path / "a")
    assert len(hashes_a) == serial.images + 6  # every PNG plus three CSVs per split
    assert hashes_a == archive_hashes(tmp_path / "b"), "parallel writing changed the bytes"
    assert hashes_a != archive_hashes(tmp_path / "c")


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    synth.generate_archive(tmp_path, patients=2, seed=0, workers=1)
    with pytest.raises(FileExistsError):
        synth.generate_archive(tmp_path, patients=2, seed=0, workers=1)


@pytest.mark.parametrize("patients", [28, 29, 40, 60, 97])
def test_small_plan_covers_every_part_in_both_splits(patients: int) -> None:
    for seed in range(5):
        studies = synth.plan_small_archive(patients, seed, valid_fraction=0.25)
        for split in synth.SPLITS:
            in_split = [s for s in studies if s.split == split]
            assert {s.body_part for s in in_split} == set(synth.BODY_PARTS)
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
        studies = synth.plan_small_archive(patients, seed)
        rate = sum(s.positive for s in studies) / len(studies)
        assert abs(rate - 0.4) < 0.06, (seed, rate)


def test_partition_total_hits_totals_exactly() -> None:
    rng = np.random.default_rng(0)
    for total in (0, 1, 2, 3, 5, 17, 1000):
        parts = synth.partition_total(rng, total, synth.STUDY_SIZES, synth.STUDY_SIZE_WEIGHTS)
        assert sum(parts) == total and all(1 <= p <= 4 for p in parts)


def test_full_plan_matches_mura_counts_exactly() -> None:
    counts = synth.load_counts()
    studies = synth.plan_full_archive(counts, seed=0)
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

    jobs = synth.plan_images(studies)
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
    assert synth.plan_full_archive(counts, seed=0) == studies


def test_cli_writes_archive_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = synth.main(["--out", str(tmp_path), "--patients", "8", "--seed", "2", "--workers", "1"])
    assert code == 0
    report = capsys.readouterr().out
    assert str(tmp_path / "MURA-v1.1") in report and "train:" in report and "valid:" in report
    assert (tmp_path / "MURA-v1.1" / "train_ground_truth.csv").is_file()
    assert synth.main(["--out", str(tmp_path), "--patients", "8", "--workers", "1"]) == 2
