"""The command line: `--labels PATH` routed to cam-audit's labels file, and --help naming every flag."""

from __future__ import annotations

import argparse
import re

import pytest

from pipeline.options import CamAuditOptions, help_text, route_labels_flag

CAM_AUDIT_FLAGS = {
    "--manifest", "--model", "--output", "--data_root", "--labels_file", "--manifest_format", "--class_names",
    "--threshold", "--batch_size", "--min_batch_size", "--forward_threads", "--micro_batch_size", "--image_threads",
    "--preprocess",
    "--cam_class", "--cam_alignment", "--heatmap_format", "--no_heatmaps", "--run_id", "--mixed_precision",
    "--overwrite", "--record_shards", "--max_pixels", "--heatmap_max_side", "--sixteen_bit", "--resume",
    "--records_per_commit", "--progress_seconds", "--backend", "--litert_cache_dir",
    "--method", "--target_layer", "--faithfulness",
}  # fmt: skip
# The audit's study and flag options.
CAM_AUDIT_FLAGS |= {
    "--study_threshold", "--flag_border_margin", "--flag_window", "--flag_background_level",
    "--flag_saturation_level", "--flag_confidence", "--flag_diffuse_coverage",
}  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "routed"),
    [
        (["--labels", "studies.csv"], ["--labels_file", "studies.csv"]),
        (["--labels=studies.csv"], ["--labels_file=studies.csv"]),
        # A value with '=' is a Dataflow job label (Beam's own --labels): it stays.
        (["--labels", "team=radiology"], ["--labels", "team=radiology"]),
        (["--labels=team=radiology"], ["--labels=team=radiology"]),
        (["--labels"], ["--labels"]),  # nothing to route: argparse reports it
        (
            ["--manifest", "m.csv", "--labels", "gs://b/l.csv", "--batch_size", "4"],
            ["--manifest", "m.csv", "--labels_file", "gs://b/l.csv", "--batch_size", "4"],
        ),
        (["--labels_file", "x.csv"], ["--labels_file", "x.csv"]),
    ],
)
def test_route_labels_flag(argv: list[str], routed: list[str]) -> None:
    assert route_labels_flag(argv) == routed


def test_routed_labels_reach_the_labels_file_option() -> None:
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(route_labels_flag(["--labels", "studies.csv"])).view_as(CamAuditOptions)
    assert options.labels_file == "studies.csv"


def test_every_flag_is_registered_and_in_the_help() -> None:
    parser = argparse.ArgumentParser()
    CamAuditOptions._add_argparse_args(parser)
    registered = {flag for action in parser._actions for flag in action.option_strings if flag.startswith("--")}
    assert registered - {"--help"} == CAM_AUDIT_FLAGS
    text = help_text()
    for flag in CAM_AUDIT_FLAGS:
        # Whole flags only: --batch_size must not be found inside --min_batch_size.
        assert re.search(rf"(?<![\w-]){flag}(?![\w-])", text), flag
    assert text.startswith("usage: python -m pipeline.run") and "--runner" in text
