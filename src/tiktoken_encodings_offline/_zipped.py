"""A real folder for a zipped install's files, only where one is needed (``where()``, ``path``).

tiktoken itself is served straight from the archive (``_files``). openai-harmony and child
processes that do not import this package need ``TIKTOKEN_RS_CACHE_DIR`` / ``TIKTOKEN_CACHE_DIR``:
a folder. ``where()`` makes it once per user and per content (later calls, in any process,
reuse it) and registers it as those variables; activation never touches it:

    $XDG_CACHE_HOME (or ~/.cache, or the temporary folder)/tiktoken-encodings-offline[-<uid>]/zipped-<digest>

(the build's download cache shares ``~/.cache/tiktoken-encodings-offline``; its files are named
by their SHA-1, never ``zipped-*`` nor ``.<pid>.*``). ``<digest>``: the SHA-256 of the record's
rows, which hold every file's SHA-256. Every file is hashed before any folder is made (a damaged
archive leaves none), and the copy is renamed into place, complete. The folders on the way are
checked: no link, the right owner, no one else may write there. Nothing is removed at exit: a fork, a kill,
a pool's termination leave the one shared copy as it is.
"""

from __future__ import annotations

import os
import stat

from ._files import DATA_DIR, FIX, RECORD_NAME, copies, inspect, installation, read_regular_file, read_verified

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._files import Row

NAME = "tiktoken-encodings-offline"
STALE_SECONDS = 600  # a temporary folder left this long by a process that is gone is removed


def user_folder() -> tuple[str | None, str | None]:
    """The checked copy of the archive's files, made if missing; or None and why not. Never raises."""
    try:
        rows, problem, _ = installation()
        if problem:
            return None, problem
        name = f"zipped-{_digest(rows)}"
        files = None  # read and checked before any folder is made: a damaged archive leaves none
        if not any(os.path.lexists(os.path.join(ours, name)) for _, ours in _candidates()):
            files = _read_all(rows)
        parent, why = _private_parent()
        if parent is None:
            return None, why
        _remove_stale(parent)  # also where a copy exists: a process killed while it made one left its folder
        folder = os.path.join(parent, name)
        if not os.path.lexists(folder):
            _make(parent, folder, files if files is not None else _read_all(rows))
        why = _check(folder, rows)
        if why:
            return None, why
        if folder not in copies:
            copies.append(folder)
        return folder, None
    except Exception as error:
        what = f"{type(error).__name__}: {error}"
        return None, f"cannot make a folder of its files ({what}); tiktoken is served from the archive"


def _digest(rows: list[Row]) -> str:
    import hashlib

    return hashlib.sha256("\n".join("\t".join(map(str, row)) for row in rows).encode()).hexdigest()[:32]


def _uid() -> int | None:
    geteuid = getattr(os, "geteuid", None)  # none on Windows: a profile folder is the user's own
    return geteuid() if geteuid else None


def _candidates() -> list[tuple[str, str]]:
    """(a base folder, our folder in it): the user's cache folder, then the temporary folder."""
    import tempfile

    places = []
    cache = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(cache):  # unset, empty or relative: the XDG spec says to use ~/.cache then
        cache = os.path.join(os.path.expanduser("~"), ".cache")
    if os.path.isabs(cache):  # no home at all: expanduser leaves "~"
        places.append((cache, os.path.join(cache, NAME)))
    uid = _uid()
    tmp = tempfile.gettempdir()
    places.append((tmp, os.path.join(tmp, NAME if uid is None else f"{NAME}-{uid}")))
    return places


def _private_parent() -> tuple[str | None, str | None]:
    """Our folder (made if missing) in the first place that is safe; else why none is."""
    refused = []
    for base, ours in _candidates():
        if not os.path.lexists(base):
            try:  # noqa: SIM105 - checked below
                os.mkdir(base, 0o700)  # ~/.cache, one level: never a whole made-up path
            except OSError:
                pass
        why = _unsafe(base, base=True)
        if why is None and not os.path.lexists(ours):
            try:
                os.mkdir(ours, 0o700)
            except FileExistsError:
                pass
            except OSError as error:
                why = f"cannot create {ours} ({error.strerror or error})"
        why = why or _unsafe(ours, base=False)
        if why is None:
            return ours, None
        refused.append(why)
    return None, (
        f"no safe folder for a copy of its files ({'; '.join(refused)}); tiktoken is served from the archive; "
        "for a folder (openai-harmony, TIKTOKEN_CACHE_DIR) run: python -m tiktoken_encodings_offline export DIR"
    )


def _unsafe(path: str, base: bool) -> str | None:
    """Why ``path`` is not a folder to trust: a link, another owner, writable by others.

    A base folder may be root's, or world-writable with the sticky bit (/tmp); ours must be ours alone.
    """
    try:
        found = os.lstat(path)
    except OSError as error:
        return f"{path}: {error.strerror or error}"
    uid = _uid()
    if not stat.S_ISDIR(found.st_mode):
        return f"{path} is not a folder (a link or a file)"
    if uid is not None and found.st_uid not in ((uid, 0) if base else (uid,)):
        return f"{path} belongs to user {found.st_uid}, not to this one ({uid})"
    writable = found.st_mode & (0o022 if not base else 0o002)
    if uid is not None and writable and not (base and found.st_mode & stat.S_ISVTX):
        return f"{path} is writable by others (mode {stat.S_IMODE(found.st_mode):o})"
    return None


def _check(folder: str, rows: list[Row]) -> str | None:
    """Why a folder found under our name is not the intact copy (its files are checked by size)."""
    why = _unsafe(folder, base=False)
    if why is None:
        found, problem, _ = inspect(folder)
        if problem is None and found != rows:
            problem = f"{os.path.join(folder, RECORD_NAME)} is not this installation's record"
        why = problem and f"{problem.split('; ')[0]}; remove {folder}, it is made anew"
    return why


def _read_all(rows: list[Row]) -> dict[str, bytes]:
    """Every file of the archive (files encodings share: once) and its record, each checked."""
    files = {}
    for file, (sha256, size) in {row[1]: (row[3], row[4]) for row in rows}.items():
        data = read_verified(os.path.join(DATA_DIR, file), sha256, size, FIX)
        if data is None:
            raise OSError(f"{os.path.join(DATA_DIR, file)} is damaged; {FIX}")
        files[file] = data
    files[RECORD_NAME] = read_regular_file(os.path.join(DATA_DIR, RECORD_NAME), 1 << 20)
    return files


def _make(parent: str, folder: str, files: dict[str, bytes]) -> None:
    """Write the checked files into a new folder, then rename it into place (another process may
    win the race: its folder, as complete, is then the one used)."""
    import shutil
    import tempfile

    building = tempfile.mkdtemp(prefix=f".{os.getpid()}.", dir=parent)
    try:
        for file, data in files.items():
            _write(os.path.join(building, file), data)
        try:
            os.rename(building, folder)
        except OSError:
            if not os.path.isdir(folder):  # not a race lost: a real failure
                raise
    finally:
        if os.path.lexists(building):
            shutil.rmtree(building, ignore_errors=True)


def _write(path: str, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o444)
    with os.fdopen(descriptor, "wb") as f:
        f.write(data)


def _remove_stale(parent: str) -> None:
    """Temporary folders of processes killed while they made a copy (gone, and long ago)."""
    import shutil
    import time

    for name in os.listdir(parent):
        pid = name.split(".")[1] if name.startswith(".") and name.count(".") >= 2 else ""
        path = os.path.join(parent, name)
        if not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            if time.time() - os.lstat(path).st_mtime > STALE_SECONDS:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill would end the process there: never remove anything
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
