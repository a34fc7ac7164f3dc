"""`python -m reference.shortcut_demo`: the audit catching a shortcut. The reference model is trained on a
clean archive and on one where a burned-in text token goes with the abnormal label; both are audited and
compared: flag rates, and the pointing game on the lesions and on the tokens."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.localize import read_ground_truth
from pipeline.report_data import LOCATION_FLAGS
from pipeline.summary import read_records
from reference.demo import DemoPaths, audit_valid_split, ensure_archive, ensure_model, report_verdict
from transforms.flags import FLAG_NAMES
from transforms.localization import POINTING_TOLERANCE_PX, Box, peak_in_box
from transforms.schema import STATUS_OK

SHORTCUT_RATE = 0.95  # share of abnormal images with the token (normal ones: a twentieth of it)
ABNORMAL = 1


def hit_rate(rows: list[dict[str, Any]], boxes: dict[str, Box]) -> tuple[float | None, int]:
    """(share of rows whose CAM peak is within the pointing-game tolerance of their box, rows with a box)."""
    with_box = [r for r in rows if r["image_path"] in boxes]
    hits = [peak_in_box(r["peak_x"], r["peak_y"], boxes[r["image_path"]], POINTING_TOLERANCE_PX) for r in with_box]
    return (sum(hits) / len(hits) if hits else None), len(hits)


def compare(audit: Path, ground_truth: Path) -> dict[str, Any]:
    """Flag rates and pointing games of one audited split (class 1 explained in every image)."""
    columns = ["image_path", "status", "label", "predicted_class", "peak_x", "peak_y", *FLAG_NAMES]
    ok = [r for r in read_records(str(audit), columns).to_pylist() if r["status"] == STATUS_OK]
    abnormal = [r for r in ok if r["predicted_class"] == ABNORMAL]
    lesions = read_ground_truth(str(ground_truth))
    header = ground_truth.read_text().splitlines()[0]
    markers = read_ground_truth(str(ground_truth), "marker_") if "marker_x0" in header else {}
    lesion_hits, with_lesion = hit_rate(abnormal, lesions)
    marker_hits, with_marker = hit_rate(abnormal, markers)
    on_marker = sum(1 for r in abnormal if r["image_path"] in markers
                    and peak_in_box(r["peak_x"], r["peak_y"], markers[r["image_path"]], POINTING_TOLERANCE_PX))
    return {
        "audit": str(audit),
        "images": len(ok),
        "abnormal_predictions": len(abnormal),
        "flag_rate_all_images": {n: sum(1 for r in ok if r[n]) / len(ok) if ok else None for n in FLAG_NAMES},
        "flag_rate_abnormal_predictions": {n: sum(1 for r in abnormal if r[n]) / len(abnormal) if abnormal else None
                                           for n in FLAG_NAMES},
        "location_flag_rate_abnormal_predictions": (
            sum(1 for r in abnormal if any(r[n] for n in LOCATION_FLAGS)) / len(abnormal) if abnormal else None),
        "pointing_game_lesion": lesion_hits,
        "abnormal_predictions_with_lesion": with_lesion,
        "pointing_game_marker": marker_hits,
        "abnormal_predictions_with_marker": with_marker,
        "abnormal_predictions_peaking_on_marker": on_marker / len(abnormal) if abnormal else None,
        "verdict": report_verdict(DemoPaths(audit.parent)),
    }


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def describe(name: str, result: dict[str, Any]) -> str:
    """A few lines per audit for the console."""
    rates = result["flag_rate_abnormal_predictions"]
    flags = ", ".join(f"{n.removeprefix('flag_')} {percent(rates[n])}" for n in FLAG_NAMES)
    return (f"{name}: {result['images']} images, {result['abnormal_predictions']} predicted abnormal\n"
            f"  flags among abnormal predictions: {flags}\n"
            f"  pointing game (abnormal predictions): lesion {percent(result['pointing_game_lesion'])} "
            f"of {result['abnormal_predictions_with_lesion']}, token {percent(result['pointing_game_marker'])} "
            f"of {result['abnormal_predictions_with_marker']}; peaks on a token: "
            f"{percent(result['abnormal_predictions_peaking_on_marker'])} of all abnormal predictions\n"
            f"  report verdict: {result['verdict']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reference.shortcut_demo", description=__doc__)
    parser.add_argument("--workdir", default="shortcut_demo_out", help="clean/ and shortcut/ demo folders go here")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    workdir = Path(args.workdir).resolve()
    clean, shortcut = DemoPaths(workdir / "clean"), DemoPaths(workdir / "shortcut")
    results = {}
    for name, paths, rate in (("clean", clean, 0.0), ("shortcut", shortcut, SHORTCUT_RATE)):
        ensure_archive(paths, rate)
        ensure_model(paths)
        audit_valid_split(paths)
        results[f"{name} model, {name} valid split"] = compare(paths.audit, paths.mura / "valid_ground_truth.csv")
    # Control: the clean model on the shortcut split (the same images with tokens burned in).
    control_paths = ControlPaths(workdir / "clean_on_shortcut", clean.model, shortcut.mura)
    audit_valid_split(control_paths)
    results["clean model, shortcut valid split"] = compare(control_paths.audit,
                                                          shortcut.mura / "valid_ground_truth.csv")
    (workdir / "comparison.json").write_text(json.dumps(results, indent=2))
    print("\n" + "=" * 72)
    for name, result in results.items():
        print(describe(name, result))
    print(f"  comparison: {workdir / 'comparison.json'}; total {time.perf_counter() - start:.0f} s")
    print("=" * 72)
    return 0


@dataclasses.dataclass(frozen=True)
class ControlPaths(DemoPaths):
    """A DemoPaths whose model and archive come from elsewhere (the control audit)."""

    model_path: Path
    mura_path: Path

    @property
    def model(self) -> Path:
        return self.model_path

    @property
    def mura(self) -> Path:
        return self.mura_path

    @property
    def audit(self) -> Path:
        return self.workdir / "audit"


if __name__ == "__main__":
    raise SystemExit(main())
