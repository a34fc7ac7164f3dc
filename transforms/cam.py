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


def rectify_and_normalise(cam: np.ndarray) -> tuple[np.ndarray, float]:
    """ReLU, then divide by the maximum; returns (map in [0, 1], raw maximum).

    A map whose maximum is <= 0 (or not finite), or that is constant after the ReLU (max = min:
    it points nowhere), is empty: it comes back all zeros with a maximum of 0.0, never NaN or inf.
    """
    rectified = np.maximum(np.nan_to_num(cam, nan=0.0, posinf=0.0, neginf=0.0), 0.0)
    peak = float(rectified.max()) if rectified.size else 0.0
    if peak <= 0.0 or peak == float(rectified.min()):
        return np.zeros_like(rectified, dtype=np.float32), 0.0
    return (rectified / peak).astype(np.float32), peak


def interpolation_taps(size_out: int, size_in: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output pixel along one axis: (low source index, high source index, weight of high).

    Output pixel x samples source coordinate (x + 0.5) * size_in / size_out - 0.5 - shift, where
    source cell i sits at i: half-pixel centres (as cv2.resize and tf.image.resize) moved by
    `shift` cells, clamped at the borders. Linear interpolation needs two taps per pixel.
    """
    coords = (np.arange(size_out, dtype=np.float64) + 0.5) * (size_in / size_out) - 0.5 - shift
    coords = np.clip(coords, 0.0, size_in - 1)
    low = np.floor(coords).astype(np.intp)
    high = np.minimum(low + 1, size_in - 1)
    return low, high, coords - low


def interpolation_matrix(size_out: int, size_in: int, shift: float = 0.0) -> np.ndarray:
    """size_out x size_in linear-interpolation weights along one axis (the taps as a matrix)."""
    low, high, frac = interpolation_taps(size_out, size_in, shift)
    weights = np.zeros((size_out, size_in), dtype=np.float64)
    rows = np.arange(size_out)
    np.add.at(weights, (rows, low), 1.0 - frac)
    np.add.at(weights, (rows, high), frac)
    return weights.astype(np.float32)


def upsample(cam: np.ndarray, width: int, height: int, shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Bilinear resize of an h x w map to height x width, its grid moved by (dy, dx) cells.

    Separable, two taps per pixel and axis, exact in float32 (cv2.warpAffine would quantise the
    shift): interpolation_matrix(height) @ cam @ interpolation_matrix(width).T up to float32
    rounding, computed without BLAS. A worker process also runs TensorFlow, and OpenBLAS's threads
    fighting TensorFlow's made that small product several times slower. Columns go first, on the
    h-row map, so the full-size pass only gathers whole rows (with np.take, faster than fancy indexing).
    """
    cam32 = cam.astype(np.float32, copy=False)
    low_y, high_y, frac_y = interpolation_taps(int(height), cam.shape[0], shift[0])
    low_x, high_x, frac_x = interpolation_taps(int(width), cam.shape[1], shift[1])
    # Weights rounded to float32 once, as the matrix form stores them.
    keep_x, take_x = (1.0 - frac_x).astype(np.float32), frac_x.astype(np.float32)
    keep_y, take_y = (1.0 - frac_y).astype(np.float32)[:, None], frac_y.astype(np.float32)[:, None]
    columns = cam32[:, low_x] * keep_x + cam32[:, high_x] * take_x  # h x width
    full = np.take(columns, low_y, axis=0)
    full *= keep_y
    upper = np.take(columns, high_y, axis=0)  # a fresh gather, scaled in place: one full-size temporary, not two
    upper *= take_y
    full += upper
    return full


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
