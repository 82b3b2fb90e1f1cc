"""Issue 27.3 and 28.5: ``tiktoken_encodings_offline.export()``, the command's code as a function,
and its rename retried while Windows refuses it (simulated: ``os.replace`` raising PermissionError).

Each test runs in its own process against a ``pip install --target`` folder of the wheel, offline.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from helpers import MANIFEST, clean_env, offline, run

EXPECTED = {blob.cache_name: blob.sha256 for blob in MANIFEST.blobs.values()}


@pytest.fixture(scope="module")
def target(full_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export") / "target"
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(folder), str(full_wheel)])
    return folder


def python(target: Path, code: str, *args: str, check: bool = True):  # type: ignore[no-untyped-def]
    return run(offline([sys.executable, "-W", "error", "-c", code, *args]), env=clean_env(PYTHONPATH=str(target)),
               check=check)  # fmt: skip


def hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_export_returns_the_folder_and_raises_the_commands_errors_by_a_public_name(
    target: Path, tmp_path: Path
) -> None:
    out = tmp_path / "made" / "here"
    code = "import sys, tiktoken_encodings_offline as t; print(t.export(sys.argv[1])); print(t.export(sys.argv[1]))"
    result = python(target, code, str(out))
    assert result.stdout.split() == [str(out)] * 2 and result.stderr == ""
    assert hashes(out) == EXPECTED

    named = tmp_path / "named"
    code = "import sys, pathlib, tiktoken_encodings_offline as t; t.export(pathlib.Path(sys.argv[1]), True)"
    python(target, code, str(named))
    assert {p.name for p in named.iterdir()} == {blob.file_name for blob in MANIFEST.blobs.values()}

    a_file = tmp_path / "a-file"
    a_file.write_text("")
    code = (
        "import sys, tiktoken_encodings_offline as t\n"
        "try:\n    t.export(sys.argv[1])\n"
        "except t.ExportError as error:\n    print(type(error).__module__, type(error).__name__, error)"
    )
    caught = python(target, code, str(a_file)).stdout.strip()
    command = run(offline([sys.executable, "-m", "tiktoken_encodings_offline", "export", str(a_file)]),
                  env=clean_env(PYTHONPATH=str(target)), check=False)  # fmt: skip
    assert command.returncode == 2
    line = command.stderr.strip().removeprefix("tiktoken-encodings-offline: ")
    assert caught == f"tiktoken_encodings_offline ExportError {line}"
    assert f"export: {a_file} exists and is not a folder" in caught


REFUSING = """
import json, os, sys, time
refusals = int(sys.argv[2])
real_replace, calls = os.replace, []

def replace(source, target):  # what Windows does while a scanner holds the file open
    calls.append(target)
    if len(calls) <= refusals:
        raise PermissionError(13, "The process cannot access the file because it is being used by another process")
    real_replace(source, target)

os.replace = replace
import tiktoken_encodings_offline as t
from tiktoken_encodings_offline.__main__ import main
started = time.monotonic()
if sys.argv[3] == "function":
    try:
        print(json.dumps({"folder": t.export(sys.argv[1]), "calls": len(calls)}))
    except t.ExportError as error:
        print(json.dumps({"error": str(error), "calls": len(calls), "seconds": time.monotonic() - started}))
else:
    sys.exit(main(["export", sys.argv[1]]))
"""


def test_a_rename_refused_a_few_times_is_retried_and_the_export_completes(target: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = json.loads(python(target, REFUSING, str(out), "3", "function").stdout)
    assert report == {"folder": str(out), "calls": len(EXPECTED) + 3}
    assert hashes(out) == EXPECTED  # every file in place, verified, no temporary file left


def test_a_rename_refused_every_time_says_the_file_is_in_use_and_leaves_no_temporary_file(
    target: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    report = json.loads(python(target, REFUSING, str(out), "1000", "function").stdout)
    assert report["calls"] == 6 and report["seconds"] < 5  # six tries, 1.6 s of waits in all
    assert "refused 6 times: the file is in use" in report["error"] and str(out) in report["error"]
    assert list(out.iterdir()) == []
    command = python(target, REFUSING, str(out), "1000", "command", check=False)
    assert command.returncode == 1 and command.stdout.count("\n") <= 1 and "Traceback" not in command.stderr
    assert command.stderr.count("\n") == 1 and "the file is in use" in command.stderr
    assert list(out.iterdir()) == []
