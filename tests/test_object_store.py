"""The whole audit with its input and output on a non-local FileSystems scheme (memory://, held in this process).

Beam 2.77 registers no in-memory filesystem, so this module defines one: a flat key -> bytes store with
object-store semantics (no folders), registered with Beam's FileSystems by being a FileSystem subclass.
Every read and write of the audit that bypassed FileSystems (a plain `open`, a library given a path)
would miss it. It lives in this process only, so it serves in-process runners only (FnApiRunner
in_memory); a worker in another process would see an empty store.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from apache_beam.io.filesystem import BeamIOError, CompressedFile, CompressionTypes, FileMetadata, FileSystem

from pipeline.run import run
from pipeline.summary import read_records
from tests.conftest import TinyArchive
from transforms import files

pytestmark = pytest.mark.slow


class _Upload(io.BytesIO):
    """A file being written: its bytes become the object when it is closed."""

    def __init__(self, store: dict[str, bytes], path: str) -> None:
        super().__init__()
        self._store, self._path = store, path

    def close(self) -> None:
        if not self.closed:
            self._store[self._path] = self.getvalue()
        super().close()


class InMemoryFileSystem(FileSystem):
    """memory://: objects in a dict of this process, with an object store's flat names."""

    objects: dict[str, bytes] = {}

    @classmethod
    def scheme(cls) -> str:
        return "memory"

    def join(self, basepath: str, *paths: str) -> str:
        return "/".join([basepath.rstrip("/"), *(path.strip("/") for path in paths)])

    def split(self, path: str) -> tuple[str, str]:
        head, _, tail = path.rstrip("/").rpartition("/")
        return head, tail

    def mkdirs(self, path: str) -> None:
        """Object stores have no folders."""

    def has_dirs(self) -> bool:
        return False

    def _list(self, dir_or_prefix: str):  # noqa: ANN202 - Beam's generator of FileMetadata
        for path, data in list(self.objects.items()):
            if path.startswith(dir_or_prefix):
                yield FileMetadata(path, len(data), 0.0)

    def create(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):  # noqa: ANN001, ANN201
        return self._compressed(_Upload(self.objects, path), path, compression_type)

    def open(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):  # noqa: ANN001, ANN201
        if path not in self.objects:
            raise BeamIOError(f"no object {path}", {path: FileNotFoundError(path)})
        return self._compressed(io.BytesIO(self.objects[path]), path, compression_type)

    @staticmethod
    def _compressed(handle: io.BytesIO, path: str, compression_type: str):  # noqa: ANN205
        if compression_type == CompressionTypes.AUTO:
            compression_type = CompressionTypes.detect_compression_type(path)
        if compression_type == CompressionTypes.UNCOMPRESSED:
            return handle
        return CompressedFile(handle, compression_type)

    def copy(self, source_file_names: list[str], destination_file_names: list[str]) -> None:
        for source, destination in zip(source_file_names, destination_file_names, strict=True):
            self.objects[destination] = self.objects[source]

    def rename(self, source_file_names: list[str], destination_file_names: list[str]) -> None:
        for source, destination in zip(source_file_names, destination_file_names, strict=True):
            self.objects[destination] = self.objects.pop(source)

    def _under(self, path: str) -> list[str]:
        """The object named `path`, or every object under it as a prefix folder."""
        folder = path.rstrip("/") + "/"
        return [name for name in list(self.objects) if name == path or name.startswith(folder)]

    def exists(self, path: str) -> bool:
        return bool(self._under(path))

    def size(self, path: str) -> int:
        return len(self.objects[path])

    def last_updated(self, path: str) -> float:
        return 0.0

    def checksum(self, path: str) -> str:
        return str(len(self.objects[path]))

    def metadata(self, path: str) -> FileMetadata:
        return FileMetadata(path, len(self.objects[path]), 0.0)

    def delete(self, paths: list[str]) -> None:
        for path in paths:
            for name in self._under(path):
                del self.objects[name]


def upload(local: Path, uri: str) -> None:
    files.write_bytes(uri, local.read_bytes())


def test_the_audit_reads_and_writes_only_through_filesystems(
    tiny_archive: TinyArchive, tiny_model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    InMemoryFileSystem.objects.clear()
    bucket = "memory://bucket"
    for local in tiny_archive.root.rglob("*"):
        if local.is_file():
            upload(local, f"{bucket}/{local.relative_to(tiny_archive.root).as_posix()}")
    upload(tiny_model_path, f"{bucket}/models/tiny.keras")
    output = f"{bucket}/audit"
    summary = run([
        "--manifest", f"{bucket}/MURA-v1.1/valid_image_paths.csv",
        "--labels", f"{bucket}/MURA-v1.1/valid_labeled_studies.csv",
        "--model", f"{bucket}/models/tiny.keras", "--output", output,
        "--batch_size", "4", "--progress_seconds", "0.2",
    ])
    rows = read_records(output).to_pylist()
    assert sorted(row["image_path"] for row in rows) == sorted([*tiny_archive.good, *tiny_archive.bad])
    assert summary.ok == len(tiny_archive.good) and summary.errors == len(tiny_archive.bad)
    heatmaps = files.matching(f"{output}/heatmaps/**")
    assert sorted(heatmaps) == sorted(row["heatmap_path"] for row in rows if row["status"] == "ok")
    assert all(path.startswith(f"{output}/heatmaps/MURA-v1.1/") for path in heatmaps)
    info = json.loads(files.read_bytes(f"{output}/run_info.json"))
    assert info["metrics"]["counters"]["images_loaded"] == len(tiny_archive.good)
    # Progress lines from the workers' tallies on the same store, the last once every row is done; then removed.
    assert "progress: 13 of 13 images (100.0 %)" in capsys.readouterr().out
    assert not files.matching(f"{output}/_progress-*/*")
