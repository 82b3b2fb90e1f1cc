"""Issue 28 (items 4, 6, 8): the command line where stdout, the arguments or the host misbehave.

stdout full, closed at start or closed by its reader (Windows says EINVAL there), an argument
error under ``--json``, a folder a shell would not read back exactly from ``path``, a default
cache folder os.access misjudges on Windows, and a Python started without ``site``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import PROG, cli, one_line

from helpers import clean_env, offline, run

COMMANDS = (["path"], ["list"], ["verify"], ["doctor"], ["export", "{out}"])


def command_line(command: list[str], tmp_path: Path) -> list[str]:
    return [arg.format(out=tmp_path / "out") for arg in command]


def run_with_stdout(python: Path, args: list[str], stdout: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """The command with stdout redirected by ``sh`` (``>/dev/full``, ``>&-``): exit code, stderr."""
    script = f'exec "$@" {stdout}'
    cmd = offline(["sh", "-c", script, "sh", python, "-m", "tiktoken_encodings_offline", *args])
    result = subprocess.run(cmd, env=env or clean_env(), capture_output=True, text=True, timeout=300)
    return result.returncode, result.stderr


@pytest.mark.parametrize("as_json", [[], ["--json"]], ids=["text", "json"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_full_stdout_is_one_line_and_exit_1(
    runtime_venv: Path, tmp_path: Path, command: list[str], as_json: list[str]
) -> None:
    # /dev/full: every write fails with ENOSPC; the JSON error document could not go there either
    status, stderr = run_with_stdout(runtime_venv, command_line(command, tmp_path) + as_json, ">/dev/full")
    assert status == 1 and "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert stderr == f"{PROG}{command[0]}: cannot write the report to stdout (No space left on device)\n"


@pytest.mark.parametrize("as_json", [[], ["--json"]], ids=["text", "json"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_stdout_closed_at_start_is_one_line_and_nothing_done(
    runtime_venv: Path, tmp_path: Path, command: list[str], as_json: list[str]
) -> None:
    status, stderr = run_with_stdout(runtime_venv, command_line(command, tmp_path) + as_json, ">&-")
    assert status == 1 and stderr == (
        f"{PROG}{command[0]}: cannot write the report to stdout "
        "(it is closed: nothing was done; > /dev/null discards the report)\n"
    )
    assert not (tmp_path / "out").exists()  # export did not run: fd 1 could have become one of its files


@pytest.mark.parametrize("stdout", [">/dev/full", ">&-"])
@pytest.mark.parametrize("option", ["--version", "--help"])
def test_version_and_help_that_cannot_be_written_exit_1(runtime_venv: Path, option: str, stdout: str) -> None:
    status, stderr = run_with_stdout(runtime_venv, [option], stdout)
    assert status == 1 and stderr.startswith(f"{PROG}cannot write the report to stdout (") and stderr.count("\n") == 1
    assert cli(runtime_venv, option).returncode == 0


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["export"], "export: the following arguments are required: DIR; usage: tiktoken-encodings-offline export "),
        (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate' (choose from "),
        ([], "the following arguments are required: COMMAND; usage: tiktoken-encodings-offline "),
        (["list", "--jsn"], "unrecognized arguments: --jsn; usage: tiktoken-encodings-offline "),
    ],
    ids=["export-without-dir", "unknown-command", "no-command", "unknown-option"],
)
def test_an_argument_error_is_one_line_and_json_under_json(runtime_venv: Path, args: list[str], problem: str) -> None:
    text = cli(runtime_venv, *args)
    assert text.returncode == 2 and text.stdout == "" and one_line(text).startswith(problem)
    for flag in ("--json", "--js"):  # argparse takes an abbreviation: so does the error's JSON
        result = cli(runtime_venv, *args, flag)
        report = json.loads(result.stdout)
        assert result.returncode == 2 and report == {"ok": False, "problem": one_line(result)}
        assert report["problem"].startswith(problem)


def test_a_folder_named_like_the_option_is_no_json_request(runtime_venv: Path, tmp_path: Path) -> None:
    command = offline([runtime_venv, "-m", "tiktoken_encodings_offline", "export", "--", "--json"])
    result = run(command, env=clean_env(), cwd=tmp_path)
    assert result.stdout.count("written ") == 6 and result.stdout.startswith("written ")
    assert len(list((tmp_path / "--json").iterdir())) == 6


def test_an_argument_error_under_json_with_a_full_stdout_is_still_one_line(runtime_venv: Path) -> None:
    status, stderr = run_with_stdout(runtime_venv, ["export", "--json"], ">/dev/full")
    assert status == 2 and stderr.count("\n") == 1 and "Traceback" not in stderr
    assert stderr.startswith(f"{PROG}export: the following arguments are required: DIR; usage: ")


# A pipe closed by its reader: EPIPE on POSIX; on Windows, whose C runtime maps ERROR_NO_DATA to
# EINVAL, the same write fails with OSError(EINVAL). This stdout turns one into the other.
WINDOWS_PIPE = """
import errno, io, os, sys

