"""Tests for the synthetic archive's command line (reference.synth.cli)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference.synth.cli import main


def test_cli_writes_archive_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--out", str(tmp_path), "--patients", "8", "--seed", "2", "--workers", "1"])
    assert code == 0
    report = capsys.readouterr().out
    assert str(tmp_path / "MURA-v1.1") in report and "train:" in report and "valid:" in report
    assert (tmp_path / "MURA-v1.1" / "train_ground_truth.csv").is_file()
    assert main(["--out", str(tmp_path), "--patients", "8", "--workers", "1"]) == 2
