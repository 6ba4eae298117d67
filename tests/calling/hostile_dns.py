"""A small DNS server on loopback that misbehaves on purpose, for the caller's side.

It listens on UDP and TCP on one free port of 127.0.0.1, in a daemon thread,
and answers each question with what its ``answer`` function builds from the
query (dnspython messages on the wire, so the DNS path is real). TCP
connections may instead be closed right after the query was read
(``close_tcp``), which is what a crashing or hostile server does.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dns.flags
import dns.message

from tests.support import free_port

Answer = Callable[[dns.message.Message], dns.message.Message]


def truncated(query: dns.message.Message) -> dns.message.Message:
    """An empty reply with TC set: the client must ask again over TCP."""
    reply = dns.message.make_response(query)
    reply.flags |= dns.flags.TC
    return reply


class HostileServer:
    """UDP and TCP on 127.0.0.1:``port``; stop with :meth:`close`."""

    def __init__(self, answer: Answer, *, close_tcp: bool = False) -> None:
        self.answer = answer
        self.close_tcp = close_tcp
        self.port = free_port()
        self.tcp_queries = 0
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind(("127.0.0.1", self.port))
        self._tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._tcp.bind(("127.0.0.1", self.port))
        self._tcp.listen(8)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._serve_udp, daemon=True),
            threading.Thread(target=self._serve_tcp, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _reply(self, wire: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # a test server: garbage gets no answer
            return None
        return self.answer(query).to_wire()

    def _serve_udp(self) -> None:
        self._udp.settimeout(0.2)
        while not self._stop.is_set():
            try:
                wire, peer = self._udp.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = self._reply(wire)
            if reply is not None:
                self._udp.sendto(reply, peer)

    def _serve_tcp(self) -> None:
        self._tcp.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    size = struct.unpack(">H", _read(conn, 2))[0]
                    wire = _read(conn, size)
                except (OSError, EOFError, struct.error):
                    continue
                self.tcp_queries += 1
                if self.close_tcp:
                    conn.shutdown(socket.SHUT_RDWR)  # a clean FIN, no answer
                    continue
                reply = self._reply(wire)
                if reply is not None:
                    conn.sendall(struct.pack(">H", len(reply)) + reply)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        self._udp.close()
        self._tcp.close()


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


@contextmanager
def hostile(answer: Answer, *, close_tcp: bool = False) -> Iterator[HostileServer]:
    server = HostileServer(answer, close_tcp=close_tcp)
    try:
        yield server
    finally:
        server.close()
