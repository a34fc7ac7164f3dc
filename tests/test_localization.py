"""Pointing game and IoU on hand-built cases, and the localisation check over written records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.localize import read_ground_truth, score_localisation
from transforms.localization import box_mask, mask_box_iou, peak_in_box


def test_peak_in_box_edges_and_missing_peak() -> None:
    box = (10, 20, 30, 40)
    assert peak_in_box(10, 20, box) and peak_in_box(29, 39, box)
    assert not peak_in_box(30, 25, box) and not peak_in_box(15, 40, box)
    assert not peak_in_box(None, None, box)
    assert peak_in_box(30 + 14, 25, box, tolerance=15) and not peak_in_box(30 + 15, 25, box, tolerance=15)
    assert peak_in_box(29 + 9, 39 + 12, box, tolerance=15)  # corner: sqrt(9^2 + 12^2) = 15
    assert not peak_in_box(29 + 9, 39 + 13, box, tolerance=15)


def test_mask_box_iou_hand_computed() -> None:
    region = np.zeros((10, 10), dtype=bool)
    region[0:4, 0:4] = True  # 16 px
    # box 2..6 x 2..6: 16 px, overlap 2x2 = 4 -> IoU 4 / 28
    assert mask_box_iou(region, (2, 2, 6, 6)) == pytest.approx(4 / 28)
    assert mask_box_iou(box_mask((2, 2, 6, 6), 10, 10), (2, 2, 6, 6)) == 1.0
    assert mask_box_iou(np.zeros((5, 5), bool), (-3, -3, 0, 0)) == 0.0


def _record(path: str, peak: tuple[int, int] | None, cam: np.ndarray, status: str = "ok") -> dict:
    return {
        "image_path": path, "status": status, "peak_x": peak[0] if peak else None,
        "peak_y": peak[1] if peak else None, "cam": cam.ravel().tolist(), "cam_height": cam.shape[0],
        "cam_width": cam.shape[1], "width": 40, "height": 40, "threshold": 0.5,
    }  # fmt: skip


def test_score_localisation_counts_hits_ious_and_errors() -> None:
    cam = np.zeros((2, 2), np.float32)
    cam[0, 0] = 1.0  # top-left quarter hot
    records = [
        _record("hit.png", (5, 5), cam),
        _record("miss.png", (35, 35), cam),
        _record("none.png", None, -np.ones((2, 2), np.float32)),
        _record("bad.png", None, cam, status="error"),
        _record("negative.png", (5, 5), cam),
    ]
    boxes = {p: (0, 0, 20, 20) for p in ("hit.png", "miss.png", "none.png", "bad.png")}
    score = score_localisation(records, boxes, tolerance=0)
    assert score.positives == 3 and score.skipped_errors == 1
    assert score.pointing_game == score.pointing_game_strict == pytest.approx(1 / 3)
    near = score_localisation([_record("near.png", (24, 5), cam)], {"near.png": (0, 0, 20, 20)}, tolerance=15)
    assert near.pointing_game == 1.0 and near.pointing_game_strict == 0.0
    assert 0.0 < score.mean_iou < 1.0


def test_read_ground_truth_keeps_positive_boxes(tmp_path: Path) -> None:
    csv_path = tmp_path / "gt.csv"
    csv_path.write_text("image_path,label,x0,y0,x1,y1\na.png,1,1,2,3,4\nb.png,0,,,,\n")
    assert read_ground_truth(str(csv_path)) == {"a.png": (1, 2, 3, 4)}
    (tmp_path / "bad.csv").write_text("image_path,label\n")
    with pytest.raises(ValueError, match="x0"):
        read_ground_truth(str(tmp_path / "bad.csv"))


def test_read_ground_truth_reads_marker_boxes(tmp_path: Path) -> None:
    csv_path = tmp_path / "gt.csv"
    csv_path.write_text("image_path,label,x0,y0,x1,y1,marker_x0,marker_y0,marker_x1,marker_y1\n"
                        "a.png,1,1,2,3,4,5,6,7,8\nb.png,0,,,,,9,10,11,12\nc.png,1,1,1,2,2,,,,\n")
    assert read_ground_truth(str(csv_path), "marker_") == {"a.png": (5, 6, 7, 8), "b.png": (9, 10, 11, 12)}
    assert read_ground_truth(str(csv_path)) == {"a.png": (1, 2, 3, 4), "c.png": (1, 1, 2, 2)}
