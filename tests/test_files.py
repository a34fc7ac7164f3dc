"""The one I/O module: bytes written, read, matched and deleted through Beam's FileSystems."""

from __future__ import annotations

import errno
import gzip
import os
from pathlib import Path

import pytest
from apache_beam.io.filesystems import FileSystems

from transforms import files


def test_write_read_match_delete_round_trip(tmp_path: Path) -> None:
    first, second = tmp_path / "out" / "records" / "a.parquet", tmp_path / "out" / "records" / "b.parquet"
    files.write_bytes(str(second), b"second")  # local folders are created as needed
    files.write_bytes(str(first), b"first")
    files.write_bytes(str(tmp_path / "out" / "records" / "notes.txt"), b"not a record")
    assert files.exists(str(first)) and files.exists(str(tmp_path / "out" / "records"))
    assert files.read_bytes(str(first)) == b"first" and first.read_bytes() == b"first"
    assert files.matching(str(tmp_path / "out" / "records" / "*.parquet")) == [str(first), str(second)]
    assert files.matching(str(tmp_path / "nowhere" / "*.parquet")) == []
    files.delete([str(first), str(second)])
    assert not first.exists() and not second.exists() and (tmp_path / "out" / "records" / "notes.txt").exists()
    assert not files.exists(str(first))


def test_delete_of_nothing_does_nothing_and_folders_go_whole(tmp_path: Path) -> None:
    files.write_bytes(str(tmp_path / "heatmaps" / "a" / "b.jpg"), b"jpg")
    files.delete([])
    assert (tmp_path / "heatmaps" / "a" / "b.jpg").exists()
    files.delete([str(tmp_path / "heatmaps")])
    assert not (tmp_path / "heatmaps").exists()


def test_read_head_reads_at_most_the_first_bytes(tmp_path: Path) -> None:
    path = tmp_path / "manifest.csv"
    path.write_bytes(b"image_path,label\na.png,1\n")
    assert files.read_head(str(path), 10) == b"image_path"
    assert files.read_head(str(path), 1000) == b"image_path,label\na.png,1\n"
    assert files.read_head(str(path), 0) == b""


def test_bytes_are_never_decompressed_by_extension(tmp_path: Path) -> None:
    compressed = gzip.compress(b"payload")
    path = tmp_path / "model.h5.gz"
    files.write_bytes(str(path), compressed)
    assert path.read_bytes() == compressed  # nor compressed on the way in
    assert files.read_bytes(str(path)) == compressed
    assert files.read_head(str(path), 2) == compressed[:2]


def test_atomic_write_renames_a_complete_file_over_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "heatmaps" / ("n" * 243 + ".png.jpg")  # a name at the 255-byte limit
    files.write_bytes_atomic(str(target), b"first")
    files.write_bytes_atomic(str(target), b"second, as a retried bundle writes it")
    assert target.read_bytes() == b"second, as a retried bundle writes it"
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # the temporary names are gone
    temp = files.temp_path(str(target))
    assert Path(temp).parent == target.parent and Path(temp).name.startswith(files.TEMP_PREFIX)
    assert len(Path(temp).name) < 64


def test_rename_and_read_lines(tmp_path: Path) -> None:
    files.write_bytes(str(tmp_path / "a.txt"), "one\r\ntwo é\n\nthree".encode())
    files.rename(str(tmp_path / "a.txt"), str(tmp_path / "b.txt"))
    assert not (tmp_path / "a.txt").exists()
    assert list(files.read_lines(str(tmp_path / "b.txt"))) == [b"one\r\n", "two é\n".encode(), b"\n", b"three"]


def test_local_reads_fail_as_beams_local_filesystem_does(tmp_path: Path) -> None:
    # Local paths skip FileSystems' lookup; a reader's errors must stay the ones describe_read_error names.
    (tmp_path / "folder").mkdir()
    for path, error in ((tmp_path / "missing.png", FileNotFoundError), (tmp_path / "folder", IsADirectoryError)):
        for read in (files.read_bytes, lambda where: FileSystems.open(where).read()):
            with pytest.raises(error):
                read(str(path))


