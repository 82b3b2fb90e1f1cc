"""Files written so that nothing planted in a shared folder can redirect them.

Every file is created exclusively under a fresh random name in its target folder (``mkstemp``:
``O_CREAT | O_EXCL``, so a symlink there is never followed), then renamed over the final name
(a rename replaces a symlink planted there; it never writes through it).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Callable

READ_SIZE = 1 << 20
UNLOCKED_PART_AGE = 60.0  # seconds: an unlocked part this old belongs to a run that is gone
UNLOCKABLE_PART_AGE = 3600.0  # the same where files cannot be locked (Windows): age alone decides
REPLACE_TRIES = 10  # a rename refused because another process has the target open: retried
REPLACE_PAUSE = 0.1  # seconds between the tries: about one second in all


class DamagedFile(Exception):
    """A file's bytes are not the ones the manifest pins."""


class InUse(PermissionError):
    """A file could not be renamed: another process has it open (Windows refuses the rename then)."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(READ_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def new_part(folder: Path, prefix: str, suffix: str = ".part") -> tuple[BinaryIO, Path]:
    """An exclusively created, empty file in ``folder``, open for reading and writing."""
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    return os.fdopen(fd, "w+b"), Path(name)


def hold(part: BinaryIO) -> None:
    """Mark an open ``.part`` file as in use, for as long as it stays open (POSIX advisory lock)."""
    if sys.platform != "win32":
        import fcntl

        with contextlib.suppress(OSError):  # held by another process already: it is in use either way
            fcntl.flock(part.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def abandoned(part: Path) -> bool:
    """True for a ``.part`` file that no running download holds: a killed run left it."""
    age = time.time() - part.lstat().st_mtime
    if sys.platform == "win32":
        return age > UNLOCKABLE_PART_AGE
    import fcntl

    if age < UNLOCKED_PART_AGE:
        return False  # it may have been created a moment ago, before its lock
    fd = os.open(part, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def rename(source: Path, destination: Path, kept: Callable[[], bool] = lambda: False) -> None:
    """Rename ``source`` to ``destination`` (replacing a file there): every rename of the build.

    Windows refuses a rename (WinError 5 or 32, a ``PermissionError``) while another process has
    the file, or a file in the folder, open: an antivirus scan, a parallel build, an indexer. The
    rename is tried again for about a second, and then ``InUse`` names the file. ``kept()`` is
    asked after each refusal: True ends the retries as if the rename had happened.
    """
    for attempt in range(REPLACE_TRIES):
        try:
            source.replace(destination)
            return
        except PermissionError as error:
            refused = error
        if kept():
            return
        if attempt < REPLACE_TRIES - 1:
            time.sleep(REPLACE_PAUSE)
    raise InUse(
        refused.errno,
        f"cannot replace it: {refused.strerror or refused}; another process has it open (on Windows: a "
        f"parallel build, an antivirus scan), or this user may not replace it. Fix: build again once "
        f"that process is done with it, or check who owns the file",
        str(destination),
    )


def replace(part: Path, destination: Path, sha256: str) -> None:
    """Rename ``part`` over ``destination``, whose bytes must hash to ``sha256``.

    While the rename is refused (``rename``), a ``destination`` that already holds these bytes
    (a parallel build put them there and holds the file open) is kept.
    """

    def already_there() -> bool:
        with contextlib.suppress(OSError):  # gone, or unreadable: it is not the right file then
            return sha256_file(destination) == sha256
        return False

    rename(part, destination, already_there)


def write_file(destination: Path, data: bytes) -> None:
    """``destination`` holds ``data`` (mode 0644), written exclusively and renamed into place.

    An OSError names the folder (a full disk's error names no file of its own).
    """
    try:
        out, part = new_part(destination.parent, f".{destination.name}.", ".tmp")
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(destination.parent)) from None
    try:
        with out:
            out.write(data)
        part.chmod(0o644)
        replace(part, destination, hashlib.sha256(data).hexdigest())
    except InUse:
        raise
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(destination.parent)) from None
    finally:
        part.unlink(missing_ok=True)


def copy_verified(source: Path, destination: Path, sha256: str) -> None:
    """Write ``destination`` fresh with the bytes of ``source``, which must hash to ``sha256``."""
    data = source.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise DamagedFile(f"{source} changed while it was read: expected SHA-256 {sha256}, found {actual}")
    write_file(destination, data)
