"""One file's download: retries with backoff, a resume guarded by a validator, a hard size bound.

Every wait is bounded: each read by the read timeout, the whole fetch by the ``Stop``'s deadline,
and a cancelled ``Stop`` ends the transfer at once. The bytes land in an exclusively created
``.part`` file in the target folder, are checked against the manifest, and are renamed into place.
"""

from __future__ import annotations

import email.utils
import errno
import http.client
import random
import ssl
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable

from .cancel import Stop, Stopped
from .files import InUse, hold, new_part, replace, sha256_file
from .manifest import Blob
from .transport import NameNotResolved, Opener, RedirectRefused, redact

CHUNK = 1 << 16
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 120.0
TOTAL_TIMEOUT_OPTION = "TIKTOKEN_ENCODINGS_OFFLINE_TOTAL_TIMEOUT (pyproject key total-timeout)"


class DownloadError(Exception):
    """One file could not be downloaded; the message names the URL (redacted) and the cause.

    ``local``: the cause is this host's disk (full, read-only), not the network.
    """

    def __init__(self, message: str, local: bool = False) -> None:
        super().__init__(message)
        self.local = local


class Retryable(Exception):
    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


class Final(Exception):
    def __init__(self, reason: str, local: bool = False) -> None:
        super().__init__(reason)
        self.local = local


@dataclass(frozen=True)
class Policy:
    retries: int
    backoff: float
    log: Callable[[str], None]


def download(blob: Blob, url: str, opener: Opener, stop: Stop, policy: Policy, target_dir: Path) -> Path:
    """Download ``url`` into ``target_dir/<cache name>``, verified, or raise ``DownloadError``."""
    shown = redact(url)
    started = time.monotonic()
    try:
        out, part = new_part(target_dir, f"{blob.cache_name}.")
        hold(out)
    except OSError as error:
        raise DownloadError(f"{shown}: {cannot_write(target_dir, error)}", local=True) from None
    try:
        with out:
            transfer = Transfer(blob, url, out, opener, stop, target_dir)
            try:
                _with_retries(transfer, policy, stop)
            except Stopped:
                if stop.reason != "deadline":
                    raise
                raise DownloadError(
                    f"{shown}: the fetch passed its total deadline with {transfer.received} of "
                    f"{blob.size} bytes of {blob.path} received. Fix: a slow mirror or proxy; "
                    f"raise {TOTAL_TIMEOUT_OPTION} if the link is just slow"
                ) from None
        actual = sha256_file(part)
        if actual != blob.sha256:
            raise DownloadError(
                f"{shown}: the downloaded bytes are not the published file:\n"
                f"  expected SHA-256 {blob.sha256} ({blob.size} bytes)\n"
                f"  found    SHA-256 {actual} ({part.stat().st_size} bytes)\n"
                f"  Fix: the mirror serves a different or damaged file; refresh its copy of {blob.url}."
            )
        part.chmod(0o644)
        final = target_dir / blob.cache_name
        replace(part, final, blob.sha256)
    except InUse as error:  # not the disk: another process holds the file
        raise DownloadError(f"{shown}: {error.filename}: {error.strerror}", local=True) from None
    except OSError as error:  # the network's errors are handled in the transfer: this is the disk
        raise DownloadError(f"{shown}: {cannot_write(target_dir, error)}", local=True) from None
    finally:
        part.unlink(missing_ok=True)
    policy.log(f"{blob.path}: {blob.size / 1e6:.1f} MB from {shown} in {time.monotonic() - started:.1f} s")
    return final


def _with_retries(transfer: Transfer, policy: Policy, stop: Stop) -> None:
    shown = redact(transfer.url)
    errors: list[str] = []
    for attempt in range(policy.retries + 1):
        try:
            transfer.attempt()
            return
        except Final as error:
            raise DownloadError(f"{shown}: {error}", error.local) from None
        except Retryable as error:
            errors.append(str(error))
            if attempt == policy.retries:
                break
            if error.delay is not None:  # the server said how long (Retry-After)
                delay = min(error.delay, MAX_RETRY_AFTER)
            else:
                delay = min(policy.backoff * 2**attempt, MAX_BACKOFF) * (1 + random.random() / 10)  # noqa: S311
            policy.log(f"{transfer.blob.path}: {error}; retrying in {delay:.1f} s")
            stop.sleep(delay)
    if len(errors) == 1:
        raise DownloadError(f"{shown}: {errors[0]} (retries turned off)")
    if len(set(errors)) == 1:
        raise DownloadError(f"{shown}: gave up after {len(errors)} attempts, each: {errors[0]}")
    numbered = "; ".join(f"attempt {n}: {error}" for n, error in enumerate(errors, 1))
    raise DownloadError(f"{shown}: gave up after {len(errors)} attempts: {numbered}")


