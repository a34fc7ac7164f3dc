"""Heatmap overlay: uncoloured below the threshold, JET-blended above; both encodings decode."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from transforms.overlay import encode_image, fit_to_side, heatmap_size, jet_colours, render_overlay


def test_overlay_colours_only_pixels_at_or_above_threshold() -> None:
    rgb = np.full((2, 3, 3), 100, dtype=np.uint8)
    cam = np.array([[0.0, 0.1, 0.2], [0.5, 1.0, 0.19]], dtype=np.float32)
    out = render_overlay(rgb, cam, threshold=0.2, alpha=0.5)
    below = cam < 0.2
    assert np.all(out[below] == 100)
    jet = cv2.applyColorMap(np.array([[255]], np.uint8), cv2.COLORMAP_JET)[0, 0].astype(int)  # BGR of 1.0
    np.testing.assert_allclose(out[1, 1].astype(int), (100 + jet) / 2, atol=1)


def test_overlay_of_empty_cam_is_the_image_in_bgr() -> None:
    rgb = np.dstack([np.full((2, 2), v, np.uint8) for v in (10, 20, 30)])
    out = render_overlay(rgb, np.zeros((2, 2), np.float32), threshold=0.2)
    np.testing.assert_array_equal(out[..., ::-1], rgb)


@pytest.mark.parametrize("fmt", ["jpg", "png"])
def test_encodings_round_trip(fmt: str) -> None:
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    decoded = cv2.imdecode(np.frombuffer(encode_image(image, fmt), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == image.shape
    if fmt == "png":
        np.testing.assert_array_equal(decoded, image)


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="jpg"):
        encode_image(np.zeros((2, 2, 3), np.uint8), "bmp")


def test_jet_colours_are_opencvs_applycolormap_byte_for_byte() -> None:
    every_level = np.arange(256, dtype=np.uint8).reshape(16, 16)
    noise = np.random.default_rng(2).integers(0, 256, (41, 29), dtype=np.uint8)
    for levels in (every_level, noise, noise[3:30, 5:17]):
        np.testing.assert_array_equal(jet_colours(levels), cv2.applyColorMap(levels, cv2.COLORMAP_JET))


def test_overlay_equals_a_plain_numpy_blend() -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    cam = rng.uniform(0, 1, (37, 53)).astype(np.float32)
    heat = cv2.applyColorMap(np.clip(cam * 255.0 + 0.5, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    blended = cv2.addWeighted(rgb[..., ::-1].copy(), 0.5, heat, 0.5, 0.0)
    expected = np.where((cam >= 0.3)[..., None], blended, rgb[..., ::-1])
    np.testing.assert_array_equal(render_overlay(rgb, cam, threshold=0.3), expected)


@pytest.mark.parametrize(
    ("width", "height", "max_side", "expected"),
    [(300, 200, 4096, (300, 200)), (8000, 2000, 4000, (4000, 1000)), (2000, 9000, 900, (200, 900)),
     (30000, 7, 4096, (4096, 1)), (100, 100, 100, (100, 100))],
)  # fmt: skip
def test_heatmap_size_bounds_the_longer_side(width: int, height: int, max_side: int, expected: tuple) -> None:
    assert heatmap_size(width, height, max_side) == expected


def test_fit_to_side_area_averages_image_and_cam() -> None:
    rgb = np.zeros((4, 8, 3), dtype=np.uint8)
    rgb[:, :4] = 200  # left half bright
    cam = np.zeros((4, 8), dtype=np.float32)
    cam[:2, :2] = 1.0  # top-left 2 x 2 hot
    small_rgb, small_cam = fit_to_side(rgb, cam, 4)
    assert small_rgb.shape == (2, 4, 3) and small_cam.shape == (2, 4)
    np.testing.assert_array_equal(small_rgb[..., 0], [[200, 200, 0, 0], [200, 200, 0, 0]])
    np.testing.assert_allclose(small_cam, [[1, 0, 0, 0], [0, 0, 0, 0]])
    same_rgb, same_cam = fit_to_side(rgb, cam, 8)
    assert same_rgb is rgb and same_cam is cam


def test_mask_box_is_the_smallest_box_around_every_true() -> None:
    from transforms.overlay import mask_box

    mask = np.zeros((6, 7), bool)
    assert mask_box(mask) is None
    mask[1, 5] = mask[3, 2] = True
    assert mask_box(mask) == (slice(1, 4), slice(2, 6))


def test_mask_box_equals_numpys_reductions_on_random_masks() -> None:
    from transforms.overlay import mask_box

    rng = np.random.default_rng(7)
    for _ in range(50):
        height, width = (int(v) for v in rng.integers(1, 90, 2))
        mask = rng.random((height, width)) > rng.uniform(0.9, 1.0)
        view = mask[:, ::-1]  # a view with a negative stride, as a caller may pass
        for case in (mask, view):
            rows, columns = np.flatnonzero(case.any(axis=1)), np.flatnonzero(case.any(axis=0))
            expected = None if rows.size == 0 else (slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1))
            assert mask_box(case) == expected
    assert mask_box(np.zeros((0, 4), bool)) is None
    assert mask_box(np.array([[0, 0], [0, 7]], np.int32)) == (slice(1, 2), slice(1, 2))  # any truthy dtype


def test_overlay_of_a_small_blob_equals_the_whole_frame_blend() -> None:
    # Colouring only the box around the blob must give every pixel the whole-frame recipe gives.
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (41, 59, 3), dtype=np.uint8)
    rows, cols = np.mgrid[0:41, 0:59]
    cam = np.exp(-((rows - 30) ** 2 + (cols - 12) ** 2) / 40.0).astype(np.float32)
    heat = cv2.applyColorMap(np.clip(cam * 255.0 + 0.5, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    blended = cv2.addWeighted(rgb[..., ::-1].copy(), 0.5, heat, 0.5, 0.0)
    expected = np.where((cam >= 0.2)[..., None], blended, rgb[..., ::-1])
    assert 0 < (cam >= 0.2).mean() < 0.2
    np.testing.assert_array_equal(render_overlay(rgb, cam, threshold=0.2), expected)


@pytest.mark.parametrize(("height", "width", "max_side"), [(37, 53, 4096), (300, 200, 150), (301, 207, 100)])
def test_a_grey_images_heatmap_is_its_rgb_copys_byte_for_byte(height: int, width: int, max_side: int) -> None:
    rng = np.random.default_rng(height)
    grey = rng.integers(0, 256, (height, width), dtype=np.uint8)
    cam = rng.uniform(0, 1, (height, width)).astype(np.float32)
    rgb = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    for image_format in ("jpg", "png"):
        heatmaps = [encode_image(render_overlay(*fit_to_side(pixels, cam, max_side), threshold=0.3), image_format)
                    for pixels in (grey, rgb)]
        assert heatmaps[0] == heatmaps[1]
