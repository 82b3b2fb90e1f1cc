"""Serve the vendored files to tiktoken by wrapping ``tiktoken.load.read_file_cached``.

The wrapper answers from the vendored folder when the URL is one it carries and tiktoken's
``expected_hash`` (when given) is the manifest's; every other request goes on as with plain
tiktoken, except that nothing is ever written into the vendored folder.

``Blob`` and ``Record`` (what a data folder's vendored.tsv lists) live here, not in
``_manifest``: activation, inside tiktoken's first ``get_encoding``, then imports one module less.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import threading

from . import FIX, RECORD_NAME, STRICT_ENV, _env_flag, _notice, inspect, installation, read_verified, where

TYPE_CHECKING = False  # typing's aliases cost import time inside tiktoken's first get_encoding()
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Callable

    ReadFileCached = Callable[..., bytes]

_MARKER = "__tiktoken_encodings_offline__"
_lock = threading.Lock()
_only_vendored = threading.local()


# Plain classes, not named tuples: building a named tuple class (it compiles source) costs more
# than the rest of this module, which loads inside tiktoken's first get_encoding().


class Blob:
    """One file tiktoken downloads, identified by its canonical upstream URL."""

    __slots__ = ("sha256", "size", "url")

    def __init__(self, url: str, sha256: str, size: int) -> None:
        self.url, self.sha256, self.size = url, sha256, size

    def fields(self) -> tuple[str, str, int]:
        return self.url, self.sha256, self.size

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Blob) and self.fields() == other.fields()

    def __hash__(self) -> int:
        return hash(self.fields())

    def __repr__(self) -> str:
        return f"Blob{self.fields()!r}"

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def cache_name(self) -> str:
        """The name tiktoken (and openai-harmony) cache this blob under."""
        return cache_name(self.url)


def cache_name(url: str) -> str:
    return hashlib.sha1(url.encode()).hexdigest()


class Record:
    """What one data folder carries, read from its vendored.tsv."""

    __slots__ = ("encodings",)

    def __init__(self, encodings: Mapping[str, tuple[Blob, ...]]) -> None:
        self.encodings = encodings  # each carried encoding and the blobs it reads

    @property
    def blobs(self) -> tuple[Blob, ...]:
        """Every blob once, ordered by URL (then SHA-256 and size)."""
        return tuple(sorted({blob for blobs in self.encodings.values() for blob in blobs}, key=Blob.fields))


class EncodingNotVendoredError(RuntimeError):
    """Strict mode: tiktoken asked for a file this installation does not carry."""


def install(folder: str) -> None:
    """Wrap tiktoken's reader so it serves ``folder``. Idempotent and thread-safe."""
    import tiktoken.load

    with _lock:
        if is_installed():
            return
        record, problem, damaged = read_record(folder)
        if problem:
            _notice(problem)
        unreadable_record = problem if problem and not damaged and not record.encodings else None
        wrapped = _wrap(tiktoken.load.read_file_cached, folder, record, damaged, unreadable_record)
        tiktoken.load.read_file_cached = wrapped
        from ._fastpath import install as install_fastpath  # pre-parsed ranks; see docs/fastpath.md

        install_fastpath(record)


def read_record(folder: str) -> tuple[Record, str | None, dict[str, str]]:
    """What ``folder`` can serve, what is wrong with it, and why each listed URL it cannot serve
    is not served (URL -> a line naming the file and the fix). Never raises.

    A damaged record, or one with a row whose file is not the SHA-1 of its URL, serves nothing;
    an encoding with a file that is missing or of the wrong size is left out.
    """
    rows, problem, unusable = installation() if folder == where() else inspect(folder)
    misnamed = misnamed_row(folder, rows)
    encodings: dict[str, tuple[Blob, ...]] = {}
    damaged: dict[str, str] = {}
    for name, file, url, sha256, size in rows:
        if misnamed:
            damaged[url] = misnamed
        elif file in unusable:
            damaged[url] = f"{os.path.join(folder, file)} {unusable[file]}; {FIX}"
        encodings[name] = (*encodings.get(name, ()), Blob(url, sha256, size))
    usable = {name: blobs for name, blobs in encodings.items() if not any(b.url in damaged for b in blobs)}
    return Record(usable), misnamed or problem, damaged


