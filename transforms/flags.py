"""Per-image audit flags: where the CAM peak sits on the original pixels, and how the prediction looks."""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

FLAG_NAMES = (
    "flag_border_peak",
    "flag_off_body_peak",
    "flag_burned_in_peak",
    "flag_diffuse",
    "flag_empty_cam",
    "flag_label_disagreement",
)


@dataclasses.dataclass(frozen=True)
class FlagThresholds:
    """The levels behind the flags (the `--flag_*` options; defaults documented in README)."""

    border_margin: float = 0.05  # peak within this fraction of the shorter side of an edge
    # Half-side of the window read around the peak, fraction of the shorter side. A CAM peak is only as
    # precise as a CAM cell and lands a cell or two off what it points at (README: 0.04 missed half
    # of the shortcut model's peaks on tokens).
    window: float = 0.08
    background_level: float = 0.1  # off body: window median below p1 + this * (p99 - p1) of the image
    # Burned-in overlays are drawn at full white; 254 keeps noise over a bright lesion out.
    saturation_level: int = 254  # grey level (0..255) from which a pixel counts as saturated
    saturated_share: float = 0.03  # burned in: at least this share of the window on text-like strokes ...
    stroke_share: float = 0.6  # ... and at least this share of its saturated pixels on such strokes
    confidence: float = 0.9  # a prediction is confident from this top probability
    diffuse_coverage: float = 0.5  # diffuse: confident and coverage at least this

    def check(self) -> None:
        """Raise ValueError naming the first level out of its range."""
        fractions = {"border_margin": self.border_margin, "window": self.window,
                     "background_level": self.background_level, "saturated_share": self.saturated_share,
                     "stroke_share": self.stroke_share, "confidence": self.confidence,
                     "diffuse_coverage": self.diffuse_coverage}
        for name, value in fractions.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"--flag_{name} must be within 0..1, got {value}")
        if not 1 <= self.saturation_level <= 255:
            raise ValueError(f"--flag_saturation_level must be within 1..255, got {self.saturation_level}")


def to_grey(pixels: np.ndarray) -> np.ndarray:
    """H x W grey of H x W or H x W x C uint8 pixels: the brightest channel, as burned-in text is white."""
    if pixels.ndim == 2:
        return pixels
    # Channel by channel: numpy's max over a short last axis is several times slower.
    grey = pixels[..., 0]
    for channel in range(1, pixels.shape[2]):
        grey = np.maximum(grey, pixels[..., channel])
    return grey


def peak_window(pixels: np.ndarray, x: int, y: int, half_side: int) -> np.ndarray:
    """The pixels (H x W or H x W x C) within `half_side` of (x, y), clipped to the image."""
    return pixels[max(0, y - half_side): y + half_side + 1, max(0, x - half_side): x + half_side + 1]


def window_half_side(width: int, height: int, fraction: float) -> int:
    """Half-side in pixels of the peak window: a fraction of the shorter side, at least 2 pixels."""
    return max(2, round(fraction * min(width, height)))


def border_peak(x: int, y: int, width: int, height: int, margin: float) -> bool:
    """The peak lies within margin * shorter side of an image edge."""
    pixels = margin * min(width, height)
    return min(x, y, width - 1 - x, height - 1 - y) < pixels


# Counts below this are exact in OpenCV's float32 histogram bins; a larger array is counted by numpy.
_EXACT_FLOAT32_COUNT = 1 << 24


def grey_histogram(grey: np.ndarray) -> np.ndarray:
    """Pixel count (int64) of each grey level 0..255 of a uint8 array."""
    if not 0 < grey.size < _EXACT_FLOAT32_COUNT:
        return np.bincount(grey.ravel(), minlength=256)
    # OpenCV's one pass, without numpy's copy of the pixels to machine integers first (bench/README.md, session 18).
    return cv2.calcHist([grey], [0], None, [256], [0, 256]).ravel().astype(np.int64)


def histogram_percentiles(histogram: np.ndarray, percents: tuple[float, ...]) -> tuple[float, ...]:
    """np.percentile of the pixels a non-empty grey histogram counts, bit for bit.

    np.percentile partitions a copy of the pixels while holding the GIL (bench/README.md); the
    histogram gives the same order statistics, interpolated with numpy's own 'linear' arithmetic:
    virtual index (n - 1) * q, weight t, a + (b - a) * t, or b - (b - a) * (1 - t) from t = 0.5 on.
    """
    cumulative = np.cumsum(histogram)
    count = int(cumulative[-1])
    # The value at sorted position i: the first grey level whose cumulative count exceeds i.
    positions: list[int] = []
    weights: list[float] = []
    for percent in percents:
        virtual = (count - 1) * (percent / 100)
        low = math.floor(virtual)
        positions += (low, min(low + 1, count - 1))
        weights.append(virtual - low)
    levels = cumulative.searchsorted(positions, "right").tolist()
    values = []
    for weight, low, high in zip(weights, levels[0::2], levels[1::2], strict=True):
        difference = high - low
        values.append(high - difference * (1 - weight) if weight >= 0.5 else low + difference * weight)
    return tuple(values)


