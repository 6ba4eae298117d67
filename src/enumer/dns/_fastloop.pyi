from collections.abc import Callable

BATCH: int
SLOT: int

def serve(
    fd: int,
    stop_fd: int,
    zones: dict[bytes, tuple[dict[bytes, bytes], int]],
    fallback: Callable[[bytes, bytes], bytes | None],
    counters: memoryview,
    indices: tuple[int, int, int, int],
    check_batches: int,
    loopback_only: bool,
    /,
) -> None: ...
