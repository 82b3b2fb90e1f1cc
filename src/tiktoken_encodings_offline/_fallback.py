"""What the wrapped ``read_file_cached`` does with a request the vendored folder does not answer.

A URL the installation does not carry, another ``expected_hash``, or a damaged file: strict mode
raises ``EncodingNotVendoredError``; otherwise the request goes on as with plain tiktoken, except
that nothing is ever written into the vendored folder. This module is imported only then: a load
the folder serves never needs it (see "What activation costs" in docs/fastpath.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading

from ._files import STRICT_ENV, _env_flag, read_regular_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Callable

_only_vendored = threading.local()
CACHED_FILE_LIMIT = 1 << 28  # bytes read at most from tiktoken's default cache: its files are a few MB


class EncodingNotVendoredError(RuntimeError):
    """Strict mode: tiktoken asked for a file this installation does not carry."""


# Raised here, caught as tiktoken_encodings_offline.EncodingNotVendoredError (the package's
# __getattr__ imports it from here): tracebacks and pickles name the public place.
EncodingNotVendoredError.__module__ = "tiktoken_encodings_offline"


@contextlib.contextmanager
def serving_only_vendored() -> Iterator[None]:
    """Within this block, on this thread, a file the folder does not serve is an error."""
    outer = getattr(_only_vendored, "active", False)
    _only_vendored.active = True
    try:
        yield
    finally:
        _only_vendored.active = outer


def read_unserved(
    original: Callable[..., bytes],
    blobpath: str,
    expected_hash: str | None,
    folder: str,
    why: str | None,
    carried: list[str],
) -> bytes:
    """Plain tiktoken's answer to a request ``folder`` does not serve, or the strict-mode error.

    ``why``: what keeps the folder from serving it (a damaged file or record), if anything does;
    ``carried``: the encodings the folder serves, for the error.
    """
    if getattr(_only_vendored, "active", False) or _env_flag(STRICT_ENV):
        if why:
            raise EncodingNotVendoredError(f"strict mode ({STRICT_ENV}) forbids a download: {why}")
        raise EncodingNotVendoredError(_not_vendored_message(blobpath, carried))
    if _same_folder(_cache_dir_in_effect(), folder):
        return _read_via_default_cache(blobpath, expected_hash)
    return original(blobpath, expected_hash)


def _cache_dir_in_effect() -> str | None:
    return os.environ.get("TIKTOKEN_CACHE_DIR", os.environ.get("DATA_GYM_CACHE_DIR"))


def _same_folder(a: str | None, b: str) -> bool:
    if not a:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _read_via_default_cache(blobpath: str, expected_hash: str | None) -> bytes:
    """Plain tiktoken's read_file_cached as if TIKTOKEN_CACHE_DIR were unset.

    The cache variable points at the vendored folder (this package set it, or the user pointed
    it there): tiktoken would write a download into the package, and delete a vendored file whose
    hash it does not expect. A file we do not serve goes where plain tiktoken puts it by default.
    """
    import tempfile

    from tiktoken.load import check_hash, read_file

    cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    cache_path = os.path.join(cache_dir, hashlib.sha1(blobpath.encode()).hexdigest())
    try:  # a FIFO or a folder planted in the shared temporary folder is not waited on, not read
        data = read_regular_file(cache_path, CACHED_FILE_LIMIT + 1)
        if len(data) <= CACHED_FILE_LIMIT and (expected_hash is None or check_hash(data, expected_hash)):
            return data
        os.remove(cache_path)
    except OSError:
        pass

    contents = read_file(blobpath)
    if expected_hash and not check_hash(contents, expected_hash):
        raise ValueError(
            f"Hash mismatch for data downloaded from {blobpath} (expected {expected_hash}). "
            f"This may indicate a corrupted download. Please try again."
        )
    with contextlib.suppress(OSError):  # tiktoken ignores a default cache it cannot write
        os.makedirs(cache_dir, exist_ok=True)
        _write_and_rename(contents, cache_path)
    return contents


def _write_and_rename(contents: bytes, path: str) -> None:
    """Write a new file of a random name beside ``path``, then rename it into place: the default
    cache is in the shared temporary folder. O_EXCL fails on any path that exists, a planted link too."""
    tmp = f"{path}.{os.urandom(8).hex()}.tmp"
    descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(descriptor, "wb") as f:
            f.write(contents)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _not_vendored_message(blobpath: str, carried: list[str]) -> str:
    from ._manifest import load_manifest

    try:
        needing = load_manifest().encodings_needing(blobpath)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # a damaged manifest: verify names it
        needing = []
    what = f"encoding {' / '.join(needing)}" if needing else "an encoding this package does not know"
    return (
        f"{what} needs {blobpath}, which this installation of tiktoken-encodings-offline does not "
        f"serve (it carries: {', '.join(carried) or 'nothing'}), and strict mode "
        f"({STRICT_ENV}) forbids downloading it. Fix: install the full wheel (or one built with "
        f"that encoding), or unset {STRICT_ENV} to let tiktoken download it."
    )
