"""Reading the vendored files, their record and the fast path's tables: the bottom of the package.

Every other module reads through here; this one imports none of them. The files are read from
the package's folder, or, in a zipped install (the wheel file itself on ``sys.path``), straight
out of the archive through the package's own loader (zipimport's ``get_data``): nothing is
extracted to serve tiktoken. Nothing here raises on a damaged installation: the readers return
what is wrong, as a line naming the file and the fix.
"""

from __future__ import annotations

import os
import sys
from _thread import RLock  # built in: threading costs import time

TYPE_CHECKING = False  # typing costs more to import than this whole package may take
if TYPE_CHECKING:
    from typing import Callable

    Row = tuple[str, str, str, str, int]  # a row of the record: encoding, file, url, sha256, size

DISABLE_ENV = "TIKTOKEN_ENCODINGS_OFFLINE_DISABLE"
STRICT_ENV = "TIKTOKEN_ENCODINGS_OFFLINE_STRICT"
RECORD_NAME = "vendored.tsv"
RECORD_HEADER = "encoding\tfile\turl\tsha256\tsize"
RECORD_LIMIT = 1 << 20  # bytes of a record read at most: a whole one is a few kB
FIX = "reinstall the wheel (pip install --force-reinstall --no-deps tiktoken-encodings-offline)"
# The two files openai-harmony reads (o200k_base's and cl100k_base's), by tiktoken cache name:
# TIKTOKEN_RS_CACHE_DIR points at the vendored folder only when both are here.
HARMONY_FILES = ("fb374d419588a4632f3f557e76b4b70aebbca790", "9b5ad71b2ce5302211f9c61530b329a4922fc6a4")

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
DATA_DIR = os.path.join(PACKAGE_DIR, "data")  # in a zipped install, a path inside the archive
# A loader with no file system folder (zipimport, a frozen app's archive) reads its files itself.
_archive: Callable[[str], bytes] | None = None
_member_prefix: str | None = None  # zipimport: the archive's own name of PACKAGE_DIR, with a separator
if not os.path.isdir(PACKAGE_DIR):
    import zipimport  # imported by every start-up: its importer is on sys.path_hooks

    _archive = getattr(__spec__.loader, "get_data", None)
    # The archive's name on sys.path may be relative ("deps/x.zip"), which PACKAGE_DIR is not: the
    # member's own name is what zipimport looks up whatever form the path has.
    if isinstance(__spec__.loader, zipimport.zipimporter):
        _member_prefix = __spec__.loader.prefix
IN_ARCHIVE = _archive is not None
# zipimport's reader says "zlib not available" at times when another thread reads at once: each
# retry waits 2 ms longer than the last, 90 ms in all.
ARCHIVE_READ_ATTEMPTS = 10

_state: tuple[list[Row], str | None, dict[str, str]] | None = None
_said: set[str] = set()
_quiet = False  # the command line reports in one line of its own
# Threads: what is cached is set once (installation, notices said), and one archive read at a time.
_state_lock = RLock()
_archive_lock = RLock()


def _new_locks_in_child() -> None:
    """A forked child has only the forking thread: a lock another thread held would never open."""
    global _state_lock, _archive_lock
    _state_lock, _archive_lock = RLock(), RLock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_new_locks_in_child)


def installation() -> tuple[list[Row], str | None, dict[str, str]]:
    """``inspect(DATA_DIR)``, once per process: every thread gets the same answer."""
    global _state
    if _state is None:
        with _state_lock:
            if _state is None:
                _state = inspect(DATA_DIR)
    return _state


def inspect(folder: str) -> tuple[list[Row], str | None, dict[str, str]]:
    """The record's rows, what is wrong with the folder (None: nothing found, or a line naming the
    file and the fix), and each listed file that cannot be used (cache name -> why). Never raises.

    Only what costs a few system calls is checked here: this runs on every import. The runtime
    checks each file's SHA-256 when it serves it, and that each name is the SHA-1 of its URL.
    """
    rows, problem = read_rows(folder)
    unusable = unusable_files(folder, rows)
    if problem is None and unusable:
        problem = "; ".join(f"{os.path.join(folder, name)} {why}" for name, why in unusable.items()) + f"; {FIX}"
    return rows, problem, unusable


