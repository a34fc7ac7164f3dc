"""The one schema of the study table (OUTPUT/studies/*.parquet): one row per study of the manifest."""

from __future__ import annotations

import pyarrow as pa

from transforms.schema import schema_markdown

# Field order is the column order in the files; run-wide facts and counts are never null.
STUDY_FIELDS: list[tuple[pa.Field, str]] = [
    (pa.field("study_id", pa.string(), nullable=False), "study directory, as in the records"),
    (pa.field("patient_id", pa.string()), "patient folder name"),
    (pa.field("body_part", pa.string()), "MURA body part, e.g. XR_WRIST"),
    (pa.field("split", pa.string()), "train / valid / test"),
    (pa.field("label", pa.int32()), "study ground truth, 1 = abnormal; null when unknown"),
    (pa.field("n_images", pa.int32(), nullable=False), "manifest lines of the study (ok + error rows)"),
    (pa.field("n_errors", pa.int32(), nullable=False), "of which could not be audited"),
    (pa.field("mean_abnormal_probability", pa.float64()), "mean abnormality probability of its ok images"),
    (pa.field("predicted_label", pa.int32()), "1 if mean > study_threshold (MURA's rule); null if no ok image"),
    (pa.field("study_threshold", pa.float64(), nullable=False), "--study_threshold"),
    (pa.field("mean_coverage", pa.float64()), "mean CAM coverage of its ok images"),
    (pa.field("max_coverage", pa.float64()), "largest CAM coverage of its ok images"),
    (pa.field("flagged_images", pa.int32(), nullable=False), "ok images with at least one flag set"),
    (pa.field("top_image_path", pa.string()), "the image with the highest abnormality probability"),
    (pa.field("top_image_probability", pa.float64()), "its abnormality probability"),
    (pa.field("run_id", pa.string(), nullable=False), "the run that wrote the row"),
]
STUDY_SCHEMA = pa.schema([field for field, _ in STUDY_FIELDS])


def study_schema_markdown() -> str:
    """The study schema as a Markdown table, for the README (tests keep the two in step)."""
    return schema_markdown(STUDY_FIELDS)
