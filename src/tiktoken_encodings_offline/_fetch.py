"""Find or download each blob the build needs, and hand back only verified files.

Standard library only, and it imports nothing from the package: the build hook and
``scripts/prefetch.py`` load this file by path (importing the package would activate it).

Sources, first hit wins, every byte checked against the manifest's SHA-256 before use:
1. the local source folder, in any of three layouts (upstream tree, flat, tiktoken cache);
2. the build cache (tiktoken's SHA-1 names; a corrupted file there is discarded);
3. a download from the mirror, or else from the upstream URL.
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import email.utils
import functools
import hashlib
import http.client
import netrc
import os
import random
import socket
import ssl
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

UPSTREAM_BASE = "https://openaipublic.blob.core.windows.net/"
CHUNK = 1 << 16
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 120.0

PREBUILT_WHEEL_HINT = (
    "If this is an offline host and pip fell back to building tiktoken-encodings-offline from "
    "its sdist, install the prebuilt wheel from your private index instead "
    "(pip install --only-binary tiktoken-encodings-offline tiktoken-encodings-offline)."
)


class BlobSpec(Protocol):
    @property
    def url(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def path(self) -> str: ...
    @property
    def file_name(self) -> str: ...
    @property
    def cache_name(self) -> str: ...


@dataclass(frozen=True)
class FetchSettings:
    source_dir: Path | None = None
    cache_dir: Path | None = None  # None: no build cache
    mirror: str | None = None  # replaces UPSTREAM_BASE; may hold user:password@
    token: str | None = None  # bearer token for the mirror
    ca_bundle: str | None = None  # extra CA certificates, on top of the system's
    network: bool = True
    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    retries: int = 4
    backoff: float = 0.5
    workers: int = 6
    log: Callable[[str], None] = field(default=print, repr=False)


class FetchError(Exception):
    """A blob could not be had; the message stands alone (pip shows only that)."""


class _Retryable(Exception):
    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


class _Final(Exception):
    pass


def fetch_all(blobs: Sequence[BlobSpec], settings: FetchSettings, workdir: Path) -> dict[str, Path]:
    """A verified local file for every blob, by URL. Downloads land in the cache, else in workdir."""
    found: dict[str, Path] = {}
    looked: dict[str, list[str]] = {}
    problems: list[str] = []
    for blob in blobs:
        looked[blob.url] = []
        try:
            path = _find_local(blob, settings, looked[blob.url])
        except FetchError as error:
            problems.append(str(error))
            continue
        if path is not None:
            found[blob.url] = path
    if problems:
        raise FetchError("\n\n".join(problems))
    missing = [blob for blob in blobs if blob.url not in found]
    if not missing:
        return found
    if not settings.network:
        raise FetchError(
            "network access is turned off (TIKTOKEN_ENCODINGS_OFFLINE_NO_NETWORK) and these files "
            "were found nowhere:\n"
            + "\n".join(_describe_missing(blob, looked[blob.url]) for blob in missing)
            + "\nFix: put the files in TIKTOKEN_ENCODINGS_OFFLINE_SOURCE_DIR (scripts/prefetch.py "
            "makes such a folder on a connected machine), or allow the download.\n" + PREBUILT_WHEEL_HINT
        )

    target_dir = settings.cache_dir if settings.cache_dir is not None else workdir
    target_dir.mkdir(parents=True, exist_ok=True)
    settings = dataclasses.replace(settings, log=_serialized(settings.log))
    opener = _Opener(settings)
    failures: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, settings.workers)) as pool:
        futures = {pool.submit(_download, blob, opener, settings, target_dir): blob for blob in missing}
        for future in concurrent.futures.as_completed(futures):
            blob = futures[future]
            try:
                found[blob.url] = future.result()
            except FetchError as error:
                failures.append(_describe_missing(blob, looked[blob.url]) + f"\n  {error}")
    if failures:
        raise FetchError(
            "could not get every encoding file:\n"
            + "\n".join(sorted(failures))
            + "\nFix: check the mirror address, proxy and CA settings above, or build from a "
            "folder of the files with TIKTOKEN_ENCODINGS_OFFLINE_SOURCE_DIR.\n" + PREBUILT_WHEEL_HINT
        )
    return found


def _serialized(log: Callable[[str], None]) -> Callable[[str], None]:
    """One line at a time from the download threads."""
    lock = threading.Lock()

    def serialized(message: str) -> None:
        with lock:
            log(message)

    return serialized


def _describe_missing(blob: BlobSpec, looked: list[str]) -> str:
    places = "".join(f"\n    {place}" for place in looked) or "\n    (no local source or cache)"
    return f"- {blob.path} (sha256 {blob.sha256}); looked in:{places}"


def source_candidates(blob: BlobSpec, source_dir: Path) -> list[Path]:
    """Where a blob may sit in a source folder: upstream tree, flat names, tiktoken cache names."""
    return [source_dir / blob.path, source_dir / blob.file_name, source_dir / blob.cache_name]


def _find_local(blob: BlobSpec, settings: FetchSettings, looked: list[str]) -> Path | None:
    if settings.source_dir is not None:
        for candidate in source_candidates(blob, settings.source_dir):
            if not candidate.is_file():
                looked.append(f"{candidate} (not there)")
                continue
            actual = sha256_file(candidate)
            if actual != blob.sha256:
                raise FetchError(
                    f"{candidate} is not the published {blob.path}:\n"
                    f"  expected SHA-256 {blob.sha256} ({blob.size} bytes)\n"
                    f"  found    SHA-256 {actual} ({candidate.stat().st_size} bytes)\n"
                    f"Fix: replace it with the original file from {blob.url}, or remove it so "
                    f"the build fetches it."
                )
            settings.log(f"{blob.path}: {_size(blob.size)} from source folder {candidate}")
            return candidate
    if settings.cache_dir is not None:
        cached = settings.cache_dir / blob.cache_name
        if cached.is_file():
            if sha256_file(cached) == blob.sha256:
                settings.log(f"{blob.path}: {_size(blob.size)} from build cache {cached}")
                return cached
            settings.log(f"{blob.path}: discarded corrupted cached file {cached}")
            cached.unlink()
            looked.append(f"{cached} (corrupted, discarded)")
        else:
            looked.append(f"{cached} (build cache: not there)")
    return None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


# Downloading


def mirror_url(blob: BlobSpec, mirror: str | None) -> str:
    """Where to download a blob: the mirror's copy of its upstream path, or the upstream URL."""
    if not mirror:
        return blob.url
    return mirror.rstrip("/") + "/" + blob.path


