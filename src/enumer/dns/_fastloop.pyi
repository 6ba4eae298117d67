from collections.abc import Callable
from mmap import mmap

BATCH: int
SLOT: int

def serve(
    fd: int,
    stop_fd: int,
    zones: dict[bytes, tuple[dict[bytes, bytes] | mmap, int, bytes | None]],
    fallback: Callable[[bytes, bytes], bytes | None],
    counters: memoryview,
    indices: tuple[int, int, int, int, int],
    check_batches: int,
    check_seconds: float,
    loopback_only: bool,
    soa_pointers: tuple[int, int, int],
    stale: Callable[[], bool] | None,
    /,
) -> bool | None: ...
