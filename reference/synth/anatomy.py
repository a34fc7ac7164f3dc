"""Synthetic skeletons: each body part's bones in a canonical frame, placed in an image by a random pose."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Point = tuple[float, float]


@dataclass(frozen=True)
class Bone:
    """A long or flat bone as a tapered shaft, in pixel coordinates."""

    start: Point
    end: Point
    widths: tuple[float, float, float]  # at start, middle and end
    density: float = 1.0
    lesion_site: bool = True  # whether a planted abnormality may sit on it


@dataclass(frozen=True)
class Knob:
    """A round bone or bone end (carpal, humeral head, condyle), in pixel coordinates."""

    center: Point
    radii: tuple[float, float]
    angle: float  # degrees
    density: float = 0.92


@dataclass(frozen=True)
class Skeleton:
    """The bones of one image."""

    bones: tuple[Bone, ...]
    knobs: tuple[Knob, ...]


@dataclass(frozen=True)
class Pose:
    """Maps a body part's canonical frame (1 unit = shorter image side) to pixels."""

    center: Point
    unit: float
    angle: float  # degrees
    mirror: bool

    def point(self, frame_point: Point) -> Point:
        """Pixel position of a canonical-frame point."""
        u = -frame_point[0] if self.mirror else frame_point[0]
        v = frame_point[1]
        cos, sin = math.cos(math.radians(self.angle)), math.sin(math.radians(self.angle))
        return (
            self.center[0] + self.unit * (u * cos - v * sin),
            self.center[1] + self.unit * (u * sin + v * cos),
        )

    def bone(self, start: Point, end: Point, widths: tuple[float, float, float],
             density: float = 1.0, lesion_site: bool = True) -> Bone:
        """A canonical-frame bone placed in pixels."""
        return Bone(self.point(start), self.point(end), tuple(w * self.unit for w in widths),
                    density, lesion_site)

    def knob(self, center: Point, radii: tuple[float, float], angle: float = 0.0,
             density: float = 0.92) -> Knob:
        """A canonical-frame knob placed in pixels."""
        local_angle = -angle if self.mirror else angle
        return Knob(self.point(center), (radii[0] * self.unit, radii[1] * self.unit),
                    self.angle + local_angle, density)


def width_at(widths: tuple[float, float, float], t: np.ndarray | float) -> np.ndarray:
    """Shaft width at fractions t along a bone (quadratic through start, middle, end)."""
    w0, wm, w1 = widths
    t = np.asarray(t, dtype=float)
    width = w0 * (1 - t) * (1 - 2 * t) + wm * 4 * t * (1 - t) + w1 * t * (2 * t - 1)
    return np.maximum(width, 0.3 * wm)


# Skeleton layouts: each body part in a canonical frame (limb axis along +v, 1 unit = short side).


def phalanx_chain(pose: Pose, start: Point, direction: Point, lengths: Sequence[float],
                  widths: Sequence[float], gap: float, lesion_sites: int) -> list[Bone]:
    """Consecutive bones along a direction separated by joint gaps (a digit)."""
    norm = math.hypot(*direction)
    dx, dy = direction[0] / norm, direction[1] / norm
    bones = []
    x, y = start
    for i, (length, width) in enumerate(zip(lengths, widths, strict=True)):
        end = (x + dx * length, y + dy * length)
        bones.append(pose.bone((x, y), end, (width * 1.15, width * 0.8, width * 1.05),
                               lesion_site=i < lesion_sites))
        x, y = end[0] + dx * gap, end[1] + dy * gap
    return bones


def forearm_skeleton(rng: np.random.Generator, pose: Pose) -> Skeleton:
    """Radius and ulna side by side with their joint ends."""
    gap = rng.uniform(0.13, 0.2)
    half = rng.uniform(0.55, 0.75)
    bones = (
        pose.bone((-gap / 2, -half), (-gap / 2 - 0.02, half), (0.09, 0.065, 0.13)),
        pose.bone((gap / 2, -half - 0.05), (gap / 2 + 0.01, half), (0.12, 0.06, 0.07)),
    )
    knobs = (
        pose.knob((-gap / 2 - 0.02, half + 0.02), (0.08, 0.05)),
        pose.knob((gap / 2, -half - 0.07), (0.07, 0.06)),
    )
    return Skeleton(bones, knobs)


def humerus_skeleton(rng: np.random.Generator, pose: Pose) -> Skeleton:
    """One thick humeral shaft with a round head and a flat condyle."""
    top, bottom = -rng.uniform(0.45, 0.6), rng.uniform(0.5, 0.7)
    bones = (pose.bone((0.0, top), (0.02, bottom), (0.17, 0.12, 0.19)),)
    knobs = (
        pose.knob((0.03, top - 0.05), (0.17, 0.15), rng.uniform(-20, 20)),
        pose.knob((0.02, bottom + 0.03), (0.17, 0.07)),
    )
    return Skeleton(bones, knobs)


def elbow_skeleton(rng: np.random.Generator, pose: Pose) -> Skeleton:
    """Distal humerus meeting radius and ulna at a random flexion angle."""
    flexion = rng.uniform(0.0, 1.2)
    axis = (math.sin(flexion), math.cos(flexion))
    normal = (math.cos(flexion), -math.sin(flexion))
    length = rng.uniform(0.75, 0.95)

    def forearm_bone(offset: float, widths: tuple[float, float, float]) -> Bone:
        start = (normal[0] * offset, 0.1 + normal[1] * offset)
        end = (start[0] + axis[0] * length, start[1] + axis[1] * length)
        return pose.bone(start, end, widths)

    bones = (
        pose.bone((0.0, -0.9), (0.0, -0.03), (0.13, 0.11, 0.22)),
        forearm_bone(-0.065, (0.09, 0.06, 0.08)),
        forearm_bone(0.07, (0.12, 0.07, 0.08)),
    )
    knobs = (
        pose.knob((0.0, 0.0), (0.16, 0.08)),
        pose.knob((normal[0] * 0.07, 0.06 + normal[1] * 0.07), (0.07, 0.06)),
    )
    return Skeleton(bones, knobs)


