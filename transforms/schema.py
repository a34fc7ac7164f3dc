"""The one schema of cam-audit's Parquet records, and the one function that builds a record."""

from __future__ import annotations

import dataclasses
from typing import Any

import pyarrow as pa

from transforms.cam import CamStats
from transforms.flags import FLAG_NAMES, predicted_class
from transforms.mura import ManifestEntry

STATUS_OK = "ok"
STATUS_ERROR = "error"

# Field order is the column order in the files. Nullability is explicit: a field that an
# error row cannot fill is nullable; run-wide facts are never null.
RECORD_FIELDS: list[tuple[pa.Field, str]] = [
    (pa.field("image_path", pa.string(), nullable=False), "the image path as written in the manifest"),
    (pa.field("image_uri", pa.string(), nullable=False), "where it was read from (data root applied)"),
    (pa.field("study_id", pa.string()), "study directory (MURA: split/part/patient/studyK_outcome)"),
    (pa.field("patient_id", pa.string()), "patient folder name, e.g. patient11185"),
    (pa.field("body_part", pa.string()), "MURA body part, e.g. XR_WRIST"),
    (pa.field("split", pa.string()), "train / valid / test"),
    (pa.field("label", pa.int32()), "ground truth, 1 = abnormal; null when unknown"),
    (
        pa.field("metadata_note", pa.string()),
        "why the study fields are null (path not in MURA's layout, no study_id column); null when known",
    ),
    (pa.field("width", pa.int32()), "original image width in pixels; null if not decoded"),
    (pa.field("height", pa.int32()), "original image height in pixels; null if not decoded"),
    (pa.field("status", pa.string(), nullable=False), "'ok' or 'error'"),
    (pa.field("error", pa.string()), "why the row is an error; null when ok"),
    (pa.field("predicted_class", pa.int32()), "argmax of probabilities"),
    (pa.field("predicted_label", pa.string()), "class name of predicted_class"),
    (pa.field("probabilities", pa.list_(pa.float32())), "class probabilities, in class order"),
    (pa.field("cam_class", pa.int32()), "class the CAM explains (predicted, or --cam_class)"),
    (pa.field("peak_x", pa.int32()), "CAM peak column in original pixels; null if CAM max <= 0"),
    (pa.field("peak_y", pa.int32()), "CAM peak row in original pixels; null if CAM max <= 0"),
    (pa.field("peak_x_norm", pa.float64()), "(peak_x + 0.5) / width, in (0, 1)"),
    (pa.field("peak_y_norm", pa.float64()), "(peak_y + 0.5) / height, in (0, 1)"),
    (pa.field("peak_value", pa.float64()), "raw rectified CAM value at the peak"),
    (pa.field("coverage", pa.float64()), "fraction of pixels with normalised CAM >= threshold"),
    (pa.field("threshold", pa.float64(), nullable=False), "the coverage / heatmap threshold"),
    (pa.field("heatmap_path", pa.string()), "written heatmap; null for errors or --no_heatmaps"),
    (pa.field("cam", pa.list_(pa.float32())), "raw low-res CAM of cam_class, row-major, pre-ReLU"),
    (pa.field("cam_height", pa.int32()), "rows of cam"),
    (pa.field("cam_width", pa.int32()), "columns of cam"),
    (pa.field("cam_shift_y", pa.float64()), "receptive-field offset of the CAM grid, cells (see README)"),
    (pa.field("cam_shift_x", pa.float64()), "receptive-field offset of the CAM grid, cells (see README)"),
    (pa.field("flag_border_peak", pa.bool_()), "CAM peak within --flag_border_margin of an edge; null for errors"),
    (pa.field("flag_off_body_peak", pa.bool_()), "CAM peak on near-background intensity; null for errors"),
    (pa.field("flag_burned_in_peak", pa.bool_()), "CAM peak on saturated, text-like pixels; null for errors"),
    (pa.field("flag_diffuse", pa.bool_()), "confident prediction with coverage >= --flag_diffuse_coverage"),
    (pa.field("flag_empty_cam", pa.bool_()), "CAM max <= 0 (no peak); null for errors"),
    (pa.field("flag_label_disagreement", pa.bool_()), "confident prediction against the label; null without one"),
    # Which explanation method and layer made the map, and how faithful it is (--faithfulness; README).
    (pa.field("method", pa.string()), "explanation method (--method): cam, hirescam, gradcam, ...; always set"),
    (pa.field("target_layer", pa.string()), "layer whose maps are explained (backbone/layer when nested)"),
    (pa.field("deletion_auc", pa.float64()), "area under the deletion curve; null without --faithfulness"),
    (pa.field("insertion_auc", pa.float64()), "area under the insertion curve; null without --faithfulness"),
    (pa.field("confidence_drop", pa.float64()), "max(0, Y - O) / Y on the explanation map; null without it"),
    (pa.field("confidence_increase", pa.bool_()), "O > Y on the explanation map; null without --faithfulness"),
    (pa.field("model_sha256", pa.string(), nullable=False), "SHA-256 of the model file"),
    (pa.field("run_id", pa.string(), nullable=False), "identifies the run that wrote the row"),
]
RECORD_SCHEMA = pa.schema([field for field, _ in RECORD_FIELDS])