def redact(url: str) -> str:
    """A URL fit for a log line: no user name, password or query string."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _download(blob: BlobSpec, opener: _Opener, settings: FetchSettings, target_dir: Path) -> Path:
    url = mirror_url(blob, opener.mirror)
    shown = redact(url)
    started = time.monotonic()
    fd, part_name = tempfile.mkstemp(prefix=f"{blob.cache_name}.", suffix=".part", dir=target_dir)
    os.close(fd)
    part = Path(part_name)
    try:
        _transfer(blob, url, part, opener, settings)
        actual = sha256_file(part)
        if actual != blob.sha256:
            raise FetchError(
                f"{shown}: the downloaded bytes are not the published file:\n"
                f"  expected SHA-256 {blob.sha256} ({blob.size} bytes)\n"
                f"  found    SHA-256 {actual} ({part.stat().st_size} bytes)\n"
                f"  Fix: the mirror serves a different or damaged file; refresh its copy of "
                f"{blob.url}."
            )
        final = target_dir / blob.cache_name
        os.replace(part, final)
    finally:
        part.unlink(missing_ok=True)
    settings.log(f"{blob.path}: {_size(blob.size)} from {shown} in {time.monotonic() - started:.1f} s")
    return final


def _transfer(blob: BlobSpec, url: str, part: Path, opener: _Opener, settings: FetchSettings) -> None:
    """Fill ``part`` with the body at ``url``: retrying, resuming, never beyond the blob's size."""
    transfer = _Transfer(blob, url, part, opener)
    errors: list[str] = []
    for attempt in range(settings.retries + 1):
        try:
            transfer.attempt()
            return
        except _Final as error:
            raise FetchError(f"{redact(url)}: {error}") from None
        except _Retryable as error:
            errors.append(str(error))
            if attempt == settings.retries:
                break
            if error.delay is not None:  # the server said how long (Retry-After)
                delay = min(error.delay, MAX_RETRY_AFTER)
            else:
                delay = min(settings.backoff * 2**attempt, MAX_BACKOFF) * (1 + random.random() / 10)  # noqa: S311
            settings.log(f"{blob.path}: {error}; retrying in {delay:.1f} s")
            time.sleep(delay)
    if len(errors) == 1:
        raise FetchError(f"{redact(url)}: {errors[0]} (retries turned off)")
    if len(set(errors)) == 1:
        raise FetchError(f"{redact(url)}: gave up after {len(errors)} attempts, each: {errors[0]}")
    numbered = "; ".join(f"attempt {n}: {error}" for n, error in enumerate(errors, 1))
    raise FetchError(f"{redact(url)}: gave up after {len(errors)} attempts: {numbered}")


