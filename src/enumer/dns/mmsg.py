"""Batched UDP I/O for the gateway's worker processes: ``recvmmsg``/``sendmmsg``.

Why: on this kind of machine a system call costs about 3.5 µs, and a query
answered with ``recvfrom`` + ``sendto`` pays two of them -- more than the
Python that builds the answer.  Linux's ``recvmmsg`` takes up to
:data:`BATCH` datagrams in one call and ``sendmmsg`` sends their answers in
one call, which is how NSD and other C servers amortise the cost.

How: libc is called through cffi in ABI mode (no compiler needed; cffi comes
with coincurve).  All the C memory is allocated once per socket.  The
per-datagram work is kept off cffi's attribute machinery: the ``msg_len``,
``msg_namelen`` and ``iov_len`` fields are read and written through
``memoryview`` casts at offsets computed from the structure layout, and each
answer is copied into the slot its query came in, so that the same
``mmsghdr`` array (with the sender address the kernel filled in) is handed
straight to ``sendmmsg``.

Only Linux has these calls; :func:`available` says whether this process can
use them, and the server falls back to ``recvfrom``/``sendto`` otherwise.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any

#: Datagrams per system call.  64 is where the gain flattens out (a full batch
#: is already 128 fewer system calls than the unbatched loop).
BATCH = 64
#: Bytes per slot.  Queries are far smaller; answers fit because a UDP answer
#: is at most the EDNS size we advertise (1232).  A longer datagram arrives
#: cut (``MSG_TRUNC``) and is dropped.
SLOT = 4096
#: sockaddr_in6 is the larger of the two address structures we may receive.
NAME_SIZE = 28
_DONTWAIT = int(socket.MSG_DONTWAIT)
#: MSG_WAITFORONE: block for the first datagram only, then take what is queued.
_WAITFORONE = 0x10000

_CDEF = """
struct iovec { void *iov_base; size_t iov_len; };
struct msghdr {
    void *msg_name; unsigned int msg_namelen;
    struct iovec *msg_iov; size_t msg_iovlen;
    void *msg_control; size_t msg_controllen;
    int msg_flags;
};
struct mmsghdr { struct msghdr msg_hdr; unsigned int msg_len; };
int recvmmsg(int fd, struct mmsghdr *msgvec, unsigned int vlen, int flags, void *timeout);
int sendmmsg(int fd, struct mmsghdr *msgvec, unsigned int vlen, int flags);
"""

_ffi: Any = None
_libc: Any = None


def available() -> bool:
    """Whether ``recvmmsg``/``sendmmsg`` can be called (Linux with cffi).

    ``ENUMER_NO_MMSG=1`` in the environment turns batching off (the plain
    loop), for comparison and as an escape hatch.
    """
    global _ffi, _libc
    if os.environ.get("ENUMER_NO_MMSG"):
        return False
    if _libc is not None:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        import cffi  # type: ignore[import-untyped]

        ffi = cffi.FFI()
        ffi.cdef(_CDEF)
        libc = ffi.dlopen(None)
        libc.recvmmsg  # noqa: B018 -- resolving the symbol is the check
        libc.sendmmsg  # noqa: B018
    except (ImportError, OSError, AttributeError):
        return False
    _ffi, _libc = ffi, libc
    return True


def address(raw: bytes) -> tuple[str, int]:
    """``(host, port)`` of a raw ``sockaddr_in``/``sockaddr_in6`` (for limits and logs)."""
    family = int.from_bytes(raw[0:2], sys.byteorder)
    port = int.from_bytes(raw[2:4], "big")
    if family == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24]), port
    return socket.inet_ntop(socket.AF_INET, raw[4:8]), port


class BatchSocket:
    """One UDP socket read and answered :data:`BATCH` datagrams at a time.

    Use: ``n = recv()``; for each ``i < n`` read ``datagram(i)`` and either
    ``reply(i, answer)`` or ``skip(i)``; then ``flush(n)`` sends every reply
    in as few ``sendmmsg`` calls as the skipped slots allow.
    """

    def __init__(self, sock: socket.socket, batch: int = BATCH) -> None:
        if not available():
            raise OSError("recvmmsg/sendmmsg are not available on this system")
        ffi = _ffi
        self._fd = sock.fileno()
        self.batch = batch
        self._msgs = ffi.new("struct mmsghdr[]", batch)
        self._iovs = ffi.new("struct iovec[]", batch)
        self._data = ffi.new("char[]", batch * SLOT)
        self._names = ffi.new("char[]", batch * NAME_SIZE)
        for i in range(batch):
            self._iovs[i].iov_base = self._data + i * SLOT
            self._iovs[i].iov_len = SLOT
            hdr = self._msgs[i].msg_hdr
            hdr.msg_name = self._names + i * NAME_SIZE
            hdr.msg_namelen = NAME_SIZE
            hdr.msg_iov = self._iovs + i
            hdr.msg_iovlen = 1
        # Field views: index = (slot * struct size + field offset) / field size.
        msg_size = ffi.sizeof("struct mmsghdr")
        iov_size = ffi.sizeof("struct iovec")
        u32 = memoryview(ffi.buffer(self._msgs)).cast("B").cast("I")
        self._u32 = u32
        len_at = ffi.offsetof("struct mmsghdr", "msg_len") // 4
        name_at = (
            ffi.offsetof("struct mmsghdr", "msg_hdr") + ffi.offsetof("struct msghdr", "msg_namelen")
        ) // 4
        flags_at = (
            ffi.offsetof("struct mmsghdr", "msg_hdr") + ffi.offsetof("struct msghdr", "msg_flags")
        ) // 4
        step = msg_size // 4
        self._len_index = [i * step + len_at for i in range(batch)]
        self._namelen_index = [i * step + name_at for i in range(batch)]
        self._flags_index = [i * step + flags_at for i in range(batch)]
        iov_bytes = memoryview(ffi.buffer(self._iovs)).cast("B")
        self._iov_len = iov_bytes.cast("Q") if ffi.sizeof("size_t") == 8 else iov_bytes.cast("I")
        iov_len_step = iov_size // self._iov_len.itemsize
        iov_len_at = ffi.offsetof("struct iovec", "iov_len") // self._iov_len.itemsize
        self._iov_len_index = [i * iov_len_step + iov_len_at for i in range(batch)]
        self._buf = memoryview(ffi.buffer(self._data)).cast("B")
        self._names_buf = memoryview(ffi.buffer(self._names)).cast("B")
        self._replied = [False] * batch
        self._trunc = int(socket.MSG_TRUNC)  # an IntFlag member costs µs per &

    def recv(self, wait: bool = False) -> int:
        """Take up to ``batch`` queued datagrams; 0 when none.

        With ``wait`` it blocks until one arrives (or the socket's
        ``SO_RCVTIMEO`` passes), then takes whatever else is queued.  Blocked
        readers of one socket are woken one per datagram by the kernel, so
        several workers can wait on a shared socket without a thundering herd.
        """
        flags = _WAITFORONE if wait else _DONTWAIT
        n: int = _libc.recvmmsg(self._fd, self._msgs, self.batch, flags, _ffi.NULL)
        if n < 0:
            err = _ffi.errno
            if err in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                return 0
            raise OSError(err, f"recvmmsg: {errno.errorcode.get(err, err)}")
        return n

    def datagram(self, i: int) -> bytes | None:
        """The bytes of datagram ``i``; None when it was longer than a slot (cut)."""
        if self._u32[self._flags_index[i]] & self._trunc:
            return None
        start = i * SLOT
        return bytes(self._buf[start : start + self._u32[self._len_index[i]]])

    def sender(self, i: int) -> tuple[str, int]:
        """``(host, port)`` of datagram ``i``'s sender."""
        start = i * NAME_SIZE
        return address(bytes(self._names_buf[start : start + self._u32[self._namelen_index[i]]]))

    def reply(self, i: int, answer: bytes) -> None:
        """Send ``answer`` to datagram ``i``'s sender at the next :meth:`flush`."""
        start = i * SLOT
        self._buf[start : start + len(answer)] = answer
        self._iov_len[self._iov_len_index[i]] = len(answer)
        self._replied[i] = True

    def flush(self, n: int) -> int:
        """Send the replies of slots ``0..n-1``; make every slot ready to receive again.

        Returns how many replies the kernel refused (counted as errors by the
        caller); the slots are reset either way.
        """
        failed = 0
        for start, count in self._runs(n):
            failed += self._send(start, count)
        iov_len, iov_index = self._iov_len, self._iov_len_index
        u32, name_index = self._u32, self._namelen_index
        replied = self._replied
        for i in range(n):
            iov_len[iov_index[i]] = SLOT
            u32[name_index[i]] = NAME_SIZE
            replied[i] = False
        return failed

    def _runs(self, n: int) -> Iterator[tuple[int, int]]:
        """Maximal runs ``(start, count)`` of consecutive replied slots."""
        replied = self._replied
        i = 0
        while i < n:
            if not replied[i]:
                i += 1
                continue
            start = i
            while i < n and replied[i]:
                i += 1
            yield start, i - start

    def _send(self, start: int, count: int) -> int:
        """``sendmmsg`` slots ``start..start+count-1``; a refused datagram is skipped."""
        failed = 0
        while count > 0:
            sent: int = _libc.sendmmsg(self._fd, self._msgs + start, count, 0)
            if sent < 0:
                if _ffi.errno == errno.EINTR:
                    continue
                sent = 1  # the first one cannot go (e.g. EPERM, EMSGSIZE): skip it
                failed += 1
            start += sent
            count -= sent
        return failed
