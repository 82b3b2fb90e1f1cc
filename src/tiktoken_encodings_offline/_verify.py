"""Check an installation: every vendored file and pre-parsed table intact, each encoding built from them alone."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from dataclasses import dataclass, field, replace
from importlib.metadata import version

from ._files import DISABLE_ENV, PACKAGE_DIR, _env_flag, inspect, misnamed_row, read_regular_file
from ._manifest import manifest_problem, sha256_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Callable

TIKTOKEN_MISSING = (
    "tiktoken is not installed (pip install --no-deps skips it, and this package needs it); fix: pip install tiktoken"
)

START_MODULE = "_tiktoken_encodings_offline_startup"  # what the companion's .pth line imports
START_LINE = "tiktoken_encodings_offline_autostart.pth"  # tiktoken-encodings-offline-autostart's

NOT_BUILT = f"{DISABLE_ENV} is set: not built, as that would switch the package on; unset it to build each encoding"

SAMPLE = "hello world 你好 안녕하세요 🙂 def f(x):\n    return x  \t\n"


@dataclass(frozen=True)
class FileCheck:
    file: str
    url: str
    size: int
    expected_sha256: str
    actual_sha256: str | None  # None: missing or unreadable

    @property
    def ok(self) -> bool:
        return self.actual_sha256 == self.expected_sha256


@dataclass(frozen=True)
class EncodingCheck:
    name: str
    error: str | None  # None: built from the vendored files and round-tripped a sample
    skipped: str | None = None  # why it was not built, e.g. the installed tiktoken predates it

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class TableCheck:
    """One pre-parsed table of the fast path (docs/fastpath.md), as fastpath/derived.tsv lists it."""

    path: str
    source: tuple[str, ...]  # the URLs of the blobs it was made from
    expected_sha256: str
    actual_sha256: str | None  # None: missing or unreadable
    mismatch: str | None = None  # why the runtime would not use it although vendored.tsv carries its blobs
    error: str | None = None  # why its bytes, although they hash as recorded, are not a table the runtime reads

    @property
    def ok(self) -> bool:
        return self.actual_sha256 == self.expected_sha256 and self.mismatch is None and self.error is None


@dataclass(frozen=True)
class VerifyResult:
    folder: str
    files: tuple[FileCheck, ...]
    encodings: tuple[EncodingCheck, ...] = field(default=())
    problem: str | None = None  # an installation-wide problem, e.g. no record
    tables: tuple[TableCheck, ...] = field(default=())
    tables_problem: str | None = None  # derived.tsv missing or malformed, or a carried blob without a table (no fix)

    @property
    def ok(self) -> bool:
        intact = all(c.ok for c in self.files) and all(c.ok for c in self.tables)
        return self.problem is None and self.tables_problem is None and intact and all(c.ok for c in self.encodings)


def check_files(folder: str) -> tuple[tuple[FileCheck, ...], str | None]:
    """Each listed file's SHA-256, or what makes the record unusable."""
    rows, problem, _ = inspect(folder)
    problem = misnamed_row(folder, rows) or (problem if not rows else None)
    if problem:
        return (), problem
    checks = []
    for file, url, sha256, size in dict.fromkeys((row[1], row[2], row[3], row[4]) for row in rows):
        try:
            # One byte past the recorded size is enough to tell a longer file apart.
            actual: str | None = sha256_file(os.path.join(folder, file), size + 1)
        except OSError:
            actual = None
        checks.append(FileCheck(file, url, size, sha256, actual))
    return tuple(sorted(checks, key=lambda check: check.url)), None


