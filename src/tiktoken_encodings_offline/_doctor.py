"""``doctor``: what tiktoken and openai-harmony will read on this host, and what stands in the way.

Problems (exit 1) are what breaks tiktoken offline or hides a damaged install; notes (exit 0) are
what a user should know, such as encodings a slim wheel leaves out by design.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from typing import Any

from ._distributions import BASE, COMPANION, distributions, startup_hook_kind
from ._files import DATA_DIR, DISABLE_ENV, FIX, HARMONY_FILES, IN_ARCHIVE, STRICT_ENV, _env_flag, installation
from ._manifest import manifest_problem, sha256_file
from ._verify import START_MODULE, check_files, startup_hook_problem, tiktoken_missing

CACHE_VARIABLES = ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR", "TIKTOKEN_RS_CACHE_DIR")
UNDERSTOOD = ("", "0", "false", "no", "off", "1", "true", "yes", "on")
PLAIN_NAMES = ("vocab.bpe", "encoder.json")


def doctor() -> tuple[Any, str | None, str]:
    folder = DATA_DIR  # in a zipped install, the archive: doctor makes no copy of it
    problems: list[str] = []
    notes: list[str] = []
    before = {key: os.environ.get(key) for key in CACHE_VARIABLES}
    started = START_MODULE in sys.modules  # before startup_hook_problem imports it to check it
    hook_problem = startup_hook_problem()  # before anything imports tiktoken
    if hook_problem:
        problems.append(hook_problem)

    files, record_problem = check_files(folder)
    if record_problem:
        problems.append(record_problem)
    damaged_manifest = manifest_problem()
    if damaged_manifest:
        problems.append(damaged_manifest)
    damaged = [c for c in files if not c.ok]
    for check in damaged:
        what = "is missing" if check.actual_sha256 is None else "is damaged (SHA-256 differs)"
        problems.append(f"{os.path.join(folder, check.file)} {what}; {FIX}")
    if any(c.actual_sha256 is None for c in damaged):
        notes.append("openai-harmony deletes a file it finds damaged in TIKTOKEN_RS_CACHE_DIR, the package's folder")
    intact = {c.url for c in files if c.ok}

    for name in (DISABLE_ENV, STRICT_ENV):
        raw = os.environ.get(name)
        if raw is not None and raw.strip().lower() not in UNDERSTOOD:
            notes.append(f"{name}={raw!r} is not one of 1/0, true/false, yes/no, on/off: it is taken as on")
    if _env_flag(DISABLE_ENV):
        problems.append(f"{DISABLE_ENV} is set: the package is off")

    tiktoken_report, coverage = _tiktoken(intact, problems, notes)
    after = {key: os.environ.get(key) for key in CACHE_VARIABLES}
    for key in CACHE_VARIABLES:
        if after[key] != before[key]:
            problems.append(f"a tiktoken plugin changed {key} from {before[key]!r} to {after[key]!r} while loading")
    for key in CACHE_VARIABLES:
        kind = _not_a_folder(after[key])
        if kind:
            problems.append(f"{key}={after[key]} is {kind}, not a folder; unset it or name a folder")
    _cache_folders(after, problems, notes)
    installed = distributions(problems)
    harmony = _harmony(after["TIKTOKEN_RS_CACHE_DIR"], problems)
    if harmony is not None and _set_by_this_package("TIKTOKEN_RS_CACHE_DIR", after):
        if IN_ARCHIVE:  # no folder to point it at: neither the import nor the companion sets it
            notes.append(_harmony_zipped_note(harmony["version"]))
        elif installed[COMPANION] is None:
            harmony["needs_import"] = True
            notes.append(_harmony_note(harmony["version"]))

    def origin(key: str) -> str:
        value = after[key]
        if value is None:
            return "unset"
        return "set by this package" if same_path(value, folder) else "set by you or another tool"

    report = {
        "folder": folder,
        "distributions": installed,
        "tiktoken": tiktoken_report,
        "environment": {key: {"value": value, "origin": origin(key)} for key, value in after.items()},
        "strict": _env_flag(STRICT_ENV),
        "coverage": coverage,
        "harmony": harmony,
        "problems": problems,
        "notes": notes,
    }
    lines = [f"vendored folder: {folder}"]
    lines += [f"{name}: {found or 'not installed'}" for name, found in installed.items()]
    if tiktoken_report:
        wrapped = tiktoken_report["reader_wrapped"]
        reads = "the vendored files first (reader wrapped)" if wrapped else "its cache only (NOT wrapped)"
        lines.append(f"tiktoken {tiktoken_report['version']}: reads {reads}")
        fastpath = tiktoken_report["fastpath"]
        lines.append(f"fast path: {'on' if fastpath['active'] else 'off'} ({fastpath['detail']})")
    report["startup_hook"], startup_line = startup_hook_kind(started)
    lines.append(startup_line)
    lines += [f"  {key}={value!r} ({origin(key)})" for key, value in after.items()]
    lines += [f"  {name:<14} {state}" for name, state in coverage.items()]
    if harmony is not None:
        ready = "reads the vendored files" if harmony["ready"] else "will download on first use"
        if harmony["ready"] and harmony.get("needs_import"):
            ready += " only where the program imports tiktoken_encodings_offline first (see the note)"
        lines.append(f"openai-harmony {harmony['version']}: {ready}")
    lines += [f"note: {note}" for note in notes]
    lines += [f"problem: {problem}" for problem in problems] or ["no problems"]
    summary = None
    if problems:
        summary = problems[0] + (f" (and {len(problems) - 1} more: see doctor's report)" if len(problems) > 1 else "")
    return report, summary, "\n".join(lines)


def _tiktoken(intact: set[str], problems: list[str], notes: list[str]) -> tuple[Any, dict[str, str]]:
    """The installed tiktoken, and for each of its encodings: vendored, not carried, or damaged."""
    missing = tiktoken_missing()
    if missing:
        problems.append(missing)
        return None, {}
    from importlib.metadata import version

    import tiktoken
    import tiktoken.registry

    from ._manifest import record_requests
    from ._runtime import is_installed

    # Before the plugins load: the package's import (this command made it) must have wrapped the
    # reader by itself, as it does in a program that calls tiktoken.load directly after the import.
    wrapped = is_installed()
    names = tiktoken.list_encoding_names()  # loads the plugins, ours included
    constructors = tiktoken.registry.ENCODING_CONSTRUCTORS or {}
    manifest_hashes = _manifest_hashes()
    listed = {row[2] for row in installation()[0]}
    coverage: dict[str, str] = {}
    for name in names:
        asked = record_requests(constructors[name])
        if manifest_hashes is None:
            coverage[name] = "unknown (manifest.json is damaged)"
        elif all(url in intact and sha in (None, manifest_hashes.get(url)) for url, sha in asked.items()):
            coverage[name] = "vendored"
        elif any(url in listed and url not in intact for url in asked):
            coverage[name] = "DAMAGED"
        else:
            coverage[name] = "not carried"
    left_out = [name for name, state in coverage.items() if state == "not carried"]
    if left_out:
        then = (
            f"asking for one raises EncodingNotVendoredError ({STRICT_ENV} is on)"
            if _env_flag(STRICT_ENV)
            else "tiktoken downloads one when it is asked for (and fails offline)"
        )
        notes.append(f"not carried by this wheel: {', '.join(left_out)}; {then}")
    if not wrapped and not _env_flag(DISABLE_ENV):
        problems.append(
            "tiktoken's reader is not wrapped after `import tiktoken_encodings_offline`: something replaced "
            "tiktoken.load.read_file_cached, or this tiktoken has none (the files are then read only through "
            "TIKTOKEN_CACHE_DIR, and a direct tiktoken.load call is not served when you set it)"
        )
    from ._runtime import status

    active, detail = status()
    report = {
        "version": version("tiktoken"),
        "reader_wrapped": wrapped,
        "fastpath": {"active": active, "detail": detail},
    }
    return report, coverage


def same_path(a: str, b: str) -> bool:
    """Whether two paths name one folder: by inode where both exist, else as the OS compares names
    (case on Windows, links such as macOS's /tmp -> /private/tmp)."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def _not_a_folder(value: str | None) -> str | None:
    """What a cache variable names when it is there but is no folder (a FIFO is not opened)."""
    try:
        mode = os.stat(value).st_mode if value else None
    except (OSError, ValueError):
        return None  # missing: tiktoken creates it
    if mode is None or stat.S_ISDIR(mode):
        return None
    if stat.S_ISREG(mode):
        return "a file"
    return "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "no folder"


def _manifest_hashes() -> dict[str, str] | None:
    """The manifest's SHA-256 of each blob; None when it is damaged (doctor names it as a problem)."""
    from ._manifest import load_manifest

    try:
        return {url: blob.sha256 for url, blob in load_manifest().blobs.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _cache_folders(env: dict[str, str | None], problems: list[str], notes: list[str]) -> None:
    """Files under their upstream names where tiktoken looks for SHA-1 names; an unwritable default."""
    cache = env["TIKTOKEN_CACHE_DIR"] or env["DATA_GYM_CACHE_DIR"]
    default = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    for key, value in (("TIKTOKEN_CACHE_DIR", cache), ("TIKTOKEN_RS_CACHE_DIR", env["TIKTOKEN_RS_CACHE_DIR"])):
        if not value or not os.path.isdir(value) or _is_ours(value):
            continue
        try:
            plain = sorted(n for n in os.listdir(value) if n.endswith(".tiktoken") or n in PLAIN_NAMES)
        except OSError as error:
            problems.append(f"{key} folder {value} cannot be listed ({error.strerror or error})")
            continue
        if plain:
            problems.append(
                f"{value} ({key}) holds {', '.join(plain)} under upstream names, but tiktoken looks for "
                "SHA-1 names there; fix: python -m tiktoken_encodings_offline export "
                f"{value} (without --original-names)"
            )
    if cache is None or _is_ours(cache):  # downloads then go to tiktoken's default folder
        probe = default if os.path.isdir(default) else os.path.dirname(default)
        if _writable(probe) is False:
            notes.append(f"tiktoken's default cache folder {default} is not writable: downloads are not kept")


def _writable(folder: str) -> bool | None:
    """Whether files can be made in ``folder``, asked without making one (doctor writes nothing).
    None on Windows: os.access answers there from the read-only attribute, which Windows ignores for
    folders, and never from their ACLs, so no claim is made."""
    if os.name == "nt":
        return None
    return os.access(folder, os.W_OK)


def _is_ours(path: str) -> bool:
    """Whether ``path`` is the vendored folder."""
    return same_path(path, DATA_DIR)


def _harmony(rs_dir: str | None, problems: list[str]) -> dict[str, Any] | None:
    """openai-harmony's view, when it is installed: are both files it reads in its cache folder?"""
    from importlib.metadata import PackageNotFoundError, version

    try:
        harmony_version = version("openai-harmony")
    except PackageNotFoundError:
        return None
    wanted = _harmony_blobs()
    ready = bool(rs_dir) and len(wanted) == len(HARMONY_FILES)
    for name, (sha256, size) in wanted.items():
        path = os.path.join(rs_dir or "", name)
        try:  # a FIFO is not waited on, a link to /dev/zero not read: one byte past the size tells
            ready = ready and sha256_file(path, size + 1) == sha256
        except OSError:
            ready = False
    if rs_dir and not ready:
        problems.append(
            f"TIKTOKEN_RS_CACHE_DIR={rs_dir} lacks intact copies of the o200k_base/cl100k_base files harmony "
            "reads; fix: unset it (the package then sets it) or export the files there"
        )
    return {"version": harmony_version, "ready": ready}


def _harmony_blobs() -> dict[str, tuple[str, int]]:
    """The files harmony reads, by cache name: their SHA-256 and size."""
    from ._manifest import load_manifest

    try:
        blobs = load_manifest().blobs.values()
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    return {b.cache_name: (b.sha256, b.size) for b in blobs if b.cache_name in HARMONY_FILES}


def _set_by_this_package(key: str, env: dict[str, str | None]) -> bool:
    """Whether ``key`` is unset, or set by this process's import of the package (not by the user)."""
    from . import _registered

    return env[key] is None or key in _registered


def _harmony_note(harmony_version: str) -> str:
    return (
        f"openai-harmony {harmony_version} reads TIKTOKEN_RS_CACHE_DIR, which a program gets only by importing "
        f"tiktoken_encodings_offline before openai_harmony: {COMPANION} is not installed and you have not set "
        f'it; fix: pip install "{BASE}[autostart]" (it sets it at the first import of openai_harmony), '
        f"or export TIKTOKEN_RS_CACHE_DIR={DATA_DIR}"
    )


def _harmony_zipped_note(harmony_version: str) -> str:
    return (
        f"openai-harmony {harmony_version} reads its files only from the folder TIKTOKEN_RS_CACHE_DIR names, "
        "and a zipped install has none: nothing sets it, so harmony downloads (and fails offline); "
        "fix: python -m tiktoken_encodings_offline export DIR, then export TIKTOKEN_RS_CACHE_DIR=DIR"
    )