def test_local_atomic_write_makes_its_folders_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "heatmaps" / "valid" / "XR_HAND" / "image1.png.jpg"
    files.write_bytes_atomic(str(target), b"jpg")
    files.write_bytes_atomic(str(target.with_name("image2.png.jpg")), b"jpg 2")  # the folder exists now
    assert sorted(p.name for p in target.parent.iterdir()) == ["image1.png.jpg", "image2.png.jpg"]
    assert files.read_bytes(str(target)) == b"jpg"


def test_atomic_write_through_a_temp_folder_makes_the_files_folder_and_leaves_its_debris_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tops = tmp_path / "heatmaps"
    target = tops / "valid" / "XR_HAND" / "patient1" / "image1.png.jpg"
    files.write_bytes_atomic(str(target), b"jpg", temp_folder=str(tops))  # neither folder exists yet
    files.write_bytes_atomic(str(target), b"jpg again", temp_folder=str(tops))
    assert target.read_bytes() == b"jpg again" and sorted(p.name for p in target.parent.iterdir()) == [target.name]
    assert files.temp_files(str(tops)) == []

    # A write that fails before its rename leaves its temporary file at the top, where temp_files finds it.
    def failing_replace(source: str, destination: str) -> None:
        raise PermissionError(destination)

    monkeypatch.setattr(files.os, "replace", failing_replace)
    with pytest.raises(PermissionError):
        files.write_bytes_atomic(str(target.with_name("image2.png.jpg")), b"jpg 2", temp_folder=str(tops))
    (left,) = files.temp_files(str(tops))
    assert Path(left).parent == tops and Path(left).read_bytes() == b"jpg 2"
    assert not target.with_name("image2.png.jpg").exists()


def test_temp_files_lists_one_folder_only(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for path in (tmp_path / f"{files.TEMP_PREFIX}a", tmp_path / "sub" / f"{files.TEMP_PREFIX}b", tmp_path / "c.jpg"):
        path.write_bytes(b"")
    (tmp_path / f"{files.TEMP_PREFIX}folder").mkdir()  # a folder with the prefix is not a temporary file
    assert files.temp_files(str(tmp_path)) == [str(tmp_path / f"{files.TEMP_PREFIX}a")]
    assert files.temp_files(str(tmp_path / "missing")) == []


def test_a_uri_write_through_a_temp_folder_makes_the_files_folder_where_the_scheme_has_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The FileSystems branch (gs://, hdfs://, ...) run on Beam's LocalFileSystem, a scheme with folders whose
    # rename, like HDFS's, fails into a folder that does not exist.
    monkeypatch.setattr(files, "is_uri", lambda path: True)
    tops = tmp_path / "heatmaps"
    tops.mkdir()
    target = tops / "valid" / "XR_HAND" / "image1.png.jpg"
    files.write_bytes_atomic(str(target), b"jpg", temp_folder=str(tops))
    files.write_bytes_atomic(str(target.with_name("image2.png.jpg")), b"jpg 2", temp_folder=str(tops))  # it exists
    assert target.read_bytes() == b"jpg" and target.with_name("image2.png.jpg").read_bytes() == b"jpg 2"
    assert sorted(p.name for p in tops.iterdir()) == ["valid"]  # no temporary file left at the top


@pytest.mark.parametrize("folder_exists", [True, False])
def test_a_file_on_another_filesystem_than_the_temp_folder_is_written_beside_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder_exists: bool
) -> None:
    real_replace = os.replace
    moves: list[str] = []

    def replace_across_filesystems(source: str, destination: str) -> None:
        moves.append(source)
        # From the temp folder into an existing folder: as if the target's folder were another disk.
        if Path(source).parent == tmp_path and Path(destination).parent.exists():
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(source, destination)

    monkeypatch.setattr(files.os, "replace", replace_across_filesystems)
    target = tmp_path / "linked" / "image1.png.jpg"
    if folder_exists:
        target.parent.mkdir()
    files.write_bytes_atomic(str(target), b"jpg", temp_folder=str(tmp_path))
    # A folder made on the way costs one more rename: the first found no folder.
    assert target.read_bytes() == b"jpg" and len(moves) == (2 if folder_exists else 3)
    assert Path(moves[-1]).parent == target.parent
    assert files.temp_files(str(tmp_path)) == [] and sorted(p.name for p in target.parent.iterdir()) == [target.name]
