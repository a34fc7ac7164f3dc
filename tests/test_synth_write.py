"""Tests for writing a synthetic archive (reference.synth.write): MURA layout, PNGs, ground truth, bytes."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from reference.synth import generate_archive
from reference.synth.plan import BODY_PARTS, SPLITS, ArchiveSummary

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
def small_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ArchiveSummary]:
    """A default-sized archive written once for the layout and ground-truth tests."""
    out_dir = tmp_path_factory.mktemp("synth")
    summary = generate_archive(out_dir, patients=60, seed=3, valid_fraction=0.25, workers=1)
    return out_dir, summary


def test_layout_matches_mura(small_archive: tuple[Path, ArchiveSummary]) -> None:
    out_dir, summary = small_archive
    root = out_dir / "MURA-v1.1"
    all_paths: list[str] = []
    for split in SPLITS:
        paths = read_lines(root / f"{split}_image_paths.csv")
        assert paths, f"{split} has no images"
        for path in paths:
            assert MURA_IMAGE_PATH.match(path), path
            assert path.startswith(f"MURA-v1.1/{split}/")
            assert (out_dir / path).is_file(), path
        assert {path.split("/")[2] for path in paths} == set(BODY_PARTS)

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
    small_archive: tuple[Path, ArchiveSummary],
) -> None:
    out_dir, _ = small_archive
    for path in read_lines(out_dir / "MURA-v1.1" / "valid_image_paths.csv")[:20]:
        assert (out_dir / path).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        image = cv2.imread(str(out_dir / path), cv2.IMREAD_UNCHANGED)
        assert image is not None and image.dtype == np.uint8 and image.ndim in (2, 3)
        assert image.shape[0] != image.shape[1]


def test_ground_truth_boxes(small_archive: tuple[Path, ArchiveSummary]) -> None:
    out_dir, _ = small_archive
    root = out_dir / "MURA-v1.1"
    for split in SPLITS:
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


def test_archive_is_byte_deterministic(tmp_path: Path) -> None:
    serial = generate_archive(tmp_path / "a", patients=28, seed=9, workers=1)
    generate_archive(tmp_path / "b", patients=28, seed=9, workers=2)
    generate_archive(tmp_path / "c", patients=28, seed=10, workers=1)
    hashes_a = archive_hashes(tmp_path / "a")
    assert len(hashes_a) == serial.images + 6  # every PNG plus three CSVs per split
    assert hashes_a == archive_hashes(tmp_path / "b"), "parallel writing changed the bytes"
    assert hashes_a != archive_hashes(tmp_path / "c")


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    generate_archive(tmp_path, patients=2, seed=0, workers=1)
    with pytest.raises(FileExistsError):
        generate_archive(tmp_path, patients=2, seed=0, workers=1)

