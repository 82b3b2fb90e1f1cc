"""Issue 12.1/12.2, 16.3/16.4: a damaged install degrades to plain tiktoken with one notice, and
every command reports the damage (exit 1, one line on stderr, valid JSON), never a traceback.

Each damage is applied to the installed wheel (a ``pip install --target`` copy); everything runs
in a network namespace with no network.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Callable

import pytest

from helpers import MANIFEST, clean_env, offline, run

CL100K = MANIFEST.blobs_for(["cl100k_base"])[0]
NOTICE = "tiktoken-encodings-offline: "
REINSTALL = "pip install --force-reinstall --no-deps tiktoken-encodings-offline"


@pytest.fixture(scope="session")
def pristine_install(full_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("pristine") / "target"
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(full_wheel)])
    return target


@pytest.fixture
def install(pristine_install: Path, tmp_path: Path) -> Path:
    target = tmp_path / "target"
    shutil.copytree(pristine_install, target)
    return target


def data(install: Path) -> Path:
    return install / "tiktoken_encodings_offline" / "data"


def _rewrite_record(edit: Callable[[str], str | bytes]) -> Callable[[Path], Path]:
    def damage(folder: Path) -> Path:
        record = folder / "vendored.tsv"
        new = edit(record.read_text())
        record.write_bytes(new if isinstance(new, bytes) else new.encode())
        return record

    return damage


MISNAMED = "0123456789abcdef0123456789abcdef01234567"


def _misname(folder: Path) -> Path:
    """The cl100k row and its file renamed alike: all is there, but the name is not sha1(url)."""
    (folder / CL100K.cache_name).rename(folder / MISNAMED)
    return _rewrite_record(lambda text: text.replace(f"\t{CL100K.cache_name}\t", f"\t{MISNAMED}\t"))(folder)


def _blob(edit: Callable[[Path], None]) -> Callable[[Path], Path]:
    def damage(folder: Path) -> Path:
        path = folder / CL100K.cache_name
        edit(path)
        return path

    return damage


DAMAGES: dict[str, Callable[[Path], Path]] = {
    "record missing": lambda folder: (folder / "vendored.tsv").unlink() or folder / "vendored.tsv",  # type: ignore[func-returns-value]
    "record empty": _rewrite_record(lambda text: ""),
    "record truncated": _rewrite_record(lambda text: text[: len(text) // 2]),
    "record undecodable": _rewrite_record(lambda text: b"\xff\xfe" + text.encode()[2:]),
    "record wrong header": _rewrite_record(lambda text: text.replace("\t", " ", 3)),
    "record row wrong columns": _rewrite_record(lambda text: text.replace(f"\t{CL100K.size}\n", "\n")),
    "record row misnamed": _misname,
    # A record that is not a regular file is refused at once (read without a bound, a FIFO blocks the import).
    "record replaced by a FIFO": lambda folder: (
        (folder / "vendored.tsv").unlink() or os.mkfifo(folder / "vendored.tsv") or folder / "vendored.tsv"
    ),  # type: ignore[func-returns-value]
    "blob missing": _blob(lambda path: path.unlink()),
    "blob truncated": _blob(lambda path: path.write_bytes(path.read_bytes()[: CL100K.size // 2])),
    "blob altered": _blob(lambda path: path.write_bytes(path.read_bytes()[:-1] + b"!")),
    # Reading these without a bound never ends (a device) or never starts (a FIFO with no writer).
    "blob replaced by a device": _blob(lambda path: path.unlink() or path.symlink_to("/dev/zero")),  # type: ignore[func-returns-value]
    "blob replaced by a FIFO": _blob(lambda path: path.unlink() or os.mkfifo(path)),  # type: ignore[func-returns-value]
}
# What the import can see costs a few system calls (record shape, each file's presence and size)
# and each row's SHA-1 name (the import wraps tiktoken's reader, which needs it); the content of a
# file is checked when tiktoken first loads it.
SEEN_ON_LOAD_ONLY = {"blob altered"}


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize("damage", DAMAGES)
def test_import_and_tiktoken_carry_on_with_one_notice(damage: str, install: Path, layouts: dict[str, Path]) -> None:
    damaged = DAMAGES[damage](data(install))
    env = clean_env(PYTHONPATH=str(install))
    code = "import os, tiktoken_encodings_offline; print(os.environ.get('TIKTOKEN_CACHE_DIR'))"
    imported = run(offline([sys.executable, "-W", "error", "-c", code]), env=env)
    if damage in SEEN_ON_LOAD_ONLY:
        assert imported.stderr == ""
    else:
        line = one_line(imported.stderr)
        assert line.startswith(NOTICE) and str(damaged) in line and REINSTALL in line
        assert imported.stdout.strip() == "None"  # no tool is pointed at a damaged folder

    # With a cache of the real files, tiktoken loads as plain tiktoken would, with one notice.
    code = (
        "import tiktoken, tiktoken_encodings_offline\nprint(tiktoken.get_encoding('cl100k_base').encode('hello world'))"
    )
    cached = clean_env(PYTHONPATH=str(install), TIKTOKEN_CACHE_DIR=str(layouts["cache"]))
    loaded = run(offline([sys.executable, "-W", "error", "-c", code]), env=cached)
    assert loaded.stdout.strip() == "[15339, 1917]"
    line = one_line(loaded.stderr)
    assert line.startswith(NOTICE) and str(damaged) in line and REINSTALL in line
    if not damage.startswith("record"):  # the intact files are still served, cache or not
        other = run(offline([sys.executable, "-c", code.replace("cl100k_base", "o200k_base")]), env=env)
        assert other.stdout.strip() == "[24912, 2375]"


@pytest.mark.parametrize("damage", DAMAGES)
def test_strict_mode_names_the_damage_not_a_missing_encoding(damage: str, install: Path) -> None:
    damaged = DAMAGES[damage](data(install))
    env = clean_env(PYTHONPATH=str(install), TIKTOKEN_ENCODINGS_OFFLINE_STRICT="1")
    code = "import tiktoken; tiktoken.get_encoding('cl100k_base')"
    result = run(offline([sys.executable, "-c", code]), env=env, check=False)
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("tiktoken_encodings_offline.EncodingNotVendoredError: strict mode")
    assert str(damaged) in error and ("damaged" in error or "missing" in error) and REINSTALL in error
    assert "not serve" not in error and "unset" not in error


# `path` checks what the import checks: the record's shape and each file's presence and size.
COMMAND_CASES = [
    (damage, command)
    for damage in DAMAGES
    for command in ("path", "list", "verify", "doctor", "export")
    if not (command == "path" and damage in SEEN_ON_LOAD_ONLY)
]


@pytest.mark.parametrize(("damage", "command"), COMMAND_CASES)
def test_every_command_reports_the_damage(damage: str, command: str, install: Path, tmp_path: Path) -> None:
    damaged = DAMAGES[damage](data(install))
    args = [command, "--json"] + ([str(tmp_path / "out")] if command == "export" else [])
    env = clean_env(PYTHONPATH=str(install))
    result = run(offline([sys.executable, "-m", "tiktoken_encodings_offline", *args]), env=env, check=False)
    assert result.returncode == 1, result
    line = one_line(result.stderr)
    assert str(damaged) in line and REINSTALL in line
    assert json.loads(result.stdout)["ok"] is False
    as_text = [args[0], *args[2:]]
    text = run(offline([sys.executable, "-m", "tiktoken_encodings_offline", *as_text]), env=env, check=False)
    assert text.returncode == 1 and one_line(text.stderr) == line
    if command == "export":  # never a damaged file, never a temporary one
        assert CL100K.cache_name not in [p.name for p in (tmp_path / "out").glob("*")]
        assert not list((tmp_path / "out").glob(".*"))


def test_verify_names_the_misnamed_row(install: Path) -> None:
    _misname(data(install))
    env = clean_env(PYTHONPATH=str(install))
    result = run(offline([sys.executable, "-m", "tiktoken_encodings_offline", "verify"]), env=env, check=False)
    assert result.returncode == 1
    row = [n for n, line in enumerate((data(install) / "vendored.tsv").read_text().splitlines(), 1) if "cl100k" in line]
    assert f"(line {row[0]}: {MISNAMED} is not the SHA-1 of {CL100K.url})" in result.stderr


START_MODULE_DAMAGE = {  # what start-up then prints, in every process (Python goes on)
    "gone": "No module named '_tiktoken_encodings_offline_startup'",
    "broken": "SyntaxError",
    "stale": "",  # a file left by another version, with no install(): nothing at all
}


@pytest.mark.parametrize("command", ["verify", "doctor"])
@pytest.mark.parametrize("damage", START_MODULE_DAMAGE)
def test_a_start_up_line_without_its_module_is_named_and_the_checks_go_on(
    command: str, damage: str, install: Path, companion_wheel: Path
) -> None:
    """The companion's .pth line stays but the module it imports is gone or unusable: start-up goes on
    (site prints the error) and tiktoken is plain until get_encoding; verify and doctor say why."""
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(install), str(companion_wheel)])
    module = install / "_tiktoken_encodings_offline_startup.py"
    shutil.rmtree(install / "__pycache__", ignore_errors=True)
    if damage == "gone":
        module.unlink()
    else:
        module.write_text("def broken(:\n" if damage == "broken" else "def take_over(name):\n    pass\n")
    site = f"import site, sys; site.addsitedir({str(install)!r})\n"  # reads the .pth line, as start-up does
    code = site + "import tiktoken.load; print(hasattr(tiktoken.load.read_file_cached, '__wrapped__'))"
    started = run(offline([sys.executable, "-c", code]), env=clean_env())
    assert started.stdout.split() == ["False"] and START_MODULE_DAMAGE[damage] in started.stderr

    # On PYTHONPATH: the command finds the .pth next to the package; site's error is not in the way.
    command_line = [sys.executable, "-m", "tiktoken_encodings_offline", command]
    result = run(offline(command_line), env=clean_env(PYTHONPATH=str(install)), check=False)
    assert result.returncode == 1
    line = one_line(result.stderr)
    pth = install / "tiktoken_encodings_offline_autostart.pth"
    said = "is there but not the module its line imports" if damage == "gone" else "which cannot be used"
    assert f"{pth} " in line and said in line and "nothing activates the package at the first" in line
    assert "pip install --force-reinstall --no-deps tiktoken-encodings-offline-autostart" in line
    if command == "verify":  # the files and encodings were still checked
        assert "ok       cl100k_base" in result.stdout.splitlines()
    else:
        assert "reads the vendored files first (reader wrapped)" in result.stdout


# --- Issue fix-tables: a table or blob that is not a regular file is refused, never waited on -------

FIX_TEXT = f"reinstall the wheel ({REINSTALL})"
NOT_REGULAR: dict[str, Callable[[Path], None]] = {
    "FIFO": lambda path: path.unlink() or os.mkfifo(path),  # type: ignore[func-returns-value]
    "device": lambda path: path.unlink() or path.symlink_to("/dev/zero"),  # type: ignore[func-returns-value]
}
ENCODE_CL100K = "import tiktoken\nprint(tiktoken.get_encoding('cl100k_base').encode('hello world'))"


def cl100k_table(install: Path) -> Path:
    fast_dir = install / "tiktoken_encodings_offline" / "fastpath"
    row = next(r for r in (fast_dir / "derived.tsv").read_text().splitlines() if r.startswith(CL100K.url))
    return fast_dir / row.split("\t")[2]


@pytest.mark.parametrize("kind", NOT_REGULAR)
def test_a_table_that_is_not_a_regular_file_is_refused_without_waiting(kind: str, install: Path) -> None:
    """Opened without blocking and refused by its type: the blob serves, one notice, verify names it.
    The timeouts turn a regression (an unbounded open or read) into a failure instead of a hang."""
    table = cl100k_table(install)
    NOT_REGULAR[kind](table)
    env = clean_env(PYTHONPATH=str(install))
    loaded = run(offline([sys.executable, "-W", "error", "-c", ENCODE_CL100K]), env=env, timeout=60)
    assert loaded.stdout.strip() == "[15339, 1917]"
    assert one_line(loaded.stderr) == f"{NOTICE}{table} is damaged (not a regular file); {FIX_TEXT}"
    verify = [sys.executable, "-m", "tiktoken_encodings_offline", "verify"]
    result = run(offline(verify), env=env, check=False, timeout=120)
    assert result.returncode == 1 and f"MISSING  {table.name}" in result.stdout
    assert f"{table} (missing)" in result.stdout.splitlines()[-1] and REINSTALL in result.stdout.splitlines()[-1]


@pytest.mark.parametrize("kind", NOT_REGULAR)
def test_a_blob_swapped_after_activation_is_refused_without_waiting(
    kind: str, install: Path, layouts: dict[str, Path]
) -> None:
    """The import saw an intact folder; the blob is then replaced: tiktoken reads the user's cache."""
    blob = data(install) / CL100K.cache_name
    swap = "import os, pathlib, tiktoken, tiktoken_encodings_offline\n" + f"path = pathlib.Path({str(blob)!r})\n"
    swap += "path.unlink()\n" + ("os.mkfifo(path)\n" if kind == "FIFO" else "path.symlink_to('/dev/zero')\n")
    env = clean_env(PYTHONPATH=str(install), TIKTOKEN_CACHE_DIR=str(layouts["cache"]))
    loaded = run(offline([sys.executable, "-W", "error", "-c", swap + ENCODE_CL100K]), env=env, timeout=60)
    assert loaded.stdout.strip() == "[15339, 1917]"
    assert one_line(loaded.stderr) == f"{NOTICE}{blob} is damaged (not a regular file); {FIX_TEXT}"


