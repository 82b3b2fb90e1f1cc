"""``export DIR``: copy the vendored files into a folder, each written exclusively and verified."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import stat
import tempfile
from typing import Any

from . import where
from ._files import FIX, read_record


class BadArgumentError(Exception):
    """A command-line argument that cannot work: exit 2."""


def export_command(args: argparse.Namespace) -> tuple[Any, str | None, str]:
    folder = where()
    rows, problem, damaged = read_record(folder)
    if problem or damaged:
        return {"directory": None, "files": []}, problem or next(iter(damaged.values())), "nothing exported"
    target_dir = os.path.abspath(args.directory)
    _make_folder(target_dir)
    written: list[dict[str, str]] = []
    for url, cache_name, sha256 in sorted({(url, file, sha256) for _, file, url, sha256, _ in rows}):
        target = os.path.join(target_dir, url.rsplit("/", 1)[-1] if args.original_names else cache_name)
        if _holds(target, sha256):
            state = "unchanged"
        else:
            error = _copy_verified(os.path.join(folder, cache_name), target, sha256)
            if error:
                report = {"directory": target_dir, "files": written}
                return report, error, "\n".join(f"{w['state']:<9} {w['file']}" for w in written)
            state = "written"
        written.append({"file": target, "url": url, "sha256": sha256, "state": state})
    text = "\n".join(f"{w['state']:<9} {w['file']}" for w in written)
    return {"directory": target_dir, "files": written}, None, text


def _make_folder(path: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise BadArgumentError(f"export: {path} exists and is not a folder; name a folder (it is created if missing)")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise BadArgumentError(f"export: cannot create the folder {path} ({error.strerror or error})") from None


def _holds(path: str, sha256: str) -> bool:
    """Whether ``path`` is a regular file (not a link) with these bytes."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
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


def _copy_verified(source: str, target: str, sha256: str) -> str | None:
    """Copy ``source`` to ``target`` through an exclusive temporary file in the target's folder.

    The source is checked before, the copy after it is written and before it takes the target's
    name, so a damaged file never lands in the folder. Returns what went wrong, or None.
    """
    try:
        with open(source, "rb") as f:
            data = f.read()
    except OSError as error:
        return f"cannot read {source} ({error.strerror or error}); {FIX}"
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
