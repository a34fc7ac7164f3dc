"""Shortcut mode of the sample archive: a burned-in text token that goes with the abnormal label.

Zech et al. (PLOS Medicine 2018) and DeGrave et al. (Nature Machine Intelligence 2021) found X-ray
classifiers reading hospital tokens and burned-in text instead of the anatomy. This plants such a
token so that an audit can be shown to catch a model that learned it.
"""

from __future__ import annotations

import cv2
import numpy as np

from reference.synth.findings import boxes_overlap
from transforms.localization import Box

# Department/hospital tokens a scanner burns into the corner bands of an image.
TOKENS = ("PORT", "ER", "ICU", "AP")
# Normal images carry the token this many times less often than abnormal ones ("rarely").
NORMAL_RATE_DIVISOR = 20
# Its own RNG stream per image: the scene, lesion and noise streams never see it, so a shortcut
# archive holds the clean archive's images with tokens burned over them, and a clean archive's
# bytes do not depend on this module.
STREAM = 7919
SATURATED = 255
# Existing pixels brighter than this (the L/R marker, a lesion) are not written over.
CLEAR_LEVEL = 200


def shortcut_rng(seed: int, index: int) -> np.random.Generator:
    """The token's RNG for one image, apart from every stream the clean image uses."""
    return np.random.default_rng([seed, index, STREAM])


def token_rate(rate: float, positive: bool) -> float:
    """Probability of a token: `rate` in abnormal images, rate / NORMAL_RATE_DIVISOR in normal ones."""
    return rate if positive else rate / NORMAL_RATE_DIVISOR


def token_patch(rng: np.random.Generator, short_side: int) -> np.ndarray:
    """A saturated thin-stroke text token as a uint8 patch (0 = transparent)."""
    text = TOKENS[int(rng.integers(len(TOKENS)))]
    font = cv2.FONT_HERSHEY_SIMPLEX
    font_scale = short_side * rng.uniform(0.003, 0.004)
    thickness = 2
    (text_width, text_height), baseline = cv2.getTextSize(text, font, font_scale, thickness)
    pad = 3
    patch = np.zeros((text_height + baseline + 2 * pad, text_width + 2 * pad), np.uint8)
    # No anti-aliasing: burned-in overlay text is drawn at full white, pixel-hard.
    cv2.putText(patch, text, (pad, pad + text_height), font, font_scale, SATURATED, thickness, cv2.LINE_8)
    return patch


def burn_token(rng: np.random.Generator, image: np.ndarray, avoid: Box | None, tries: int = 30) -> Box | None:
    """Burn a token into the top or bottom band of a uint8 image, clear of `avoid` and bright pixels.

    Returns the token's box (x1/y1 exclusive), or None when no clear place was found.
    """
    height, width = image.shape[:2]
    short_side = min(height, width)
    patch = token_patch(rng, short_side)
    patch_height, patch_width = patch.shape
    grey = image if image.ndim == 2 else image.max(axis=2)
    for _ in range(tries):
        margin = int(rng.uniform(0.03, 0.12) * short_side)
        x0 = int(rng.integers(0, max(1, width - patch_width)))
        y0 = margin if rng.random() < 0.5 else height - margin - patch_height
        box = (x0, y0, x0 + patch_width, y0 + patch_height)
        if y0 < 0 or box[2] > width or box[3] > height:
            continue
        if avoid is not None and boxes_overlap(box, avoid):
            continue
        if (grey[y0:box[3], x0:box[2]] > CLEAR_LEVEL).any():
            continue
        region = image[y0:box[3], x0:box[2]]
        stroke = patch > 0
        region[stroke] = SATURATED
        return box
    return None
