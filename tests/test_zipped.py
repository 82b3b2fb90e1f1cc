"""A zipped install: the wheel file itself on sys.path (Spark's --py-files with a .zip copy,
Bazel zips, ``PYTHONPATH=the.whl``).

Nothing imports the package: tiktoken finds the plugin in the zip's ``tiktoken_ext/`` folder, and
every encoding must load with no network. Before CPython 3.14, zipimport sees that namespace
folder only through a directory entry, which the build hook adds. The files and the fast path's
tables are read straight out of the archive through the package's loader, with the standard
library alone; a real folder (``where()``, ``path``) is one checked copy per user and content,
made only when asked for and never removed by a process (``_zipped``). ``scripts/matrix.py`` runs
the first check on every interpreter.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from conftest import build_env
from helpers import MANIFEST, build_wheel, clean_env, make_venv, offline, run

PROBE = Path(__file__).with_name("probe_encodings.py")
NAME = "tiktoken-encodings-offline"

pytestmark = pytest.mark.slow


@pytest.fixture
def zipped(full_wheel: Path, tmp_path: Path) -> Path:
    """The wheel copied to a .zip name, as Spark's --py-files needs it."""
    copy = tmp_path / "tiktoken_encodings_offline.zip"
    shutil.copyfile(full_wheel, copy)
    return copy


def private_env(tmp_path: Path, archive: Path, **overrides: str) -> dict[str, str]:
    """The archive on PYTHONPATH, and a HOME and TMPDIR of the test's own, empty."""
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    env = clean_env(PYTHONPATH=str(archive), HOME=str(home), TMPDIR=str(tmp), **overrides)
    env.pop("XDG_CACHE_HOME", None)
    return env


def copies_of_the_data(tmp_path: Path) -> list[Path]:
    """Every file of o200k_base's blob under the test's HOME and TMPDIR: one per copy of the data."""
    name = hashlib.sha1(b"https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken").hexdigest()
    return sorted(p for top in ("home", "tmp") for p in (tmp_path / top).rglob(name))


def everything_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_every_folder_in_the_wheel_has_its_own_entry(full_wheel: Path) -> None:
    with zipfile.ZipFile(full_wheel) as archive:
        names = archive.namelist()
    folders = {name[: name.rindex("/") + 1] for name in names if "/" in name.rstrip("/")}
    parents = {folder[: index + 1] for folder in folders for index, c in enumerate(folder) if c == "/"}
    missing = sorted(parents - set(names))
    assert missing == [], f"folders with no zip entry (zipimport before 3.14 cannot see them): {missing}"
    assert "tiktoken_ext/" in names


def test_a_zip_copy_alone_beside_tiktoken_serves_every_encoding_offline_from_the_archive(
    zipped: Path, reference: dict[str, object], tmp_path: Path
) -> None:
    python = make_venv(tmp_path / "venv", "tiktoken")  # the standard library alone: no importlib-resources
    installed = run([str(python), "-m", "pip", "list", "--format=freeze"], env=clean_env()).stdout.lower()
    assert "tiktoken-encodings-offline" not in installed and "importlib" not in installed
    env = private_env(tmp_path, zipped)

    result = run(offline([str(python), "-W", "error", "-X", "dev", str(PROBE)]), env=env, check=False)

    assert result.returncode == 0, f"the zipped wheel did not serve the encodings offline:\n{result.stderr[-3000:]}"
    assert result.stderr == ""  # no notice, no ResourceWarning
    served = json.loads(result.stdout)
    assert served["encodings"] == reference["encodings"]
    assert served["models"] == reference["models"]
    # tiktoken wrote no cache (the files came from the archive), and nothing was extracted
    assert everything_under(tmp_path / "home") == [] and everything_under(tmp_path / "tmp") == []


def test_the_fast_path_serves_from_the_archive(zipped: Path, tmp_path: Path) -> None:
    code = (
        "import tiktoken, tiktoken.load, tiktoken_encodings_offline._runtime as r\n"
        "read = []\n"
        "original = tiktoken.load.read_file_cached\n"
        "enc = tiktoken.get_encoding('o200k_base')\n"
        "print(r.status()[0], enc.encode('hello world'), len(enc._mergeable_ranks))"
    )
    result = run(offline([sys.executable, "-W", "error", "-c", code]), env=private_env(tmp_path, zipped))
    assert result.stdout.split() == ["True", "[24912,", "2375]", "199998"], result.stdout
    assert result.stderr == ""


