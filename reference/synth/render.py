"""One synthetic radiograph: scene, exposure, vignetting, marker, lesion and noise from one RNG."""

from __future__ import annotations

import cv2
import numpy as np

from reference.synth.anatomy import SKELETONS, random_pose
from reference.synth.draw import draw_bone, draw_knob, tissue_glow
from reference.synth.findings import marker_patch, place_marker, plant_lesion
from transforms.localization import Box

RGB_IMAGE_RATE = 0.03
MARKER_RATE = 0.35
IMAGE_SIDE_RANGE = (250, 520)  # inclusive, drawn independently for width and height


def child_rngs(rng: np.random.Generator, count: int) -> list[np.random.Generator]:
    """Independent sub-streams, so the scene does not depend on whether a lesion is drawn."""
    return [np.random.default_rng(int(s)) for s in rng.integers(0, 2**63 - 1, size=count)]


def render_image(rng: np.random.Generator, body_part: str,
                 positive: bool) -> tuple[np.ndarray, Box | None]:
    """One synthetic radiograph (H x W grey or H x W x 3 BGR uint8) and its lesion box.

    The scene, noise and colour depend only on `rng`, not on `positive`: rendering the same rng
    state with positive=False gives the identical image minus the lesion, pixels outside the
    box unchanged.
    """
    scene_rng, lesion_rng, noise_rng = child_rngs(rng, 3)
    height, width = (int(v) for v in scene_rng.integers(IMAGE_SIDE_RANGE[0],
                                                         IMAGE_SIDE_RANGE[1] + 1, 2))
    if height == width:
        # MURA images are never square; nudge rather than redraw to keep the stream simple.
        width += -1 if width == IMAGE_SIDE_RANGE[1] else 1
    short_side = min(height, width)
    skeleton = SKELETONS[body_part](scene_rng, random_pose(scene_rng, body_part, height, width))

    bone_layer = np.zeros((height, width), np.uint8)
    medulla_ratio = scene_rng.uniform(0.72, 0.84)
    for bone in skeleton.bones:
        draw_bone(bone_layer, bone, medulla_ratio)
    for knob in skeleton.knobs:
        draw_knob(bone_layer, knob, medulla_ratio)
    bone_mask = bone_layer > 0
    bone_layer = cv2.GaussianBlur(bone_layer, (5, 5), 1.0)

    # Exposure: background, tissue and bone levels chosen so bone peaks stay below the lesion.
    background = scene_rng.uniform(6, 24)
    tissue_level = scene_rng.uniform(35, 75)
    bone_peak = scene_rng.uniform(165, 205)
    image = cv2.addWeighted(tissue_glow(skeleton, height, width, short_side), tissue_level / 255,
                            bone_layer, (bone_peak - background - tissue_level) / 255,
                            background, dtype=cv2.CV_32F)

    # Vignetting: the exposure falls off towards the film edges.
    strength = scene_rng.uniform(0.1, 0.3)
    for axis_length, shape in ((width, (1, width)), (height, (height, 1))):
        position = (np.arange(axis_length, dtype=np.float32) / axis_length - 0.5) * 2
        image *= (1 - strength * position**2).reshape(shape)

    marker_box = None
    if scene_rng.random() < MARKER_RATE:
        marker_box = place_marker(scene_rng, image, marker_patch(scene_rng, short_side).astype(
            np.float32), short_side)
    noise_sigma = scene_rng.uniform(1.5, 4.0)
    rgb_tint = None
    if scene_rng.random() < RGB_IMAGE_RATE:
        tint = scene_rng.uniform(0.93, 1.0, 3)
        rgb_tint = (tint / tint.max()).astype(np.float32)  # one channel stays exactly grey

    box = plant_lesion(lesion_rng, image, bone_mask, skeleton, marker_box) if positive else None

    image += noise_rng.standard_normal((height, width), dtype=np.float32) * noise_sigma
    np.rint(image, out=image)
    grey = np.clip(image, 0, 255).astype(np.uint8)
    if rgb_tint is None:
        return grey, box
    rgb = np.rint(grey[..., None].astype(np.float32) * rgb_tint)
    return rgb.astype(np.uint8), box

