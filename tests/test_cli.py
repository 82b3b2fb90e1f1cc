"""Issue 12.2-12.7: the command line on a healthy install and on a troubled host.

Every command runs offline against an installed wheel. Errors are one line on stderr, never a
traceback; ``--json`` output stays valid JSON; exit codes are 0, 1 (a problem) and 2 (bad arguments).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import build_env
from helpers import MANIFEST, build_wheel, clean_env, expected_blobs, make_venv, offline, run

PROG = "tiktoken-encodings-offline: "


def cli(python: Path | str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run(offline([python, "-m", "tiktoken_encodings_offline", *args]), env=env or clean_env(), check=False)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(PROG)
    return lines[0][len(PROG) :]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def installed(runtime_venv: Path) -> Path:
    out = run([str(runtime_venv), "-c", "import tiktoken_encodings_offline as t; print(t.where())"]).stdout
    return Path(out.strip())


# --- A healthy install ---------------------------------------------------------------------------


def test_path_version_and_console_script(runtime_venv: Path, installed: Path) -> None:
    assert cli(runtime_venv, "path").stdout.strip() == str(installed)
    script = runtime_venv.parent / "tiktoken-encodings-offline"
    assert run(offline([script, "path"]), env=clean_env()).stdout.strip() == str(installed)
    version = cli(runtime_venv, "--version")
    assert version.returncode == 0 and version.stdout.strip() == "tiktoken-encodings-offline 0.1.0"


def test_list_json(runtime_venv: Path) -> None:
    report = json.loads(cli(runtime_venv, "list", "--json").stdout)
    assert report["ok"] is True and [row["encoding"] for row in report["encodings"]] == list(MANIFEST.encodings)
    gpt2 = report["encodings"][0]
    assert [f["size"] for f in gpt2["files"]] == [456318, 1042301] and gpt2["intact"] is True


def test_export_sha1_and_original_names_idempotent(runtime_venv: Path, tmp_path: Path) -> None:
    first = cli(runtime_venv, "export", str(tmp_path / "cache"))
    assert first.returncode == 0 and first.stdout.count("written") == 6
    assert {p.name: sha256(p) for p in (tmp_path / "cache").iterdir()} == expected_blobs()
    again = cli(runtime_venv, "export", str(tmp_path / "cache"), "--json")
    assert [f["state"] for f in json.loads(again.stdout)["files"]] == ["unchanged"] * 6

    cli(runtime_venv, "export", str(tmp_path / "named"), "--original-names")
    names = {p.name for p in (tmp_path / "named").iterdir()}
    assert names == {b.file_name for b in MANIFEST.blobs.values()}
    # the exported SHA-1 folder serves plain tiktoken (no package) as its cache
    code = "import tiktoken; print(tiktoken.get_encoding('cl100k_base').encode('hello world'))"
    env = clean_env(TIKTOKEN_CACHE_DIR=str(tmp_path / "cache"))
    assert run(offline([sys.executable, "-c", code]), env=env).stdout.strip() == "[15339, 1917]"


def test_doctor_on_a_healthy_install(runtime_venv: Path, installed: Path) -> None:
    result = cli(runtime_venv, "doctor", "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 0 and result.stderr == "" and report["ok"] is True
    assert report["tiktoken"]["reader_wrapped"] is True
    assert report["environment"]["TIKTOKEN_CACHE_DIR"] == {"value": str(installed), "origin": "set by this package"}
    assert set(report["coverage"].values()) == {"vendored"} and report["problems"] == []
    assert report["tiktoken"]["fastpath"]["active"] is True, report["tiktoken"]["fastpath"]
    assert "fast path: on (" in cli(runtime_venv, "doctor").stdout

    no_fastpath = clean_env(TIKTOKEN_ENCODINGS_OFFLINE_NO_FASTPATH="1")
    report = json.loads(cli(runtime_venv, "doctor", "--json", env=no_fastpath).stdout)
    assert (
        report["tiktoken"]["fastpath"]["active"] is False and "NO_FASTPATH" in report["tiktoken"]["fastpath"]["detail"]
    )

    # "0" and "off" mean off, for doctor as for the runtime; a value it does not understand is shown
    switches = clean_env(TIKTOKEN_ENCODINGS_OFFLINE_DISABLE="0", TIKTOKEN_ENCODINGS_OFFLINE_STRICT="maybe")
    report = json.loads(cli(runtime_venv, "doctor", "--json", env=switches).stdout)
    assert report["tiktoken"]["reader_wrapped"] is True and report["strict"] is True and report["problems"] == []
    assert any("TIKTOKEN_ENCODINGS_OFFLINE_STRICT='maybe'" in note for note in report["notes"])


def test_bad_arguments_exit_2(runtime_venv: Path) -> None:
    assert cli(runtime_venv).returncode == 2
    assert cli(runtime_venv, "frobnicate").returncode == 2
    assert cli(runtime_venv, "export").returncode == 2


def test_a_closed_pipe_ends_quietly(runtime_venv: Path) -> None:
    command = offline([runtime_venv, "-m", "tiktoken_encodings_offline", "doctor", "--json"])
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before anything is written
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) != 0 and stderr == ""


def test_an_unforeseen_error_is_one_line_not_a_traceback(runtime_venv: Path) -> None:
    code = (
        "import hashlib, sys\n"
        "def broken(*args, **kwargs): raise RuntimeError('the hash library is broken')\n"
        "hashlib.sha256 = broken\n"
        "from tiktoken_encodings_offline.__main__ import main\n"
        "sys.exit(main(sys.argv[1:]))"
    )
    result = run(offline([runtime_venv, "-c", code, "list", "--json"]), env=clean_env(), check=False)
    assert result.returncode == 1 and json.loads(result.stdout)["ok"] is False
    assert one_line(result) == "list failed unexpectedly (RuntimeError: the hash library is broken)"


# --- The host's traps ------------------------------------------------------------------------------


def test_doctor_names_a_cache_folder_holding_upstream_names(runtime_venv: Path, tmp_path: Path) -> None:
    (tmp_path / "cl100k_base.tiktoken").write_bytes(b"x")
    result = cli(runtime_venv, "doctor", env=clean_env(TIKTOKEN_CACHE_DIR=str(tmp_path)))
    assert result.returncode == 1
    line = one_line(result)
    assert f"{tmp_path} (TIKTOKEN_CACHE_DIR) holds cl100k_base.tiktoken under upstream names" in line


def test_doctor_names_a_cache_variable_that_is_a_file(runtime_venv: Path, tmp_path: Path) -> None:
    file = tmp_path / "a-file"
    file.write_text("")
    result = cli(runtime_venv, "doctor", "--json", env=clean_env(TIKTOKEN_CACHE_DIR=str(file)))
    assert result.returncode == 1 and json.loads(result.stdout)["ok"] is False
    assert f"TIKTOKEN_CACHE_DIR={file} is a file, not a folder" in one_line(result)


@pytest.mark.parametrize("kind", ["a device", "a FIFO"])
def test_doctor_names_a_cache_variable_that_is_a_device_or_fifo(runtime_venv: Path, tmp_path: Path, kind: str) -> None:
    path = Path("/dev/null")
    if kind == "a FIFO":
        path = tmp_path / "fifo"
        os.mkfifo(path)
    result = cli(runtime_venv, "doctor", "--json", env=clean_env(TIKTOKEN_CACHE_DIR=str(path)))
    assert result.returncode == 1 and json.loads(result.stdout)["ok"] is False
    assert f"TIKTOKEN_CACHE_DIR={path} is {kind}, not a folder" in one_line(result)


def test_doctor_names_a_plugin_that_changes_the_cache_variable(runtime_venv: Path, tmp_path: Path) -> None:
    plugin = tmp_path / "tiktoken_ext" / "another_library.py"
    plugin.parent.mkdir()
    plugin.write_text("import os\nos.environ['TIKTOKEN_CACHE_DIR'] = '/elsewhere'\nENCODING_CONSTRUCTORS = {}\n")
    result = cli(runtime_venv, "doctor", env=clean_env(PYTHONPATH=str(tmp_path)))
    assert result.returncode == 1
    assert "a tiktoken plugin changed TIKTOKEN_CACHE_DIR from " in one_line(result)
    assert "to '/elsewhere' while loading" in result.stderr


@pytest.mark.parametrize("variable", ["unset", "a link to the vendored folder"])
def test_doctor_notes_an_unwritable_default_cache_folder(
    runtime_venv: Path, installed: Path, tmp_path: Path, variable: str
) -> None:
    # e.g. /tmp/data-gym-cache left by another user: tiktoken cannot keep its downloads there. The
    # vendored folder named by another path (a link, macOS's /private/tmp) is the same folder.
    temp = tmp_path / "tmp"
    cache = temp / "data-gym-cache"
    cache.mkdir(parents=True)
    env = clean_env()
    if variable != "unset":
        (tmp_path / "link").symlink_to(installed)
        env["TIKTOKEN_CACHE_DIR"] = str(tmp_path / "link")
    script = (
        f'mount --bind "{cache}" "{cache}" && mount -o remount,bind,ro "{cache}" && '
        f'TMPDIR="{temp}" "{runtime_venv}" -m tiktoken_encodings_offline doctor --json'
    )
    result = run(["unshare", "--mount", "--net", "sh", "-c", script], env=env, check=False)
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["ok"] is True  # a note: only downloads suffer
    assert any(f"default cache folder {temp}/data-gym-cache is not writable" in note for note in report["notes"])


def test_without_tiktoken_commands_say_so(full_wheel: Path, tmp_path: Path) -> None:
    python = make_venv(tmp_path / "venv", str(full_wheel), pip_args=("--no-deps",))
    assert run(offline([python, "-c", "import tiktoken_encodings_offline"]), env=clean_env()).stderr == ""
    assert cli(python, "list").returncode == 0 and cli(python, "export", str(tmp_path / "out")).returncode == 0
    for command in ("verify", "doctor"):
        result = cli(python, command, "--json")
        assert result.returncode == 1 and json.loads(result.stdout)["ok"] is False
        assert "tiktoken is not installed (pip install --no-deps skips it" in one_line(result)


# --- export's errors ---------------------------------------------------------------------------------


def test_export_into_a_file_or_under_one_is_a_bad_argument(runtime_venv: Path, tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("keep")
    for target, why in ((file, "exists and is not a folder"), (file / "below", "cannot create the folder")):
        result = cli(runtime_venv, "export", str(target))
        assert result.returncode == 2 and str(target) in one_line(result) and why in one_line(result)
        as_json = cli(runtime_venv, "export", str(target), "--json")
        assert as_json.returncode == 2 and json.loads(as_json.stdout)["ok"] is False
    assert file.read_text() == "keep"


def test_export_of_an_empty_name_is_a_bad_argument(runtime_venv: Path, tmp_path: Path) -> None:
    command = offline([runtime_venv, "-m", "tiktoken_encodings_offline", "export", ""])
    result = run(command, env=clean_env(), cwd=tmp_path, check=False)
    assert result.returncode == 2 and "DIR is empty; name a folder" in one_line(result)
    assert list(tmp_path.iterdir()) == []  # nothing went into the current folder


def test_export_into_a_path_thousands_of_levels_deep_is_one_clear_line(runtime_venv: Path, tmp_path: Path) -> None:
    deep = tmp_path / "d" / os.path.join(*["d"] * 2999)
    result = cli(runtime_venv, "export", str(deep))
    line = one_line(result)
    assert result.returncode == 2 and line.startswith(f"export: cannot create the folder {tmp_path}/d/d/")
    assert line.endswith("(File name too long)") and "Recursion" not in line
    assert list(tmp_path.iterdir()) == []  # the levels it could make are gone again


def test_export_into_a_folder_whose_name_is_not_utf8(runtime_venv: Path, tmp_path: Path) -> None:
    folder = os.fsencode(tmp_path) + b"/caf\xe9"
    utf8 = clean_env(PYTHONIOENCODING="utf-8")  # strict, as in an en_US.UTF-8 locale (C.UTF-8's is surrogateescape)
    result = cli(runtime_venv, "export", os.fsdecode(folder), env=utf8)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.count("written") == 6 and "caf\\udce9" in result.stdout  # printed escaped
    assert {name.decode(): sha256(Path(os.fsdecode(folder + b"/" + name))) for name in os.listdir(folder)} == (
        expected_blobs()
    )


def test_export_into_another_users_folder_says_whose_it_is(runtime_venv: Path, tmp_path: Path) -> None:
    folder = tmp_path / "theirs"
    assert cli(runtime_venv, "export", str(folder)).returncode == 0
    for path in (folder, *folder.iterdir()):
        os.chown(path, 65534, 65534)  # nobody's folder, holding nobody's copies of the files
    result = cli(runtime_venv, "export", str(folder), "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["owner"] == "nobody (uid 65534)"
    # their copies, although their bytes are right, are replaced by the user's own
    assert [f["state"] for f in report["files"]] == ["written"] * 6
    assert {p.name: (sha256(p), p.stat().st_uid) for p in folder.iterdir()} == {
        name: (digest, os.geteuid()) for name, digest in expected_blobs().items()
    }
    text = cli(runtime_venv, "export", str(folder)).stdout
    assert f"note: {folder} belongs to nobody (uid 65534), not to you: they can change or replace these files" in text
    mine = cli(runtime_venv, "export", str(tmp_path / "mine"), "--json")
    assert json.loads(mine.stdout)["owner"] is None
    assert "note:" not in cli(runtime_venv, "export", str(tmp_path / "mine")).stdout


@pytest.mark.parametrize("mount", ["ro", "size=1m"])
def test_export_into_a_read_only_or_full_folder(runtime_venv: Path, tmp_path: Path, mount: str) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    prepare = f'mount --bind "{folder}" "{folder}" && mount -o remount,bind,ro "{folder}"'
    if mount != "ro":
        prepare = f'mount -t tmpfs -o {mount} tmpfs "{folder}"'
    script = (
        f'{prepare} && "{runtime_venv}" -m tiktoken_encodings_offline export "{folder}" --json; echo "exit $?" >&2; '
        f'ls -A "{folder}" >&2'
    )
    result = run(["unshare", "--mount", "--net", "sh", "-c", script], env=clean_env(), check=False)
    error, status, *left = result.stderr.splitlines()
    assert status == "exit 1" and "Traceback" not in result.stderr
    assert error.startswith(f"{PROG}cannot write into {folder} (")
    assert json.loads(result.stdout)["ok"] is False
    assert not [name for name in left if name.startswith(".")]  # no temporary file left behind
    if mount != "ro":  # what was written before the disk filled up is intact
        assert all(name in expected_blobs() for name in left)


def test_export_replaces_a_planted_symlink_and_never_writes_through_it(
    runtime_venv: Path, layouts: dict[str, Path], tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    out = tmp_path / "out"
    out.mkdir()
    blob = MANIFEST.blobs_for(["cl100k_base"])[0]
    (out / blob.cache_name).symlink_to(victim)
    # a link to a correct copy elsewhere is no exported file either: it breaks when that copy goes
    other = MANIFEST.blobs_for(["o200k_base"])[0]
    elsewhere = tmp_path / "elsewhere"
    shutil.copyfile(layouts["cache"] / other.cache_name, elsewhere)
    (out / other.cache_name).symlink_to(elsewhere)
    assert cli(runtime_venv, "export", str(out)).returncode == 0
    assert victim.read_text() == "keep"
    for exported in (blob, other):
        path = out / exported.cache_name
        assert not path.is_symlink() and sha256(path) == exported.sha256


def test_export_checks_each_file_after_writing_it(runtime_venv: Path, tmp_path: Path) -> None:
    # A disk that changes what it is given: the copy must be caught before it takes its name.
    code = (
        "import os, sys\n"
        "real = os.write\n"
        "os.write = lambda fd, data: real(fd, bytes(data)[:-1] + b'!') if len(data) > 1000 else real(fd, data)\n"
        "from tiktoken_encodings_offline.__main__ import main\n"
        "sys.exit(main(['export', sys.argv[1]]))"
    )
    out = tmp_path / "out"
    result = run(offline([runtime_venv, "-c", code, out]), env=clean_env(), check=False)
    assert result.returncode == 1
    assert "did not read back as written" in one_line(result)
    assert list(out.iterdir()) == []


# --- Slim wheels and openai-harmony ----------------------------------------------------------------


@pytest.fixture(scope="module")
def slim_venv(files_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with a wheel carrying cl100k_base only (openai-harmony is added by the last test)."""
    out = tmp_path_factory.mktemp("slim-cli")
    wheel, _ = build_wheel(out / "dist", build_env(files_dir, TIKTOKEN_ENCODINGS_OFFLINE_ENCODINGS="cl100k_base"))
    assert wheel is not None
    return make_venv(out / "venv", str(wheel))