def grey_percentiles(grey: np.ndarray, percents: tuple[float, ...]) -> tuple[float, ...]:
    """np.percentile(grey, percents) of a non-empty uint8 array, bit for bit (histogram_percentiles)."""
    return histogram_percentiles(grey_histogram(grey), percents)


def off_body_peak(grey: np.ndarray, window: np.ndarray, level: float, saturation_level: int = 256) -> bool:
    """The window's median is near the image's background (uint8 grey): below p1 + level * (p99 - p1).

    Saturated pixels (an overlay drawn over the film) are left out: what lies under them decides.
    """
    low, high = grey_percentiles(grey, (1, 99))
    window_levels = grey_histogram(window)
    # The levels below saturation: a histogram cut short has the same order statistics as one zeroed beyond.
    under = window_levels[:saturation_level]
    # The median is the 50th percentile (numpy's median: the middle value, or the mean of the two).
    (median,) = histogram_percentiles(under if under.any() else window_levels, (50,))
    return bool(median < low + level * (high - low))


def box_count(mask: np.ndarray, radius: int) -> np.ndarray:
    """How many True pixels each pixel's (2r+1) x (2r+1) neighbourhood holds (outside the image: False)."""
    padded = np.pad(mask.astype(np.int32), radius)
    integral = np.pad(padded.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    side = 2 * radius + 1
    height, width = mask.shape
    return (integral[side:side + height, side:side + width] - integral[:height, side:side + width]
            - integral[side:side + height, :width] + integral[:height, :width])


def text_like_pixels(saturated: np.ndarray) -> np.ndarray:
    """Saturated pixels on thin connected strokes: 2+ saturated 8-neighbours, not inside a solid 5x5 block.

    Sensor noise over a bright region gives isolated saturated pixels, a metal plate a solid blob;
    text and drawn markers give thin connected lines.
    """
    return saturated & (box_count(saturated, 1) >= 3) & (box_count(saturated, 2) < 25)


def burned_in_peak(window: np.ndarray, saturation_level: int, saturated_share: float, stroke_share: float) -> bool:
    """Saturated, text-like pixels around the peak: enough of them, and most saturated pixels are such."""
    saturated = window >= saturation_level
    count = int(np.count_nonzero(saturated))
    if window.size == 0 or count == 0:
        return False
    text = int(np.count_nonzero(text_like_pixels(saturated)))
    return bool(text >= saturated_share * window.size and text >= stroke_share * count)


def predicted_class(probabilities: tuple[float, ...]) -> int:
    """Index of the highest probability, the first on ties: the record's predicted_class, which the flags judge too."""
    # Python's max, not np.argmax: the two differ only on NaN, where the record and its flags must still agree.
    return max(range(len(probabilities)), key=probabilities.__getitem__)


def image_flags(
    pixels: np.ndarray,
    peak: tuple[int, int] | None,
    probabilities: tuple[float, ...],
    coverage: float,
    label: int | None,
    thresholds: FlagThresholds,
) -> dict[str, bool | None]:
    """Every flag of one audited image (FLAG_NAMES order); label disagreement is None without a label.

    Args:
        pixels: the original image, H x W (x C) uint8.
        peak: (x, y) of the CAM peak in original pixels; None when the CAM's maximum is <= 0.
        probabilities: class probabilities; class index = label value (0 normal, 1 abnormal).
        coverage: fraction of pixels with normalised CAM >= the run's threshold.
        label: ground truth or None.
        thresholds: the flag levels.
    """
    height, width = pixels.shape[:2]
    confident = max(probabilities) >= thresholds.confidence
    predicted = predicted_class(probabilities)
    flags: dict[str, bool | None] = {name: False for name in FLAG_NAMES}
    flags["flag_empty_cam"] = peak is None
    flags["flag_diffuse"] = bool(confident and coverage >= thresholds.diffuse_coverage)
    flags["flag_label_disagreement"] = None if label is None else bool(confident and predicted != label)
    if peak is not None:
        x, y = peak
        # The image's levels from one pixel in 16: percentiles need no more, and this runs per image.
        sample = to_grey(pixels[::4, ::4])
        window = to_grey(peak_window(pixels, x, y, window_half_side(width, height, thresholds.window)))
        flags["flag_border_peak"] = bool(border_peak(x, y, width, height, thresholds.border_margin))
        flags["flag_off_body_peak"] = off_body_peak(sample, window, thresholds.background_level,
                                                    thresholds.saturation_level)
        flags["flag_burned_in_peak"] = burned_in_peak(
            window, thresholds.saturation_level, thresholds.saturated_share, thresholds.stroke_share
        )
    return flags
