"""Tests for rendering one synthetic radiograph (reference.synth.render): lesion boxes, sizes, determinism."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from reference.synth.plan import BODY_PARTS, image_rng
from reference.synth.render import render_image


@pytest.mark.parametrize("body_part", BODY_PARTS)
def test_lesion_changes_only_its_tight_box(body_part: str) -> None:
    for index in range(6):
        positive, box = render_image(image_rng(11, index), body_part, True)
        negative, no_box = render_image(image_rng(11, index), body_part, False)
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
        image, _ = render_image(image_rng(5, index), BODY_PARTS[index % 7],
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
    first, box_a = render_image(image_rng(1, 7), "XR_WRIST", True)
    second, box_b = render_image(image_rng(1, 7), "XR_WRIST", True)
    other, _ = render_image(image_rng(1, 8), "XR_WRIST", True)
    assert np.array_equal(first, second) and box_a == box_b
    assert first.shape != other.shape or not np.array_equal(first, other)

