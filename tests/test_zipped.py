"""A zipped install: the wheel file itself on sys.path (Spark's --py-files with a .zip copy,
Bazel zips, ``PYTHONPATH=the.whl``).

Nothing imports the package: tiktoken finds the plugin in the zip's ``tiktoken_ext/`` folder, and
every encoding must load with no network. Before CPython 3.14, zipimport sees that namespace
folder only through a directory entry, which the build hook adds. The files and the fast path's
tables are read straight out of the archive through the package's loader, with the standard
library alone, and nothing is extracted or written: there is no folder (``where()`` and ``path``
say so, naming ``export``, which makes one where the user says). ``scripts/matrix.py`` runs the
first check on every interpreter.
"""

from __future__ import annotations

import hashlib
import json
import shutil
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
    """Every file of o200k_base's blob under the test's HOME and TMPDIR: a copy of the data, which
    nothing may make (before issue 27 ``where()`` made one per user)."""
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


def test_a_damaged_member_of_the_archive_is_never_served_nor_exported(
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

    result = run(offline([sys.executable, "-m", "tiktoken_encodings_offline", "export", str(tmp_path / "out")]),
                 env=env, check=False)  # fmt: skip
    assert result.returncode == 1 and f"{archive}/{member} is damaged" in result.stderr
    assert copies_of_the_data(tmp_path) == [] and everything_under(tmp_path / "home") == []
    exported = {p.name for p in (tmp_path / "out").iterdir()}  # the files before it: verified, and theirs to use
    assert blob.cache_name not in exported and not any(name.endswith(".tmp") for name in exported)


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


@pytest.fixture(scope="module")
def slim_wheel(files_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("slim")
    wheel, _ = build_wheel(out / "dist", build_env(files_dir, TIKTOKEN_ENCODINGS_OFFLINE_ENCODINGS="cl100k_base"))
    assert wheel is not None
    return wheel


def test_what_the_archive_does_not_serve_comes_from_tiktokens_default_cache(
    slim_wheel: Path, files_dir: Path, tmp_path: Path
) -> None:
    env = private_env(tmp_path, slim_wheel)
    default_cache = tmp_path / "tmp" / "data-gym-cache"  # where plain tiktoken keeps what it downloads
    default_cache.mkdir()
    for blob in MANIFEST.blobs_for(["gpt2"]):
        shutil.copyfile(files_dir / blob.path, default_cache / blob.cache_name)
    before = everything_under(tmp_path)
    code = "import tiktoken, tiktoken_encodings_offline; print(tiktoken.get_encoding('gpt2').n_vocab)"

    result = run(offline([sys.executable, "-c", code]), env=env)

    assert result.stdout.split() == ["50257"] and result.stderr == ""  # gpt2 read from tiktoken's default cache
    assert everything_under(tmp_path) == before


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
    # They check what tiktoken is served from: the archive, and make no copy of it.
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
    for command in ("list", "verify", "doctor"):
        env = private_env(tmp_path, damaged)
        result = run(offline([sys.executable, "-m", "tiktoken_encodings_offline", command]), env=env, check=False)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert f"{damaged}/{member}" in result.stdout + result.stderr, command
    assert everything_under(tmp_path / "home") == [] and everything_under(tmp_path / "tmp") == []


def test_where_and_path_name_the_archive_and_export_and_print_nothing_on_stdout(zipped: Path, tmp_path: Path) -> None:
    env = private_env(tmp_path, zipped)
    line = (
        f"no folder holds the vendored files of a zipped install: they are inside the archive {zipped}, and "
        "tiktoken is served from it; for a folder (TIKTOKEN_CACHE_DIR, TIKTOKEN_RS_CACHE_DIR) run: python -m "
        "tiktoken_encodings_offline export DIR (or call tiktoken_encodings_offline.export(DIR))"
    )
    # as the README captures it: harmony must never be pointed at the archive file
    script = f'folder="$("{sys.executable}" -W error -m tiktoken_encodings_offline path)"; echo "$?[$folder]"'
    result = run(offline(["sh", "-c", script]), env=env)
    assert (result.stdout, result.stderr) == ("1[]\n", f"tiktoken-encodings-offline: {line}\n")
    bare = run(offline([sys.executable, "-m", "tiktoken_encodings_offline", "path"]), env=env, check=False)
    assert (bare.returncode, bare.stdout) == (1, "")
    as_json = run(offline([sys.executable, "-m", "tiktoken_encodings_offline", "path", "--json"]), env=env, check=False)
    assert json.loads(as_json.stdout) == {"folder": None, "problem": line, "ok": False} and as_json.returncode == 1

    code = (
        "import tiktoken, tiktoken_encodings_offline as t\n"
        "try:\n    t.where()\nexcept t.NoFolderError as error:\n    print(error)\n"
        "print(tiktoken.get_encoding('r50k_base').n_vocab)"  # still served from the archive
    )
    result = run(offline([sys.executable, "-W", "error", "-c", code]), env=env)
    assert (result.stdout, result.stderr) == (f"{line}\n50257\n", "")
    assert everything_under(tmp_path / "home") == [] and everything_under(tmp_path / "tmp") == []


def test_export_reads_the_archive(zipped: Path, tmp_path: Path) -> None:
    env = private_env(tmp_path, zipped)
    out = tmp_path / "exported"

    result = run(offline([sys.executable, "-m", "tiktoken_encodings_offline", "export", str(out)]), env=env)

    assert result.stderr == ""
    expected = {blob.cache_name: blob.sha256 for blob in MANIFEST.blobs.values()}
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()} == expected
    assert copies_of_the_data(tmp_path) == []
    # the function too, and plain tiktoken (no package) reads the folder it made, offline
    again = tmp_path / "by-function"
    code = f"import tiktoken_encodings_offline as t; print(t.export({str(again)!r}))"
    assert run(offline([sys.executable, "-c", code]), env=env).stdout == f"{again}\n"
    plain = clean_env(TIKTOKEN_CACHE_DIR=str(again), TMPDIR=str(tmp_path / "tmp"))
    code = "import tiktoken; print(tiktoken.get_encoding('o200k_base').encode('hello world'))"
    assert run(offline([sys.executable, "-c", code]), env=plain).stdout.strip() == "[24912, 2375]"


def test_a_direct_tiktoken_load_call_after_the_import_is_served_from_the_archive(zipped: Path, tmp_path: Path) -> None:
    # The import itself wraps tiktoken's reader, whatever TIKTOKEN_CACHE_DIR says (tests/test_import.py: every shape).
    blob = MANIFEST.blobs_for(["r50k_base"])[0]
    code = (
        "import tiktoken_encodings_offline\n"
        "from tiktoken.load import load_tiktoken_bpe\n"
        f"print(len(load_tiktoken_bpe({blob.url!r}, {blob.sha256!r})))"
    )
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    result = run(
        offline([sys.executable, "-c", code]), env=private_env(tmp_path, zipped, TIKTOKEN_CACHE_DIR=str(empty))
    )
    assert result.stdout.strip() == "50256" and result.stderr == ""
    assert copies_of_the_data(tmp_path) == [] and list(empty.iterdir()) == []