def test_doctor_on_an_intact_slim_wheel_is_information(slim_venv: Path) -> None:
    result = cli(slim_venv, "doctor", "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["ok"] is True and report["problems"] == []
    assert report["coverage"]["cl100k_base"] == "vendored" and report["coverage"]["o200k_base"] == "not carried"
    assert any("tiktoken downloads one when it is asked for" in note for note in report["notes"])
    strict = cli(slim_venv, "doctor", env=clean_env(TIKTOKEN_ENCODINGS_OFFLINE_STRICT="1"))
    assert strict.returncode == 0 and "raises EncodingNotVendoredError" in strict.stdout
    assert report["harmony"] is None and "openai-harmony" not in strict.stdout  # it is not installed


def test_doctor_harmony_looks_at_the_two_files_harmony_reads(
    slim_venv: Path, layouts: dict[str, Path], tmp_path: Path
) -> None:
    run([str(slim_venv), "-m", "pip", "install", "-q", "openai-harmony"], env=clean_env())
    folder = cli(slim_venv, "path").stdout.strip()
    result = cli(slim_venv, "doctor", "--json", env=clean_env(TIKTOKEN_RS_CACHE_DIR=folder))
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["harmony"]["ready"] is False  # o200k_base is not carried
    assert f"TIKTOKEN_RS_CACHE_DIR={folder} lacks intact copies" in one_line(result)

    # A folder of its own holding both files is ready; with one of them altered, it is not.
    own = tmp_path / "harmony-cache"
    own.mkdir()
    for blob in MANIFEST.blobs_for(["o200k_base", "cl100k_base"]):
        shutil.copyfile(layouts["cache"] / blob.cache_name, own / blob.cache_name)
    ready = cli(slim_venv, "doctor", "--json", env=clean_env(TIKTOKEN_RS_CACHE_DIR=str(own)))
    assert json.loads(ready.stdout)["harmony"]["ready"] is True
    o200k = own / MANIFEST.blobs_for(["o200k_base"])[0].cache_name
    o200k.write_bytes(o200k.read_bytes()[:-1] + b"!")
    altered = cli(slim_venv, "doctor", "--json", env=clean_env(TIKTOKEN_RS_CACHE_DIR=str(own)))
    assert altered.returncode == 1 and json.loads(altered.stdout)["harmony"]["ready"] is False


def harmony_doctor(python: Path, folder: Path) -> subprocess.CompletedProcess[str]:
    """doctor with at most 4 GB of address space (a read of /dev/zero fails fast) and 60 s."""
    script = f'ulimit -v 4000000 && exec "{python}" -m tiktoken_encodings_offline doctor --json'
    env = clean_env(TIKTOKEN_RS_CACHE_DIR=str(folder))
    return run(offline(["sh", "-c", script]), env=env, check=False, timeout=60)


@pytest.mark.parametrize("planted", ["fifo", "dev-zero"])
def test_doctor_never_waits_on_or_fills_memory_from_a_harmony_cache_file(
    slim_venv: Path, layouts: dict[str, Path], tmp_path: Path, planted: str
) -> None:
    run([str(slim_venv), "-m", "pip", "install", "-q", "openai-harmony"], env=clean_env())
    own = tmp_path / "harmony-cache"
    own.mkdir()
    o200k, cl100k = MANIFEST.blobs_for(["o200k_base"])[0], MANIFEST.blobs_for(["cl100k_base"])[0]
    shutil.copyfile(layouts["cache"] / cl100k.cache_name, own / cl100k.cache_name)
    if planted == "fifo":
        os.mkfifo(own / o200k.cache_name)  # no writer ever comes
    else:
        (own / o200k.cache_name).symlink_to("/dev/zero")
    result = harmony_doctor(slim_venv, own)
    assert result.returncode == 1 and json.loads(result.stdout)["harmony"]["ready"] is False
    assert f"TIKTOKEN_RS_CACHE_DIR={own} lacks intact copies" in one_line(result)


def test_every_command_prints_a_path_the_console_cannot_hold_escaped(full_wheel: Path, tmp_path: Path) -> None:
    # a CJK folder on a console whose encoding is cp1252 (Windows' ANSI code page when redirected)
    target = tmp_path / "目录" / "target"
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(full_wheel)])
    env = clean_env(PYTHONPATH=str(target), PYTHONIOENCODING="cp1252")
    escaped = str(tmp_path / "\\u76ee\\u5f55")
    # path fails instead: a shell must read back the real folder (tests/test_cli_output.py)
    for command in (["list"], ["verify"], ["doctor"], ["export", str(tmp_path / "目录" / "out")]):
        result = cli(sys.executable, *command, env=env)
        assert result.returncode == 0 and result.stderr == "", (command, result.stderr)
        assert escaped in result.stdout, (command, result.stdout)
        assert json.loads(cli(sys.executable, *command, "--json", env=env).stdout)["ok"] is True
