"""UDP worker processes and their supervision (``udp_workers > 1``).

The GIL caps one process at one core, so the gateway can fork N processes
that all read the same UDP sockets (one socket per address shared by all
workers, rather than SO_REUSEPORT sockets per worker, so that no queued
datagram is lost when a worker is replaced).  A worker gets the answer table
by ``fork`` and never sees later changes, so a supervisor thread in the
parent re-forks all workers whenever the view object or any source's
``generation``/``serial`` changes (at most once per
``worker_refresh_interval`` seconds, so answers lag the parent by about that
much) and at least every ``worker_max_age`` seconds (the status text a
worker serves is a snapshot taken at fork time).  New workers start first;
then the old ones are told to stop through a pipe and exit between two
packets, so a re-fork loses nothing.  A worker also exits when the parent
dies (the pipe closes).  Workers count into shared-memory blocks of the
parent's ``Metrics``; their log lines reach the parent through a pipe.

Because a worker is forked from a threaded process,
``AnswerSource.answer``/``generation``/``serial`` must not take locks that
another thread may hold (a dict lookup is fine); a worker stuck on one
anyway only stops reading (the others take its share) and is replaced at the
next re-fork.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time

from enumer.dns import udp
from enumer.dns.metrics import Metrics
from enumer.dns.ratelimit import RateLimiter
from enumer.dns.serving import Log, ServerConfig, ViewProvider
from enumer.dns.wire import GatewayView

__all__ = ["WorkerPool"]


class _Worker:
    def __init__(self, pid: int, block: memoryview, stop_w: int) -> None:
        self.pid = pid
        self.block = block
        self.stop_w = stop_w  # closing it asks the worker to exit


class WorkerPool:
    """``config.udp_workers`` forked processes serving the UDP sockets ``socks``."""

    def __init__(
        self,
        socks: list[socket.socket],
        view_provider: ViewProvider,
        config: ServerConfig,
        metrics: Metrics,
        log: Log,
    ) -> None:
        self._udp = socks
        self.view_provider = view_provider
        self.config = config
        self.metrics = metrics
        self.log = log
        self._stop_event = threading.Event()
        self._workers: list[_Worker] = []
        self._worker_stamp: object = None
        #: The view stamp every running worker was forked on, set once the workers
        #: before them have exited (None during a re-fork): answers are then all new.
        self.settled: object = None
        self._worker_started = 0.0
        self._last_fork = 0.0
        self._log_w = -1
        self._log_thread: threading.Thread | None = None
        self._supervisor: threading.Thread | None = None

    @property
    def pids(self) -> list[int]:
        """The process ids of the current workers."""
        return [w.pid for w in self._workers]

    def start(self) -> None:
        """Fork the first workers; return when they serve (raise when none could start)."""
        r, w = os.pipe()
        os.set_blocking(w, False)
        self._log_w = w
        self._log_thread = threading.Thread(
            target=self._read_worker_log, args=(r,), name="enumer-worker-log", daemon=True
        )
        self._log_thread.start()
        # The supervisor thread forks every worker, the first ones included.
        ready = threading.Event()
        failure: list[BaseException] = []
        self._supervisor = threading.Thread(
            target=self._supervise, args=(ready, failure), name="enumer-workers", daemon=True
        )
        self._supervisor.start()
        ready.wait()
        if failure:
            self.stop()
            raise failure[0]

    def stop(self) -> None:
        """Retire every worker and stop the supervisor and the log reader."""
        self._stop_event.set()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(10)
        self._retire(self._workers)
        self._workers = []
        if self._log_w >= 0:  # the log reader thread sees EOF once no worker holds it
            os.close(self._log_w)
            self._log_w = -1
        if self._log_thread is not None:
            self._log_thread.join(5)

    def _read_worker_log(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as stream:
            for line in stream:
                self.log(line.decode("utf-8", "replace").rstrip("\n"))

    def _supervise(self, ready: threading.Event, failure: list[BaseException]) -> None:
        cfg = self.config
        try:
            self._refork(self.view_provider())
            if not self._workers:
                raise OSError("cannot start any UDP worker process")
        except BaseException as exc:
            failure.append(exc)
            return
        finally:
            ready.set()
        while not self._stop_event.wait(min(0.2, cfg.worker_refresh_interval)):
            try:
                self._reap()
                view = self.view_provider()
                stamp = (id(view), view.stamp())
                now = time.monotonic()
                age = now - self._worker_started
                stale = stamp != self._worker_stamp or age > cfg.worker_max_age
                missing = len(self._workers) < cfg.udp_workers
                if (stale or missing) and now - self._last_fork >= cfg.worker_refresh_interval:
                    self._refork(view)
            except Exception as exc:
                self.log(f"UDP worker supervisor: {exc!r}")

    def _refork(self, view: GatewayView) -> None:
        """Start a full set of workers on ``view``, then stop the previous ones."""
        stamp = (id(view), view.stamp())
        try:
            text = view.status()
        except Exception as exc:
            text = f"status unavailable: {exc!r}"
        self._last_fork = time.monotonic()
        self.settled = None
        old = self._workers
        new: list[_Worker] = []
        try:
            for _i in range(self.config.udp_workers):
                new.append(self._fork(view, text))
        except OSError as exc:  # keep serving with what we have; retried later
            self._workers = old + new
            self.log(f"cannot fork a UDP worker: {exc}")
            return
        self._workers = new
        self._worker_stamp = stamp
        self._worker_started = time.monotonic()
        self._retire(old)
        self.settled = stamp[1]

    def _fork(self, view: GatewayView, status_text: str) -> _Worker:
        block = self.metrics.add_worker_block()
        stop_r, stop_w = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(stop_r)
            os.close(stop_w)
            self.metrics.retire_worker_block(block)
            raise
        if pid:
            os.close(stop_r)
            return _Worker(pid, block, stop_w)
        # --- child: serve UDP until told to stop, never return ---
        code = 0
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            # Keep stdio, the log pipe, the stop pipe and the UDP sockets; close
            # every other descriptor (TCP listeners and connections, other
            # workers' stop pipes, other components' sockets) so that the
            # parent closing them really closes them.  The parent's death
            # closes the stop pipe: the worker exits with it.
            log_fd = self._log_w
            keep = sorted({log_fd, stop_r, *(sock.fileno() for sock in self._udp)})
            low = 3
            for fd in keep:
                if fd >= low:
                    os.closerange(low, fd)
                    low = fd + 1
            os.closerange(low, os.sysconf("SC_OPEN_MAX"))
            view.status = lambda: status_text

            def child_log(line: str) -> None:
                with contextlib.suppress(OSError):  # pipe full: drop the line
                    os.write(log_fd, (line.replace("\n", " ")[:3000] + "\n").encode())

            cfg = self.config
            limiter = (
                RateLimiter(cfg.ratelimit, scale=cfg.udp_workers) if cfg.ratelimit.enabled else None
            )
            qlog = child_log if cfg.query_log else None
            duty = udp.UdpDuty(
                lambda: view, block, limiter, cfg.max_udp, qlog, child_log, cfg.signed
            )
            udp.serve_udp_worker(self._udp, stop_r, duty)
        except BaseException as exc:
            code = 1
            # Say why in the parent's log: a worker that dies in silence is
            # only a restart loop to the operator.
            with contextlib.suppress(Exception):
                os.write(self._log_w, f"UDP worker {os.getpid()} failed: {exc!r}\n".encode())
        finally:
            os._exit(code)

    def _reap(self) -> None:
        for worker in list(self._workers):
            try:
                pid, status = os.waitpid(worker.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = worker.pid, 0
            if pid:
                self.log(f"UDP worker {worker.pid} exited (status {status}); restarting")
                self._workers.remove(worker)
                with contextlib.suppress(OSError):
                    os.close(worker.stop_w)
                self.metrics.retire_worker_block(worker.block)

    def _retire(self, workers: list[_Worker], grace: float = 3.0) -> None:
        """Ask workers to exit (they finish the packet at hand), SIGKILL after ``grace``."""
        for worker in workers:
            with contextlib.suppress(OSError):
                os.close(worker.stop_w)
        deadline = time.monotonic() + grace
        for worker in workers:
            try:
                while not os.waitpid(worker.pid, os.WNOHANG)[0]:
                    if time.monotonic() > deadline:
                        os.kill(worker.pid, signal.SIGKILL)
                        os.waitpid(worker.pid, 0)
                        break
                    time.sleep(0.005)
            except (ChildProcessError, ProcessLookupError):
                pass
            self.metrics.retire_worker_block(worker.block)
