"""The worker's allocator settings: glibc's thresholds raised where there is a mallopt, nothing changed elsewhere."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import transforms.allocator as allocator

ROOT = Path(__file__).resolve().parents[1]
# Run in a process of its own (the settings are process-wide): how many bytes of mapped (not arena) memory a
# 24 MiB buffer adds, read from glibc's mallinfo2 (hblkhd: bytes in mmapped regions).
_MAPPED_BYTES_OF_A_BUFFER = """
import ctypes, ctypes.util, sys
import transforms.allocator as allocator

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
if sys.argv[1] == "keep":
    assert allocator.keep_freed_memory()
before = libc.mallinfo2().hblkhd
buffer = libc.malloc(24 * 1024 * 1024)
print(libc.mallinfo2().hblkhd - before)
"""


def _glibc_with_mallinfo2() -> bool:
    name = ctypes.util.find_library("c")
    return bool(name) and hasattr(ctypes.CDLL(name), "mallopt") and hasattr(ctypes.CDLL(name), "mallinfo2")


@pytest.mark.skipif(not _glibc_with_mallinfo2(), reason="needs glibc >= 2.33 (mallopt, mallinfo2)")
def test_a_buffer_under_the_raised_threshold_comes_from_the_arena_not_a_fresh_mapping() -> None:
    def mapped_bytes(mode: str) -> int:
        completed = subprocess.run([sys.executable, "-c", _MAPPED_BYTES_OF_A_BUFFER, mode], capture_output=True,
                                   text=True, check=True, cwd=ROOT)
        return int(completed.stdout.strip().splitlines()[-1])

    assert mapped_bytes("default") >= 24 * 1024 * 1024  # glibc maps a buffer this large afresh by default
    assert mapped_bytes("keep") == 0  # under the raised threshold: arena memory, kept for reuse once freed


def test_without_mallopt_nothing_is_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator.ctypes.util, "find_library", lambda name: None)
    assert allocator.keep_freed_memory() is False


def test_worker_processes_started_after_the_launcher_asks_give_arrow_the_c_allocator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(allocator.ARROW_POOL_VARIABLE, raising=False)
    allocator.arrow_pool_for_workers()
    assert os.environ[allocator.ARROW_POOL_VARIABLE] == "system"
    # A process started from here (as Beam's local runner starts its workers) allocates Arrow buffers with it.
    completed = subprocess.run(
        [sys.executable, "-c", "import pyarrow as pa; print(pa.default_memory_pool().backend_name)"],
        capture_output=True, text=True, check=True,
    )
    assert completed.stdout.strip() == "system"


def test_a_pool_the_user_chose_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(allocator.ARROW_POOL_VARIABLE, "jemalloc")
    allocator.arrow_pool_for_workers()
    assert os.environ[allocator.ARROW_POOL_VARIABLE] == "jemalloc"
