"""``export DIR`` and ``export()``: copy the vendored files into a folder, each written exclusively
and verified. The only place this package writes."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import stat
import tempfile
import time
from typing import Any

from ._files import DATA_DIR, FIX, damage_or_error, read_record, read_regular_file

RENAME_TRIES = 6  # Windows refuses a rename while another program holds the file open: 0.05 s to 1.6 s apart


class ExportError(Exception):
    """``export()`` could not copy the files: the message names what is wrong and the fix."""


class BadArgumentError(ExportError):
    """A folder (a command-line argument) that cannot work: the command exits 2."""


class NoFolderError(RuntimeError):
    """``where()`` in a zipped install: the files are inside an archive, and no folder holds them."""


# Raised here and by where(), caught by their public names (the package's __getattr__ imports them).
ExportError.__module__ = NoFolderError.__module__ = "tiktoken_encodings_offline"


def export(directory: str, original_names: bool = False) -> str:
    """``tiktoken_encodings_offline.export``: the command's work, its problem raised."""
    try:
        report, problem, _ = export_files(directory, original_names)
    except BadArgumentError as error:  # the command's exit 2: to the caller, one public type
        raise ExportError(str(error)) from None
    if problem:
        raise ExportError(problem)
    return str(report["directory"])


def export_command(args: argparse.Namespace) -> tuple[Any, str | None, str]:
    return export_files(args.directory, args.original_names)


def export_files(directory: str, original_names: bool) -> tuple[Any, str | None, str]:
    """Copy every vendored file into ``directory``: (report, the one-line problem or None, text)."""
    folder = DATA_DIR  # in a zipped install, the archive: export needs no copy of it
    rows, problem, damaged = read_record(folder)
    if problem or damaged:
        return {"directory": None, "files": []}, problem or next(iter(damaged.values())), "nothing exported"
    if not directory:
        raise BadArgumentError("export: DIR is empty; name a folder (it is created if missing)")
    target_dir = os.path.abspath(directory)
    _make_folder(target_dir)
    owner = _other_owner(target_dir)
    written: list[dict[str, str]] = []
    for url, cache_name, sha256, size in sorted({(url, file, sha256, size) for _, file, url, sha256, size in rows}):
        target = os.path.join(target_dir, url.rsplit("/", 1)[-1] if original_names else cache_name)
        if _holds(target, sha256):
            state = "unchanged"
        else:
            error = _copy_verified(os.path.join(folder, cache_name), size, target, sha256)
            if error:
                report = {"directory": target_dir, "owner": owner, "files": written}
                return report, error, "\n".join(f"{w['state']:<9} {w['file']}" for w in written)
            state = "written"
        written.append({"file": target, "url": url, "sha256": sha256, "state": state})
    lines = [f"{w['state']:<9} {w['file']}" for w in written]
    if owner:
        lines.append(f"note: {target_dir} belongs to {owner}, not to you: they can change or replace these files")
    return {"directory": target_dir, "owner": owner, "files": written}, None, "\n".join(lines)


def _other_owner(folder: str) -> str | None:
    """Who owns ``folder`` when it is not the user running export (None on Windows)."""
    if not hasattr(os, "geteuid"):
        return None
    uid = os.stat(folder).st_uid
    if uid == os.geteuid():
        return None
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _make_folder(path: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise BadArgumentError(f"export: {path} exists and is not a folder; name a folder (it is created if missing)")
    missing = []  # os.makedirs recurses once per level: a path thousands of levels deep overflows it
    while not os.path.isdir(path) and os.path.dirname(path) != path:
        missing.append(path)
        path = os.path.dirname(path)
    made: list[str] = []
    try:
        for folder in reversed(missing):
            with contextlib.suppress(FileExistsError):
                os.mkdir(folder)
                made.append(folder)
    except OSError as error:
        for folder in reversed(made):  # a failed export leaves no empty folders behind
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        raise BadArgumentError(f"export: cannot create the folder {missing[0]} ({error.strerror or error})") from None
    if missing and not os.path.isdir(missing[0]):  # a file took the name meanwhile
        raise BadArgumentError(f"export: {missing[0]} exists and is not a folder; name a folder")


def _holds(path: str, sha256: str) -> bool:
    """Whether ``path`` is a regular file (not a link) of the user running export, with these bytes:
    another user's copy is theirs to change, so it is replaced by one of ours."""
    try:
        found = os.lstat(path)
        if not stat.S_ISREG(found.st_mode) or found.st_uid != getattr(os, "geteuid", lambda: found.st_uid)():
            return False
        return _sha256(path) == sha256
    except OSError:
        return False


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_verified(source: str, size: int, target: str, sha256: str) -> str | None:
    """Copy ``source`` to ``target`` through an exclusive temporary file in the target's folder.

    The source is checked before, the copy after it is written and before it takes the target's
    name, so a damaged file never lands in the folder. Returns what went wrong, or None.
    """
    try:  # never blocks, reads at most size + 1 bytes, and reads out of the archive of a zipped install
        data = read_regular_file(source, size + 1, size)
    except OSError as error:
        return f"{damage_or_error(source, error)}; {FIX}"
    if hashlib.sha256(data).hexdigest() != sha256:
        return f"{source} is damaged (its SHA-256 is not {sha256}); {FIX}; nothing was written for it"
    folder = os.path.dirname(target)
    temporary = None
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=folder)
        with open(descriptor, "wb") as out:
            view = memoryview(data)
            while view:
                view = view[os.write(out.fileno(), view) :]
            out.flush()
            os.fsync(out.fileno())
        if _sha256(temporary) != sha256:
            return f"{target} did not read back as written (check the disk under {folder})"
        os.chmod(temporary, 0o644)
        replace_retrying(temporary, target)
        temporary = None
    except FileInUseError as error:
        return str(error)
    except OSError as error:
        return f"cannot write into {folder} ({error.strerror or error})"
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.remove(temporary)
    return None


class FileInUseError(OSError):
    """A rename refused again and again: on Windows, another program holds one of the files open."""


def replace_retrying(source: str, target: str) -> None:
    """``os.replace``, tried again a few times (for 1.6 s at most in all) while it raises PermissionError:
    Windows refuses to replace a file another program holds open (an antivirus scanner, an indexer,
    a process reading it), and such a hold is usually brief."""
    delay = 0.05
    for attempt in range(RENAME_TRIES):
        try:
            os.replace(source, target)
            return
        except PermissionError as error:
            if attempt == RENAME_TRIES - 1:
                raise FileInUseError(
                    f"cannot rename {source} to {target} ({error.strerror or error}), refused {RENAME_TRIES} "
                    "times: the file is in use (on Windows another program, such as an antivirus scanner, "
                    "holds it open) or the folder does not allow it; close that program, or wait, and export again"
                ) from None
            time.sleep(delay)
            delay *= 2