def check_tables(folder: str, compare: bool = False) -> tuple[tuple[TableCheck, ...], str | None]:
    """Each table of the ``fastpath`` folder beside ``folder`` against derived.tsv, and each row of
    derived.tsv against ``folder``'s record, vendored.tsv, as the runtime requires. No such folder
    (a zipped installation): nothing to check. An intact table must decode; with ``compare`` (it
    needs tiktoken; under a second for all tables), to what tiktoken's own loader parses."""
    from ._runtime import DERIVED_NAME, FORMAT_VERSION, decode_table, read_derived

    tables_folder = os.path.join(os.path.dirname(folder), "fastpath")
    if not os.path.isdir(tables_folder):
        return (), None
    record_path = os.path.join(tables_folder, DERIVED_NAME)
    try:
        rows = read_derived(tables_folder)
    except (OSError, ValueError) as error:  # a file that is not UTF-8 is a ValueError too
        return (), str(error)
    if rows is None:
        return (), f"{record_path} is missing"
    recorded = {row[2]: row[3] for row in inspect(folder)[0]}  # URL -> SHA-256
    checks = []
    for source, shas, path, sha256, size, table_format in rows:
        mismatch = None
        if table_format != str(FORMAT_VERSION):
            mismatch = f"format {table_format}, this version reads {FORMAT_VERSION}"
        for url, sha in zip(source, shas):
            if recorded.get(url, sha) != sha:
                mismatch = f"made from another version of {url} ({sha}; vendored.tsv records {recorded[url]})"
            elif url not in recorded:
                mismatch = f"made from {url}, which vendored.tsv does not list"
        try:
            data: bytes | None = read_regular_file(path, size + 1)
        except OSError:
            data = None
        actual = None if data is None else hashlib.sha256(data).hexdigest()
        undecodable = None
        if data is not None and actual == sha256 and mismatch is None:
            try:
                ranks = decode_table(data)
            except (ValueError, IndexError) as decode_error:
                undecodable = f"it does not decode ({decode_error})"
            else:
                undecodable = _differs_from_tiktoken(folder, source, shas, ranks) if compare else None
        checks.append(TableCheck(path, source, sha256, actual, mismatch, undecodable))
    without = [url for url in recorded if not any(url in row[0] for row in rows)]
    problem = f"{record_path} lists no table for {', '.join(without)}" if without else None
    return tuple(checks), problem


def _differs_from_tiktoken(
    folder: str, source: tuple[str, ...], shas: tuple[str, ...], ranks: dict[bytes, int]
) -> str | None:
    """Why a decoded table is not the dict, in key order, tiktoken's own loader parses from its
    vendored blob(s). None when it is, or when tiktoken cannot parse them: a damaged blob is
    reported with the files."""
    import tiktoken.load

    from ._fallback import serving_only_vendored
    from ._runtime import DATA_GYM, LOAD_BPE, install, tiktokens_own

    install(folder)  # tiktoken's reader serves the vendored blobs, and nothing else below
    own = tiktokens_own(getattr(tiktoken.load, LOAD_BPE if len(source) == 1 else DATA_GYM))
    try:
        with serving_only_vendored():
            parsed = own(*source, *shas)
    except Exception:
        return None
    if list(parsed.items()) != list(ranks.items()):
        return f"it is not what tiktoken parses from {' + '.join(source)}"
    return None


def tiktoken_missing() -> str | None:
    import importlib.util

    return TIKTOKEN_MISSING if importlib.util.find_spec("tiktoken") is None else None


def startup_hook_problem() -> str | None:
    """The start-up line with a module it cannot use: nothing activates at start-up then.

    The module is missing, does not import (a broken file: site prints the error at every start-up),
    or has no ``install`` (a stale file from another version).
    """
    from importlib import import_module
    from importlib.machinery import PathFinder

    site_dir = os.path.dirname(PACKAGE_DIR)
    line = os.path.join(site_dir, START_LINE)
    if not os.path.isfile(line):
        return None
    if PathFinder.find_spec(START_MODULE) is None:
        what = f"is there but not the module its line imports ({START_MODULE}.py in {site_dir})"
    else:
        try:
            usable = callable(getattr(import_module(START_MODULE), "install", None))
            error = "it has no install()"
        except Exception as raised:  # a damaged file may raise anything at import
            usable, error = False, f"{type(raised).__name__}: {raised}"
        if usable:
            return None
        what = f"imports {START_MODULE}, which cannot be used ({error})"
    return (
        f"{line} {what}: nothing activates the package at the first import of `tiktoken.load` or `openai_harmony` "
        "(only tiktoken's get_encoding does); reinstall the companion "
        "(pip install --force-reinstall --no-deps tiktoken-encodings-offline-autostart)"
    )


