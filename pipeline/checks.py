"""Start-up checks beyond the flags' own: image limits, the output folder, a labels file, a resume."""

from __future__ import annotations

import logging
import os

from pipeline.consolidate import CommittedRows
from pipeline.options import CamAuditOptions
from transforms.output_paths import is_uri


def check_image_options(options: CamAuditOptions) -> None:
    """The pixel budget, the heatmap side and the record file sizes must be positive."""
    if options.max_pixels < 1:
        raise ValueError(f"--max_pixels must be >= 1, got {options.max_pixels}")
    if options.heatmap_max_side < 1:
        raise ValueError(f"--heatmap_max_side must be >= 1, got {options.heatmap_max_side}")
    if options.records_per_commit < 1:
        raise ValueError(f"--records_per_commit must be >= 1, got {options.records_per_commit}")
    if options.record_shards < 0:
        raise ValueError(f"--record_shards must be >= 0 (0: by size), got {options.record_shards}")


def check_output_writable(output_dir: str) -> None:
    """A local --output must be creatable: its nearest existing ancestor is a writable folder (nothing is written).

    Remote folders (gs://, s3://) are checked by prepare_output's probe, the first write of the run.
    """
    if is_uri(output_dir):
        return
    ancestor = os.path.abspath(output_dir)
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise ValueError(f"--output {output_dir!r} cannot be created: {ancestor!r} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"--output {output_dir!r} is not writable: no write permission on {ancestor!r}")


def check_resumable(committed: CommittedRows, model_sha256: str, threshold: float) -> None:
    """A --resume must finish the run it continues: same model, same threshold (rows would not compare)."""
    if committed.model_sha256s - {model_sha256}:
        raise ValueError(
            f"--resume: the records in --output were made by another model (SHA-256 "
            f"{sorted(committed.model_sha256s)[0][:12]}..., this one is {model_sha256[:12]}...); "
            "pass the same --model, or --overwrite"
        )
    if committed.thresholds - {threshold}:
        raise ValueError(
            f"--resume: the records in --output used --threshold {sorted(committed.thresholds)}, "
            f"not {threshold}; pass the same --threshold, or --overwrite"
        )


def check_labels_match(labels: dict[str, int], studies: frozenset[str], labels_file: str) -> None:
    """A labels file must name some of the manifest's studies: none is an error, some a warning with counts."""
    matched = len(studies & labels.keys())
    if studies and matched == 0:
        raise ValueError(
            f"--labels_file {labels_file!r} names none of the manifest's {len(studies)} studies "
            f"(it names {len(labels)}, e.g. {sorted(labels)[:1]}; the manifest's are like {sorted(studies)[:1]}): "
            "wrong split or wrong file?"
        )
    if matched < len(studies):
        logging.warning(
            "--labels_file %r names %d of the manifest's %d studies; the other %d keep the label their path gives",
            labels_file,
            matched,
            len(studies),
            len(studies) - matched,
        )
