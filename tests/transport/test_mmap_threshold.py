"""``pin_mmap_threshold``: large blocks stay out of the heap after one was freed.

Each case runs in a fresh interpreter (the allocator setting lasts for the
process): a 300 KiB block is allocated and freed, which raises glibc's dynamic
mmap threshold, then another is allocated, and glibc's own count of mapped
blocks (``mallinfo2().hblks``) tells where it went.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="mallopt(M_MMAP_THRESHOLD) is glibc's"
)

_PROBE = """
import ctypes, sys
from webims.transport.loop import pin_mmap_threshold

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    ).split()]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = MallInfo2
if sys.argv[1] == "pin":
    assert pin_mmap_threshold()
first = bytearray(300 * 1024)
del first
before = mallinfo2().hblks
second = bytearray(300 * 1024)
print(mallinfo2().hblks - before)
"""


def _mapped_after_a_free(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, timeout=30, check=True
    )
    return int(out.stdout)


def test_pinned_threshold_maps_large_blocks_after_a_free() -> None:
    assert _mapped_after_a_free("pin") == 1


def test_without_it_glibc_moves_large_blocks_into_the_heap() -> None:
    # What the pin prevents (the dynamic threshold of mallopt(3)).
    assert _mapped_after_a_free("default") == 0