@dataclasses.dataclass(frozen=True)
class RunFacts:
    """Run-wide facts every record carries."""

    run_id: str
    model_sha256: str
    threshold: float
    class_names: tuple[str, ...]
    method: str = "cam"
    target_layer: str | None = None


@dataclasses.dataclass(frozen=True)
class FaithfulnessScores:
    """One image's faithfulness figures (transforms/faithfulness.py says how they are measured)."""

    deletion_auc: float
    insertion_auc: float
    confidence_drop: float
    confidence_increase: bool


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Model output for one image: probabilities and the explained raw CAM."""

    probabilities: tuple[float, ...]
    cam_class: int
    cam: Any  # h x w float32 raw CAM of cam_class
    cam_shift: tuple[float, float] = (0.0, 0.0)  # (dy, dx) of the cell grid, in cells
    faithfulness: FaithfulnessScores | None = None  # None without --faithfulness or for an empty map


def to_record(
    entry: ManifestEntry,
    image_uri: str,
    facts: RunFacts,
    *,
    size: tuple[int, int] | None = None,
    error: str | None = None,
    prediction: Prediction | None = None,
    stats: CamStats | None = None,
    heatmap_path: str | None = None,
    flags: dict[str, bool | None] | None = None,
) -> dict[str, Any]:
    """One Parquet record; with `error` set (or no prediction) it is an error row."""
    record: dict[str, Any] = {
        "image_path": entry.image_path,
        "image_uri": image_uri,
        "study_id": entry.study_id,
        "patient_id": entry.patient_id,
        "body_part": entry.body_part,
        "split": entry.split,
        "label": entry.label,
        "metadata_note": entry.metadata_note,
        "width": size[0] if size else None,
        "height": size[1] if size else None,
        "status": STATUS_ERROR,
        "error": error,
        "predicted_class": None,
        "predicted_label": None,
        "probabilities": None,
        "cam_class": None,
        "peak_x": None,
        "peak_y": None,
        "peak_x_norm": None,
        "peak_y_norm": None,
        "peak_value": None,
        "coverage": None,
        "threshold": facts.threshold,
        "heatmap_path": None,
        "cam": None,
        "cam_height": None,
        "cam_width": None,
        "cam_shift_y": None,
        "cam_shift_x": None,
        **{name: None for name in FLAG_NAMES},
        "method": facts.method,
        "target_layer": facts.target_layer,
        "deletion_auc": None,
        "insertion_auc": None,
        "confidence_drop": None,
        "confidence_increase": None,
        "model_sha256": facts.model_sha256,
        "run_id": facts.run_id,
    }
    if error is not None or prediction is None or stats is None:
        record["error"] = error or "no prediction"
        return record
    predicted = predicted_class(prediction.probabilities)
    record.update(
        status=STATUS_OK,
        predicted_class=predicted,
        predicted_label=facts.class_names[predicted],
        probabilities=[float(p) for p in prediction.probabilities],
        cam_class=prediction.cam_class,
        peak_x=stats.peak_x,
        peak_y=stats.peak_y,
        peak_x_norm=stats.peak_x_norm,
        peak_y_norm=stats.peak_y_norm,
        peak_value=stats.peak_value,
        coverage=stats.coverage,
        heatmap_path=heatmap_path,
        cam=prediction.cam.astype("float32").ravel().tolist(),
        cam_height=int(prediction.cam.shape[0]),
        cam_width=int(prediction.cam.shape[1]),
        cam_shift_y=float(prediction.cam_shift[0]),
        cam_shift_x=float(prediction.cam_shift[1]),
    )
    record.update(flags or {})
    if prediction.faithfulness is not None:
        record.update(dataclasses.asdict(prediction.faithfulness))
    return record


def schema_markdown(fields: list[tuple[pa.Field, str]] = RECORD_FIELDS) -> str:
    """A schema (the records' by default) as a Markdown table, for the README (tests keep the two in step)."""
    rows = ["| column | type | nullable | meaning |", "|---|---|---|---|"]
    for field, meaning in fields:
        rows.append(f"| `{field.name}` | `{field.type}` | {'yes' if field.nullable else 'no'} | {meaning} |")
    return "\n".join(rows)