def verify(folder: str, load: bool = True) -> VerifyResult:
    hook_problem = startup_hook_problem()  # before anything imports tiktoken
    result = _verify(folder, load)
    return replace(result, problem=result.problem or manifest_problem() or hook_problem)


def _verify(folder: str, load: bool) -> VerifyResult:
    files, problem = check_files(folder)
    if problem:
        return VerifyResult(folder, files, (), problem)
    missing = tiktoken_missing() if load else None
    switched_off = load and not missing and _switched_off()
    tables, tables_problem = check_tables(folder, compare=load and not missing and not switched_off)
    if missing or not load:
        return VerifyResult(folder, files, (), missing, tables, tables_problem)
    names = dict.fromkeys(row[0] for row in inspect(folder)[0])
    built = (EncodingCheck(name, None, NOT_BUILT) if switched_off else _load(name, folder) for name in names)
    return VerifyResult(folder, files, tuple(built), None, tables, tables_problem)


def _switched_off() -> bool:
    """The package is off in this process: building an encoding would wrap tiktoken's reader for good."""
    from ._runtime import is_installed

    return _env_flag(DISABLE_ENV) and not is_installed()


def _load(name: str, folder: str) -> EncodingCheck:
    """Build one encoding afresh with the network blocked and only the vendored files allowed."""
    import tiktoken
    import tiktoken.load
    import tiktoken.registry

    from ._fallback import serving_only_vendored
    from ._runtime import install

    install(folder)
    tiktoken.registry.list_encoding_names()  # loads the plugins
    constructor = (tiktoken.registry.ENCODING_CONSTRUCTORS or {}).get(name)
    if constructor is None:  # o200k_harmony on tiktoken < 0.10: its files are checked above
        return EncodingCheck(name, None, f"tiktoken {version('tiktoken')} has no such encoding")

    try:
        with serving_only_vendored(), _network_blocked():
            encoding = tiktoken.Encoding(**constructor())
        tokens = encoding.encode(SAMPLE)
        if encoding.decode(tokens) != SAMPLE:
            return EncodingCheck(name, "a sample text did not decode back to itself")
    except Exception as error:
        return EncodingCheck(name, f"{type(error).__name__}: {error}")
    return EncodingCheck(name, None)


# tiktoken's downloader is replaced while any thread verifies, and raises only on those threads.
_blocking = threading.local()
_blocker_lock = threading.Lock()
_blocker_users = 0
_real_read_file: list[Callable[[str], bytes]] = []  # tiktoken.load.read_file as the first verify found it


def _new_lock_in_child() -> None:
    """A forked child has only the forking thread: a lock another thread held would never open, and
    the verifies under way are not the child's (``_blocked_read_file`` lets its reads through)."""
    global _blocker_lock, _blocker_users
    _blocker_lock, _blocker_users = threading.Lock(), 0


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_new_lock_in_child)


def _blocked_read_file(blobpath: str) -> bytes:
    if getattr(_blocking, "active", False):
        raise RuntimeError(f"verify blocks network access, and {blobpath} was asked for")
    return _real_read_file[-1](blobpath)


@contextlib.contextmanager
def _network_blocked() -> Iterator[None]:
    """On this thread, tiktoken's downloader raises; other threads download as before. The last
    verify to finish puts tiktoken's function back (unless someone else replaced it meanwhile)."""
    global _blocker_users
    import tiktoken.load

    with _blocker_lock:
        if _blocker_users == 0 and tiktoken.load.read_file is not _blocked_read_file:
            _real_read_file[:] = [tiktoken.load.read_file]
            tiktoken.load.read_file = _blocked_read_file
        _blocker_users += 1
    outer = getattr(_blocking, "active", False)
    _blocking.active = True
    try:
        yield
    finally:
        _blocking.active = outer
        with _blocker_lock:
            _blocker_users -= 1
            if _blocker_users == 0 and tiktoken.load.read_file is _blocked_read_file:
                tiktoken.load.read_file = _real_read_file[-1]  # type: ignore[assignment]
