"""The one place cam-audit reads, writes, lists, renames and deletes files: Beam FileSystems for every scheme."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems


def exists(path: str) -> bool:
    """Whether a file or folder exists on any FileSystems path."""
    return FileSystems.exists(path)


def read_bytes(path: str) -> bytes:
    """All bytes of a file on any FileSystems path, with no decompression by extension."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        return handle.read()


def read_head(path: str, size: int) -> bytes:
    """At most the first `size` bytes of a file."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        return handle.read(size)


def write_bytes(path: str, data: bytes) -> None:
    """Write a whole file (local folders are created as needed)."""
    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        handle.write(data)


def matching(pattern: str) -> list[str]:
    """Sorted paths of the files a glob matches (none is an empty list, not an error)."""
    return sorted(meta.path for match in FileSystems.match([pattern]) for meta in match.metadata_list)


def delete(paths: list[str]) -> None:
    """Delete files or folders (recursively); an empty list does nothing."""
    if paths:
        FileSystems.delete(paths)


def write_parquet(path: str, table: pa.Table) -> None:
    """Write a pyarrow table as one Parquet file (snappy), through FileSystems like every other write."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    write_bytes(path, sink.getvalue().to_pybytes())