def misnamed_row(folder: str, rows: list[tuple[str, str, str, str, int]]) -> str | None:
    """The damage a row whose file is not the SHA-1 of its URL does to the whole record."""
    for number, (_, file, url, _, _) in enumerate(rows, start=2):
        if cache_name(url) != file:
            path = os.path.join(folder, RECORD_NAME)
            return f"{path} is damaged (line {number}: {file} is not the SHA-1 of {url}); {FIX}"
    return None


def is_installed() -> bool:
    import tiktoken.load

    return bool(getattr(getattr(tiktoken.load, "read_file_cached", None), _MARKER, False))


@contextlib.contextmanager
def serving_only_vendored() -> Iterator[None]:
    """Within this block, on this thread, a file the folder does not serve is an error."""
    _only_vendored.active = True
    try:
        yield
    finally:
        _only_vendored.active = False


def _strict() -> bool:
    if getattr(_only_vendored, "active", False):
        return True
    return _env_flag(STRICT_ENV)


def _wrap(
    original: ReadFileCached, folder: str, record: Record, damaged: dict[str, str], unreadable_record: str | None
) -> ReadFileCached:
    """``damaged``: why each listed URL is not served; ``unreadable_record``: why nothing is."""
    served = {blob.url: blob for blob in record.blobs}

    @functools.wraps(original)
    def read_file_cached(blobpath: str, expected_hash: str | None = None) -> bytes:
        blob = served.get(blobpath)
        if blob is not None and expected_hash in (None, blob.sha256):
            data = read_verified(os.path.join(folder, blob.cache_name), blob.sha256, blob.size, FIX)
            if data is not None:
                return data
            damaged.setdefault(blobpath, f"{os.path.join(folder, blob.cache_name)} is damaged; {FIX}")
        if _strict():
            why = damaged.get(blobpath, unreadable_record)
            if why:
                raise EncodingNotVendoredError(f"strict mode ({STRICT_ENV}) forbids a download: {why}")
            raise EncodingNotVendoredError(_not_vendored_message(blobpath, record))
        if _same_folder(_cache_dir_in_effect(), folder):
            return _read_via_default_cache(blobpath, expected_hash)
        return original(blobpath, expected_hash)

    setattr(read_file_cached, _MARKER, True)
    return read_file_cached


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
    if os.path.exists(cache_path):
        with open(cache_path, "rb", buffering=0) as f:
            data = f.read()
        if expected_hash is None or check_hash(data, expected_hash):
            return data
        with contextlib.suppress(OSError):
            os.remove(cache_path)

    contents = read_file(blobpath)
    if expected_hash and not check_hash(contents, expected_hash):
        raise ValueError(
            f"Hash mismatch for data downloaded from {blobpath} (expected {expected_hash}). "
            f"This may indicate a corrupted download. Please try again."
        )
    with contextlib.suppress(OSError):  # tiktoken ignores a default cache it cannot write
        os.makedirs(cache_dir, exist_ok=True)
        tmp = f"{cache_path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as f:
            f.write(contents)
        os.replace(tmp, cache_path)
    return contents


def _not_vendored_message(blobpath: str, record: Record) -> str:
    from ._manifest import load_manifest

    try:
        needing = load_manifest().encodings_needing(blobpath)
    except (OSError, ValueError):
        needing = []
    what = f"encoding {' / '.join(needing)}" if needing else "an encoding this package does not know"
    return (
        f"{what} needs {blobpath}, which this installation of tiktoken-encodings-offline does not "
        f"serve (it carries: {', '.join(record.encodings) or 'nothing'}), and strict mode "
        f"({STRICT_ENV}) forbids downloading it. Fix: install the full wheel (or one built with "
        f"that encoding), or unset {STRICT_ENV} to let tiktoken download it."
    )