class Transfer:
    """One file's download across attempts: the bytes so far in ``out``, and their validator."""

    def __init__(self, blob: Blob, url: str, out: BinaryIO, opener: Opener, stop: Stop, folder: Path) -> None:
        self.blob, self.url, self.out, self.opener, self.stop = blob, url, out, opener, stop
        self.folder = folder
        self.validator: str | None = None  # ETag or Last-Modified of the bytes in out
        self.received = 0  # bytes in out

    def attempt(self) -> None:
        self.stop.check()
        have = self.received
        request = urllib.request.Request(self.url)
        if have and self.validator:
            request.add_header("Range", f"bytes={have}-")
            request.add_header("If-Range", self.validator)
        else:
            self._start_over()  # no validator, no resume: the whole file again
            have = 0
        with self._open(request) as response:
            if response.status == 206 and have:
                start, total = _content_range(response.headers.get("Content-Range"))
                if start != have or total != self.blob.size:
                    self._start_over()
                    raise Retryable("the server answered the resume with another range; starting over", 0.0)
            else:
                self._start_over()  # a 200: the whole file again
                have = 0
            self.validator = _validator(response.headers)
            self._receive(response, have)

    def _open(self, request: urllib.request.Request) -> Any:
        try:
            return self.opener.open(request)
        except urllib.error.HTTPError as error:
            error.close()
            if error.code == 429 or error.code >= 500:
                raise Retryable(f"HTTP {error.code} {error.reason}", _retry_after(error.headers)) from None
            if error.code == 416:
                self._start_over()
                raise Retryable("HTTP 416: the partial file is stale, starting over", 0.0) from None
            if error.code in (401, 403):
                raise Final(
                    f"HTTP {error.code} {error.reason}: the server wants credentials it did not get, or "
                    f"refused them. Fix: set TIKTOKEN_ENCODINGS_OFFLINE_MIRROR_TOKEN, put them in the "
                    f"mirror URL (https://user:token@host/...) or in ~/.netrc"
                ) from None
            raise Final(f"HTTP {error.code} {error.reason}") from None
        except RedirectRefused as error:
            raise Final(str(error)) from None
        except ssl.SSLError as error:
            raise Final(_tls_advice(error)) from None
        except urllib.error.URLError as error:
            self.stop.check()
            if isinstance(error.reason, ssl.SSLError):
                raise Final(_tls_advice(error.reason)) from None
            if isinstance(error.reason, NameNotResolved):
                raise Final(f"{error.reason}. Fix: check the spelling of the host, and the DNS of this host") from None
            raise Retryable(f"cannot connect: {error.reason}") from None
        except (OSError, http.client.HTTPException) as error:
            self.stop.check()
            raise Retryable(f"connection failed: {error!r}") from None

    def _start_over(self) -> None:
        self.out.seek(0)
        self.out.truncate()
        self.received = 0
        self.validator = None

    def _receive(self, response: Any, have: int) -> None:
        length = response.headers.get("Content-Length")
        expected = int(length) if length is not None and length.isdigit() else self.blob.size - have
        if have + expected > self.blob.size:
            raise Final(f"the server announces {have + expected} bytes; the file has {self.blob.size}")
        self.out.seek(have)
        try:
            while chunk := response.read1(CHUNK):
                self.stop.check()
                if self.received + len(chunk) > self.blob.size:
                    raise Final(f"the server sent more than the {self.blob.size} bytes of the file")
                self.out.write(chunk)
                self.received += len(chunk)
        except OSError as error:
            self.stop.check()
            if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                raise Final(cannot_write(self.folder, error), local=True) from None
            raise Retryable(f"transfer cut after {self.received} of {self.blob.size} bytes: {error!r}") from None
        except http.client.HTTPException as error:
            self.stop.check()
            raise Retryable(f"transfer cut after {self.received} of {self.blob.size} bytes: {error!r}") from None
        self.stop.check()
        if self.received - have < expected:
            raise Retryable(f"transfer cut after {self.received} of {self.blob.size} bytes")


def cannot_write(folder: Path, error: OSError) -> str:
    return (
        f"cannot write in {folder}: {error.strerror or error}. Fix: free space there, or use a folder with "
        f"room (for a build: TIKTOKEN_ENCODINGS_OFFLINE_CACHE_DIR for its cache, TMPDIR for the rest)"
    )


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
    advice = (
        f"TLS failure: {error}. Fix: if a corporate proxy or mirror uses its own certificate "
        f"authority, point TIKTOKEN_ENCODINGS_OFFLINE_CA_BUNDLE (or SSL_CERT_FILE) at its CA bundle"
    )
    if sys.platform == "darwin" and "CERTIFICATE_VERIFY_FAILED" in str(error):
        advice += (
            '; a python.org Python on macOS has no CA store until you run its "Install '
            'Certificates.command" (in /Applications/Python 3.x), or pip install truststore'
        )
    return advice