class WindowsPipe(io.RawIOBase):
    def writable(self):
        return True

    def fileno(self):
        return 1

    def write(self, data):
        try:
            return os.write(1, data)
        except BrokenPipeError:
            raise OSError(errno.EINVAL, "Invalid argument") from None

sys.stdout = io.TextIOWrapper(io.BufferedWriter(WindowsPipe()), encoding="utf-8")
from tiktoken_encodings_offline.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("pipe", ["posix", "windows"])
def test_a_pipe_closed_by_its_reader_ends_quietly(runtime_venv: Path, pipe: str) -> None:
    code = ["-c", WINDOWS_PIPE] if pipe == "windows" else ["-m", "tiktoken_encodings_offline"]
    process = subprocess.Popen(
        offline([runtime_venv, *code, "doctor", "--json"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before anything is written
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 1 and stderr == ""  # no "failed unexpectedly", no "Exception ignored"


# --- path: what a shell captures must be the folder --------------------------------------------


@pytest.fixture(scope="module")
def odd_installs(full_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The wheel installed (--target) under a folder named Zoë, 目录, and caf\\xe9 (not UTF-8)."""
    root = tmp_path_factory.mktemp("odd-names")
    installs = {}
    for name, folder in (("Zoë", "Zoë"), ("目录", "目录"), ("cafe-latin1", os.fsdecode(b"caf\xe9"))):
        target = root / folder / "target"
        run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(full_wheel)])
        installs[name] = target
    return installs


def path_bytes(target: Path, encoding: str, code: list[str] | None = None) -> subprocess.CompletedProcess[bytes]:
    env = clean_env(PYTHONPATH=str(target), PYTHONIOENCODING=encoding)
    cmd = [sys.executable, *(code or ["-m", "tiktoken_encodings_offline"]), "path"]
    return subprocess.run(offline(cmd), env=env, capture_output=True, timeout=120)


@pytest.mark.parametrize(
    ("name", "encoding"),
    [
        ("Zoë", "cp1252"),  # written as 0xEB, while the shell's file names are UTF-8
        ("Zoë", "latin-1"),
        ("目录", "cp1252"),  # cannot be written at all: was printed escaped, exit 0
        ("cafe-latin1", "utf-8"),  # not UTF-8: was printed as caf\udce9
    ],
)
def test_path_that_a_shell_would_not_read_back_fails(odd_installs: dict[str, Path], name: str, encoding: str) -> None:
    result = path_bytes(odd_installs[name], encoding)
    stderr = result.stderr.decode(encoding, "replace")
    assert result.returncode == 1 and result.stdout == b"" and stderr.count("\n") == 1, stderr
    assert stderr.startswith(f"{PROG}path: ") and " would not read back exactly from stdout (written as " in stderr
    assert "use `path --json` (lossless), or set PYTHONUTF8=1" in stderr
    # --json is lossless: ASCII, with the folder escaped
    folder = odd_installs[name] / "tiktoken_encodings_offline" / "data"
    lossless = subprocess.run(
        offline([sys.executable, "-m", "tiktoken_encodings_offline", "path", "--json"]),
        env=clean_env(PYTHONPATH=str(odd_installs[name]), PYTHONIOENCODING=encoding),
        capture_output=True,
        timeout=120,
    )
    assert lossless.returncode == 0 and json.loads(lossless.stdout.decode("ascii"))["folder"] == str(folder)


@pytest.mark.parametrize(
    ("name", "encoding"),
    [("Zoë", "utf-8"), ("目录", "utf-8"), ("cafe-latin1", "utf-8:surrogateescape")],
)
def test_path_that_a_shell_reads_back_is_the_folders_bytes(
    odd_installs: dict[str, Path], name: str, encoding: str
) -> None:
    result = path_bytes(odd_installs[name], encoding)
    folder = odd_installs[name] / "tiktoken_encodings_offline" / "data"
    assert result.returncode == 0 and result.stderr == b"" and result.stdout == os.fsencode(folder) + b"\n"


# Windows: Python writes a pipe in the ANSI code page (PYTHONIOENCODING stands for it here);
# PowerShell and cmd read it back in the console's code page, which this replaces.
CONSOLE = """
import sys
import tiktoken_encodings_offline.__main__ as cli
console = sys.argv.pop(1)
cli._shell_encoding = lambda stream: console
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    ("name", "written", "read", "exact"),
    [
        ("Zoë", "cp1252", "cp850", False),  # ANSI written, OEM read: C:\Users\Zoë would come back as ZoÙ
        ("Zoë", "cp1252", "cp1252", True),  # chcp 1252
        ("Zoë", "utf-8", "cp850", False),  # PYTHONUTF8=1 alone
        ("Zoë", "utf-8", "cp65001", True),  # PYTHONUTF8=1 and [Console]::OutputEncoding = UTF8
        ("目录", "utf-8", "cp65001", True),
        ("目录", "cp1252", "cp1252", False),
    ],
)
def test_path_on_windows_is_what_the_console_reads_back_or_fails(
    odd_installs: dict[str, Path], name: str, written: str, read: str, exact: bool
) -> None:
    result = path_bytes(odd_installs[name], written, ["-c", CONSOLE, read])
    folder = str(odd_installs[name] / "tiktoken_encodings_offline" / "data")
    if exact:
        assert result.returncode == 0 and result.stdout.decode(read) == folder + "\n"
    else:
        stderr = result.stderr.decode(written, "replace")
        assert result.returncode == 1 and result.stdout == b"" and stderr.count("\n") == 1
        assert f"(written as {written}, read back as {read}); use `path --json` (lossless)" in stderr


# --- doctor on hosts that answer differently ----------------------------------------------------


@pytest.mark.parametrize("host", ["posix", "nt"])
@pytest.mark.parametrize("read_only", [True, False], ids=["read-only", "writable"])
def test_doctor_asks_os_access_about_the_default_cache_folder_and_makes_no_claim_on_windows(
    runtime_venv: Path, tmp_path: Path, host: str, read_only: bool
) -> None:
    # doctor writes nothing: it asks os.access on POSIX; on Windows os.access answers from the
    # read-only attribute, which Windows ignores for folders, so it claims nothing there.
    temp = tmp_path / "tmp"
    cache = temp / "data-gym-cache"
    cache.mkdir(parents=True)
    os.utime(cache, ns=(0, 0))  # a file made and removed there would move its mtime
    code = tmp_path / "doctor.py"
    code.write_text(
        "import os, sys\n"
        "import tiktoken, tiktoken.load, tiktoken.registry, tiktoken_ext.openai_public\n"
        "from tiktoken_encodings_offline.__main__ import main\n"
        f"os.name = {host!r}\n"
        "sys.exit(main(['doctor', '--json']))\n"
    )
    remount = f'mount --bind "{cache}" "{cache}" && mount -o remount,bind,ro "{cache}" && ' if read_only else ""
    script = f'{remount}TMPDIR="{temp}" "{runtime_venv}" "{code}"'
    result = run(["unshare", "--mount", "--net", "sh", "-c", script], env=clean_env(), check=False)
    report = json.loads(result.stdout)
    noted = [note for note in report["notes"] if "not writable" in note]
    expected = [f"tiktoken's default cache folder {cache} is not writable: downloads are not kept"]
    assert result.returncode == 0 and noted == (expected if read_only and host == "posix" else []), report
    assert list(cache.iterdir()) == [] and cache.stat().st_mtime_ns == 0  # nothing was made there


def site_packages(venv_python: Path) -> Path:
    return next((venv_python.parent.parent / "lib").glob("python3*/site-packages"))


@pytest.mark.parametrize("start", ["-S", "._pth"])
def test_doctor_says_python_started_without_site(companion_venv: Path, tmp_path: Path, start: str) -> None:
    packages = site_packages(companion_venv)  # the companion is installed: its line is what is not read
    if start == "-S":
        cmd = [companion_venv, "-S", "-m", "tiktoken_encodings_offline", "doctor", "--json"]
        env = clean_env(PYTHONPATH=str(packages))
    else:  # Windows' embeddable distribution: a ._pth next to python, without `import site`
        if sys.version_info < (3, 11):
            pytest.skip("a ._pth file is read on POSIX from Python 3.11 on")
        base = Path(os.path.realpath(sys.executable))
        (tmp_path / "python").symlink_to(base)
        stdlib = run([str(base), "-S", "-c", "import sys; print('\\n'.join(p for p in sys.path if p))"]).stdout
        (tmp_path / "python._pth").write_text(f"{stdlib}{packages}\n")
        cmd = [tmp_path / "python", "-m", "tiktoken_encodings_offline", "doctor", "--json"]
        env = clean_env()
    result = run(offline(cmd), env=env)
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["startup_hook"] == "not read"
    assert "Python started without site (-S, or a ._pth file without `import site`" in cli_text(cmd, env)


def cli_text(cmd: list[Path | str], env: dict[str, str]) -> str:
    line = run(offline([arg for arg in cmd if arg != "--json"]), env=env).stdout
    return next(x for x in line.splitlines() if x.startswith("start-up line: "))
