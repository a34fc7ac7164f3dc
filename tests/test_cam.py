"""CAM numeric core against hand-computed values."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from transforms.cam import (
    cam_coverage,
    cam_peak,
    cam_stats,
    explain_cam,
    interpolation_matrix,
    interpolation_taps,
    rectify_and_normalise,
    upsample,
)


def test_rectify_and_normalise_relu_then_divide_by_max() -> None:
    normalised, raw_max = rectify_and_normalise(np.array([[-2.0, 1.0], [4.0, 2.0]], dtype=np.float32))
    assert raw_max == 4.0
    np.testing.assert_allclose(normalised, [[0.0, 0.25], [1.0, 0.5]])


@pytest.mark.parametrize("values", [[[-1.0, -3.0]], [[0.0, 0.0]], [[np.nan, -np.inf]], [[2.5, 2.5]], [[7.0]]])
def test_non_positive_or_constant_map_gives_zeros_not_nan(values: list[list[float]]) -> None:
    normalised, raw_max = rectify_and_normalise(np.array(values, dtype=np.float32))
    assert raw_max == 0.0
    assert np.all(normalised == 0.0) and np.all(np.isfinite(normalised))


def test_upsample_uses_half_pixel_centres() -> None:
    # A 1x2 map [0, 1] grown to width 4: sample centres at x = -0.25, 0.25, 0.75, 1.25 in source
    # pixels, clamped at the borders -> 0, 0.25, 0.75, 1 (tf.image.resize gives the same).
    grown = upsample(np.array([[0.0, 1.0]], dtype=np.float32), width=4, height=1)
    np.testing.assert_allclose(grown, [[0.0, 0.25, 0.75, 1.0]], atol=1e-6)
    assert upsample(np.ones((7, 7), np.float32), width=50, height=30).shape == (30, 50)


def test_cam_peak_is_x_y_of_first_maximum() -> None:
    cam = np.zeros((4, 5), dtype=np.float32)
    cam[2, 3] = 1.0
    cam[3, 0] = 1.0  # a later tie does not win
    assert cam_peak(cam) == (3, 2)


def test_coverage_counts_pixels_at_or_above_threshold() -> None:
    cam = np.array([[0.1, 0.2], [0.5, 1.0]], dtype=np.float32)
    assert cam_coverage(cam, 0.2) == 0.75
    assert cam_coverage(cam, 0.6) == 0.25


def test_cam_stats_peak_fields() -> None:
    cam = np.zeros((10, 20), dtype=np.float32)
    cam[4, 15] = 1.0
    cam[4, 14] = 0.5
    stats = cam_stats(cam, raw_max=8.0, threshold=0.5)
    assert (stats.peak_x, stats.peak_y) == (15, 4)
    assert stats.peak_x_norm == pytest.approx(15.5 / 20)
    assert stats.peak_y_norm == pytest.approx(4.5 / 10)
    assert stats.peak_value == pytest.approx(8.0)
    assert stats.coverage == pytest.approx(2 / 200)


def test_empty_map_has_null_peak_and_zero_coverage() -> None:
    full, stats = explain_cam(np.full((3, 3), -1.0, dtype=np.float32), width=30, height=20, threshold=0.2)
    assert full.shape == (20, 30)
    assert stats.peak_x is None and stats.peak_y is None and stats.peak_value is None
    assert stats.peak_x_norm is None and stats.coverage == 0.0


def test_explain_cam_peak_lands_in_the_hot_cell() -> None:
    cam = np.zeros((4, 4), dtype=np.float32)
    cam[1, 2] = 3.0  # cell (x=2, y=1) of a 4x4 grid over an 80x40 image: x in [40, 60), y in [10, 20)
    full, stats = explain_cam(cam, width=80, height=40, threshold=0.2)
    assert 40 <= stats.peak_x < 60 and 10 <= stats.peak_y < 20
    # Integer scale factors never sample the cell centre exactly: the nearest samples are
    # x = 49 (source 1.975) and y = 14 (source 0.95), so the peak is 0.975 * 0.95 of the maximum.
    assert (stats.peak_x, stats.peak_y) == (49, 14)
    assert full.max() == pytest.approx(0.975 * 0.95, abs=1e-6)
    assert stats.peak_value == pytest.approx(3.0 * float(full[stats.peak_y, stats.peak_x]))


def test_upsample_matches_opencv_resize_when_unshifted() -> None:
    import cv2

    cam = np.random.default_rng(0).uniform(-1, 1, (7, 5)).astype(np.float32)
    np.testing.assert_allclose(upsample(cam, 53, 41), cv2.resize(cam, (53, 41), interpolation=cv2.INTER_LINEAR),
                               atol=1e-5)


def test_shifted_upsample_moves_the_grid_by_whole_cells() -> None:
    # 1x4 map, 4x upsampling: a shift of +1 cell moves every value one cell (4 px) right.
    cam = np.array([[0.0, 1.0, 0.0, 0.0]], dtype=np.float32)
    plain = upsample(cam, 16, 1)
    shifted = upsample(cam, 16, 1, shift=(0.0, 1.0))
    assert int(np.argmax(shifted)) == int(np.argmax(plain)) + 4
    np.testing.assert_allclose(interpolation_matrix(16, 4, 1.0).sum(axis=1), 1.0, atol=1e-6)


def random_upsample_cases(seed: int, count: int = 20) -> Iterator[tuple[np.ndarray, int, int, tuple[float, float]]]:
    """(cam, width, height, shift): CAMs of 1-15 cells a side grown to 1-299 pixels, grids moved up to half a cell."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        cam = rng.uniform(-1, 1, tuple(rng.integers(1, 16, 2))).astype(np.float32)
        height, width = (int(v) for v in rng.integers(1, 300, 2))
        yield cam, width, height, (float(rng.uniform(-0.5, 0.5)), float(rng.uniform(-0.5, 0.5)))


def test_upsample_is_bit_for_bit_the_two_tap_formula() -> None:
    # Records keep their exact CAM peaks and coverage: every pixel is (low row * keep + high row * take), each
    # row the same two-tap formula over the columns, in float32 and in that order (no fused multiply-add).
    for cam, width, height, shift in random_upsample_cases(5):
        low_y, high_y, frac_y = interpolation_taps(height, cam.shape[0], shift[0])
        low_x, high_x, frac_x = interpolation_taps(width, cam.shape[1], shift[1])
        columns = cam[:, low_x] * (1.0 - frac_x).astype(np.float32) + cam[:, high_x] * frac_x.astype(np.float32)
        expected = np.empty((height, width), np.float32)
        for row in range(height):
            keep, take = np.float32(1.0 - frac_y[row]), np.float32(frac_y[row])
            expected[row] = columns[low_y[row]] * keep + columns[high_y[row]] * take
        np.testing.assert_array_equal(upsample(cam, width, height, shift), expected)


def test_upsample_equals_the_interpolation_matrix_product() -> None:
    for cam, width, height, shift in random_upsample_cases(3):
        expected = interpolation_matrix(height, cam.shape[0], shift[0]) @ cam
        expected = expected @ interpolation_matrix(width, cam.shape[1], shift[1]).T
        grown = upsample(cam, width, height, shift)
        assert grown.dtype == np.float32 and grown.shape == (height, width)
        np.testing.assert_allclose(grown, expected, rtol=0, atol=1e-6)
