"""Receptive-field geometry: where CAM cells sit on the model input."""

from __future__ import annotations

from tests.conftest import build_tiny_cam_model
from transforms.cam_head import find_cam_head
from transforms.receptive_field import FeatureGrid, feature_grid


def test_feature_grid_of_mobilenet_v2_counts_asymmetric_padding() -> None:
    from reference.classifier import build_cam_classifier

    # Conv1 and the stride-2 blocks 1, 3, 6 each pad bottom/right only: +1 input step each,
    # 0.5 + 1 + 2 + 4 + 8 = 15.5 px for cell 0 at stride 16 instead of the naive 8.
    model = build_cam_classifier(128, 0.35, feature_stride=16)
    grid = feature_grid(model, find_cam_head(model).features)
    assert grid.exact and (grid.start_y, grid.step_y, grid.start_x, grid.step_x) == (15.5, 16.0, 15.5, 16.0)
    assert grid.shift_cells() == (0.46875, 0.46875)


def test_feature_grid_of_symmetric_model_is_naive() -> None:
    model = build_tiny_cam_model()  # 'same' stride-1 convs and a 2x2 max pool: no shift
    grid = feature_grid(model, find_cam_head(model).features)
    assert grid.exact and grid.shift_cells() == (0.0, 0.0) and grid.step_x == 2.0


def test_shift_cells_is_the_offset_from_the_half_pixel_grid() -> None:
    # Cells 4 px apart starting at 3 px (naive: 2 px): a quarter cell down; 8 px apart at 2 px: a quarter up.
    assert FeatureGrid(3.0, 4.0, 2.0, 8.0, True).shift_cells() == (0.25, -0.25)
