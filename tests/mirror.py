"""A loopback stand-in for the upstream host or a corporate mirror, with faults on demand.

It serves a folder (``../shared/encodings-mirror``) with ``Range`` / ``If-Range`` support (the
standard library's server has none), strong ETags, optional TLS, bandwidth and latency throttling,
and injectable faults; it counts every request and byte it serves. ``ForwardProxy`` is a loopback
HTTP proxy (absolute-URI requests and CONNECT tunnels) that counts what went through it.

Used by the tests and by ``scripts/bench.py``; ``python tests/mirror.py DIR`` serves DIR by hand.
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import select
import socket
import ssl
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHUNK = 16 * 1024


@dataclass
class Fault:
    """What to do instead of a plain answer, for the next ``times`` requests of one path.

    kind: "status" (answer ``status``, with ``retry_after`` if set), "corrupt" (flip a byte),
    "truncate" (announce the full length, send ``fraction`` of it, close), "cut" (send ``fraction``
    then reset the connection), "stall" (send ``fraction`` then wait ``seconds``), "ignore-range"
    (answer 200 with the whole file to a Range request), "redirect" (302 to ``location`` + path),
    "wrong-range" (answer a Range request with 206 and a range starting one byte later),
    "oversize" (``extra`` bytes after the file, announced in Content-Length), "oversize-unannounced"
    (the same with no Content-Length, ended by closing), "drip" (one byte every ``seconds``).
    """

    kind: str
    times: int = 1
    status: int = 500
    retry_after: str | None = None
    fraction: float = 0.5
    seconds: float = 5.0
    location: str = ""
    extra: int = 0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    status: int = 0
    sent: int = 0


class TokenBucket:
    """A bandwidth cap: each caller reserves the next free slot of the shared link."""

    def __init__(self, bytes_per_second: float) -> None:
        self.rate = bytes_per_second
        self.lock = threading.Lock()
        self.next_free = time.monotonic()

    def consume(self, n: int) -> None:
        with self.lock:
            start = max(time.monotonic(), self.next_free)
            self.next_free = start + n / self.rate
            done = self.next_free
        delay = done - time.monotonic()
        if delay > 0:
            time.sleep(delay)


@dataclass
class MirrorState:
    root: Path
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    require_auth: str | None = None  # the exact Authorization header wanted
    validators: bool = True  # send ETag and Last-Modified
    latency: float = 0.0  # seconds before each answer
    bandwidth: float | None = None  # bytes/s shared by all connections
    per_connection_bandwidth: float | None = None  # bytes/s for each connection
    seen: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    shared_bucket: TokenBucket | None = None

    def next_fault(self, path: str) -> Fault | None:
        with self.lock:
            queue = self.faults.get(path, [])
            if not queue:
                return None
            fault = queue[0]
            fault.times -= 1
            if fault.times <= 0:
                queue.pop(0)
            return fault


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_GET(self) -> None:
        self._answer(head=False)

    def _answer(self, head: bool) -> None:
        state = self.server.state
        seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        with state.lock:
            state.seen.append(seen)
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            if state.latency:
                time.sleep(state.latency)
            self._serve(state, seen, head)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with state.lock:
                state.in_flight -= 1

    def _status(self, seen: Seen, code: int, headers: dict[str, str] | None = None) -> None:
        seen.status = code
        body = f"{code}\n".encode()
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _serve(self, state: MirrorState, seen: Seen, head: bool) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        if state.require_auth is not None and self.headers.get("Authorization") != state.require_auth:
            self._status(seen, 401, {"WWW-Authenticate": 'Basic realm="mirror"'})
            return
        fault = state.next_fault(path)
        if fault and fault.kind == "status":
            self._status(seen, fault.status, {"Retry-After": fault.retry_after} if fault.retry_after else {})
            return
        if fault and fault.kind == "redirect":
            self._status(seen, 302, {"Location": fault.location.rstrip("/") + "/" + path})
            return
        file = (state.root / path).resolve()
        if state.root.resolve() not in file.parents or not file.is_file():
            self._status(seen, 404)
            return
        data = file.read_bytes()
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        start, end, status = 0, len(data), 200
        wanted = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if wanted and (if_range is None or if_range == etag) and not (fault and fault.kind == "ignore-range"):
            first, _, last = wanted.removeprefix("bytes=").partition("-")
            start = int(first) + (1 if fault and fault.kind == "wrong-range" else 0)
            end = int(last) + 1 if last else len(data)
            if start >= len(data):
                self._status(seen, 416, {"Content-Range": f"bytes */{len(data)}"})
                return
            status = 206
        body = bytearray(data[start:end])
        if fault and fault.kind == "corrupt":
            body[len(body) // 2] ^= 0xFF
        if fault and fault.kind.startswith("oversize"):
            body += b"x" * fault.extra
        seen.status = status
        self.send_response(status)
        if not (fault and fault.kind == "oversize-unannounced"):
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if state.validators:
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", "Tue, 01 Oct 2024 00:00:00 GMT")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        self.end_headers()
        if head:
            return
        if fault and fault.kind == "drip":
            self._drip(seen, bytes(body), fault.seconds)
            return
        limit = len(body)
        if fault and fault.kind in ("truncate", "cut", "stall"):
            limit = int(len(body) * fault.fraction)
        self._send(state, seen, bytes(body[:limit]))
        if fault and fault.kind == "stall":
            time.sleep(fault.seconds)
        elif fault and fault.kind == "cut":
            # An RST, not a clean close: SO_LINGER with a zero timeout.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        elif fault and fault.kind == "truncate":
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)

    def _drip(self, seen: Seen, data: bytes, seconds: float) -> None:
        """One byte every ``seconds``, until the client hangs up (or a minute has passed)."""
        ends = time.monotonic() + 60
        for offset in range(len(data)):
            if time.monotonic() > ends:
                return
            self.wfile.write(data[offset : offset + 1])
            self.wfile.flush()
            seen.sent += 1
            time.sleep(seconds)

    def _send(self, state: MirrorState, seen: Seen, data: bytes) -> None:
        own = TokenBucket(state.per_connection_bandwidth) if state.per_connection_bandwidth else None
        for offset in range(0, len(data), CHUNK):
            chunk = data[offset : offset + CHUNK]
            if state.shared_bucket:
                state.shared_bucket.consume(len(chunk))
            if own:
                own.consume(len(chunk))
            self.wfile.write(chunk)
            seen.sent += len(chunk)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], state: MirrorState, context: ssl.SSLContext | None) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)
        self.state = state
        self.context = context

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.context is not None:
            sock = self.context.wrap_socket(sock, server_side=True)
        return sock, address


class Mirror:
    """``with Mirror(root) as mirror:`` serves root at ``mirror.url`` until the block ends."""

    def __init__(
        self, root: Path, host: str = "127.0.0.1", context: ssl.SSLContext | None = None, port: int = 0
    ) -> None:
        self.state = MirrorState(Path(root))
        self.server = _Server((host, port), self.state, context)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        scheme = "https" if context else "http"
        shown = f"[{host}]" if ":" in host else host
        self.url = f"{scheme}://{shown}:{self.server.server_address[1]}/"

    def __enter__(self) -> Mirror:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fault(self, path: str, fault: Fault) -> None:
        self.state.faults.setdefault(path, []).append(fault)

    def throttle(
        self, bandwidth: float | None = None, per_connection: float | None = None, latency: float = 0.0
    ) -> None:
        self.state.bandwidth = bandwidth
        self.state.shared_bucket = TokenBucket(bandwidth) if bandwidth else None
        self.state.per_connection_bandwidth = per_connection
        self.state.latency = latency

    @property
    def seen(self) -> list[Seen]:
        return list(self.state.seen)

    @property
    def bytes_served(self) -> int:
        return sum(s.sent for s in self.state.seen)

    def reset_counts(self) -> None:
        with self.state.lock:
            self.state.seen.clear()
            self.state.max_in_flight = 0


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: _ProxyServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append(("GET", self.path))
        parts = urllib.parse.urlsplit(self.path)
        upstream = socket.create_connection((parts.hostname, parts.port or 80), timeout=30)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items() if k.lower() != "proxy-connection")
        upstream.sendall(f"GET {path} HTTP/1.0\r\n{headers}\r\n".encode("latin-1"))
        self._relay(upstream)

    def do_CONNECT(self) -> None:
        self.server.seen.append(("CONNECT", self.path))
        host, _, port = self.path.rpartition(":")
        upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=30)
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        self._relay(upstream)

    def _relay(self, upstream: socket.socket) -> None:
        sockets = [self.connection, upstream]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], 30)
                if not readable:
                    return
                for sock in readable:
                    data = sock.recv(CHUNK)
                    if not data:
                        return
                    (upstream if sock is self.connection else self.connection).sendall(data)
        except OSError:
            return
        finally:
            upstream.close()
            self.close_connection = True


class _ProxyServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _ProxyHandler)
        self.seen: list[tuple[str, str]] = []


class ForwardProxy:
    """``with ForwardProxy() as proxy:`` a loopback HTTP proxy at ``proxy.url``; ``proxy.seen``."""

    def __init__(self) -> None:
        self.server = _ProxyServer(("127.0.0.1", 0))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> ForwardProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def seen(self) -> list[tuple[str, str]]:
        return list(self.server.seen)


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a folder on loopback as an encodings mirror.")
    parser.add_argument("root", type=Path)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with Mirror(args.root, port=args.port) as mirror:
        print(f"serving {args.root} at {mirror.url}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
