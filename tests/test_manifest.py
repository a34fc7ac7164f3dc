"""ReadManifest: MURA path lists and CSV manifests, one entry per non-blank line."""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from tests.conftest import TinyArchive, local_pipeline
from transforms.manifest import ReadManifest, inspect_manifest


@pytest.mark.parametrize("redistribute", [True, False])
def test_read_manifest_mura_skips_blank_lines(tiny_archive: TinyArchive, redistribute: bool) -> None:
    fmt, columns = inspect_manifest(str(tiny_archive.manifest), "auto")
    assert fmt == "mura" and columns is None
    expected = sorted([*tiny_archive.good, *tiny_archive.bad])
    with local_pipeline() as p:
        entries = p | ReadManifest(str(tiny_archive.manifest), columns, redistribute=redistribute)
        assert_that(entries | beam.Map(lambda e: e.image_path), equal_to(expected))
    names = [transform.unique_name for transform in p.to_runner_api().components.transforms.values()]
    assert any("Redistribute" in name for name in names) == redistribute, names


def test_read_manifest_csv_with_header_and_labels(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("image_path,label\n\na.png,1\nb.png,0\n c.png , \n,1\n")
    fmt, columns = inspect_manifest(str(manifest), "auto")
    assert fmt == "csv"
    with local_pipeline() as p:
        entries = p | ReadManifest(str(manifest), columns)
        summary = entries | beam.Map(lambda e: (e.image_path, e.label, e.error is None))
        assert_that(
            summary,
            equal_to([("a.png", 1, True), ("b.png", 0, True), ("c.png", None, True), (",1", None, False)]),
        )


def test_the_launcher_scan_counts_the_rows_the_read_gives(tiny_archive: TinyArchive, tmp_path: Path) -> None:
    from pipeline.consolidate import scan_manifest

    scan = scan_manifest(str(tiny_archive.manifest), None)
    assert sum(scan.path_counts.values()) == len(tiny_archive.good) + len(tiny_archive.bad)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("image_path,label\n\na.png,1\nb.png,0\n c.png , \n,1\n")  # header and a blank line skipped
    assert sum(scan_manifest(str(manifest), ["image_path", "label"]).path_counts.values()) == 4
