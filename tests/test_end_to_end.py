"""The whole job on DirectRunner's engine (FnApiRunner) into tmp_path, read back and checked."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import keras
import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from pipeline.run import main, run
from pipeline.summary import AuditSummary
from tests.conftest import TINY_INPUT, TinyArchive, build_tiny_cam_model
from transforms.flags import FLAG_NAMES
from transforms.imaging import decode_image, resize_for_model
from transforms.schema import RECORD_SCHEMA


def read_rows(output: Path) -> list[dict]:
    files = sorted((output / "records").glob("*.parquet"))
    assert files, "no Parquet files written"
    table = pq.ParquetDataset([str(f) for f in files]).read()
    assert table.schema.equals(RECORD_SCHEMA, check_metadata=False)
    return table.to_pylist()


def base_args(archive: TinyArchive, model: Path, output: Path) -> list[str]:
    return ["--manifest", str(archive.manifest), "--model", str(model), "--output", str(output), "--batch_size", "4"]


# (output folder, the run's summary, every record read back)
Audited = tuple[Path, AuditSummary, list[dict]]


@pytest.fixture(scope="module")
def audited(tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Audited:
    output = tmp_path_factory.mktemp("audit")
    summary = run([*base_args(tiny_archive, tiny_model_path, output), "--labels", str(tiny_archive.labels)])
    return output, summary, read_rows(output)


def test_one_row_per_nonblank_manifest_line(audited: Audited, tiny_archive: TinyArchive) -> None:
    _, summary, rows = audited
    nonblank = [line for line in tiny_archive.manifest.read_text().splitlines() if line.strip()]
    assert len(rows) == len(nonblank) == summary.rows
    assert sorted(r["image_path"] for r in rows) == sorted([*tiny_archive.good, *tiny_archive.bad])


def test_study_table_and_report_agree_with_the_records(audited: Audited) -> None:
    output, _, rows = audited
    studies = pq.read_table(output / "studies").to_pylist()
    assert sorted(s["study_id"] for s in studies) == sorted({r["study_id"] for r in rows if r["study_id"]})
    assert {s["study_id"]: s["n_images"] for s in studies} == dict(
        Counter(r["study_id"] for r in rows if r["study_id"]))
    metrics = json.loads((output / "report" / "metrics.json").read_text())
    assert metrics["flags"]["counts"] == {name: sum(1 for r in rows if r[name]) for name in FLAG_NAMES}
    assert metrics["image"]["overall"]["n"] == sum(1 for r in rows if r["status"] == "ok" and r["label"] is not None)
    assert (output / "report" / "index.html").stat().st_size > 0
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(r["flag_empty_cam"] == (r["peak_x"] is None) for r in ok)
    assert all(r[name] is None for r in rows if r["status"] != "ok" for name in FLAG_NAMES)


def test_ok_and_error_rows_go_to_their_own_files(audited: Audited, tiny_archive: TinyArchive) -> None:
    output, _, _ = audited
    statuses = {}
    for path in sorted((output / "records").glob("*.parquet")):
        statuses[path.name] = set(pq.read_table(path, columns=["status"]).column("status").to_pylist())
    assert statuses and all(name.startswith(("part-", "errors-")) for name in statuses)
    assert {s for name, found in statuses.items() if name.startswith("part-") for s in found} == {"ok"}
    assert {s for name, found in statuses.items() if name.startswith("errors-") for s in found} == {"error"}


def test_error_rows_say_what_was_wrong(audited: Audited, tiny_archive: TinyArchive) -> None:
    _, summary, rows = audited
    errors = {r["image_path"]: r for r in rows if r["status"] == "error"}
    assert set(errors) == set(tiny_archive.bad) and summary.errors == len(tiny_archive.bad)
    for path, word in tiny_archive.bad.items():
        assert word in errors[path]["error"], errors[path]["error"]
        assert errors[path]["heatmap_path"] is None and errors[path]["probabilities"] is None


def test_ok_rows_and_one_heatmap_each(audited: Audited, tiny_archive: TinyArchive) -> None:
    output, _, rows = audited
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == len(tiny_archive.good)
    heatmaps = sorted((output / "heatmaps").rglob("*.jpg"))
    assert len(heatmaps) == len(ok)
    for row in ok:
        width, height = tiny_archive.sizes[row["image_path"]]
        assert (row["width"], row["height"]) == (width, height)
        heatmap = cv2.imread(row["heatmap_path"])
        assert heatmap is not None and heatmap.shape == (height, width, 3)
        assert Path(row["heatmap_path"]).is_relative_to(output / "heatmaps")
        assert row["heatmap_path"].endswith(row["image_path"] + ".jpg")
        assert len(row["probabilities"]) == 2 and abs(sum(row["probabilities"]) - 1) < 1e-5
        assert len(row["cam"]) == row["cam_height"] * row["cam_width"] == 16 * 16
        assert row["label"] == (1 if "_positive" in row["image_path"] else 0)
        assert row["body_part"] in ("XR_WRIST", "XR_HAND", "XR_ELBOW") and row["split"] == "valid"
        assert len(row["model_sha256"]) == 64 and row["run_id"]
        if row["peak_x"] is not None:
            assert 0 <= row["peak_x"] < width and 0 <= row["peak_y"] < height
            assert 0 < row["coverage"] <= 1 and np.isfinite(row["peak_value"])


def reference_peak(model: keras.Model, image: np.ndarray, cam_class: int) -> tuple[int, int] | None:
    """Independent CAM: sub-model features, numpy channel sum, tf.image.resize, argmax."""
    features_model = keras.Model(model.inputs, model.get_layer("last_conv").output)
    batch = resize_for_model(image, TINY_INPUT, TINY_INPUT)[None]
    features = features_model.predict(batch, verbose=0)[0]
    weights = model.get_layer("classifier").get_weights()[0][:, cam_class]
    cam = np.maximum(np.einsum("hwc,c->hw", features.astype(np.float64), weights), 0.0)
    if cam.max() <= 0:
        return None
    full = tf.image.resize((cam / cam.max())[..., None], image.shape[:2], method="bilinear").numpy()[..., 0]
    y, x = np.unravel_index(np.argmax(full), full.shape)
    return int(x), int(y)


def test_peaks_match_an_independent_reference(
    audited: Audited, tiny_archive: TinyArchive, tiny_model_path: Path
) -> None:
    _, _, rows = audited
    model = keras.saving.load_model(tiny_model_path, compile=False)
    checked = 0
    for row in (r for r in rows if r["status"] == "ok"):
        image = decode_image((tiny_archive.root / row["image_path"]).read_bytes())
        expected = reference_peak(model, image, row["cam_class"])
        if expected is None:
            assert row["peak_x"] is None
            continue
        cell_w, cell_h = row["width"] / row["cam_width"], row["height"] / row["cam_height"]
        assert abs(row["peak_x"] - expected[0]) <= cell_w and abs(row["peak_y"] - expected[1]) <= cell_h
        checked += 1
    assert checked >= len(tiny_archive.good) - 1


@pytest.mark.slow
def test_litert_and_tensorflow_backends_write_the_same_records(
    tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path
) -> None:
    pytest.importorskip("ai_edge_litert")
    runs = {}
    for backend in ("tensorflow", "litert"):
        output = tmp_path / backend
        run([*base_args(tiny_archive, tiny_model_path, output), "--backend", backend])
        runs[backend] = {row["image_path"]: row for row in read_rows(output) if row["status"] == "ok"}
    assert (tmp_path / "litert" / "model.tflite").exists() and not (tmp_path / "tensorflow" / "model.tflite").exists()
    tensorflow, litert = runs["tensorflow"], runs["litert"]
    assert sorted(litert) == sorted(tensorflow) == sorted(tiny_archive.good)
    for path, expected in tensorflow.items():
        got = litert[path]
        assert got["predicted_class"] == expected["predicted_class"], path
        np.testing.assert_allclose(got["probabilities"], expected["probabilities"], rtol=0, atol=1e-4)
        assert (got["peak_x"], got["peak_y"]) == (expected["peak_x"], expected["peak_y"]), path


def test_model_without_gap_dense_is_refused_by_cam_before_processing(
    tiny_archive: TinyArchive, flatten_model_path: Path, tmp_path: Path
) -> None:
    from transforms.cam_head import CamModelError

    with pytest.raises(CamModelError, match="GlobalAveragePooling2D"):
        run([*base_args(tiny_archive, flatten_model_path, tmp_path / "out"), "--method", "cam"])
    assert not (tmp_path / "out").exists()


def test_records_only_png_and_rerun_rules(tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path) -> None:
    output = tmp_path / "out"
    run([*base_args(tiny_archive, tiny_model_path, output), "--no_heatmaps"])
    rows = read_rows(output)
    assert all(r["heatmap_path"] is None for r in rows) and not (output / "heatmaps").exists()
    with pytest.raises(ValueError, match="--overwrite"):
        run(base_args(tiny_archive, tiny_model_path, output))
    summary = run([*base_args(tiny_archive, tiny_model_path, output), "--overwrite", "--heatmap_format", "png"])
    rows = read_rows(output)
    assert len(rows) == summary.rows and len({r["run_id"] for r in rows}) == 1
    assert len(list((output / "heatmaps").rglob("*.png"))) == summary.ok


def test_generic_csv_manifest_and_data_root(tmp_path: Path, tiny_model_path: Path) -> None:
    images = tmp_path / "imgs"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(images / name), rng.integers(0, 256, (33, 47), dtype=np.uint8))
    manifest = tmp_path / "list.csv"
    manifest.write_text("image_path,label\nimgs/a.png,1\nimgs/b.png,\n../escape.png,0\n")
    output = tmp_path / "out"
    run(["--manifest", str(manifest), "--model", str(tiny_model_path), "--output", str(output),
         "--class_names", "neg,pos", "--cam_class", "1"])
    rows = {r["image_path"]: r for r in read_rows(output)}
    assert rows["imgs/a.png"]["label"] == 1 and rows["imgs/b.png"]["label"] is None
    assert rows["imgs/a.png"]["cam_class"] == 1 and rows["imgs/a.png"]["predicted_label"] in ("neg", "pos")
    assert rows["../escape.png"]["status"] == "error" and "outside --data_root" in rows["../escape.png"]["error"]


def test_sigmoid_model_runs_end_to_end(tiny_archive: TinyArchive, tmp_path: Path) -> None:
    path = tmp_path / "sigmoid.keras"
    build_tiny_cam_model(units=1, activation="sigmoid").save(path)
    summary = run(base_args(tiny_archive, path, tmp_path / "out"))
    assert summary.ok == len(tiny_archive.good)


def record_bytes(output: Path) -> dict[str, bytes]:
    """Every record file of an output folder, by path, with its bytes."""
    return {str(path): path.read_bytes() for path in sorted((output / "records").glob("*.parquet"))}


@pytest.fixture
def earlier_audit(tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path) -> Path:
    """An output folder holding the records of a finished run, for a refused rerun to leave alone (one per test,
    so that a regression in one cannot hide behind the other)."""
    output = tmp_path / "earlier"
    assert main([*base_args(tiny_archive, tiny_model_path, output), "--no_heatmaps"]) == 0
    return output


def test_overwrite_with_a_bad_class_names_leaves_the_earlier_records(
    earlier_audit: Path, tiny_archive: TinyArchive, tiny_model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression: --overwrite deleted the earlier records before --class_names was checked against
    # the model, so a run refused at start had already destroyed the previous one.
    before = record_bytes(earlier_audit)
    assert before and any(Path(path).name.startswith("part-") for path in before)
    argv = [*base_args(tiny_archive, tiny_model_path, earlier_audit), "--overwrite", "--class_names", "a,b,c"]
    assert main(argv) == 2
    assert "--class_names has 3 names" in capsys.readouterr().err
    assert record_bytes(earlier_audit) == before


def test_overwrite_with_a_model_without_the_cam_head_leaves_the_earlier_records(
    earlier_audit: Path, tiny_archive: TinyArchive, flatten_model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = record_bytes(earlier_audit)
    assert before
    assert main([*base_args(tiny_archive, flatten_model_path, earlier_audit), "--overwrite", "--method", "cam"]) == 2
    assert "GlobalAveragePooling2D" in capsys.readouterr().err
    assert record_bytes(earlier_audit) == before


@pytest.mark.slow
def test_gradient_method_with_faithfulness_on_a_model_without_the_cam_head(
    tiny_archive: TinyArchive, tmp_path: Path
) -> None:
    from pipeline.faithfulness_summary import FAITHFULNESS_COLUMNS, summarise_faithfulness
    from pipeline.summary import read_records
    from tests.method_checks import build_flatten_head_model

    model_path = tmp_path / "flatten_head.keras"
    build_flatten_head_model(seed=8).save(model_path)
    output = tmp_path / "out"
    summary = run([*base_args(tiny_archive, model_path, output), "--method", "gradcam", "--faithfulness",
                   "--no_heatmaps"])  # fmt: skip
    rows = read_rows(output)
    ok = [r for r in rows if r["status"] == "ok"]
    assert summary.ok == len(ok) == len(tiny_archive.good)
    assert {(r["method"], r["target_layer"]) for r in rows} == {("gradcam", "last_conv")}
    assert all((r["cam_height"], r["cam_width"]) == (16, 16) and np.isfinite(r["cam"]).all() for r in ok)
    measured = [r for r in ok if r["deletion_auc"] is not None]
    assert measured and all(0.0 <= r["deletion_auc"] <= 1.0 and 0.0 <= r["insertion_auc"] <= 1.0 for r in measured)
    assert all(r["confidence_drop"] >= 0.0 and isinstance(r["confidence_increase"], bool) for r in measured)
    [gradcam] = summarise_faithfulness(read_records(str(output), FAITHFULNESS_COLUMNS))
    assert gradcam.method == "gradcam" and gradcam.measured == len(measured)


def test_a_run_under_beams_runtime_type_check_writes_every_row(
    tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path
) -> None:
    # Beam checks each DoFn's outputs against its declared output type: the typed image collections (for their
    # coder, transforms/image_coder.py) must not hold the error rows of the same DoFn to the images' type.
    output = tmp_path / "checked"
    run([*base_args(tiny_archive, tiny_model_path, output), "--runtime_type_check"])
    rows = read_rows(output)
    assert sorted(row["image_path"] for row in rows if row["status"] == "ok") == sorted(tiny_archive.good)
    assert sorted(row["image_path"] for row in rows if row["status"] == "error") == sorted(tiny_archive.bad)