@pytest.mark.parametrize("kind", NOT_REGULAR)
def test_a_fast_path_record_that_is_not_a_regular_file_turns_it_off_without_waiting(kind: str, install: Path) -> None:
    """derived.tsv replaced: the fast path steps aside with one notice naming it, and verify says so."""
    record = install / "tiktoken_encodings_offline" / "fastpath" / "derived.tsv"
    NOT_REGULAR[kind](record)
    env = clean_env(PYTHONPATH=str(install))
    loaded = run(offline([sys.executable, "-W", "error", "-c", ENCODE_CL100K]), env=env, timeout=60)
    assert loaded.stdout.strip() == "[15339, 1917]"
    line = one_line(loaded.stderr)
    assert f"{record} is damaged (not a regular file)" in line and REINSTALL in line
    verify = [sys.executable, "-m", "tiktoken_encodings_offline", "verify"]
    result = run(offline(verify), env=env, check=False, timeout=120)
    assert result.returncode == 1 and f"{record} is damaged (not a regular file)" in result.stdout.splitlines()[-1]


MANIFEST_DAMAGE: dict[str, Callable[[Path], object]] = {
    "FIFO": lambda path: path.unlink() or os.mkfifo(path),  # type: ignore[func-returns-value]
    "empty object": lambda path: path.write_text("{}"),
    "not JSON": lambda path: path.write_bytes(b"\xff{"),
}


@pytest.mark.parametrize("command", ["verify", "doctor"])
@pytest.mark.parametrize("damage", MANIFEST_DAMAGE)
def test_a_damaged_manifest_is_named_with_the_fix_without_waiting(command: str, damage: str, install: Path) -> None:
    manifest = install / "tiktoken_encodings_offline" / "manifest.json"
    MANIFEST_DAMAGE[damage](manifest)
    env = clean_env(PYTHONPATH=str(install))
    cmd = [sys.executable, "-m", "tiktoken_encodings_offline", command]
    result = run(offline([*cmd, "--json"]), env=env, check=False, timeout=120)  # a FIFO read would never end
    assert result.returncode == 1 and "Traceback" not in result.stderr, result
    report = json.loads(result.stdout)
    problems = report["problems"] if command == "doctor" else [report["problem"]]
    named = [p for p in problems if p.startswith(f"{manifest} is damaged (") and p.endswith(REINSTALL + ")")]
    assert len(named) == 1, problems
    assert not any("not carried" in note for note in report.get("notes", [])), report  # not told as a slim wheel
    text = run(offline(cmd), env=env, check=False, timeout=120)
    assert text.returncode == 1 and named[0] in text.stdout and "Traceback" not in text.stderr, text
