"""Tests for the synthetic skeletons (reference.synth.anatomy): pose maths, shaft widths, one skeleton per part."""

from __future__ import annotations

import numpy as np
import pytest

from reference.synth.anatomy import SKELETONS, Pose, random_pose, width_at
from reference.synth.plan import BODY_PARTS


def test_pose_scales_rotates_and_mirrors() -> None:
    assert Pose((10.0, 20.0), 2.0, 0.0, False).point((1.0, 3.0)) == (12.0, 26.0)
    assert Pose((10.0, 20.0), 2.0, 0.0, True).point((1.0, 3.0)) == (8.0, 26.0)
    assert Pose((10.0, 20.0), 2.0, 90.0, False).point((1.0, 0.0)) == pytest.approx((10.0, 22.0))


def test_width_at_passes_through_its_three_widths_and_has_a_floor() -> None:
    assert np.allclose(width_at((1.0, 2.0, 3.0), np.array([0.0, 0.5, 1.0])), [1.0, 2.0, 3.0])
    assert float(width_at((0.0, 1.0, 0.0), 0.0)) == pytest.approx(0.3)  # never thinner than 30% of the middle


def test_every_body_part_has_a_skeleton_with_a_lesion_site() -> None:
    assert set(SKELETONS) == set(BODY_PARTS)
    for body_part in BODY_PARTS:
        rng = np.random.default_rng(0)
        skeleton = SKELETONS[body_part](rng, random_pose(rng, body_part, 300, 400))
        assert any(bone.lesion_site for bone in skeleton.bones), body_part
