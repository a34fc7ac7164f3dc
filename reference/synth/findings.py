"""Findings burnt into an image: the radiographer's side marker and the planted lesion with its tight box."""

from __future__ import annotations

import math

import cv2
import numpy as np

from reference.synth.anatomy import Point, Skeleton, width_at
from reference.synth.draw import DRAW_SCALE, DRAW_SHIFT, to_fixed
from transforms.localization import Box

LESION_SIDE_FRACTION = (0.14, 0.25)  # square the lesion is drawn in, of the shorter side;
# the drawn lesion fills most of it, so its box spans ~12-22% of the shorter side.


def marker_patch(rng: np.random.Generator, short_side: int) -> np.ndarray:
    """A bright radiographer's side marker ('L' or 'R'), sometimes boxed, as a uint8 patch."""
    letter = "L" if rng.random() < 0.5 else "R"
    font = cv2.FONT_HERSHEY_SIMPLEX if rng.random() < 0.5 else cv2.FONT_HERSHEY_DUPLEX
    font_scale = short_side * rng.uniform(0.0028, 0.0042)
    thickness = max(2, round(font_scale * 2))
    (text_width, text_height), baseline = cv2.getTextSize(letter, font, font_scale, thickness)
    pad = thickness + 3
    patch = np.zeros((text_height + baseline + 2 * pad, text_width + 2 * pad), np.uint8)
    value = int(rng.uniform(225, 256))
    cv2.putText(patch, letter, (pad, pad + text_height), font, font_scale, value, thickness,
                cv2.LINE_AA)
    if rng.random() < 0.3:
        cv2.rectangle(patch, (0, 0), (patch.shape[1] - 1, patch.shape[0] - 1), value, 2)
    return patch


def place_marker(rng: np.random.Generator, image: np.ndarray, patch: np.ndarray,
                 short_side: int) -> Box:
    """Burn the marker into a random corner; returns the box it covers."""
    height, width = image.shape
    margin = int(rng.uniform(0.02, 0.07) * short_side)
    right, bottom = rng.random() < 0.5, rng.random() < 0.5
    x0 = width - margin - patch.shape[1] if right else margin
    y0 = height - margin - patch.shape[0] if bottom else margin
    region = image[y0:y0 + patch.shape[0], x0:x0 + patch.shape[1]]
    np.maximum(region, patch, out=region)
    return (x0, y0, x0 + patch.shape[1], y0 + patch.shape[0])