def read_rows(folder: str) -> tuple[list[Row], str | None]:
    """The rows of ``folder``'s record, or none and what is wrong with it (naming the file and the fix)."""
    path = os.path.join(folder, RECORD_NAME)
    try:
        raw = read_regular_file(path, RECORD_LIMIT)
    except FileNotFoundError:
        return [], f"{path} is missing; {FIX}"
    except OSError as error:
        return [], f"{damage_or_error(path, error)}; {FIX}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    lines = text.split("\n")
    rows: list[Row] = []
    for number, line in enumerate(lines[1:-1], start=2):
        fields = line.split("\t")
        if not _is_row(fields):
            return [], f"{path} is damaged (line {number} is not: encoding, file, url, sha256, size); {FIX}"
        rows.append((fields[0], fields[1], fields[2], fields[3], int(fields[4])))
    if not raw:
        what = "empty"
    elif not text:
        what = "not UTF-8 text"
    elif lines[0] != RECORD_HEADER:
        what = "its first line is not the header"
    elif lines[-1]:
        what = "truncated: its last line is cut"
    elif not rows:
        what = "it lists no file"
    else:
        return rows, None
    return [], f"{path} is damaged ({what}); {FIX}"


def _is_row(fields: list[str]) -> bool:
    """Five fields: encoding, a SHA-1 file name, url, a SHA-256, a size in bytes."""
    if len(fields) != 5:
        return False
    size = fields[4]
    return _is_hex(fields[1], 40) and _is_hex(fields[3], 64) and size.isascii() and size.isdigit()


def _is_hex(text: str, length: int) -> bool:
    # strip() leaves nothing exactly when every character is a lowercase hex digit: one C call
    return len(text) == length and not text.strip("0123456789abcdef")


def unusable_files(folder: str, rows: list[Row]) -> dict[str, str]:
    """Each listed file that is not there with its recorded size (a stat each, no reading).

    Inside the archive there is nothing to stat: a file is checked when it is read (its size and
    SHA-256), and ``verify`` reads them all.
    """
    unusable: dict[str, str] = {}
    if _in_archive(folder):
        return unusable
    for file, size in {row[1]: row[4] for row in rows}.items():
        try:
            found = os.stat(os.path.join(folder, file)).st_size
        except FileNotFoundError:
            unusable[file] = "is missing"
            continue
        except OSError as error:
            unusable[file] = f"cannot be read ({error.strerror or error})"
            continue
        if found != size:
            unusable[file] = f"is damaged ({found} bytes, {size} expected)"
    return unusable


def read_record(folder: str) -> tuple[list[Row], str | None, dict[str, str]]:
    """The rows of the encodings ``folder`` can serve, what is wrong with it, and why each listed
    URL it cannot serve is not served (URL -> a line naming the file and the fix). Never raises.

    A damaged record, or one with a row whose file is not the SHA-1 of its URL, serves nothing;
    an encoding with a file that is missing or of the wrong size is left out.
    """
    rows, problem, unusable = installation() if folder == DATA_DIR else inspect(folder)
    misnamed = misnamed_row(folder, rows)
    damaged: dict[str, str] = {}
    for _, file, url, _, _ in rows:
        if misnamed:
            damaged[url] = misnamed
        elif file in unusable:
            damaged[url] = f"{os.path.join(folder, file)} {unusable[file]}; {FIX}"
    left_out = {row[0] for row in rows if row[2] in damaged}
    return [row for row in rows if row[0] not in left_out], misnamed or problem, damaged


def misnamed_row(folder: str, rows: list[Row]) -> str | None:
    """The damage a row whose file is not the SHA-1 of its URL does to the whole record."""
    import hashlib  # tiktoken.load has imported it

    for number, (_, file, url, _, _) in enumerate(rows, start=2):
        if hashlib.sha1(url.encode()).hexdigest() != file:
            path = os.path.join(folder, RECORD_NAME)
            return f"{path} is damaged (line {number}: {file} is not the SHA-1 of {url}); {FIX}"
    return None


def _in_archive(path: str) -> bool:
    return IN_ARCHIVE and path.startswith(PACKAGE_DIR)