def test_path_makes_one_checked_copy_that_outlives_the_command_and_later_processes_register_it(
    zipped: Path, tmp_path: Path
) -> None:
    env = private_env(tmp_path, zipped)
    loads = "import os, tiktoken; tiktoken.get_encoding('gpt2'); print('TIKTOKEN_CACHE_DIR' in os.environ)"
    assert run(offline([sys.executable, "-c", loads]), env=env).stdout == "False\n"  # served with no folder
    command = offline([sys.executable, "-W", "error", "-m", "tiktoken_encodings_offline", "path"])
    first, second = run(command, env=env), run(command, env=env)

    folder = Path(first.stdout.strip())
    assert second.stdout == first.stdout and first.stderr == second.stderr == ""
    assert folder.parent == tmp_path / "home" / ".cache" / NAME and folder.name.startswith("zipped-")
    assert oct(folder.parent.stat().st_mode & 0o777) == "0o700"
    for blob in MANIFEST.blobs.values():
        assert hashlib.sha256((folder / blob.cache_name).read_bytes()).hexdigest() == blob.sha256
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary folder left

    # where() in a later process finds it and registers it for child processes and openai-harmony ...
    code = "import os, tiktoken_encodings_offline as t; t.where(); print(os.environ['TIKTOKEN_RS_CACHE_DIR'])"
    assert run(offline([sys.executable, "-c", code]), env=env).stdout.strip() == str(folder)
    assert run(offline([sys.executable, "-c", loads]), env=env).stdout == "False\n"  # activation never does
    # ... and plain tiktoken (no package at all) reads it offline
    plain = clean_env(TIKTOKEN_CACHE_DIR=str(folder), TMPDIR=str(tmp_path / "tmp"))
    code = "import tiktoken; print(tiktoken.get_encoding('o200k_base').encode('hello world'))"
    assert run(offline([sys.executable, "-c", code]), env=plain).stdout.strip() == "[24912, 2375]"
    assert len(copies_of_the_data(tmp_path)) == 1


