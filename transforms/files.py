"""The one place cam-audit reads, writes, lists, renames and deletes files: Beam FileSystems for every scheme.

Per-image reads and heatmap writes on a local disk go through the os calls Beam's LocalFileSystem
makes underneath, without its per-call scheme lookup and folder creation (bench/README.md, session 6):
the same files and the same errors.
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from transforms.output_paths import is_uri

# Files being written carry this name until they are complete; a folder's debris matches it.
TEMP_PREFIX = ".cam-audit-tmp-"


def exists(path: str) -> bool:
    """Whether a file or folder exists on any FileSystems path."""
    return FileSystems.exists(path)


def read_bytes(path: str) -> bytes:
    """All bytes of a file on any FileSystems path, with no decompression by extension."""
    if not is_uri(path):
        with open(path, "rb") as handle:  # what LocalFileSystem.open does for an uncompressed file
            return handle.read()
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        return handle.read()


def read_head(path: str, size: int) -> bytes:
    """At most the first `size` bytes of a file."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        return handle.read(size)


def read_lines(path: str) -> Iterator[bytes]:
    """A file's lines as bytes, streamed and split on '\\n' as Beam's ReadFromText splits them."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        yield from handle


def create(path: str) -> BinaryIO:
    """A writable handle on a new file (local folders are created as needed); close it to commit."""
    return FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)


def write_bytes(path: str, data: bytes) -> None:
    """Write a whole file (local folders are created as needed)."""
    with create(path) as handle:
        handle.write(data)


def rename(source: str, destination: str) -> None:
    """Move one file to its final name (replacing a file already there)."""
    FileSystems.rename([source], [destination])


def temp_name() -> str:
    """A unique temporary file name, short whatever the final name (long names stay under 255 bytes)."""
    return TEMP_PREFIX + uuid.uuid4().hex


def temp_path(path: str) -> str:
    """A unique temporary name beside `path` (temp_name in its folder)."""
    folder, _ = FileSystems.split(path)
    return FileSystems.join(folder, temp_name())


def write_bytes_atomic(path: str, data: bytes, temp_folder: str | None = None) -> None:
    """Write a whole file under a temporary name, then rename it: readers see it complete or not at all.

    A retried bundle writes the same deterministic `path` again and the rename replaces it, so a
    file is never half-written and never duplicated. The temporary file goes into `temp_folder` (on the same
    filesystem) or, by default, beside `path`; what an interrupted write leaves is found there (`temp_files`).
    """
    if not is_uri(path):
        _write_local_atomic(path, data, temp_folder)
        return
    temp = FileSystems.join(temp_folder, temp_name()) if temp_folder else temp_path(path)
    write_bytes(temp, data)
    if temp_folder and FileSystems.get_filesystem(path).has_dirs():
        _make_folder(FileSystems.split(path)[0])  # a rename into a missing folder fails there (HDFS)
    rename(temp, path)


def _make_folder(folder: str) -> None:
    """Create a folder on a FileSystems scheme with folders, unless it exists (another writer may make it first)."""
    if FileSystems.exists(folder):
        return
    try:
        FileSystems.mkdirs(folder)
    except OSError:
        if not FileSystems.exists(folder):
            raise


def _write_local_atomic(path: str, data: bytes, temp_folder: str | None) -> None:
    """write_bytes_atomic on a local disk: folders made only when an open or the rename finds none."""
    temp = os.path.join(temp_folder or os.path.dirname(path), temp_name())
    try:
        handle = open(temp, "wb")
    except FileNotFoundError:
        os.makedirs(os.path.dirname(temp), exist_ok=True)
        handle = open(temp, "wb")
    with handle:
        handle.write(data)
    try:
        _replace_into(temp, path, make_folder=temp_folder is not None)
    except OSError as exc:
        if not temp_folder or exc.errno != errno.EXDEV:
            raise
        # The file's folder is on another filesystem (a link inside the tree): write beside the file instead.
        os.remove(temp)
        _write_local_atomic(path, data, None)


def _replace_into(temp: str, path: str, make_folder: bool) -> None:
    """os.replace; with `make_folder`, the file's folder is made when the rename finds none (the temporary file
    sat elsewhere)."""
    try:
        os.replace(temp, path)
    except FileNotFoundError:
        if not make_folder:
            raise
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.replace(temp, path)


def temp_files(folder: str) -> list[str]:
    """Sorted temporary files (TEMP_PREFIX) directly in `folder`, its subfolders left unlisted; none if it is absent.

    A match of `folder/<prefix>*` would not do on a local disk: Beam's LocalFileSystem walks every
    subfolder of the pattern's folder to match it, and the heatmap tree holds a file per image.
    """
    if is_uri(folder):
        return matching(FileSystems.join(folder, TEMP_PREFIX + "*"))  # an object-store prefix listing
    try:
        with os.scandir(folder) as entries:
            return sorted(entry.path for entry in entries if entry.name.startswith(TEMP_PREFIX) and entry.is_file())
    except (FileNotFoundError, NotADirectoryError):
        return []


def matching(pattern: str) -> list[str]:
    """Sorted paths of the files a glob matches (none is an empty list, not an error)."""
    return sorted(meta.path for match in FileSystems.match([pattern]) for meta in match.metadata_list)


def delete(paths: list[str]) -> None:
    """Delete files or folders (recursively); an empty list does nothing."""
    if paths:
        FileSystems.delete(paths)


def parquet_bytes(table: pa.Table) -> bytes:
    """A pyarrow table as the bytes of one Parquet file (snappy)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue().to_pybytes()


def write_parquet(path: str, table: pa.Table) -> None:
    """Write a pyarrow table as one Parquet file, atomically (temporary name, then rename)."""
    write_bytes_atomic(path, parquet_bytes(table))
