"""Localisation check: `python -m pipeline.localize --output RUN_DIR --ground_truth CSV`."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
from collections.abc import Sequence

import numpy as np

from pipeline.summary import read_records
from transforms import files
from transforms.cam import explain_cam
from transforms.localization import POINTING_TOLERANCE_PX, Box, mask_box_iou, peak_in_box
from transforms.metrics import format_metric
from transforms.schema import STATUS_OK


@dataclasses.dataclass(frozen=True)
class LocalisationScore:
    """How well a run's CAMs point at the ground-truth abnormalities."""

    positives: int  # ground-truth positive images found among the run's ok records
    skipped_errors: int  # ground-truth positives whose record is an error row
    pointing_game: float | None  # fraction whose CAM peak lies within tolerance_px of the box
    pointing_game_strict: float | None  # fraction whose CAM peak lies inside the box itself
    tolerance_px: float
    mean_iou: float | None  # mean IoU of {normalised CAM >= threshold} with the box
    threshold: float

    def render(self) -> str:
        return (
            f"localisation over {self.positives} positive images: pointing game {format_metric(self.pointing_game)} "
            f"(peak within {self.tolerance_px:g} px of the box; "
            f"strictly inside: {format_metric(self.pointing_game_strict)}), "
            f"mean IoU {format_metric(self.mean_iou)} at CAM >= {self.threshold}"
            + (f" ({self.skipped_errors} error rows skipped)" if self.skipped_errors else "")
        )


def read_ground_truth(path: str, prefix: str = "") -> dict[str, Box]:
    """Ground-truth CSV (`image_path,label,x0,y0,x1,y1`) -> boxes of the positive images.

    `prefix="marker_"` reads a shortcut archive's token boxes (`marker_x0..marker_y1`) instead.
    """
    reader = csv.DictReader(io.StringIO(files.read_bytes(path).decode("utf-8")))
    corners = [f"{prefix}{name}" for name in ("x0", "y0", "x1", "y1")]
    missing = {"image_path", *corners} - set(reader.fieldnames or [])
    if missing:
        raise ValueError(f"{path}: ground truth needs columns {sorted(missing)}")
    return {
        row["image_path"].strip(): tuple(int(row[name]) for name in corners)
        for row in reader
        if row[corners[0]] not in (None, "")
    }


def score_localisation(
    records: list[dict],
    boxes: dict[str, Box],
    threshold: float | None = None,
    tolerance: float = POINTING_TOLERANCE_PX,
) -> LocalisationScore:
    """Pointing game and mean IoU, re-rendering each stored raw CAM at the image's size."""
    hits: list[bool] = []
    strict_hits: list[bool] = []
    ious: list[float] = []
    skipped = 0
    used_threshold = threshold
    for record in records:
        box = boxes.get(record["image_path"])
        if box is None:
            continue
        if record["status"] != STATUS_OK:
            skipped += 1
            continue
        level = threshold if threshold is not None else record["threshold"]
        used_threshold = level
        hits.append(peak_in_box(record["peak_x"], record["peak_y"], box, tolerance))
        strict_hits.append(peak_in_box(record["peak_x"], record["peak_y"], box))
        cam = np.asarray(record["cam"], dtype=np.float32).reshape(record["cam_height"], record["cam_width"])
        shift = (record.get("cam_shift_y") or 0.0, record.get("cam_shift_x") or 0.0)
        full, _ = explain_cam(cam, record["width"], record["height"], level, shift)
        ious.append(mask_box_iou(full >= level, box))
    return LocalisationScore(
        positives=len(hits),
        skipped_errors=skipped,
        pointing_game=float(np.mean(hits)) if hits else None,
        pointing_game_strict=float(np.mean(strict_hits)) if strict_hits else None,
        tolerance_px=float(tolerance),
        mean_iou=float(np.mean(ious)) if ious else None,
        threshold=float(used_threshold) if used_threshold is not None else float("nan"),
    )


def localise_run(
    output_dir: str, ground_truth: str, threshold: float | None = None, tolerance: float = POINTING_TOLERANCE_PX
) -> LocalisationScore:
    """Score a finished run's records against a ground-truth CSV."""
    columns = ["image_path", "status", "peak_x", "peak_y", "cam", "cam_height", "cam_width", "width", "height",
               "threshold", "cam_shift_y", "cam_shift_x"]
    records = read_records(output_dir, columns).to_pylist()
    return score_localisation(records, read_ground_truth(ground_truth), threshold, tolerance)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.localize", description=__doc__)
    parser.add_argument("--output", required=True, help="a finished run's --output folder")
    parser.add_argument("--ground_truth", required=True, help="CSV with image_path,label,x0,y0,x1,y1")
    parser.add_argument("--threshold", type=float, default=None, help="IoU region level (default: the run's)")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=POINTING_TOLERANCE_PX,
        help="pointing-game tolerance in pixels (default 15, as Zhang et al. 2016); 0 = strictly inside",
    )
    parser.add_argument("--json", default=None, help="also write the scores to this JSON file")
    args = parser.parse_args(argv)
    score = localise_run(args.output, args.ground_truth, args.threshold, args.tolerance)
    print(score.render())
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(dataclasses.asdict(score), handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