def wrist_skeleton(rng: np.random.Generator, pose: Pose) -> Skeleton:
    """Distal radius and ulna, two rows of carpals and the metacarpal bases."""
    bones = [
        pose.bone((-0.07, -0.95), (-0.06, -0.06), (0.1, 0.09, 0.18)),
        pose.bone((0.11, -0.95), (0.1, -0.1), (0.08, 0.065, 0.08)),
    ]
    for i, x in enumerate(np.linspace(-0.14, 0.16, 4)):
        bones.append(pose.bone((x, 0.28), (x * 1.4, 0.9), (0.06, 0.04, 0.05), lesion_site=False))
        if i == 0:
            # The thumb metacarpal leaves the carpus at an angle.
            bones.append(pose.bone((-0.2, 0.22), (-0.42, 0.6), (0.06, 0.045, 0.05),
                                   lesion_site=False))
    knobs = []
    for row, v in enumerate((0.07, 0.17)):
        for x in np.linspace(-0.15, 0.13, 4 - row):
            jitter = rng.normal(0, 0.008, 2)
            knobs.append(pose.knob((x + jitter[0], v + jitter[1]),
                                   (rng.uniform(0.042, 0.055), rng.uniform(0.038, 0.05)),
                                   rng.uniform(0, 180)))
    return Skeleton(tuple(bones), tuple(knobs))


def hand_skeleton(rng: np.random.Generator, pose: Pose) -> Skeleton:
    """Carpals, five metacarpals and their phalanges fanning out."""
    bones: list[Bone] = []
    spread = rng.uniform(0.9, 1.2)
    for x in np.linspace(-0.13, 0.17, 4):
        start = (x, -0.3)
        direction = (x * spread, 0.6)
        bones += phalanx_chain(pose, start, direction, (0.3, 0.22, 0.14, 0.1),
                               (0.05, 0.045, 0.04, 0.035), 0.025, lesion_sites=2)
    bones += phalanx_chain(pose, (-0.2, -0.32), (-0.45, 0.55), (0.2, 0.16, 0.11),
                           (0.055, 0.05, 0.04), 0.025, lesion_sites=1)
    knobs = [
        pose.knob((x, v), (0.04, 0.035), rng.uniform(0, 180))
        for v in (-0.45, -0.37) for x in np.linspace(-0.14, 0.14, 4)
    ]
    return Skeleton(tuple(bones), tuple(knobs))


def finger_skeleton(rng: np.random.Generator, pose: Pose) -> Skeleton:
    """One finger (metacarpal head and three phalanges), sometimes a neighbour at the edge."""
    widths = (0.13, 0.12, 0.1, 0.085)
    bones = phalanx_chain(pose, (0.0, -0.95), (rng.uniform(-0.05, 0.05), 1.0),
                          (0.4, 0.45, 0.3, 0.22), widths, 0.04, lesion_sites=3)
    bones[0] = Bone(bones[0].start, bones[0].end, bones[0].widths, lesion_site=False)
    if rng.random() < 0.5:
        side = 0.42 if rng.random() < 0.5 else -0.42
        bones += phalanx_chain(pose, (side, -0.9), (side * 0.15, 1.0), (0.45, 0.4, 0.25),
                               (0.11, 0.1, 0.08), 0.04, lesion_sites=0)
    return Skeleton(tuple(bones), ())


def shoulder_skeleton(rng: np.random.Generator, pose: Pose) -> Skeleton:
    """Humeral head and shaft, glenoid, scapula body, clavicle and acromion."""
    bones = (
        pose.bone((-0.25, -0.15), (-0.6, 0.7), (0.32, 0.24, 0.1), density=0.6, lesion_site=False),
        pose.bone((0.07, 0.12), (0.12, 1.0), (0.2, 0.16, 0.16)),
        pose.bone((-0.8, -0.45), (0.3, -0.33), (0.09, 0.075, 0.1)),
    )
    knobs = (
        pose.knob((0.05, -0.04), (0.21, 0.19), rng.uniform(-30, 30)),
        pose.knob((-0.22, -0.05), (0.06, 0.17), density=0.75),
        pose.knob((0.22, -0.32), (0.11, 0.05), 10.0),
    )
    return Skeleton(bones, knobs)


SKELETONS: dict[str, Callable[[np.random.Generator, Pose], Skeleton]] = {
    "XR_ELBOW": elbow_skeleton,
    "XR_FINGER": finger_skeleton,
    "XR_FOREARM": forearm_skeleton,
    "XR_HAND": hand_skeleton,
    "XR_HUMERUS": humerus_skeleton,
    "XR_SHOULDER": shoulder_skeleton,
    "XR_WRIST": wrist_skeleton,
}


def random_pose(rng: np.random.Generator, body_part: str, height: int, width: int) -> Pose:
    """Random placement: limbs mostly upright, sometimes lying across; shoulders stay upright."""
    short_side = min(height, width)
    if body_part == "XR_SHOULDER":
        angle = rng.uniform(-15, 15)
    else:
        angle = rng.uniform(-25, 25) + (90.0 if rng.random() < 0.2 else 0.0)
    center = (width / 2 + rng.uniform(-0.08, 0.08) * short_side,
              height / 2 + rng.uniform(-0.08, 0.08) * short_side)
    return Pose(center, short_side * rng.uniform(0.85, 1.15), angle, bool(rng.random() < 0.5))
