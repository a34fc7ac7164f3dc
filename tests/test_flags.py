"""Tests for the per-image audit flags (transforms.flags), on small hand-made images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from transforms.flags import (
    FLAG_NAMES,
    FlagThresholds,
    border_peak,
    box_count,
    burned_in_peak,
    grey_histogram,
    grey_percentiles,
    image_flags,
    off_body_peak,
    predicted_class,
    text_like_pixels,
    to_grey,
)

DEFAULTS = FlagThresholds()


def scene() -> np.ndarray:
    """200 x 300 grey: background 10, a body band of 120 in the middle rows 60..140."""
    image = np.full((200, 300), 10, np.uint8)
    image[60:140, :] = 120
    return image


def test_box_count_matches_a_direct_sum() -> None:
    mask = np.random.default_rng(0).random((9, 11)) < 0.4
    counts = box_count(mask, 1)
    padded = np.pad(mask, 1)
    expected = np.array([[padded[y:y + 3, x:x + 3].sum() for x in range(11)] for y in range(9)])
    assert np.array_equal(counts, expected)


def test_border_peak_margin() -> None:
    # shorter side 200, margin 0.05 -> within 10 px of an edge
    assert border_peak(9, 100, 300, 200, 0.05)
    assert not border_peak(10, 100, 300, 200, 0.05)
    assert border_peak(150, 190, 300, 200, 0.05)  # 9 px from the bottom edge
    assert not border_peak(150, 100, 300, 200, 0.05)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 100, 101, 11_583])
def test_grey_percentiles_equal_numpys_bit_for_bit(size: int) -> None:
    rng = np.random.default_rng(size)
    samples = [
        rng.integers(0, 256, size, dtype=np.uint8),
        (rng.integers(0, 3, size) * 100).astype(np.uint8),  # few levels: many ties
        np.clip(rng.normal(128, 40, (size, 1)), 0, 255).astype(np.uint8),  # 2-D
        np.full(size, 37, dtype=np.uint8),
    ]
    for grey in samples:
        for percents in ((1, 99), (0, 100), (50,), (2.5, 97.5), (33.3, 66.7)):
            expected = tuple(float(value) for value in np.percentile(grey, percents))
            assert grey_percentiles(grey, percents) == expected, (grey, percents)


def test_grey_histogram_counts_every_level_exactly() -> None:
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (61, 47, 3), dtype=np.uint8)
    grey_image = to_grey(image)
    # Contiguous, strided (copied by OpenCV's binding), row-sliced (read in place with its step), one pixel.
    for grey in (grey_image, image[::4, ::3, 1], image[5:9, 40:, 2], grey_image[5:40, 3:30], image[0, :1, 0]):
        histogram = grey_histogram(grey)
        assert histogram.dtype == np.int64 and histogram.shape == (256,)
        assert np.array_equal(histogram, np.bincount(grey.ravel(), minlength=256)), grey.shape


def test_grey_histogram_exact_beyond_float32_counts() -> None:
    # 2**24 + 1 pixels of one level: a float32 bin would hold 2**24.
    grey = np.full(2**24 + 1, 200, dtype=np.uint8)
    assert grey_histogram(grey)[200] == 2**24 + 1


def test_off_body_peak_on_background_only() -> None:
    grey = scene()
    assert off_body_peak(grey, grey[10:20, 10:20], 0.1)
    overlay = grey[10:20, 10:20].copy()
    overlay[:6] = 255  # text over the background: what lies under it decides
    assert off_body_peak(grey, overlay, 0.1, 254) and not off_body_peak(grey, overlay, 0.1)
    assert not off_body_peak(grey, grey[90:100, 10:20], 0.1)


def test_text_is_text_like_and_noise_or_a_blob_is_not() -> None:
    text = np.zeros((40, 80), np.uint8)
    cv2.putText(text, "PORT", (2, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 255, 2, cv2.LINE_8)
    saturated = text >= 254
    assert text_like_pixels(saturated).sum() >= 0.9 * saturated.sum()
    assert burned_in_peak(text, 254, 0.03, 0.6)
    blob = np.zeros((40, 80), np.uint8)
    blob[5:35, 10:60] = 255  # a metal plate: solid, its interior is not a stroke
    assert not burned_in_peak(blob, 254, 0.03, 0.6)
    noise = np.where(np.random.default_rng(1).random((40, 80)) < 0.05, 255, 200).astype(np.uint8)
    assert not burned_in_peak(noise, 254, 0.03, 0.6)
    assert not burned_in_peak(np.full((10, 10), 100, np.uint8), 254, 0.03, 0.6)


def test_image_flags_on_a_token_in_the_background() -> None:
    grey = scene()
    cv2.putText(grey, "ER", (20, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 255, 2, cv2.LINE_8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    flags = image_flags(rgb, (35, 30), (0.02, 0.98), 0.1, 0, DEFAULTS)
    assert list(flags) == list(FLAG_NAMES)
    assert flags == {
        "flag_border_peak": False,
        "flag_off_body_peak": True,
        "flag_burned_in_peak": True,
        "flag_diffuse": False,
        "flag_empty_cam": False,
        "flag_label_disagreement": True,
    }


def test_image_flags_on_the_body_and_empty_cams() -> None:
    grey = scene()
    on_body = image_flags(grey, (150, 100), (0.3, 0.7), 0.9, 1, DEFAULTS)
    assert not any(on_body.values())  # not confident: neither diffuse nor disagreeing
    diffuse = image_flags(grey, (150, 100), (0.95, 0.05), 0.6, None, DEFAULTS)
    assert diffuse["flag_diffuse"] and diffuse["flag_label_disagreement"] is None
    empty = image_flags(grey, None, (0.5, 0.5), 0.0, 0, DEFAULTS)
    assert empty["flag_empty_cam"] and not empty["flag_border_peak"] and not empty["flag_off_body_peak"]


def test_label_disagreement_judges_the_records_predicted_class() -> None:
    grey = scene()
    assert predicted_class((0.2, 0.5, 0.5)) == 1 and predicted_class((0.95, 0.05)) == 0
    # A broken model's NaN: np.argmax would pick class 1 here, the record's predicted_class is 0.
    probabilities = (0.95, float("nan"))
    assert predicted_class(probabilities) == 0
    assert not image_flags(grey, (150, 100), probabilities, 0.1, 0, DEFAULTS)["flag_label_disagreement"]
    assert image_flags(grey, (150, 100), probabilities, 0.1, 1, DEFAULTS)["flag_label_disagreement"]


def test_thresholds_are_checked() -> None:
    DEFAULTS.check()
    with pytest.raises(ValueError, match="--flag_confidence"):
        FlagThresholds(confidence=1.5).check()
    with pytest.raises(ValueError, match="--flag_saturation_level"):
        FlagThresholds(saturation_level=0).check()


def test_to_grey_takes_the_brightest_channel() -> None:
    pixels = np.random.default_rng(2).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    assert np.array_equal(to_grey(pixels), pixels.max(axis=2))
    assert np.array_equal(to_grey(pixels[..., 0]), pixels[..., 0])
