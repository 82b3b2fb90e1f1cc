"""One fetch's cancellation (Ctrl-C, SIGTERM, the total deadline), and reads that obey it.

Every wait of a download looks at its ``Stop`` at least every ``SLICE`` seconds: connects (in
``transport``), backoff sleeps, and each read of a response (``sliced_response``), which waits in
slices of ``SLICE`` up to the read timeout. That alone bounds a cancelled read on every system.
``Stop.stop`` also shuts every registered socket down, which ends a blocked read at once on Linux
and macOS; Winsock documents only ``closesocket`` as failing another thread's blocking call, so on
Windows the slices are what end it.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import socket
import threading
import time
import weakref
from typing import Any

SLICE = 0.2  # seconds: the longest a wait goes without looking at the Stop


class Stopped(Exception):
    """The fetch was cancelled (Ctrl-C, SIGTERM) or passed its total deadline."""


class Stop:
    """One fetch's cancellation: an event, a deadline, and the sockets to shut down on either."""

    def __init__(self, total_timeout: float) -> None:
        self.deadline = time.monotonic() + total_timeout
        self.event = threading.Event()
        self.reason = ""  # "cancelled" or "deadline" once stopped
        self._lock = threading.Lock()
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()

    def stop(self, reason: str) -> None:
        with self._lock:
            if not self.reason:
                self.reason = reason
            self.event.set()
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def register(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)
            stopped = self.event.is_set()
        if stopped:
            _shut(sock)

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def check(self) -> None:
        """Raise ``Stopped`` once cancelled or past the deadline."""
        if not self.event.is_set() and time.monotonic() >= self.deadline:
            self.stop("deadline")
        if self.event.is_set():
            raise Stopped(self.reason)

    def sleep(self, seconds: float) -> None:
        self.event.wait(min(seconds, self.remaining()))
        self.check()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # closed already, or never connected
        sock.shutdown(socket.SHUT_RDWR)


class _SlicedReader(io.RawIOBase):
    """A response's reads, each waiting in slices of ``SLICE`` seconds (the socket's timeout) that
    look at the ``Stop``, up to ``read_timeout`` in all. ``socket.SocketIO`` would refuse every read
    after its first timeout; this one carries on, and closes the socket's own file object with it.
    """

    def __init__(self, sock: socket.socket, stop: Stop, read_timeout: float) -> None:
        super().__init__()
        self.sock, self.stop, self.read_timeout = sock, stop, read_timeout
        self.counted = sock.makefile("rb", buffering=0)  # the socket stays open while a response reads it

    def readinto(self, buffer: Any) -> int:
        ends = time.monotonic() + self.read_timeout
        while True:
            self.stop.check()
            try:
                return self.sock.recv_into(buffer)
            except socket.timeout:
                if time.monotonic() >= ends:
                    raise

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        if not self.closed:
            self.counted.close()
        super().close()


def sliced_response(stop: Stop, read_timeout: float) -> Any:
    """A ``response_class`` whose body and headers are read through a ``_SlicedReader``."""

    def response(sock: socket.socket, *args: Any, **kwargs: Any) -> http.client.HTTPResponse:
        made = http.client.HTTPResponse(sock, *args, **kwargs)
        own = made.fp
        made.fp = io.BufferedReader(_SlicedReader(sock, stop, read_timeout))
        own.close()  # nothing was read from it; the reader holds the socket open instead
        return made

    return response
