"""Start-up checks: the output folder, a labels file against the manifest's studies, a resume's run."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pipeline.checks import check_labels_match, check_output_writable, check_resumable
from pipeline.consolidate import CommittedRows


def test_output_writable_looks_at_the_nearest_existing_folder(tmp_path: Path) -> None:
    check_output_writable(str(tmp_path / "a" / "b" / "c"))  # created later, under a writable folder
    check_output_writable("gs://bucket/out")  # remote: left to prepare_output's probe
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_output_writable(str(tmp_path / "file" / "out"))
    assert not (tmp_path / "a").exists()


def test_labels_must_name_some_of_the_manifest_studies(caplog: pytest.LogCaptureFixture) -> None:
    studies = frozenset(
        {"MURA-v1.1/valid/XR_HAND/patient1/study1_positive", "MURA-v1.1/valid/XR_HAND/patient2/study1_negative"}
    )
    with pytest.raises(ValueError, match="names none of the manifest's 2 studies"):
        check_labels_match({"MURA-v1.1/train/XR_HAND/patient9/study1_positive": 1}, studies, "l.csv")
    with caplog.at_level(logging.WARNING):
        check_labels_match({"MURA-v1.1/valid/XR_HAND/patient1/study1_positive": 1}, studies, "l.csv")
    assert "names 1 of the manifest's 2 studies; the other 1 keep" in caplog.text
    check_labels_match({"x": 1}, frozenset(), "l.csv")  # no study in the manifest: nothing to compare


def test_a_resume_must_use_the_same_model_and_threshold() -> None:
    committed = CommittedRows(frozenset({"a.png"}), frozenset({"r1"}), frozenset({"a" * 64}), frozenset({0.2}))
    check_resumable(committed, "a" * 64, 0.2)
    with pytest.raises(ValueError, match="made by another model"):
        check_resumable(committed, "b" * 64, 0.2)
    with pytest.raises(ValueError, match=r"used --threshold \[0.2\], not 0.5"):
        check_resumable(committed, "a" * 64, 0.5)
