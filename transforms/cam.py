"""CAM numeric core: select, rectify, normalise, upsample, and measure a class activation map."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class CamStats:
    """What one explained CAM says, in the original image's pixel coordinates."""

    peak_x: int | None
    peak_y: int | None
    peak_x_norm: float | None
    peak_y_norm: float | None
    peak_value: float | None  # raw (rectified, un-normalised) CAM value at the peak
    coverage: float  # fraction of pixels whose normalised CAM >= threshold


def class_cam(cams: np.ndarray, class_index: int) -> np.ndarray:
    """The h x w raw CAM of one class from an h x w x K stack."""
    return np.ascontiguousarray(cams[..., class_index], dtype=np.float32)


def rectify_and_normalise(cam: np.ndarray) -> tuple[np.ndarray, float]:
    """ReLU, then divide by the maximum; returns (map in [0, 1], raw maximum).

    A map whose maximum is <= 0 (or not finite) has nothing to show: it comes back all zeros
    with a maximum of 0.0, never NaN or inf.
    """
    rectified = np.maximum(np.nan_to_num(cam, nan=0.0, posinf=0.0, neginf=0.0), 0.0)
    peak = float(rectified.max()) if rectified.size else 0.0
    if peak <= 0.0:
        return np.zeros_like(rectified, dtype=np.float32), 0.0
    return (rectified / peak).astype(np.float32), peak


def interpolation_matrix(size_out: int, size_in: int, shift: float = 0.0) -> np.ndarray:
    """size_out x size_in linear-interpolation weights along one axis.

    Output pixel x samples source coordinate (x + 0.5) * size_in / size_out - 0.5 - shift, where
    source cell i sits at i: half-pixel centres (as cv2.resize and tf.image.resize) moved by
    `shift` cells, clamped at the borders.
    """
    coords = (np.arange(size_out, dtype=np.float64) + 0.5) * (size_in / size_out) - 0.5 - shift
    coords = np.clip(coords, 0.0, size_in - 1)
    low = np.floor(coords).astype(np.int64)
    high = np.minimum(low + 1, size_in - 1)
    frac = coords - low
    weights = np.zeros((size_out, size_in), dtype=np.float64)
    rows = np.arange(size_out)
    np.add.at(weights, (rows, low), 1.0 - frac)
    np.add.at(weights, (rows, high), frac)
    return weights.astype(np.float32)


def upsample(cam: np.ndarray, width: int, height: int, shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Bilinear resize of an h x w map to height x width, its grid moved by (dy, dx) cells.

    Separable: rows @ cam @ cols.T, exact in float32 (cv2.warpAffine would quantise the shift).
    """
    rows = interpolation_matrix(int(height), cam.shape[0], shift[0])
    cols = interpolation_matrix(int(width), cam.shape[1], shift[1])
    return rows @ cam.astype(np.float32) @ cols.T


def cam_peak(cam_full: np.ndarray) -> tuple[int, int]:
    """(x, y) of the first maximum of a full-resolution map, in row-major order."""
    flat_index = int(np.argmax(cam_full))
    y, x = divmod(flat_index, cam_full.shape[1])
    return x, y


def cam_coverage(cam_full: np.ndarray, threshold: float) -> float:
    """Fraction of pixels whose normalised CAM is at least the threshold."""
    if cam_full.size == 0:
        return 0.0
    return float(np.count_nonzero(cam_full >= threshold)) / float(cam_full.size)


def cam_stats(cam_full: np.ndarray, raw_max: float, threshold: float) -> CamStats:
    """Peak and coverage of a normalised full-resolution map; null peak when the map is empty."""
    if raw_max <= 0.0:
        return CamStats(None, None, None, None, None, 0.0)
    height, width = cam_full.shape
    x, y = cam_peak(cam_full)
    return CamStats(
        peak_x=x,
        peak_y=y,
        # Pixel centres, so the normalised peak lies strictly inside (0, 1).
        peak_x_norm=(x + 0.5) / width,
        peak_y_norm=(y + 0.5) / height,
        peak_value=float(cam_full[y, x]) * raw_max,
        coverage=cam_coverage(cam_full, threshold),
    )


def explain_cam(
    cam: np.ndarray, width: int, height: int, threshold: float, shift: tuple[float, float] = (0.0, 0.0)
) -> tuple[np.ndarray, CamStats]:
    """Raw low-resolution CAM -> (normalised map at width x height, its stats)."""
    normalised, raw_max = rectify_and_normalise(cam)
    full = upsample(normalised, width, height, shift)
    return full, cam_stats(full, raw_max, threshold)
