"""Unknown options fail fast naming the nearest valid one; cam-audit's, Beam's and the runner's pass."""

from __future__ import annotations

import pytest

import pipeline.options  # noqa: F401 - registers CamAuditOptions, as pipeline.run does
from pipeline.known_options import check_known_options, unknown_options


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--treshold", "0.5"], r"--treshold \(did you mean --threshold\?\)"),
        (["--no_heatmap"], r"--no_heatmap \(did you mean --no_heatmaps\?\)"),
        (["--threshold=0.3", "--max_pixel=9"], r"--max_pixel \(did you mean --max_pixels\?\)"),
        (["--zzzzzz"], r"unknown option --zzzzzz; see --help"),
    ],
)
def test_misspelt_options_are_named_with_the_nearest_valid_one(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_known_options(argv)


def test_cam_audit_beam_and_runner_options_pass() -> None:
    argv = [
        "--manifest", "m.csv", "--threshold", "0.3", "--no_heatmaps", "--resume", "--sixteen_bit", "scale",
        "--direct_num_workers", "2", "--direct_running_mode", "multi_processing", "--labels", "team=x",
        "--project", "p", "--temp_location", "gs://b/t", "--flink_master", "localhost:8081",
    ]  # fmt: skip
    check_known_options(argv)
    assert unknown_options(argv) == []


def test_the_chosen_runners_own_options_register_first() -> None:
    pytest.importorskip("dask")
    # DaskOptions live in the Dask runner's module, which only --runner DaskRunner imports.
    assert unknown_options(["--runner", "DaskRunner", "--dask_client_address", "localhost:8786"]) == []