def read_regular_file(path: str, limit: int, size: int | None = None) -> bytes:
    """At most ``limit`` bytes of ``path``, a regular file (of ``size`` bytes, if given), or of
    the package's file at ``path`` inside its archive.

    A FIFO or a device planted under the name is opened without waiting for a writer and never
    read. What is wrong with the file itself raises OSError with no errno; failing system calls
    raise theirs (see ``damage_or_error``); a file that is not there, FileNotFoundError.
    """
    if _archive is not None and _in_archive(path):
        return _read_archived(_archive, path, limit, size)
    import stat  # os has imported it

    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    descriptor = os.open(path, flags)
    try:
        found = os.fstat(descriptor)
        if not stat.S_ISREG(found.st_mode):
            raise OSError("not a regular file")
        if size is not None and found.st_size != size:
            raise OSError(f"{found.st_size} bytes, {size} expected")
        chunks = []
        while limit > 0:
            chunk = os.read(descriptor, limit)
            if not chunk:
                break
            chunks.append(chunk)
            limit -= len(chunk)
    finally:
        os.close(descriptor)
    return b"".join(chunks)


def _read_archived(get_data: Callable[[str], bytes], path: str, limit: int, size: int | None) -> bytes:
    """A file out of the archive, through the loader: the same errors as ``read_regular_file``.

    zipimport sets up its decompressor behind a module-wide flag with no lock: a thread that reads
    while another does (this package's or an import's) is told "zlib not available". Reads here
    take turns, and that failure is tried again before it is called damage: a damaged member fails
    every time. Code members are stored uncompressed, so imports never meet the flag.
    """
    member = path if _member_prefix is None else _member_prefix + path[len(PACKAGE_DIR) + 1 :]
    for attempt in range(ARCHIVE_READ_ATTEMPTS):
        try:
            with _archive_lock:
                data = get_data(member)
            break
        except OSError as error:
            if error.errno or isinstance(error, FileNotFoundError):  # zipimport says "not there" with errno 0
                raise
            import errno

            raise FileNotFoundError(errno.ENOENT, "not in the archive", path) from None
        except Exception as error:  # a damaged archive: a bad header, data that does not inflate
            if "zlib not available" not in str(error) or attempt + 1 == ARCHIVE_READ_ATTEMPTS:
                raise OSError(f"cannot be read from the archive ({type(error).__name__}: {error})") from None
            import time  # built in

            time.sleep(0.002 * (attempt + 1))  # the other thread's flag is up for microseconds
    if size is not None and len(data) != size:
        raise OSError(f"{len(data)} bytes, {size} expected")
    return data[:limit]


def damage_or_error(path: str, error: OSError) -> str:
    """What ``read_regular_file`` raised, said of ``path``: damage it found, or the failing call."""
    return f"{path} is damaged ({error})" if error.errno is None else f"cannot read {path} ({error.strerror or error})"


def read_verified(path: str, sha256: str, size: int, fix: str) -> bytes | None:
    """The bytes of ``path`` if it is a regular file of ``size`` bytes that hash to ``sha256``; else
    None, and one notice naming the file and ``fix``. Never blocks (see ``read_regular_file``)."""
    import hashlib  # tiktoken.load has imported it: this package's own import does not need it

    try:
        data = read_regular_file(path, size + 1, size)  # one byte more tells a file that grew apart
    except OSError as error:
        _notice(f"{damage_or_error(path, error)}; {fix}")
        return None
    if hashlib.sha256(data).hexdigest() != sha256:
        _notice(f"{path} is damaged (SHA-256 differs from {sha256}); {fix}")
        return None
    return data


def _env_flag(name: str) -> bool:
    """Whether a switch of ours is on: unset, "", 0, false, no and off mean off."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def _notice(message: str) -> None:
    """Say something once per process, on stderr: a warning could become an error under -W error."""
    with _state_lock:
        if message in _said or _quiet:
            return
        _said.add(message)
    try:  # noqa: SIM105 - contextlib costs import time
        sys.stderr.write(f"tiktoken-encodings-offline: {message}\n")
    except Exception:  # noqa: S110 - stderr itself may be gone; never raise from here
        pass
