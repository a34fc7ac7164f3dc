"""A PNG's image data inflated by libdeflate and stored uncompressed: OpenCV then decodes the same pixels faster.

OpenCV decodes PNG through libpng, which inflates the image data with the system's zlib: about half of
a radiograph's decode time (bench/README.md, session 15). libdeflate inflates a whole buffer several
times faster. `inflate_png` inflates the image data once with it and returns the same PNG with that data
in stored (uncompressed) DEFLATE blocks, so libpng only copies it and does everything else as before:
unfiltering, bit depths, palettes, every other chunk. The pixels are the same by construction (tested
against the original bytes' decode).

Whenever the bytes are anything but a plain, intact, non-interlaced PNG (a bad CRC, a zlib stream that
is short, long, followed by extra data or wants a preset dictionary, an animated or interlaced image, a
very large one), `inflate_png` returns None and the caller decodes the original bytes: every damaged
file keeps the error it had.
"""

from __future__ import annotations

import struct

import deflate

from transforms.image_header import PNG_SIGNATURE

# Above this the extra copy of the inflated data would outweigh the time saved on memory-tight workers;
# such images (64 MiB of scanlines: 8-bit grey at 64 MP) decode as they are.
MAX_INFLATED_BYTES = 64 * 2**20

_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel
_ANIMATION_CHUNKS = frozenset([b"acTL", b"fcTL", b"fdAT"])
_STORED_BLOCK_BYTES = 65535  # the most one stored DEFLATE block holds
_ZLIB_HEADER = b"\x78\x01"  # deflate, 32 KiB window, no dictionary; (0x78 * 256 + 0x01) % 31 == 0


def png_chunks(data: bytes) -> list[tuple[bytes, int, int]] | None:
    """(type, start, end) of each chunk from the signature to IEND inclusive, or None if they do not fit."""
    chunks = []
    position = len(PNG_SIGNATURE)
    while position + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, position)
        end = position + 12 + length
        if end > len(data):
            return None
        kind = bytes(data[position + 4 : position + 8])
        chunks.append((kind, position, end))
        if kind == b"IEND":
            return chunks
        position = end
    return None


def scanline_bytes(width: int, height: int, bit_depth: int, colour_type: int) -> int:
    """Bytes of a non-interlaced PNG's filtered scanlines: a filter byte and the packed samples per row."""
    return height * (1 + (width * _CHANNELS[colour_type] * bit_depth + 7) // 8)


def crc_matches(data: bytes, start: int, end: int) -> bool:
    """Whether the chunk at data[start:end] carries the CRC of its type and data."""
    (stored,) = struct.unpack_from(">I", data, end - 4)
    return deflate.crc32(memoryview(data)[start + 4 : end - 4]) == stored


def stored_png(head: memoryview, raw: bytes, tail: memoryview) -> bytearray:
    """`head`, one IDAT chunk holding `raw` as a zlib stream of stored DEFLATE blocks (RFC 1950; RFC 1951
    3.2.4), then `tail`: built in one buffer, each byte copied once."""
    blocks = max(1, -(-len(raw) // _STORED_BLOCK_BYTES))
    stream_bytes = len(_ZLIB_HEADER) + 5 * blocks + len(raw) + 4
    png = bytearray(len(head) + 12 + stream_bytes + len(tail))
    png[: len(head)] = head
    chunk = len(head)
    struct.pack_into(">I4s", png, chunk, stream_bytes, b"IDAT")
    position = chunk + 8
    png[position : position + 2] = _ZLIB_HEADER
    position += 2
    source = memoryview(raw)
    for block in range(blocks):
        piece = source[block * _STORED_BLOCK_BYTES : (block + 1) * _STORED_BLOCK_BYTES]
        final = 1 if block == blocks - 1 else 0
        struct.pack_into("<BHH", png, position, final, len(piece), 0xFFFF ^ len(piece))
        png[position + 5 : position + 5 + len(piece)] = piece
        position += 5 + len(piece)
    struct.pack_into(">I", png, position, deflate.adler32(raw))
    struct.pack_into(">I", png, position + 4, deflate.crc32(memoryview(png)[chunk + 4 : position + 4]))
    png[position + 8 :] = tail
    return png


def _zlib_header_is_plain(stream: bytes) -> bool:
    """A zlib header for DEFLATE with a valid check and no preset dictionary (which PNG forbids)."""
    if len(stream) < 6:
        return False
    method, flags = stream[0], stream[1]
    return method & 0x0F == 8 and method >> 4 <= 7 and (method * 256 + flags) % 31 == 0 and not flags & 0x20


def inflate_png(data: bytes) -> bytearray | None:
    """The same PNG with its image data inflated by libdeflate and stored uncompressed; None where it does not apply."""
    if not data.startswith(PNG_SIGNATURE):
        return None
    chunks = png_chunks(data)
    if not chunks or chunks[0][0] != b"IHDR" or chunks[0][2] - chunks[0][1] != 25:
        return None
    width, height, bit_depth, colour_type, compression, filtering, interlace = struct.unpack_from(
        ">IIBBBBB", data, chunks[0][1] + 8
    )
    if colour_type not in _CHANNELS or bit_depth not in (1, 2, 4, 8, 16):
        return None
    if (compression, filtering, interlace) != (0, 0, 0):  # Adam7 rows are laid out differently: left to libpng
        return None
    idat = [index for index, (kind, _, _) in enumerate(chunks) if kind == b"IDAT"]
    if not idat or idat[-1] - idat[0] + 1 != len(idat) or any(kind in _ANIMATION_CHUNKS for kind, _, _ in chunks):
        return None
    expected = scanline_bytes(width, height, bit_depth, colour_type)
    if expected > MAX_INFLATED_BYTES:
        return None
    first, last = chunks[idat[0]][1], chunks[idat[-1]][2]
    if not all(crc_matches(data, chunks[index][1], chunks[index][2]) for index in idat):
        return None
    view = memoryview(data)
    stream = b"".join(view[chunks[index][1] + 8 : chunks[index][2] - 4] for index in idat)
    if not _zlib_header_is_plain(stream):
        return None
    try:
        raw = deflate.zlib_decompress(stream, expected)
    except deflate.DeflateError:
        return None
    # Exactly the scanlines, and the stream ends where the image data ends: libpng would warn or fail on
    # anything else, and the original bytes then keep that behaviour.
    if len(raw) != expected or stream[-4:] != struct.pack(">I", deflate.adler32(raw)):
        return None
    return stored_png(view[:first], raw, view[last : chunks[-1][2]])
