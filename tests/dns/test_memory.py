"""A build's freed C heap goes back to the system (glibc's malloc_trim)."""

from __future__ import annotations

from pathlib import Path

from enumer.dns import memory


def anonymous_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise AssertionError("no RssAnon in /proc/self/status")


def test_freed_heap_blocks_under_a_live_one_are_returned() -> None:
    """Blocks of 100 KiB come from the C heap (below glibc's mmap threshold); with a
    live block above them the heap cannot shrink by itself, and stays resident."""
    blocks = [bytes([n % 256]) * (100 << 10) for n in range(1500)]  # about 150 MiB
    above = [bytes(700) for _ in range(100)]  # live, after them in the heap
    resident = anonymous_kib()
    del blocks
    memory.trim()
    assert resident - anonymous_kib() > 100 << 10  # more than 100 MiB handed back
    assert len(above) == 100
