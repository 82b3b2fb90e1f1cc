"""``export DIR``: copy the vendored files into a folder, each written exclusively and verified."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import stat
import tempfile
from typing import Any

from ._files import DATA_DIR, FIX, damage_or_error, read_record, read_regular_file


class BadArgumentError(Exception):
    """A command-line argument that cannot work: exit 2."""


def export_command(args: argparse.Namespace) -> tuple[Any, str | None, str]:
    folder = DATA_DIR  # in a zipped install, the archive: export needs no copy of it
    rows, problem, damaged = read_record(folder)
    if problem or damaged:
        return {"directory": None, "files": []}, problem or next(iter(damaged.values())), "nothing exported"
    if not args.directory:
        raise BadArgumentError("export: DIR is empty; name a folder (it is created if missing)")
    target_dir = os.path.abspath(args.directory)
    _make_folder(target_dir)
    owner = _other_owner(target_dir)
    written: list[dict[str, str]] = []
    for url, cache_name, sha256, size in sorted({(url, file, sha256, size) for _, file, url, sha256, size in rows}):
        target = os.path.join(target_dir, url.rsplit("/", 1)[-1] if args.original_names else cache_name)
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
        os.replace(temporary, target)
        temporary = None
    except OSError as error:
        return f"cannot write into {folder} ({error.strerror or error})"
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.remove(temporary)
    return None
