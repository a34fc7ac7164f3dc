"""Tests for the sample archive's shortcut mode (reference.synth.shortcut and its use in write/cli)."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from reference.synth import generate_archive
from reference.synth.shortcut import CLEAR_LEVEL, SATURATED, burn_token, token_rate


def test_token_rate_is_rare_in_normal_images() -> None:
    assert token_rate(0.8, True) == 0.8
    assert token_rate(0.8, False) == pytest.approx(0.04)


def test_burn_token_writes_saturated_strokes_inside_its_box_only() -> None:
    image = np.full((300, 400), 20, np.uint8)
    lesion = (150, 100, 250, 200)
    box = burn_token(np.random.default_rng(3), image, lesion)
    assert box is not None
    x0, y0, x1, y1 = box
    assert 0 <= x0 < x1 <= 400 and 0 <= y0 < y1 <= 300
    assert not (x0 < lesion[2] and lesion[0] < x1 and y0 < lesion[3] and lesion[1] < y1)
    inside = image[y0:y1, x0:x1]
    assert set(np.unique(inside)) == {20, SATURATED}
    outside = image.copy()
    outside[y0:y1, x0:x1] = 20
    assert (outside == 20).all()


def test_burn_token_gives_up_when_no_clear_place() -> None:
    image = np.full((120, 160), CLEAR_LEVEL + 1, np.uint8)
    assert burn_token(np.random.default_rng(0), image, None) is None
    assert (image == CLEAR_LEVEL + 1).all()


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_shortcut_archive_is_the_clean_archive_plus_tokens(tmp_path: Path) -> None:
    generate_archive(tmp_path / "clean", patients=10, seed=5, workers=1)
    generate_archive(tmp_path / "short", patients=10, seed=5, workers=1, shortcut=1.0)
    clean_rows = read_rows(tmp_path / "clean" / "MURA-v1.1" / "valid_ground_truth.csv")
    rows = read_rows(tmp_path / "short" / "MURA-v1.1" / "valid_ground_truth.csv")
    assert "marker_x0" not in clean_rows[0] and "marker_x0" in rows[0]
    assert [r["x0"] for r in rows] == [r["x0"] for r in clean_rows]  # same lesions
    positives = [r for r in rows if r["label"] == "1"]
    assert positives and all(r["marker_x0"] for r in positives)
    for row in rows:
        clean = cv2.imread(str(tmp_path / "clean" / row["image_path"]), cv2.IMREAD_UNCHANGED)
        image = cv2.imread(str(tmp_path / "short" / row["image_path"]), cv2.IMREAD_UNCHANGED)
        if not row["marker_x0"]:
            assert np.array_equal(image, clean)
            continue
        x0, y0, x1, y1 = (int(row[f"marker_{k}"]) for k in ("x0", "y0", "x1", "y1"))
        assert (image[y0:y1, x0:x1] == SATURATED).any()
        image[y0:y1, x0:x1] = clean[y0:y1, x0:x1]
        assert np.array_equal(image, clean), "the token changed pixels outside its box"
