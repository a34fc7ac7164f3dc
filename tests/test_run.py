"""Fail fast: every bad configuration exits 2 with one clear message, and nothing is written."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from pipeline.build import plan_audit
from pipeline.run import main
from tests.conftest import TinyArchive
from tests.test_build import audit_options, base_args


def refused(argv: list[str], output: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Run main(argv); it must return 2, print one configuration error line, and write nothing."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("cam-audit: configuration error: ")
    assert not output.exists()
    return err[-1]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--treshold", "0.5"], "unknown option --treshold (did you mean --threshold?)"),
        (["--no_heatmap"], "did you mean --no_heatmaps?"),
        (["--threshold", "0"], "--threshold must be in (0, 1], got 0.0"),
        (["--threshold", "1.5"], "--threshold must be in (0, 1], got 1.5"),
        (["--class_names", "a,b,c"], "--class_names has 3 names"),
        (["--max_pixels", "0"], "--max_pixels must be >= 1"),
        (["--resume", "--overwrite"], "pass one, not both"),
    ],
)
def test_bad_options_exit_2_and_write_nothing(
    tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    extra: list[str], message: str,
) -> None:
    output = tmp_path / "out"
    assert message in refused([*base_args(tiny_archive, tiny_model_path, output), *extra], output, capsys)


def test_bad_manifests_exit_2(tiny_model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "out"
    blank, header_only, latin1 = tmp_path / "blank.csv", tmp_path / "header.csv", tmp_path / "latin1.csv"
    blank.write_text("\n  \r\n")
    header_only.write_text("image_path,label\n\n")
    latin1.write_bytes("image_path\na.png\nb\u00e9.png\n".encode("latin-1"))
    for manifest, message in [
        (tmp_path / "absent.csv", "does not exist"),
        (blank, "has no non-blank line"),
        (header_only, "names no image"),
        (latin1, "line 3 is not UTF-8"),
    ]:
        argv = ["--manifest", str(manifest), "--model", str(tiny_model_path), "--output", str(output)]
        assert message in refused(argv, output, capsys)


def test_bad_models_exit_2(
    tiny_archive: TinyArchive, flatten_model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out"
    garbage, text = tmp_path / "garbage.keras", tmp_path / "model.txt"
    garbage.write_bytes(b"PK\x03\x04 this is no zip")
    text.write_text("not a model")
    for model, extra, message in [
        (tmp_path / "absent.keras", [], "does not exist"),
        (garbage, [], "is not a loadable Keras model"),
        (text, [], "must be a .keras or .h5 file"),
        # Without the CAM head the default method is HiResCAM; classic CAM, asked for, is refused.
        (flatten_model_path, ["--method", "cam"], "GlobalAveragePooling2D"),
    ]:
        assert message in refused([*base_args(tiny_archive, model, output), *extra], output, capsys)


def test_an_output_that_cannot_be_created_exits_2(
    tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    output = blocker / "out"
    assert "is a file, not a folder" in refused(base_args(tiny_archive, tiny_model_path, output), output, capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_an_output_in_a_read_only_folder_exits_2(
    tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    output = locked / "out"
    assert "is not writable" in refused(base_args(tiny_archive, tiny_model_path, output), output, capsys)


def test_a_labels_file_for_other_studies_exits_2(
    tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out"
    other = tmp_path / "train_labeled_studies.csv"
    other.write_text("MURA-v1.1/train/XR_HAND/patient00001/study1_positive/,1\n")
    message = refused([*base_args(tiny_archive, tiny_model_path, output), "--labels", str(other)], output, capsys)
    assert "names none of the manifest's" in message


def test_a_labels_file_for_some_studies_warns_with_counts(
    tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    some = tmp_path / "some.csv"
    lines = tiny_archive.labels.read_text().splitlines()
    some.write_text("\n".join(lines[:2]) + "\n")
    with caplog.at_level(logging.WARNING):
        plan = plan_audit(audit_options([*base_args(tiny_archive, tiny_model_path, tmp_path / "out"),
                                         "--labels", str(some)]))
    assert plan.labels is not None and len(plan.labels) == 2
    assert f"names 2 of the manifest's {len(lines)} studies" in caplog.text
    assert not (tmp_path / "out").exists()
