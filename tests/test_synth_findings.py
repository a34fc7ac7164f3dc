"""Tests for the planted findings' box helpers (reference.synth.findings): half-open boxes, clipping."""

from __future__ import annotations

from reference.synth.findings import boxes_overlap, square_box


def test_boxes_overlap_is_half_open() -> None:
    assert boxes_overlap((0, 0, 3, 3), (2, 2, 5, 5))
    assert not boxes_overlap((0, 0, 2, 2), (2, 0, 4, 2))  # touching edges share no pixel
    assert not boxes_overlap((0, 0, 2, 2), (0, 2, 2, 4))


def test_square_box_rounds_outwards_and_clips_to_the_image() -> None:
    assert square_box((10.0, 10.0), 4.0, 100, 100) == (8, 8, 12, 12)
    assert square_box((10.5, 10.5), 3.0, 100, 100) == (9, 9, 12, 12)
    assert square_box((1.0, 1.0), 4.0, 10, 10) == (0, 0, 3, 3)
    assert square_box((9.0, 9.0), 4.0, 10, 10) == (7, 7, 10, 10)
