"""Localisation scores of CAMs against ground-truth boxes: pointing game and thresholded-region IoU."""

from __future__ import annotations

import numpy as np

Box = tuple[int, int, int, int]  # x0, y0 inclusive; x1, y1 exclusive; original pixels


# Zhang et al. (2016, "Top-down neural attention by excitation backprop") count a pointing-game hit
# when the maximum lies on the object "within a 15-pixel tolerance".
POINTING_TOLERANCE_PX = 15.0


def peak_in_box(peak_x: int | None, peak_y: int | None, box: Box, tolerance: float = 0.0) -> bool:
    """Pointing-game hit: the CAM's maximum lies within `tolerance` pixels of the box; no peak misses."""
    if peak_x is None or peak_y is None:
        return False
    x0, y0, x1, y1 = box
    dx = max(x0 - peak_x, 0, peak_x - (x1 - 1))
    dy = max(y0 - peak_y, 0, peak_y - (y1 - 1))
    return dx * dx + dy * dy <= tolerance * tolerance


def box_mask(box: Box, width: int, height: int) -> np.ndarray:
    """Boolean height x width mask of a box, clipped to the image."""
    x0, y0, x1, y1 = box
    mask = np.zeros((height, width), dtype=bool)
    mask[max(0, y0) : min(height, y1), max(0, x0) : min(width, x1)] = True
    return mask


def mask_box_iou(region: np.ndarray, box: Box) -> float:
    """Intersection over union of a boolean region with a box; 0 when both are empty."""
    target = box_mask(box, region.shape[1], region.shape[0])
    union = np.count_nonzero(region | target)
    return float(np.count_nonzero(region & target)) / union if union else 0.0