class _Transfer:
    """One file's download across attempts: the bytes so far in ``part``, and their validator."""

    def __init__(self, blob: BlobSpec, url: str, part: Path, opener: _Opener) -> None:
        self.blob, self.url, self.part, self.opener = blob, url, part, opener
        self.validator: str | None = None  # ETag or Last-Modified of the bytes in part

    def attempt(self) -> None:
        have = self.part.stat().st_size
        request = urllib.request.Request(self.url)
        if have and self.validator:
            request.add_header("Range", f"bytes={have}-")
            request.add_header("If-Range", self.validator)
        else:
            have = 0
        with self._open(request) as response:
            if response.status == 206 and have:
                start, total = _content_range(response.headers.get("Content-Range"))
                if start != have or total != self.blob.size:
                    self._start_over()
                    raise _Retryable("the server answered the resume with another range; starting over", 0.0)
            else:
                have = 0  # a 200: the whole file again
            self.validator = _validator(response.headers)
            self._receive(response, have)

    def _open(self, request: urllib.request.Request) -> Any:
        try:
            return self.opener.open(request)
        except urllib.error.HTTPError as error:
            error.close()
            if error.code == 429 or error.code >= 500:
                raise _Retryable(f"HTTP {error.code} {error.reason}", _retry_after(error.headers)) from None
            if error.code == 416:
                self._start_over()
                raise _Retryable("HTTP 416: the partial file is stale, starting over", 0.0) from None
            if error.code in (401, 403):
                raise _Final(
                    f"HTTP {error.code} {error.reason}: the server wants credentials it did not get, or "
                    f"refused them. Fix: set TIKTOKEN_ENCODINGS_OFFLINE_MIRROR_TOKEN, put them in the "
                    f"mirror URL (https://user:token@host/...) or in ~/.netrc"
                ) from None
            raise _Final(f"HTTP {error.code} {error.reason}") from None
        except ssl.SSLError as error:
            raise _Final(_tls_advice(error)) from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, ssl.SSLError):
                raise _Final(_tls_advice(error.reason)) from None
            raise _Retryable(f"cannot connect: {error.reason}") from None
        except (OSError, http.client.HTTPException) as error:
            raise _Retryable(f"connection failed: {error!r}") from None

    def _start_over(self) -> None:
        self.part.write_bytes(b"")
        self.validator = None

    def _receive(self, response: Any, have: int) -> None:
        length = response.headers.get("Content-Length")
        expected = int(length) if length is not None and length.isdigit() else self.blob.size - have
        if have + expected > self.blob.size:
            raise _Final(f"the server announces {have + expected} bytes; the file has {self.blob.size}")
        received = 0
        try:
            with open(self.part, "ab" if have else "wb") as out:
                while chunk := response.read(CHUNK):
                    received += len(chunk)
                    if received > expected:
                        raise _Final(f"the server sent more than the {self.blob.size} bytes of the file")
                    out.write(chunk)
        except (OSError, http.client.HTTPException) as error:
            raise _Retryable(f"transfer cut after {have + received} of {self.blob.size} bytes: {error!r}") from None
        if received < expected:
            raise _Retryable(f"transfer cut after {have + received} of {self.blob.size} bytes")


def _validator(headers: Any) -> str | None:
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return str(etag)
    modified = headers.get("Last-Modified")
    return str(modified) if modified else None


