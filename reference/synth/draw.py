"""OpenCV drawing of a skeleton: fixed-point coordinates, bones, round bones and the soft-tissue glow."""

from __future__ import annotations

import cv2
import numpy as np

from reference.synth.anatomy import Bone, Knob, Skeleton, width_at

# OpenCV drawing takes fixed-point coordinates with this many fractional bits (sub-pixel AA).
DRAW_SHIFT = 4
DRAW_SCALE = 1 << DRAW_SHIFT
# Tissue glow is blurred heavily, so it is drawn at this fraction of full resolution.
TISSUE_DOWNSCALE = 4


def to_fixed(points: np.ndarray) -> np.ndarray:
    """Float pixel coordinates -> OpenCV fixed-point int32 coordinates."""
    return np.round(np.asarray(points) * DRAW_SCALE).astype(np.int32)


def shaft_outline(bone: Bone, width_scale: float, t0: float, t1: float) -> np.ndarray:
    """Polygon of a bone's shaft between fractions t0..t1, widths scaled."""
    start, end = np.asarray(bone.start), np.asarray(bone.end)
    axis = end - start
    length = max(float(np.hypot(*axis)), 1e-6)
    normal = np.array([-axis[1], axis[0]]) / length
    ts = np.linspace(t0, t1, 9)
    centers = start + ts[:, None] * axis
    offsets = normal * (width_at(bone.widths, ts) * width_scale / 2)[:, None]
    return np.vstack([centers + offsets, (centers - offsets)[::-1]])


def draw_bone(layer: np.ndarray, bone: Bone, medulla_ratio: float) -> None:
    """Bright cortex with rounded ends and a darker medullary canal along the shaft."""
    cortex = int(255 * bone.density)
    cv2.fillPoly(layer, [to_fixed(shaft_outline(bone, 1.0, 0, 1))], cortex, cv2.LINE_AA,
                 DRAW_SHIFT)
    for point, width in ((bone.start, bone.widths[0]), (bone.end, bone.widths[2])):
        cv2.circle(layer, tuple(to_fixed(point)), int(width / 2 * DRAW_SCALE), cortex, -1,
                   cv2.LINE_AA, DRAW_SHIFT)
    cv2.fillPoly(layer, [to_fixed(shaft_outline(bone, 0.5, 0.12, 0.88))],
                 int(cortex * medulla_ratio), cv2.LINE_AA, DRAW_SHIFT)


def draw_knob(layer: np.ndarray, knob: Knob, medulla_ratio: float) -> None:
    """A round bone: bright rim, softer cancellous core."""
    center = tuple(to_fixed(knob.center))
    for fraction, value in ((1.0, 255 * knob.density), (0.7, 255 * knob.density * medulla_ratio)):
        axes = tuple(int(r * fraction * DRAW_SCALE) for r in knob.radii)
        cv2.ellipse(layer, center, axes, knob.angle, 0, 360, int(value), -1, cv2.LINE_AA,
                    DRAW_SHIFT)


def tissue_glow(skeleton: Skeleton, height: int, width: int, short_side: int) -> np.ndarray:
    """Soft-tissue envelope around the bones, 0..255 uint8 at full resolution."""
    scale = 1 / TISSUE_DOWNSCALE
    small = np.zeros((-(-height // TISSUE_DOWNSCALE), -(-width // TISSUE_DOWNSCALE)), np.uint8)
    margin = 0.09 * short_side
    for bone in skeleton.bones:
        thickness = max(1, int((max(bone.widths) * 2.2 + margin) * scale))
        cv2.line(small, tuple(to_fixed(np.asarray(bone.start) * scale)),
                 tuple(to_fixed(np.asarray(bone.end) * scale)), 255, thickness, cv2.LINE_AA,
                 DRAW_SHIFT)
    for knob in skeleton.knobs:
        axes = tuple(int((r * 1.8 + margin) * scale * DRAW_SCALE) for r in knob.radii)
        cv2.ellipse(small, tuple(to_fixed(np.asarray(knob.center) * scale)), axes, knob.angle,
                    0, 360, 255, -1, cv2.LINE_AA, DRAW_SHIFT)
    small = cv2.GaussianBlur(small, (0, 0), 0.05 * short_side * scale)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)

