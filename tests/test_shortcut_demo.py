"""reference.shortcut_demo's comparison: flag rates and pointing games on lesions and tokens, by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.report import build_report
from reference.shortcut_demo import compare
from tests.conftest import write_audited_run


def test_compare_counts_peaks_on_tokens_and_lesions(tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    records = write_audited_run(audit)
    build_report(str(audit), resamples=20)
    abnormal = [r for r in records if r["status"] == "ok" and r["predicted_class"] == 1]
    hit, miss = abnormal[0], abnormal[1]
    box = lambda r, d: (r["peak_x"] + d, r["peak_y"] + d, r["peak_x"] + d + 2, r["peak_y"] + d + 2)  # noqa: E731
    rows = ["image_path,label,x0,y0,x1,y1,marker_x0,marker_y0,marker_x1,marker_y1",
            # a token under the first peak, one 30 px off the second (beyond the 15 px tolerance)
            f"{hit['image_path']},1,,,,,{','.join(map(str, box(hit, 0)))}",
            f"{miss['image_path']},1,{','.join(map(str, box(miss, 0)))},{','.join(map(str, box(miss, 30)))}"]
    ground_truth = tmp_path / "gt.csv"
    ground_truth.write_text("\n".join(rows) + "\n")
    result = compare(audit, ground_truth)
    assert result["abnormal_predictions"] == len(abnormal)
    assert (result["pointing_game_marker"], result["abnormal_predictions_with_marker"]) == (0.5, 2)
    assert (result["pointing_game_lesion"], result["abnormal_predictions_with_lesion"]) == (1.0, 1)
    assert result["abnormal_predictions_peaking_on_marker"] == pytest.approx(1 / len(abnormal))
    ok = [r for r in records if r["status"] == "ok"]
    assert result["flag_rate_all_images"]["flag_diffuse"] == pytest.approx(
        sum(1 for r in ok if r["flag_diffuse"]) / len(ok))
    assert result["verdict"]