def boxes_overlap(a: Box, b: Box) -> bool:
    """Whether two half-open boxes share any pixel."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def square_box(center: Point, side: float, height: int, width: int) -> Box:
    """Half-open box of a square around a point, clipped to the image."""
    half = side / 2
    return (max(0, int(center[0] - half)), max(0, int(center[1] - half)),
            min(width, int(math.ceil(center[0] + half))),
            min(height, int(math.ceil(center[1] + half))))


def choose_lesion_site(rng: np.random.Generator, skeleton: Skeleton, bone_mask: np.ndarray,
                       side: float, avoid: Box | None) -> tuple[Point, Point, float]:
    """A point on a lesion-bearing bone, fully inside the image and clear of the marker.

    Returns the point, the bone's unit axis there and the bone's width there.
    """
    height, width = bone_mask.shape
    half = side / 2
    candidates: list[tuple[Point, Point, float]] = []
    for bone in skeleton.bones:
        if not bone.lesion_site:
            continue
        start, end = np.asarray(bone.start), np.asarray(bone.end)
        axis = end - start
        axis_unit = tuple(axis / max(float(np.hypot(*axis)), 1e-6))
        for t in rng.uniform(0.15, 0.85, 12):
            x, y = start + t * axis
            inside = half <= x <= width - half and half <= y <= height - half
            if inside and (avoid is None
                           or not boxes_overlap(square_box((x, y), side, height, width), avoid)):
                candidates.append(((float(x), float(y)), axis_unit, float(width_at(bone.widths, t))))
    if candidates:
        return candidates[int(rng.integers(len(candidates)))]
    # No shaft point fits (bones mostly off-image): fall back to any bone pixel, else the centre.
    ys, xs = np.nonzero(bone_mask[int(half):height - int(half), int(half):width - int(half)])
    if len(xs):
        pick = int(rng.integers(len(xs)))
        return (float(xs[pick] + int(half)), float(ys[pick] + int(half))), (0.0, 1.0), side / 2
    return (width / 2, height / 2), (0.0, 1.0), side / 2


def plant_lesion(rng: np.random.Generator, image: np.ndarray, bone_mask: np.ndarray,
                 skeleton: Skeleton, avoid: Box | None) -> Box:
    """Draw a dense bright callus-like blob with a dark fracture line across the bone.

    Everything is confined to a square of 14-25% of the shorter side; the returned box is the
    tight bounding box of the pixels actually changed (by at least one grey level).
    """
    height, width = image.shape
    side = rng.uniform(*LESION_SIDE_FRACTION) * min(height, width)
    center, axis, bone_width = choose_lesion_site(rng, skeleton, bone_mask, side, avoid)
    x0, y0, x1, y1 = square_box(center, side, height, width)
    patch = image[y0:y1, x0:x1]
    local_center = np.array([center[0] - x0, center[1] - y0])

    # Fracture line: roughly perpendicular to the bone, jagged, only where there is bone.
    tilt = math.radians(rng.uniform(-30, 30))
    across = np.array([-axis[1] * math.cos(tilt) - axis[0] * math.sin(tilt),
                       axis[0] * math.cos(tilt) - axis[1] * math.sin(tilt)])
    # Beside the blob rather than under it, so the line stays visible.
    line_center = local_center + np.asarray(axis) * rng.uniform(0.22, 0.36) * side \
        * (1 if rng.random() < 0.5 else -1)
    half_length = min(0.75 * bone_width, 0.48 * side)
    steps = np.linspace(-half_length, half_length, 6)
    jitter = rng.normal(0, 0.015 * side, 6)
    line = line_center + steps[:, None] * across + jitter[:, None] * np.asarray(axis)
    fracture = np.zeros(patch.shape, np.uint8)
    cv2.polylines(fracture, [to_fixed(line)], False, 255, max(2, round(0.035 * side)),
                  cv2.LINE_AA, DRAW_SHIFT)
    fracture_alpha = fracture.astype(np.float32) * (rng.uniform(0.35, 0.55) / 255)
    fracture_alpha *= bone_mask[y0:y1, x0:x1]

    # Callus/hardware blob: a union of ellipses around the site, softly edged.
    blob = np.zeros(patch.shape, np.uint8)
    for i in range(int(rng.integers(3, 7))):
        offset = np.zeros(2) if i == 0 else np.clip(rng.normal(0, 0.1 * side, 2),
                                                    -0.18 * side, 0.18 * side)
        axes = rng.uniform(0.2 if i == 0 else 0.1, 0.3, 2) * side
        cv2.ellipse(blob, tuple(to_fixed(local_center + offset)),
                    tuple(int(a * DRAW_SCALE) for a in axes), rng.uniform(0, 180), 0, 360, 255,
                    -1, cv2.LINE_AA, DRAW_SHIFT)
    blob_alpha = cv2.GaussianBlur(blob, (0, 0), max(0.8, 0.015 * side)).astype(np.float32) / 255
    texture = cv2.resize(rng.random((5, 5)).astype(np.float32), patch.shape[::-1],
                         interpolation=cv2.INTER_CUBIC)
    brightness = rng.uniform(228, 248) - 18 * texture

    lesioned = patch * (1 - fracture_alpha)
    lesioned += (brightness - lesioned) * blob_alpha
    change = lesioned - patch
    changed = np.abs(change) >= 1.0
    patch += np.where(changed, change, 0)
    ys, xs = np.nonzero(changed)
    return (x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1,
            y0 + int(ys.max()) + 1)

