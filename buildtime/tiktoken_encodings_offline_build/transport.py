"""The HTTP opener of the build: proxies, TLS, timeouts, cancellation, and where secrets may go.

- ``Authorization`` (the mirror's token or user:password) goes to the mirror's origin only;
  ``Proxy-Authorization`` goes to the proxy only: both are dropped on every redirect and put back
  only where they belong (urllib's ProxyHandler adds the proxy's again if the new URL is proxied).
- A redirect to anything but http(s) is refused.
- Every socket is connected in short slices and registered with a ``Stop``, and every read of a
  response waits in slices of ``SLICE`` seconds, looking at the ``Stop`` between them (up to the read
  timeout in all): cancelling (Ctrl-C, SIGTERM, the total deadline) ends any read within a slice on
  every system. It also shuts every socket down, which ends a blocked read at once where the system
  does that (Linux, macOS; Winsock documents it for ``closesocket`` only).
"""

from __future__ import annotations

import base64
import errno
import functools
import http.client
import netrc
import os
import select
import socket
import ssl
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from . import tls
from .cancel import SLICE, Stop, sliced_response


class NameNotResolved(OSError):
    def __init__(self, host: str, error: socket.gaierror) -> None:
        super().__init__(f"the host name {host} did not resolve ({error.strerror or error})")
        self.host = host


class RedirectRefused(Exception):
    pass


def connect(address: tuple[str, int], timeout: float, stop: Stop) -> socket.socket:
    """``socket.create_connection``, in slices that look at ``stop``; a DNS failure is final."""
    host, port = address
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise NameNotResolved(host, error) from None
    last_error: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        stop.register(sock)
        try:
            _connect_in_slices(sock, sockaddr, timeout, stop)
        except OSError as error:
            sock.close()
            last_error = error
            continue
        except BaseException:
            sock.close()
            raise
        sock.settimeout(timeout)  # the TLS handshake and proxy tunnel; reads get the read timeout
        return sock
    raise last_error


def _connect_in_slices(sock: socket.socket, sockaddr: Any, timeout: float, stop: Stop) -> None:
    sock.setblocking(False)
    code = sock.connect_ex(sockaddr)
    if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
        raise OSError(code, error_text(code))
    ends = time.monotonic() + timeout
    while code:
        stop.check()
        wait = min(SLICE, ends - time.monotonic())
        if wait <= 0:
            raise socket.timeout("timed out")
        # Windows reports a refused connect in the exception set only, never as writable.
        _, writable, failed = select.select([], [sock], [sock], wait)
        if writable or failed:
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                raise OSError(code, error_text(code))
            break
    sock.setblocking(True)


# Winsock's codes, which Windows' SO_ERROR and connect_ex give and its os.strerror calls "Unknown error".
WINSOCK_ERRORS = {
    10013: "Permission denied (a firewall may block the connection)",
    10048: "Address already in use",
    10049: "Cannot assign requested address",
    10050: "Network is down",
    10051: "Network is unreachable",
    10053: "Connection aborted by this host",
    10054: "Connection reset by peer",
    10060: "Connection timed out",
    10061: "Connection refused",
    10064: "Host is down",
    10065: "No route to host",
}


def error_text(code: int) -> str:
    """What a socket error code means, a Winsock code included (os.strerror does not know those)."""
    text = os.strerror(code)
    if code in WINSOCK_ERRORS and (sys.platform == "win32" or text.startswith("Unknown error")):
        return f"{WINSOCK_ERRORS[code]} (Winsock error {code})"
    return text


# URLs and credentials