def _content_range(value: str | None) -> tuple[int, int]:
    # "bytes START-END/TOTAL"
    try:
        _unit, _, spec = (value or "").partition(" ")
        span, _, total = spec.partition("/")
        return int(span.split("-")[0]), int(total)
    except ValueError:
        return -1, -1


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers else None
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _tls_advice(error: BaseException) -> str:
    return (
        f"TLS failure: {error}. Fix: if a corporate proxy or mirror uses its own certificate "
        f"authority, point TIKTOKEN_ENCODINGS_OFFLINE_CA_BUNDLE (or SSL_CERT_FILE) at its CA bundle"
    )


# The opener: proxies from the environment, a CA bundle, split timeouts, and credentials that
# go to the mirror's origin only.


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default_port


def mirror_credentials(mirror: str, token: str | None) -> tuple[str, str | None]:
    """The mirror URL without user info, and the Authorization header for it (or None)."""
    parts = urllib.parse.urlsplit(mirror)
    clean = redact(mirror) if (parts.username or parts.password) else mirror
    if parts.username or parts.password:
        user = urllib.parse.unquote(parts.username or "")
        password = urllib.parse.unquote(parts.password or "")
        return clean, "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    if token:
        return clean, f"Bearer {token}"
    try:
        entry = netrc.netrc(os.environ.get("NETRC")).authenticators(parts.hostname or "")
    except (OSError, netrc.NetrcParseError):
        entry = None
    if entry:
        login, _, secret = entry
        return clean, "Basic " + base64.b64encode(f"{login or ''}:{secret or ''}".encode()).decode()
    return clean, None


class _Opener:
    def __init__(self, settings: FetchSettings) -> None:
        context = ssl.create_default_context()
        if settings.ca_bundle:
            context.load_verify_locations(cafile=settings.ca_bundle)
        self.mirror: str | None = None  # without credentials
        self.authorization: str | None = None
        self.auth_origin: tuple[str, str, int | None] | None = None
        if settings.mirror:
            self.mirror, self.authorization = mirror_credentials(settings.mirror, settings.token)
            self.auth_origin = _origin(self.mirror)
        self.connect_timeout = settings.connect_timeout
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler(),
            _HTTPHandler(settings.read_timeout),
            _HTTPSHandler(settings.read_timeout, context),
            _RedirectHandler(self),
        )

    def authorize(self, request: urllib.request.Request) -> urllib.request.Request:
        # An unredirected header: urllib copies ordinary headers onto a redirect to any host.
        if self.authorization and _origin(request.full_url) == self.auth_origin:
            request.add_unredirected_header("Authorization", self.authorization)
        return request

    def open(self, request: urllib.request.Request) -> Any:
        return self._opener.open(self.authorize(request), timeout=self.connect_timeout)


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    def __init__(self, opener: _Opener) -> None:
        self.offline_opener = opener

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        return None if new is None else self.offline_opener.authorize(new)


class _ReadTimeoutMixin:
    """Connect with the request's timeout, then wait at most ``read_timeout`` for each read."""

    read_timeout: float
    sock: socket.socket | None

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        if self.sock is not None:
            self.sock.settimeout(self.read_timeout)


class _HTTPConnection(_ReadTimeoutMixin, http.client.HTTPConnection):
    def __init__(self, *args: Any, read_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_timeout = read_timeout


class _HTTPSConnection(_ReadTimeoutMixin, http.client.HTTPSConnection):
    def __init__(self, *args: Any, read_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_timeout = read_timeout


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, read_timeout: float) -> None:
        super().__init__()
        self.read_timeout = read_timeout

    def http_open(self, req: Any) -> Any:
        return self.do_open(functools.partial(_HTTPConnection, read_timeout=self.read_timeout), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, read_timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(context=context)
        self.read_timeout = read_timeout
        self.offline_context = context

    def https_open(self, req: Any) -> Any:
        connection = functools.partial(_HTTPSConnection, read_timeout=self.read_timeout)
        return self.do_open(connection, req, context=self.offline_context)


def copy_verified(source: Path, destination: Path, sha256: str) -> None:
    """Write ``destination`` fresh (mode 0644) with the bytes of ``source``, which must hash to sha256."""
    data = source.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise FetchError(f"{source} changed while the build read it: expected SHA-256 {sha256}, found {actual}")
    tmp = destination.with_name(destination.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, destination)


__all__ = [
    "FetchError",
    "FetchSettings",
    "copy_verified",
    "fetch_all",
    "mirror_url",
    "redact",
    "sha256_file",
    "source_candidates",
]
