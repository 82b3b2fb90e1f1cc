"""Reading a zipped install's files out of the archive: by the archive's own member names whatever
form its path on sys.path has (issue 28), and through zipimport's reader, which fails at times
when threads read at once (issue 29): such a failure is tried again, never called damage nor
turned into a download; a member that really cannot be read is still named.
"""

from __future__ import annotations

import json
import shutil
import struct
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from helpers import MANIFEST, clean_env, offline, run

PROBE = Path(__file__).with_name("probe_encodings.py")

pytestmark = pytest.mark.slow


@pytest.fixture
def zipped(full_wheel: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "teo.zip"
    shutil.copyfile(full_wheel, copy)
    return copy


def no_home_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    (tmp_path / "home").mkdir(exist_ok=True)
    return clean_env(HOME=str(tmp_path / "home"), TMPDIR=str(tmp_path / "home"), **overrides)


# The probe's ids and one direct load, after the archive is put on sys.path by ``{entry!r}``.
SERVE = """
import json, sys
sys.path.insert(0, {entry!r})
sys.path.insert(0, {probe_dir!r})
from probe_encodings import MIXED_TEXT
import tiktoken
ids = {{name: tiktoken.get_encoding(name).encode(MIXED_TEXT, allowed_special="all") for name in {names!r}}}
import tiktoken_encodings_offline
from tiktoken.load import load_tiktoken_bpe
ranks = load_tiktoken_bpe({url!r}, {sha256!r})
from tiktoken_encodings_offline._manifest import load_manifest  # what doctor and strict mode's message read
blobs = len(load_manifest().blobs)
print(json.dumps({{"ids": ids, "ranks": len(ranks), "served": tiktoken_encodings_offline.verify(load=False).ok,
                   "manifest": blobs}}))
"""
NAMES = ["cl100k_base", "o200k_base", "gpt2"]


def serve(entry: str, prefix: str = "") -> str:
    blob = MANIFEST.blobs_for(["r50k_base"])[0]
    return prefix + SERVE.format(entry=entry, probe_dir=str(PROBE.parent), names=NAMES, url=blob.url,
                                 sha256=blob.sha256)  # fmt: skip


def check_served(result: Any, reference: dict[str, Any]) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == ""
    served = json.loads(result.stdout.splitlines()[-1])
    assert served["ids"] == {name: reference["encodings"][name] for name in NAMES}
    assert served["ranks"] == 50256 and served["served"] is True and served["manifest"] == len(MANIFEST.blobs)


@pytest.mark.parametrize("entry", ["teo.zip", "./deps/../teo.zip", "ABSOLUTE"])
def test_a_zipped_install_on_sys_path_by_a_relative_path_serves(
    zipped: Path, reference: dict[str, Any], tmp_path: Path, entry: str
) -> None:
    (tmp_path / "deps").mkdir()
    entry = str(zipped) if entry == "ABSOLUTE" else entry
    result = run(offline([sys.executable, "-c", serve(entry)]), env=no_home_env(tmp_path), cwd=tmp_path, check=False)
    check_served(result, reference)


AFTER_CHDIR = """
import os, sys
sys.path.insert(0, "teo.zip")
import tiktoken, tiktoken_encodings_offline
os.chdir("/")  # the relative entry now names nothing: the package's files went away for this process
tiktoken.get_encoding("cl100k_base")
"""


def test_a_relative_entry_after_chdir_raises_the_package_error_alone(zipped: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    env = no_home_env(tmp_path, TIKTOKEN_CACHE_DIR=str(cache))
    result = run(offline([sys.executable, "-c", AFTER_CHDIR]), env=env, cwd=tmp_path, check=False)
    last = result.stderr.splitlines()[-1]
    assert result.returncode == 1 and last.startswith("RuntimeError: tiktoken-encodings-offline cannot answer "), result
    assert last.endswith("the package's files went away: it was removed or upgraded while this process ran, or it "
                         "is on sys.path by a relative path and the working directory changed; restart it "
                         "(with an absolute path on sys.path)")  # fmt: skip
    assert result.stderr.count("Traceback") == 1 and "During handling" not in result.stderr, result.stderr
    assert list(cache.iterdir()) == []  # nothing downloaded


# zipimport's get_data, replaced before the package is imported (the package binds it then):
# every member of the package fails once, or ``{always!r}`` every time, as zipimport fails when
# another thread sets up its decompressor at the same moment.
FLAKY_READER = """
import atexit, os, zipimport
_original = zipimport.zipimporter.get_data
_failed = []

def get_data(self, pathname):
    if "tiktoken_encodings_offline" in pathname and (pathname not in _failed or {always!r} and {always!r} in pathname):
        _failed.append(pathname)
        raise zipimport.ZipImportError("can't decompress data; zlib not available")
    return _original(self, pathname)

zipimport.zipimporter.get_data = get_data
atexit.register(lambda: open(os.environ["FAILED_READS"], "w").write(str(len(_failed))))
"""


def run_flaky(code: str, env: dict[str, str], tmp_path: Path) -> tuple[Any, int]:
    """``code`` run offline; and how many reads the flaky reader failed."""
    count = tmp_path / "failed-reads"
    result = run(offline([sys.executable, "-c", code]), env={**env, "FAILED_READS": str(count)}, cwd=tmp_path,
                 check=False)  # fmt: skip
    return result, int(count.read_text())


def test_a_read_that_fails_once_is_tried_again_never_called_damage_nor_downloaded(
    zipped: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    code = serve(str(zipped), FLAKY_READER.format(always=""))
    result, failed = run_flaky(code, no_home_env(tmp_path), tmp_path)
    check_served(result, reference)
    assert failed >= 10  # the record, the manifest, tables and blobs: each failed its first read


# zipimport's flag itself: a read while another is under way fails, as it does when two threads set
# up the decompressor at once; each read lasts long enough for threads released together to meet.
FLAG_READER = """
import time, zipimport
_original = zipimport.zipimporter.get_data
_inside, _collisions = [], []

def get_data(self, pathname):
    if _inside:
        _collisions.append(pathname)
        raise zipimport.ZipImportError("can't decompress data; zlib not available")
    _inside.append(pathname)
    try:
        time.sleep(0.05)
        return _original(self, pathname)
    finally:
        _inside.pop()

zipimport.zipimporter.get_data = get_data
"""
# tiktoken builds one encoding at a time (its registry's lock): direct loads run side by side.
FIRST_LOADS_AT_ONCE = """
import json, sys, threading
sys.path.insert(0, {archive!r})
sys.path.insert(0, {probe_dir!r})
from probe_encodings import MIXED_TEXT
import tiktoken_encodings_offline, tiktoken
from tiktoken.load import load_tiktoken_bpe
names, blobs = {names!r}, {blobs!r}
barrier, ids, sizes = threading.Barrier(len(names) + len(blobs)), {{}}, {{}}

def first_encoding(name):
    barrier.wait()
    ids[name] = tiktoken.get_encoding(name).encode(MIXED_TEXT, allowed_special="all")

def direct_load(url, sha256):
    barrier.wait()
    sizes[url] = len(load_tiktoken_bpe(url, sha256))

threads = [threading.Thread(target=first_encoding, args=(name,)) for name in names]
threads += [threading.Thread(target=direct_load, args=blob) for blob in blobs]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({{"ids": ids, "sizes": sizes, "collisions": len(_collisions)}}))
"""


def test_threads_read_the_archive_in_turn(zipped: Path, reference: dict[str, Any], tmp_path: Path) -> None:
    names = list(reference["encodings"])
    blobs = [(blob.url, blob.sha256) for blob in MANIFEST.blobs.values() if blob.url.endswith(".tiktoken")]
    code = FLAG_READER + FIRST_LOADS_AT_ONCE.format(
        archive=str(zipped), probe_dir=str(PROBE.parent), names=names, blobs=blobs
    )
    result = run(offline([sys.executable, "-c", code]), env=no_home_env(tmp_path), check=False)
    assert result.returncode == 0 and result.stderr == "", result.stderr[-3000:]
    served = json.loads(result.stdout)
    assert served["collisions"] == 0  # no read began while another was under way
    assert served["ids"] == reference["encodings"]
    sizes = {"r50k_base": 50256, "p50k_base": 50280, "cl100k_base": 100256, "o200k_base": 199998}
    assert served["sizes"] == {url: sizes[url.rsplit("/", 1)[1].split(".")[0]] for url, _ in blobs}


def test_a_member_that_never_reads_is_named_and_the_rest_served(
    zipped: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    table = _table_member(zipped, "cl100k_base")
    code = serve(str(zipped), FLAKY_READER.format(always=table.rsplit("/", 1)[1]))
    result, failed = run_flaky(code, no_home_env(tmp_path), tmp_path)
    # tiktoken parses cl100k_base's blob itself: the ids are right, the table is named once
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.splitlines()[-1])
    assert served["ids"] == {name: reference["encodings"][name] for name in NAMES}
    assert result.stderr.count("\n") == 1, result.stderr
    assert (
        f"{zipped}/{table} is damaged (cannot be read from the archive (ZipImportError: can't decompress data; "
        "zlib not available))" in result.stderr
    )
    assert failed >= 3


# One member whose data never inflates (zlib's own error, not the flag's): damage, named at once.
BAD_INFLATE_READER = """
import atexit, os, zipimport, zlib
_original = zipimport.zipimporter.get_data
_failed = []

def get_data(self, pathname):
    if pathname.endswith({member!r}):
        _failed.append(pathname)
        raise zlib.error("Error -3 while decompressing data: invalid block type")
    return _original(self, pathname)

zipimport.zipimporter.get_data = get_data
atexit.register(lambda: open(os.environ["FAILED_READS"], "w").write(str(len(_failed))))
"""


def test_only_the_flags_failure_is_tried_again(zipped: Path, reference: dict[str, Any], tmp_path: Path) -> None:
    table = _table_member(zipped, "cl100k_base")
    code = serve(str(zipped), BAD_INFLATE_READER.format(member=table.rsplit("/", 1)[1]))
    result, failed = run_flaky(code, no_home_env(tmp_path), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{zipped}/{table} is damaged (cannot be read from the archive (error: Error -3" in result.stderr
    assert failed == 1  # no retry: a member that does not inflate never will


def test_a_member_whose_data_does_not_inflate_is_named(zipped: Path, reference: dict[str, Any], tmp_path: Path) -> None:
    table = _table_member(zipped, "cl100k_base")
    with zipfile.ZipFile(zipped) as archive:
        offset = archive.getinfo(table).header_offset
    with open(zipped, "r+b") as file:  # the first deflate block made "reserved": zlib refuses it
        file.seek(offset)
        header = file.read(30)
        name_size, extra_size = struct.unpack("<HH", header[26:30])
        file.seek(offset + 30 + name_size + extra_size)
        file.write(b"\xff")
    result = run(offline([sys.executable, "-c", serve(str(zipped))]), env=no_home_env(tmp_path), check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.splitlines()[-1])
    assert served["ids"] == {name: reference["encodings"][name] for name in NAMES}  # tiktoken parsed the blob
    assert f"{zipped}/{table} is damaged (cannot be read from the archive (error: Error -3" in result.stderr


def _table_member(wheel: Path, encoding: str) -> str:
    url = MANIFEST.blobs_for([encoding])[0].url
    with zipfile.ZipFile(wheel) as archive:
        rows = archive.read("tiktoken_encodings_offline/fastpath/derived.tsv").decode().splitlines()
    return next(f"tiktoken_encodings_offline/fastpath/{row.split(chr(9))[2]}" for row in rows if row.startswith(url))


# zipimport's decompressor made unusable, as while another thread sets it up: a compressed member
# cannot be read, a stored one can. The package's code is stored, so imports from the archive work.
NO_DECOMPRESSOR = """
import sys, zipimport
sys.path.insert(0, {archive!r})
zipimport._importing_zlib = True
import tiktoken_encodings_offline
import tiktoken_ext.tiktoken_encodings_offline
try:
    tiktoken_encodings_offline.where()
except tiktoken_encodings_offline.NoFolderError:
    print("NoFolderError")
"""


def test_code_is_imported_from_the_archive_without_zipimport_decompressor(zipped: Path, tmp_path: Path) -> None:
    import zipimport

    if not hasattr(zipimport, "_importing_zlib"):
        pytest.skip("this zipimport has no _importing_zlib flag")
    code = NO_DECOMPRESSOR.format(archive=str(zipped))
    result = run(offline([sys.executable, "-c", code]), env=no_home_env(tmp_path), check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == "NoFolderError\n"