def test_processes_racing_to_make_the_copy_make_one(zipped: Path, tmp_path: Path) -> None:
    env = private_env(tmp_path, zipped)
    code = "import tiktoken_encodings_offline as t; print(t.where())"
    racers = [subprocess.Popen(offline([sys.executable, "-c", code]), env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for _ in range(4)]  # fmt: skip
    outputs = [racer.communicate(timeout=120) for racer in racers]
    assert [err for _, err in outputs] == [""] * 4
    assert len({out for out, _ in outputs}) == 1
    assert len(copies_of_the_data(tmp_path)) == 1
    assert [p.name for p in (tmp_path / "home" / ".cache" / NAME).iterdir()] == [Path(outputs[0][0].strip()).name]


@pytest.mark.parametrize("plant", ["a link", "a file", "another owner", "world-writable"])
def test_a_planted_folder_is_never_used(zipped: Path, tmp_path: Path, plant: str) -> None:
    env = private_env(tmp_path, zipped)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    for ours in (tmp_path / "home" / ".cache" / NAME, tmp_path / "tmp" / f"{NAME}-{os.geteuid()}"):
        ours.parent.mkdir(exist_ok=True)
        if plant == "a link":
            ours.symlink_to(elsewhere)
        elif plant == "a file":
            ours.write_bytes(b"")
            ours.chmod(0o600)
        else:
            ours.mkdir(mode=0o700)
            if plant == "another owner":
                os.chown(ours, 65534, 65534)
            else:
                ours.chmod(0o777)
    command = offline([sys.executable, "-W", "error", "-m", "tiktoken_encodings_offline", "path"])

    result = run(command, env=env, check=False)

    assert result.returncode == 1 and result.stdout.strip().endswith("/data")
    assert "no safe folder for a copy of its files" in result.stderr
    assert "python -m tiktoken_encodings_offline export DIR" in result.stderr
    assert {
        "a link": "is not a folder",
        "a file": "is not a folder",
        "another owner": "belongs to user 65534",
        "world-writable": "mode 777",
    }[plant] in result.stderr
    assert copies_of_the_data(tmp_path) == [] and list(elsewhere.iterdir()) == []
    # tiktoken is still served from the archive, with the one notice
    code = (
        "import tiktoken_encodings_offline as t, tiktoken; t.where(); print(tiktoken.get_encoding('r50k_base').n_vocab)"
    )
    served = run(offline([sys.executable, "-c", code]), env=env)
    assert served.stdout.strip() == "50257" and served.stderr.count("no safe folder") == 1


def test_the_copy_falls_back_to_a_private_folder_in_tmpdir(zipped: Path, tmp_path: Path) -> None:
    env = private_env(tmp_path, zipped)
    (tmp_path / "home" / ".cache").symlink_to(tmp_path / "tmp")  # a planted ~/.cache: a link
    result = run(offline([sys.executable, "-m", "tiktoken_encodings_offline", "path"]), env=env)
    assert Path(result.stdout.strip()).parent == tmp_path / "tmp" / f"{NAME}-{os.geteuid()}"
    assert "is not a folder" not in result.stderr


def test_a_damaged_copy_is_named_and_not_registered(zipped: Path, tmp_path: Path) -> None:
    env = private_env(tmp_path, zipped)
    command = offline([sys.executable, "-m", "tiktoken_encodings_offline", "path"])
    folder = Path(run(command, env=env).stdout.strip())
    damaged = folder / MANIFEST.blobs_for(["cl100k_base"])[0].cache_name
    damaged.chmod(0o644)
    damaged.write_bytes(damaged.read_bytes()[:-1])

    result = run(command, env=env, check=False)

    assert result.returncode == 1
    assert f"{damaged} is damaged" in result.stderr and f"remove {folder}, it is made anew" in result.stderr
    code = "import os, tiktoken_encodings_offline as t; t.where(); print('TIKTOKEN_CACHE_DIR' in os.environ)"
    assert run(offline([sys.executable, "-c", code]), env=env).stdout.strip() == "False"


def damaged_copy(wheel: Path, archive: Path, *members: str) -> Path:
    """The wheel rewritten to ``archive`` with the last byte of each of ``members`` changed."""
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(archive, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, data[:-1] + b"!" if info.filename in members else data)
    return archive


def table_member(wheel: Path, encoding: str) -> str:
    """The archive member holding the fast path's table of ``encoding``'s blob."""
    url = MANIFEST.blobs_for([encoding])[0].url
    with zipfile.ZipFile(wheel) as archive:
        rows = archive.read("tiktoken_encodings_offline/fastpath/derived.tsv").decode().splitlines()
    return next(f"tiktoken_encodings_offline/fastpath/{row.split(chr(9))[2]}" for row in rows if row.startswith(url))


# cl100k_base's ids for the probe's text, printed as json: ``reference`` holds plain tiktoken's
CL100K_IDS = (
    f"import json, sys, tiktoken; sys.path.insert(0, {str(PROBE.parent)!r}); from probe_encodings import MIXED_TEXT\n"
    "print(json.dumps(tiktoken.get_encoding('cl100k_base').encode(MIXED_TEXT, allowed_special='all')))"
)


def test_a_damaged_member_of_the_archive_is_never_served_nor_copied(
    full_wheel: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    blob = MANIFEST.blobs_for(["cl100k_base"])[0]
    member = f"tiktoken_encodings_offline/data/{blob.cache_name}"
    archive = damaged_copy(full_wheel, tmp_path / "damaged.zip", member)
    env = private_env(tmp_path, archive)

    # In an archive the fast path does not read the blob before its table (docs/fastpath.md): the
    # table, checked against its own SHA-256, gives plain tiktoken's ids, and says nothing yet
    result = run(offline([sys.executable, "-c", CL100K_IDS]), env=env)
    assert json.loads(result.stdout) == reference["encodings"]["cl100k_base"] and result.stderr == ""

    # The damaged bytes themselves are never served: read as tiktoken reads them (the fast path
    # off), the blob is refused, and offline the fall-back download fails as plain tiktoken's would
    off = {**env, "TIKTOKEN_ENCODINGS_OFFLINE_NO_FASTPATH": "1"}
    result = run(offline([sys.executable, "-c", CL100K_IDS]), env=off, check=False)
    assert result.returncode != 0 and result.stdout == ""
    assert f"{archive}/{member} is damaged (SHA-256 differs" in result.stderr

    result = run(offline([sys.executable, "-m", "tiktoken_encodings_offline", "path"]), env=env, check=False)
    assert result.returncode == 1 and f"{archive}/{member} is damaged" in result.stderr
    assert copies_of_the_data(tmp_path) == []
    assert not (tmp_path / "home" / ".cache").exists()  # the archive is checked before any folder is made


def test_a_damaged_table_in_the_archive_is_refused_for_its_blob_then_the_blob_is_checked(
    full_wheel: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    """What guards the fast path in an archive, where the blob is not read first: the table's SHA-256."""
    table = table_member(full_wheel, "cl100k_base")
    blob = f"tiktoken_encodings_offline/data/{MANIFEST.blobs_for(['cl100k_base'])[0].cache_name}"

    archive = damaged_copy(full_wheel, tmp_path / "table.zip", table)
    result = run(offline([sys.executable, "-c", CL100K_IDS]), env=private_env(tmp_path, archive))
    assert json.loads(result.stdout) == reference["encodings"]["cl100k_base"]  # tiktoken parsed the blob
    assert f"{archive}/{table} is damaged (SHA-256 differs" in result.stderr

    archive = damaged_copy(full_wheel, tmp_path / "both.zip", table, blob)
    result = run(offline([sys.executable, "-c", CL100K_IDS]), env=private_env(tmp_path, archive), check=False)
    assert result.returncode != 0 and result.stdout == ""  # neither is served; offline, the download fails
    assert f"{archive}/{table} is damaged (SHA-256 differs" in result.stderr
    assert f"{archive}/{blob} is damaged (SHA-256 differs" in result.stderr


def test_a_member_missing_from_the_archive_is_named(full_wheel: Path, tmp_path: Path) -> None:
    blob = MANIFEST.blobs_for(["o200k_base"])[0]
    member = f"tiktoken_encodings_offline/data/{blob.cache_name}"
    archive = tmp_path / "missing.zip"
    with zipfile.ZipFile(full_wheel) as source, zipfile.ZipFile(archive, "w") as target:
        for info in source.infolist():
            if info.filename != member:
                target.writestr(info, source.read(info))
    code = "import tiktoken; print(tiktoken.get_encoding('cl100k_base').n_vocab); tiktoken.get_encoding('o200k_base')"
    env = private_env(tmp_path, archive)
    # the fast path serves o200k_base from its checked table, which does not read the blob in an archive
    assert run(offline([sys.executable, "-c", code]), env=env).stdout == "100277\n"
    # read as tiktoken reads it, the blob is named missing; offline, the fall-back download fails
    result = run(
        offline([sys.executable, "-c", code]), env={**env, "TIKTOKEN_ENCODINGS_OFFLINE_NO_FASTPATH": "1"}, check=False
    )
    assert result.stdout == "100277\n" and result.returncode != 0
    assert f"cannot read {archive}/{member} (not in the archive)" in result.stderr


@pytest.mark.parametrize("copy", ["none yet", "made already"])
def test_a_stale_temporary_folder_of_a_killed_process_is_removed(zipped: Path, tmp_path: Path, copy: str) -> None:
    env = private_env(tmp_path, zipped)
    ours = tmp_path / "home" / ".cache" / NAME
    ours.mkdir(parents=True, mode=0o700)
    if copy == "made already":  # a later process, once another one made the copy
        run(offline([sys.executable, "-m", "tiktoken_encodings_offline", "path"]), env=env)
    gone, recent, alive = ours / ".99999999.old", ours / ".99999998.new", ours / f".{os.getpid()}.mine"
    for folder in (gone, recent, alive):
        folder.mkdir()
        (folder / "partial").write_bytes(b"x")
    for folder in (gone, alive):
        os.utime(folder, (0, 0))  # made in 1970
    run(offline([sys.executable, "-m", "tiktoken_encodings_offline", "path"]), env=env)
    assert not gone.exists()  # its process is gone and it is old
    assert recent.exists() and alive.exists()  # another host's process may still be writing it; this one lives
    assert len(copies_of_the_data(tmp_path)) == 1


def test_a_relative_xdg_cache_home_is_ignored_as_the_xdg_spec_says(zipped: Path, tmp_path: Path) -> None:
    env = {**private_env(tmp_path, zipped), "XDG_CACHE_HOME": "relative/cache"}
    result = run(offline([sys.executable, "-m", "tiktoken_encodings_offline", "path"]), env=env, cwd=tmp_path)
    assert Path(result.stdout.strip()).parent == tmp_path / "home" / ".cache" / NAME
    assert not (tmp_path / "relative").exists()


@pytest.fixture(scope="module")
def slim_wheel(files_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("slim")
    wheel, _ = build_wheel(out / "dist", build_env(files_dir, TIKTOKEN_ENCODINGS_OFFLINE_ENCODINGS="cl100k_base"))
    assert wheel is not None
    return wheel


def test_what_the_copy_does_not_serve_comes_from_tiktokens_default_cache_never_into_the_copy(
    slim_wheel: Path, files_dir: Path, tmp_path: Path
) -> None:
    env = private_env(tmp_path, slim_wheel)
    folder = Path(run(offline([sys.executable, "-m", "tiktoken_encodings_offline", "path"]), env=env).stdout.strip())
    default_cache = tmp_path / "tmp" / "data-gym-cache"  # where plain tiktoken keeps what it downloads
    default_cache.mkdir()
    for blob in MANIFEST.blobs_for(["gpt2"]):
        shutil.copyfile(files_dir / blob.path, default_cache / blob.cache_name)
    before = everything_under(folder)
    code = (
        "import os, tiktoken, tiktoken_encodings_offline as t; print(t.where(), tiktoken.get_encoding('gpt2').n_vocab)"
    )

    result = run(offline([sys.executable, "-c", code]), env=env)

    assert result.stdout.split() == [str(folder), "50257"]  # the copy registered, gpt2 read from the default
    assert everything_under(folder) == before


def test_a_zipped_slim_wheel_in_strict_mode_names_the_encoding_it_does_not_carry(
    slim_wheel: Path, tmp_path: Path
) -> None:
    # The message reads the manifest out of the zip (through the module's loader), not from a path.
    env = private_env(tmp_path, slim_wheel, TIKTOKEN_ENCODINGS_OFFLINE_STRICT="1")
    code = "import tiktoken; tiktoken.get_encoding('o200k_harmony')"
    result = run(offline([sys.executable, "-c", code]), env=env, check=False)
    assert result.returncode == 1
    assert "EncodingNotVendoredError: encoding o200k_base / o200k_harmony needs" in result.stderr
    assert "(it carries: cl100k_base)" in result.stderr


def test_list_verify_and_doctor_check_the_archive_itself_and_make_no_copy(full_wheel: Path, tmp_path: Path) -> None:
    # They check what tiktoken is served from: the archive. A copy made earlier (path) is not what
    # they look at, and they make none themselves.
    blob = MANIFEST.blobs_for(["o200k_base"])[0]
    member = f"tiktoken_encodings_offline/data/{blob.cache_name}"
    good = tmp_path / "good.zip"
    shutil.copyfile(full_wheel, good)
    damaged = damaged_copy(full_wheel, tmp_path / "damaged.zip", member)
    for command in ("list", "verify", "doctor"):
        result = run(
            offline([sys.executable, "-m", "tiktoken_encodings_offline", command]), env=private_env(tmp_path, good)
        )
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        assert copies_of_the_data(tmp_path) == [], command
    run(offline([sys.executable, "-m", "tiktoken_encodings_offline", "path"]), env=private_env(tmp_path, good))
    assert len(copies_of_the_data(tmp_path)) == 1  # an intact copy, of the same record as the damaged archive
    for command in ("list", "verify", "doctor"):
        env = private_env(tmp_path, damaged)
        result = run(offline([sys.executable, "-m", "tiktoken_encodings_offline", command]), env=env, check=False)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert f"{damaged}/{member}" in result.stdout + result.stderr, command


def test_export_reads_the_archive_where_no_folder_can_be_made(zipped: Path, tmp_path: Path) -> None:
    env = private_env(tmp_path, zipped)
    for ours in (tmp_path / "home" / ".cache" / NAME, tmp_path / "tmp" / f"{NAME}-{os.geteuid()}"):
        ours.parent.mkdir(exist_ok=True)
        ours.write_bytes(b"")  # no safe folder for a copy: path says to use export
    assert (
        run(offline([sys.executable, "-m", "tiktoken_encodings_offline", "path"]), env=env, check=False).returncode == 1
    )
    out = tmp_path / "exported"

    result = run(offline([sys.executable, "-m", "tiktoken_encodings_offline", "export", str(out)]), env=env)

    assert result.stderr == ""
    expected = {blob.cache_name: blob.sha256 for blob in MANIFEST.blobs.values()}
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()} == expected
    assert copies_of_the_data(tmp_path) == []


def test_a_direct_tiktoken_load_call_after_the_import_is_served_from_the_archive(zipped: Path, tmp_path: Path) -> None:
    # No .pth is read from an archive and no folder is registered: the import watches for tiktoken.load.
    blob = MANIFEST.blobs_for(["r50k_base"])[0]
    code = (
        "import tiktoken_encodings_offline\n"
        "from tiktoken.load import load_tiktoken_bpe\n"
        f"print(len(load_tiktoken_bpe({blob.url!r}, {blob.sha256!r})))"
    )
    result = run(offline([sys.executable, "-c", code]), env=private_env(tmp_path, zipped))
    assert result.stdout.strip() == "50256" and result.stderr == ""
    assert copies_of_the_data(tmp_path) == []