def redact(url: str) -> str:
    """A URL fit for a log line: no user name or password, and the query (a SAS token, say) hidden."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = "<query hidden>" if parts.query else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def without_userinfo(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def mirror_url(blob_path: str, mirror: str) -> str:
    """The mirror's copy of an upstream path: the path joins the mirror's path, its query stays."""
    parts = urllib.parse.urlsplit(mirror)
    path = parts.path.rstrip("/") + "/" + urllib.parse.quote(blob_path)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default_port


def mirror_credentials(mirror: str, token: str | None) -> tuple[str, str | None]:
    """The mirror URL without user info, and the Authorization header for it (or None)."""
    parts = urllib.parse.urlsplit(mirror)
    clean = without_userinfo(mirror)
    if parts.username or parts.password:
        user = urllib.parse.unquote(parts.username or "")
        password = urllib.parse.unquote(parts.password or "")
        return clean, "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    if token:
        return clean, f"Bearer {token}"
    try:
        entry = netrc.netrc(netrc_file()).authenticators(parts.hostname or "")
    except (OSError, netrc.NetrcParseError):
        entry = None
    if entry:
        login, _, secret = entry
        return clean, "Basic " + base64.b64encode(f"{login or ''}:{secret or ''}".encode()).decode()
    return clean, None


def netrc_file() -> str | None:
    """``$NETRC``; else None, for the netrc module's ``~/.netrc`` (with its owner check); but on
    Windows ``%USERPROFILE%\\_netrc`` when there is no ``.netrc``, as curl and git read it."""
    if os.environ.get("NETRC"):
        return os.environ["NETRC"]
    try:
        home = Path.home()
    except (RuntimeError, KeyError):  # no home folder at all
        return None
    if sys.platform == "win32" and not (home / ".netrc").is_file() and (home / "_netrc").is_file():
        return str(home / "_netrc")
    return None


# The opener


class Opener:
    """Opens a URL with the mirror's credentials on its origin only, in bounded, stoppable steps."""

    def __init__(
        self,
        mirror: str | None,
        token: str | None,
        ca_bundle: str | None,
        connect_timeout: float,
        read_timeout: float,
        stop: Stop,
    ) -> None:
        context = tls.default_context()
        if ca_bundle:
            context.load_verify_locations(cafile=ca_bundle)
        self.mirror: str | None = None  # without credentials
        self.authorization: str | None = None
        self.auth_origin: tuple[str, str, int | None] | None = None
        if mirror:
            self.mirror, self.authorization = mirror_credentials(mirror, token)
            self.auth_origin = origin(self.mirror)
        self.connect_timeout = connect_timeout
        connection = functools.partial(_Connections, stop=stop, read_timeout=read_timeout)
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler(),
            _HTTPHandler(connection(http.client.HTTPConnection)),
            _HTTPSHandler(connection(http.client.HTTPSConnection), context),
            _RedirectHandler(self),
        )

    def authorize(self, request: urllib.request.Request) -> urllib.request.Request:
        # An unredirected header: urllib copies ordinary headers onto a redirect to any host.
        if self.authorization and origin(request.full_url) == self.auth_origin:
            request.add_unredirected_header("Authorization", self.authorization)
        return request

    def open(self, request: urllib.request.Request) -> Any:
        return self._opener.open(self.authorize(request), timeout=self.connect_timeout)


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    def __init__(self, opener: Opener) -> None:
        self.offline_opener = opener

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            raise RedirectRefused(
                f"the server redirected to {redact(newurl)}; only http:// and https:// redirects are followed"
            )
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is None:
            return None
        for name in [name for name in new.headers if name.lower() == "proxy-authorization"]:
            del new.headers[name]  # the ProxyHandler adds it again if the new URL goes through a proxy
        return self.offline_opener.authorize(new)


class _Connections:
    """A connection class for urllib's handlers: stoppable connect, then reads in stoppable slices."""

    def __init__(self, base: type[http.client.HTTPConnection], stop: Stop, read_timeout: float) -> None:
        self.base, self.stop, self.read_timeout = base, stop, read_timeout

    def __call__(self, *args: Any, **kwargs: Any) -> http.client.HTTPConnection:
        connection = self.base(*args, **kwargs)
        stop, read_timeout = self.stop, self.read_timeout
        connection._create_connection = lambda address, timeout, *_: connect(address, timeout, stop)  # type: ignore[attr-defined]
        plain_connect = connection.connect

        def connect_then_bound_reads() -> None:
            plain_connect()  # the TLS handshake and a proxy's tunnel are bounded by the connect timeout
            if connection.sock is not None:
                stop.register(connection.sock)  # the TLS socket, which replaced the plain one
                connection.sock.settimeout(min(SLICE, read_timeout))
                connection.response_class = sliced_response(stop, read_timeout)

        connection.connect = connect_then_bound_reads  # type: ignore[method-assign]
        return connection


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, connections: _Connections) -> None:
        super().__init__()
        self.connections = connections

    def http_open(self, req: Any) -> Any:
        return self.do_open(self.connections, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, connections: _Connections, context: ssl.SSLContext) -> None:
        super().__init__(context=context)
        self.connections = connections
        self.offline_context = context

    def https_open(self, req: Any) -> Any:
        return self.do_open(self.connections, req, context=self.offline_context)
