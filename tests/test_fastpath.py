"""Issue 15: the fast path hands tiktoken exactly the ranks its own loaders build, or steps aside.

Each run is a fresh offline process. tiktoken's own result comes from the same venv with the
package switched off and tiktoken reading a cache folder of the real files. Which files a process
opened (an audit hook sees every ``open``) tells whether the pre-parsed table or the blob served.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from conftest import build_env
from helpers import MANIFEST, ROOT, build_wheel, clean_env, make_venv, offline, run

FAST_FOLDER = "fastpath"
O200K = MANIFEST.blobs_for(["o200k_base"])[0]
CL100K = MANIFEST.blobs_for(["cl100k_base"])[0]
REINSTALL_FIX = "reinstall the wheel (pip install --force-reinstall --no-deps tiktoken-encodings-offline)"
TEXT = (
    "Hello, world! The quick brown fox. 中文分词测试：你好，世界。 한국어 문장. Здравствуй, мир! "
    "مرحبا بالعالم. नमस्ते दुनिया. こんにちは世界。 🙂🚀👩‍💻 def f(x):\n\treturn x  \n\n   \t"
    "<|endoftext|><|fim_prefix|>x<|fim_suffix|>"
)

# Runs in the venv under test. argv: the encodings to build. Prints what tiktoken built and which
# files of the installation (tables or blobs) the process opened to build them.
PROBE = """
import hashlib, json, os, sys
opened = []
sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" else None)
import tiktoken, tiktoken.registry

def digest(ranks):
    return hashlib.sha256(repr(list(ranks.items())).encode()).hexdigest()

text = os.environ["PROBE_TEXT"]
tiktoken.list_encoding_names()
out = {}
for name in sys.argv[1:]:
    if name not in tiktoken.registry.ENCODING_CONSTRUCTORS:
        continue  # this tiktoken predates it
    del opened[:]
    params = tiktoken.registry.ENCODING_CONSTRUCTORS[name]()
    encoding = tiktoken.get_encoding(name)
    ids = encoding.encode(text, allowed_special="all")
    out[name] = {
        "ranks": digest(params["mergeable_ranks"]), "n_ranks": len(params["mergeable_ranks"]),
        "special": sorted(params["special_tokens"].items()), "n_vocab": encoding.n_vocab, "ids": ids,
        "round_trip": encoding.decode(ids) == text,
        "bytes": hashlib.sha256(b"".join(encoding.decode_tokens_bytes(ids))).hexdigest(),
        "opened": sorted({os.path.basename(p) for p in opened if "tiktoken_encodings_offline" in p
                          and (p.endswith(".ranks") or "/data/" in p)}),
    }
gpt_4o = tiktoken.encoding_for_model("gpt-4o").encode(text, allowed_special="all")
print(json.dumps({"encodings": out, "gpt-4o": gpt_4o}))
"""


def python_offline(python: Path, code: str, *args: str, env: dict[str, str] | None = None, check: bool = True) -> Any:
    environment = {**(env if env is not None else clean_env()), "PROBE_TEXT": TEXT}
    return run(offline([python, "-c", code, *args]), env=environment, check=check)


def probe(python: Path, names: list[str], env: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    result = python_offline(python, PROBE, *names, env=env)
    return json.loads(result.stdout), result.stderr


def tiktoken_own(python: Path, cache: Path, names: list[str]) -> dict[str, Any]:
    """What tiktoken itself builds in this venv, the package off, from a cache of the real files."""
    env = clean_env(TIKTOKEN_ENCODINGS_OFFLINE_DISABLE="1", TIKTOKEN_CACHE_DIR=str(cache))
    result, _ = probe(python, names, env)
    for built in result["encodings"].values():
        built.pop("opened")
    return result


def without_opened(result: dict[str, Any]) -> dict[str, Any]:
    encodings = {name: {k: v for k, v in built.items() if k != "opened"} for name, built in result["encodings"].items()}
    return {**result, "encodings": encodings}


def tables_opened(result: dict[str, Any], name: str) -> list[str]:
    return [f for f in result["encodings"][name]["opened"] if f.endswith(".ranks")]


def blobs_opened(result: dict[str, Any], name: str) -> list[str]:
    return [f for f in result["encodings"][name]["opened"] if not f.endswith(".ranks")]


@pytest.fixture(scope="module")
def oldest_venv(full_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiktoken 0.7.0, the oldest supported, with the full wheel."""
    return make_venv(tmp_path_factory.mktemp("tiktoken-0.7.0") / "venv", "tiktoken==0.7.0", str(full_wheel))


@pytest.fixture
def target(full_wheel: Path, tmp_path: Path) -> Path:
    """The wheel unpacked into a folder of its own (first on PYTHONPATH), for tests that change it."""
    folder = tmp_path / "target"
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(folder), str(full_wheel)])
    return folder


# --- Exactly tiktoken's result -------------------------------------------------------------------


@pytest.mark.parametrize("which", ["oldest", "newest"])
def test_every_encoding_equals_tiktokens_own_loader_in_key_order(
    which: str, request: pytest.FixtureRequest, layouts: dict[str, Path]
) -> None:
    python: Path = request.getfixturevalue("oldest_venv" if which == "oldest" else "runtime_venv")
    names = list(MANIFEST.encodings)
    fast, stderr = probe(python, names)
    assert stderr == ""
    own = tiktoken_own(python, layouts["cache"], names)
    assert without_opened(fast) == own
    version = run(
        [str(python), "-c", "from importlib.metadata import version; print(version('tiktoken'))"]
    ).stdout.strip()
    assert (version == "0.7.0") == (which == "oldest")
    built = set(fast["encodings"])
    assert built == set(names) - ({"o200k_harmony"} if which == "oldest" else set())
    for name, result in fast["encodings"].items():
        assert result["round_trip"], name
        # served from the pre-parsed table; each blob is still read (and hashed) through the wrapper first
        assert len(tables_opened(fast, name)) == 1, name
        assert blobs_opened(fast, name) == sorted(MANIFEST.blobs[url].cache_name for url in MANIFEST.encodings[name])
    assert fast["encodings"]["o200k_base"]["n_ranks"] == 199998


def test_each_call_returns_a_fresh_dict(runtime_venv: Path, layouts: dict[str, Path]) -> None:
    code = (
        "import hashlib, tiktoken, tiktoken.load\n"
        "tiktoken.get_encoding('gpt2')\n"
        f"url, sha = {O200K.url!r}, {O200K.sha256!r}\n"
        "first = tiktoken.load.load_tiktoken_bpe(url, sha)\n"
        "first.clear(); first[b'\\xffnot a token'] = 0\n"
        "second = tiktoken.load.load_tiktoken_bpe(url, sha)\n"
        "print(second is first, len(second), b'\\xffnot a token' in second)\n"
        "print(hashlib.sha256(repr(list(second.items())).encode()).hexdigest())"
    )
    lines = python_offline(runtime_venv, code).stdout.splitlines()
    assert lines[0] == "False 199998 False"
    assert lines[1] == tiktoken_own(runtime_venv, layouts["cache"], ["o200k_base"])["encodings"]["o200k_base"]["ranks"]


# --- Served only what was verified ---------------------------------------------------------------

ASK_LOADER = """
import hashlib, os, sys, tiktoken, tiktoken.load
tiktoken.get_encoding("gpt2")  # activates the package
opened = []
sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" else None)
url, expected = sys.argv[1], (sys.argv[2] if sys.argv[2] != "-" else None)
try:
    ranks = tiktoken.load.load_tiktoken_bpe(url, expected)
    print(len(ranks), hashlib.sha256(repr(list(ranks.items())).encode()).hexdigest())
except Exception as error:
    print("raised", type(error).__name__)
print(sorted({os.path.basename(p) for p in opened if p.endswith(".ranks")}))
"""


def test_another_expected_hash_goes_to_tiktokens_own_loader(runtime_venv: Path, tmp_path: Path) -> None:
    env = clean_env(TMPDIR=str(tmp_path))
    out = python_offline(runtime_venv, ASK_LOADER, O200K.url, "0" * 64, env=env).stdout.splitlines()
    assert out == ["raised ConnectionError", "[]"]  # tiktoken's own: it tries to download, offline
    none = python_offline(runtime_venv, ASK_LOADER, O200K.url, "-", env=env).stdout.splitlines()
    assert none[0].startswith("199998 ") and none[1] == "[]"  # no hash: tiktoken's loader, the vendored blob
    served = python_offline(runtime_venv, ASK_LOADER, O200K.url, O200K.sha256, env=env).stdout.splitlines()
    assert served[0] == none[0] and served[1] != "[]"


def test_a_url_not_carried_goes_to_tiktokens_own_loader(runtime_venv: Path, tmp_path: Path) -> None:
    local = tmp_path / "mine.tiktoken"
    local.write_bytes(b"YQ== 0\nYg== 1\n")
    out = python_offline(runtime_venv, ASK_LOADER, str(local), "-").stdout.splitlines()
    assert out[0].startswith("2 ") and out[1] == "[]"


def test_a_damaged_table_is_refused_and_the_blob_serves(
    runtime_venv: Path, target: Path, layouts: dict[str, Path]
) -> None:
    fast_dir = target / "tiktoken_encodings_offline" / FAST_FOLDER
    table = next(p for p in fast_dir.glob("*.ranks") if p.stat().st_size > 1_000_000)  # o200k_base's
    data = bytearray(table.read_bytes())
    data[len(data) // 2] ^= 0x01
    table.write_bytes(bytes(data))
    result, stderr = probe(runtime_venv, ["o200k_base", "cl100k_base"], clean_env(PYTHONPATH=str(target)))
    assert f"{table} is damaged (SHA-256 differs from" in stderr and "reinstall" in stderr
    assert without_opened(result) == tiktoken_own(runtime_venv, layouts["cache"], ["o200k_base", "cl100k_base"])
    assert blobs_opened(result, "o200k_base") == [O200K.cache_name]
    assert tables_opened(result, "cl100k_base") != []  # the intact table still serves


def cl100k_row_with_another_format(text: str) -> str:
    rows = text.split("\n")
    return "\n".join(row[: -len("\t1")] + "\t2" if row.startswith(CL100K.url) else row for row in rows)


def test_a_damaged_blob_is_read_and_reported_as_without_the_fast_path(
    runtime_venv: Path, target: Path, layouts: dict[str, Path]
) -> None:
    """The blob is still read through the wrapped reader first: the same notice, strict error, fall-back."""
    blob = target / "tiktoken_encodings_offline" / "data" / CL100K.cache_name
    blob.write_bytes(blob.read_bytes()[:-1] + b"!")
    cached = clean_env(PYTHONPATH=str(target), TIKTOKEN_CACHE_DIR=str(layouts["cache"]))
    result, stderr = probe(runtime_venv, ["cl100k_base"], cached)
    assert f"{blob} is damaged" in stderr  # and the user's cache of the real file answered
    assert without_opened(result) == tiktoken_own(runtime_venv, layouts["cache"], ["cl100k_base"])
    strict = clean_env(PYTHONPATH=str(target), TIKTOKEN_ENCODINGS_OFFLINE_STRICT="1")
    code = "import tiktoken; tiktoken.get_encoding('cl100k_base')"
    failed = python_offline(runtime_venv, code, env=strict, check=False)
    assert failed.returncode == 1 and "EncodingNotVendoredError" in failed.stderr and str(blob) in failed.stderr
    verify_command = [runtime_venv, "-m", "tiktoken_encodings_offline", "verify", "--json"]
    verify = run(offline(verify_command), env=strict, check=False)
    assert verify.returncode == 1
    damaged = [f["file"] for f in json.loads(verify.stdout)["files"] if f["actual_sha256"] != f["expected_sha256"]]
    assert damaged == [CL100K.cache_name]


@pytest.mark.parametrize(
    "change",
    [lambda text: text.replace(CL100K.sha256, "0" * 64), cl100k_row_with_another_format],
    ids=["another-blob-version", "another-table-format"],
)
def test_a_table_for_another_blob_version_or_format_is_not_used(
    change: Any, runtime_venv: Path, target: Path, layouts: dict[str, Path]
) -> None:
    derived = target / "tiktoken_encodings_offline" / FAST_FOLDER / "derived.tsv"
    changed = change(derived.read_text())
    assert changed != derived.read_text()
    derived.write_text(changed)
    result, stderr = probe(runtime_venv, ["cl100k_base", "r50k_base"], clean_env(PYTHONPATH=str(target)))
    assert stderr == ""
    assert without_opened(result) == tiktoken_own(runtime_venv, layouts["cache"], ["cl100k_base", "r50k_base"])
    assert tables_opened(result, "cl100k_base") == [] and blobs_opened(result, "cl100k_base") == [CL100K.cache_name]
    assert tables_opened(result, "r50k_base") != []


def out_of_the_folder(fields: list[str]) -> None:
    fields[2] = "../data/" + fields[2]  # not <its sha256[:32]>.ranks


def out_of_the_folder_by_its_hash_too(fields: list[str]) -> None:
    fields[3] = "../data/" + fields[3]  # <its "sha256"[:32]>.ranks, a path out of the folder
    fields[2] = fields[3][:32] + ".ranks"


def absolute_by_its_hash(fields: list[str]) -> None:
    fields[3] = "/tmp/" + fields[3][5:]
    fields[2] = fields[3][:32] + ".ranks"


def source_hash_not_hex(fields: list[str]) -> None:
    fields[1] = fields[1][:-1] + "G"


@pytest.mark.parametrize(
    "edit", [out_of_the_folder, out_of_the_folder_by_its_hash_too, absolute_by_its_hash, source_hash_not_hex]
)
def test_an_invalid_record_turns_the_fast_path_off_with_one_notice(
    edit: Any, runtime_venv: Path, target: Path, layouts: dict[str, Path]
) -> None:
    derived = target / "tiktoken_encodings_offline" / FAST_FOLDER / "derived.tsv"
    header, first, *rest = derived.read_text().split("\n")
    fields = first.split("\t")
    edit(fields)
    derived.write_text("\n".join([header, "\t".join(fields), *rest]))
    result, stderr = probe(runtime_venv, ["cl100k_base"], clean_env(PYTHONPATH=str(target)))
    assert stderr.count("\n") == 1 and "fast path off" in stderr and f"{derived}: invalid row" in stderr
    assert stderr.endswith(f"; {REINSTALL_FIX}\n")
    assert without_opened(result) == tiktoken_own(runtime_venv, layouts["cache"], ["cl100k_base"])
    assert tables_opened(result, "cl100k_base") == []


def test_a_record_that_is_not_utf8_is_named_with_the_fix(
    runtime_venv: Path, target: Path, layouts: dict[str, Path]
) -> None:
    derived = target / "tiktoken_encodings_offline" / FAST_FOLDER / "derived.tsv"
    derived.write_bytes(derived.read_bytes().replace(b"source\t", b"sour\xffce\t", 1))
    result, stderr = probe(runtime_venv, ["cl100k_base"], clean_env(PYTHONPATH=str(target)))
    assert stderr == (
        "tiktoken-encodings-offline: fast path off, tiktoken parses its files itself "
        f"(ValueError: {derived} is not UTF-8 text); {REINSTALL_FIX}\n"
    )
    assert without_opened(result) == tiktoken_own(runtime_venv, layouts["cache"], ["cl100k_base"])
    verify = verify_offline(runtime_venv, target)
    assert verify.returncode == 1 and f"{derived} is not UTF-8 text" in verify.stdout.splitlines()[-1]


def test_a_table_of_another_size_than_recorded_is_refused_and_the_blob_serves(
    runtime_venv: Path, target: Path, layouts: dict[str, Path]
) -> None:
    fast_dir = target / "tiktoken_encodings_offline" / FAST_FOLDER
    table = table_of(fast_dir, CL100K.url)
    size = table.stat().st_size
    derived = fast_dir / "derived.tsv"
    digest = hashlib.sha256(table.read_bytes()).hexdigest()
    derived.write_text(derived.read_text().replace(f"\t{digest}\t{size}\t", f"\t{digest}\t{size - 1}\t"))
    result, stderr = probe(runtime_venv, ["cl100k_base"], clean_env(PYTHONPATH=str(target)))
    damaged = f"{table} is damaged ({size} bytes, {size - 1} expected)"
    assert stderr == f"tiktoken-encodings-offline: {damaged}; {REINSTALL_FIX}\n"  # refused before it is read
    assert without_opened(result) == tiktoken_own(runtime_venv, layouts["cache"], ["cl100k_base"])


def test_only_blobs_the_record_carries_are_served(runtime_venv: Path, target: Path, layouts: dict[str, Path]) -> None:
    """A record without cl100k_base (as in a slim wheel) while a table for it is still there."""
    record = target / "tiktoken_encodings_offline" / "data" / "vendored.tsv"
    record.write_text("".join(row for row in record.read_text().splitlines(True) if CL100K.url not in row))
    env = clean_env(PYTHONPATH=str(target), TIKTOKEN_CACHE_DIR=str(layouts["cache"]))
    result, stderr = probe(runtime_venv, ["cl100k_base", "r50k_base"], env)
    assert stderr == ""
    assert without_opened(result) == tiktoken_own(runtime_venv, layouts["cache"], ["cl100k_base", "r50k_base"])
    assert result["encodings"]["cl100k_base"]["opened"] == []  # read from the user's cache, by tiktoken
    assert tables_opened(result, "r50k_base") != []


@pytest.mark.parametrize("field", ["count", "runs", "runs-past-the-end"])
def test_a_table_that_does_not_decode_is_refused_even_with_a_matching_hash(
    field: str, runtime_venv: Path, target: Path, layouts: dict[str, Path]
) -> None:
    """As if a build wrote a broken table and recorded its hash: the structure is checked too."""
    fast_dir = target / "tiktoken_encodings_offline" / FAST_FOLDER
    derived = fast_dir / "derived.tsv"
    row = next(r for r in derived.read_text().splitlines() if r.startswith(CL100K.url)).split("\t")
    data = bytearray((fast_dir / row[2]).read_bytes())
    if field == "count":
        data[16:20] = struct.pack("<I", struct.unpack("<I", data[16:20])[0] + 1)  # header: token count
    elif field == "runs":
        data[-4:] = struct.pack("<I", struct.unpack("<I", data[-4:])[0] - 1)  # last run's count
    else:
        data[28:32] = struct.pack("<I", struct.unpack("<I", data[28:32])[0] + 1)  # header: one run more than there is
    digest = hashlib.sha256(data).hexdigest()
    (fast_dir / f"{digest[:32]}.ranks").write_bytes(bytes(data))
    derived.write_text(derived.read_text().replace(f"{row[2]}\t{row[3]}", f"{digest[:32]}.ranks\t{digest}"))
    result, stderr = probe(runtime_venv, ["cl100k_base"], clean_env(PYTHONPATH=str(target)))
    assert f"{digest[:32]}.ranks cannot be read" in stderr and "reinstall" in stderr
    if field == "runs-past-the-end":  # read as the end of the file, not as zeros past it
        assert f"(it ends at byte {len(data)}, before byte {len(data) + 8})" in stderr
    assert without_opened(result) == tiktoken_own(runtime_venv, layouts["cache"], ["cl100k_base"])
    assert blobs_opened(result, "cl100k_base") == [CL100K.cache_name]


# --- Steps aside for a tiktoken it does not know, or a reader someone replaced ------------------


def test_calls_it_does_not_know_go_to_tiktoken(runtime_venv: Path) -> None:
    vocab, encoder = MANIFEST.encodings["gpt2"]
    code = (
        "import os, sys, tiktoken, tiktoken.load\n"
        "tiktoken.get_encoding('r50k_base')\n"
        "opened = []\n"
        "sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == 'open' else None)\n"
        f"vocab, encoder = {vocab!r}, {encoder!r}\n"
        f"hashes = {MANIFEST.blobs[vocab].sha256!r}, {MANIFEST.blobs[encoder].sha256!r}\n"
        "ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(vocab, encoder, *hashes, clobber_one_byte_tokens=True)\n"
        "files = {os.path.basename(p) for p in opened if p.endswith('.ranks') or '/data/' in p}\n"
        "print(len(ranks), sorted(files))\n"
        "try:\n"
        f"    tiktoken.load.load_tiktoken_bpe({CL100K.url!r}, {CL100K.sha256!r}, validate=True)\n"
        "except TypeError as error:\n"
        "    print('TypeError', 'validate' in str(error))\n"
        "else:\n"
        "    print('served although tiktoken would refuse the call')"
    )
    out = python_offline(runtime_venv, code).stdout.splitlines()
    # tiktoken's own function read both blobs, and no table
    assert out[0] == f"50256 {sorted([MANIFEST.blobs[vocab].cache_name, MANIFEST.blobs[encoder].cache_name])}"
    assert out[1] == "TypeError True"


@pytest.mark.parametrize("extra", ["validate=True", "*, validate=True"], ids=["positional", "keyword-only"])
def test_a_loader_with_other_parameters_keeps_tiktokens_path(extra: str, runtime_venv: Path) -> None:
    code = (
        "import sys, tiktoken, tiktoken.load\n"
        "original = tiktoken.load.load_tiktoken_bpe\n"
        "calls = []\n"
        f"def load_tiktoken_bpe(tiktoken_bpe_file, expected_hash=None, {extra}):\n"
        "    calls.append(tiktoken_bpe_file)\n"
        "    return original(tiktoken_bpe_file, expected_hash)\n"
        "tiktoken.load.load_tiktoken_bpe = load_tiktoken_bpe\n"
        "print(tiktoken.get_encoding('cl100k_base').encode('hello world'), len(calls))\n"
        "print(tiktoken.get_encoding('gpt2').encode('hello world'), len(calls))"
    )
    assert python_offline(runtime_venv, code).stdout.splitlines() == ["[15339, 1917] 1", "[31373, 995] 1"]


# openai_public's load_tiktoken_bpe rebound to a function of the user's that counts its calls
REBIND_OPENAI_PUBLIC = (
    "import tiktoken, tiktoken.load, tiktoken_ext.openai_public as public\n"
    "calls = []\n"
    "def mine(*args, **kwargs):\n"
    "    calls.append(args[0])\n"
    "    return tiktoken.load.load_tiktoken_bpe(*args, **kwargs)\n"
    "public.load_tiktoken_bpe = mine\n"
)


def test_openai_public_rebound_by_someone_else_is_left_alone(runtime_venv: Path) -> None:
    code = REBIND_OPENAI_PUBLIC + "print(tiktoken.get_encoding('r50k_base').encode('hello world'), len(calls))"
    assert python_offline(runtime_venv, code).stdout.strip() == "[31373, 995] 1"


def test_a_replaced_reader_is_called(runtime_venv: Path, files_dir: Path) -> None:
    code = (
        "import tiktoken, tiktoken.load\n"
        "tiktoken.get_encoding('gpt2')\n"
        "asked = []\n"
        "def reader(blobpath, expected_hash=None):\n"
        "    asked.append(blobpath)\n"
        f"    return open({str(files_dir)!r} + '/' + blobpath.split('.net/', 1)[1], 'rb').read()\n"
        "tiktoken.load.read_file_cached = reader\n"
        f"ranks = tiktoken.load.load_tiktoken_bpe({CL100K.url!r}, {CL100K.sha256!r})\n"
        "print(len(ranks), asked == [" + repr(CL100K.url) + "])"
    )
    assert python_offline(runtime_venv, code).stdout.strip() == "100256 True"


def test_the_switch_turns_it_off(runtime_venv: Path) -> None:
    result, stderr = probe(runtime_venv, ["r50k_base"], clean_env(TIKTOKEN_ENCODINGS_OFFLINE_NO_FASTPATH="1"))
    assert stderr == "" and tables_opened(result, "r50k_base") == []
    assert blobs_opened(result, "r50k_base") == [MANIFEST.blobs_for(["r50k_base"])[0].cache_name]


# --- verify re-hashes the tables and checks derived.tsv against vendored.tsv ------------------------


def verify_offline(python: Path, target: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [python, "-m", "tiktoken_encodings_offline", "verify", *args]
    return run(offline(command), env=clean_env(PYTHONPATH=str(target)), check=False)


def table_of(fast_dir: Path, url: str) -> Path:
    row = next(r for r in (fast_dir / "derived.tsv").read_text().splitlines() if r.startswith(url))
    return fast_dir / row.split("\t")[2]


def test_verify_rehashes_each_table_and_names_a_damaged_or_missing_one(runtime_venv: Path, target: Path) -> None:
    fast_dir = target / "tiktoken_encodings_offline" / FAST_FOLDER
    intact = verify_offline(runtime_venv, target)
    assert intact.returncode == 0 and "verified: all intact" in intact.stdout
    o200k, cl100k = table_of(fast_dir, O200K.url), table_of(fast_dir, CL100K.url)
    assert f"ok       {o200k.name}  (fast path table of o200k_base.tiktoken)" in intact.stdout
    data = bytearray(o200k.read_bytes())
    data[len(data) // 2] ^= 0x01
    o200k.write_bytes(bytes(data))
    cl100k.unlink()
    result = verify_offline(runtime_venv, target)
    assert result.returncode == 1
    assert f"DAMAGED  {o200k.name}  (fast path table of o200k_base.tiktoken)" in result.stdout
    assert f"found {hashlib.sha256(data).hexdigest()}" in result.stdout
    assert f"MISSING  {cl100k.name}  (fast path table of cl100k_base.tiktoken)" in result.stdout
    summary = result.stdout.splitlines()[-1]
    assert summary.startswith("verify FAILED: damaged: ") and "--force-reinstall" in summary
    assert str(o200k) in summary and f"{cl100k} (missing)" in summary
    assert result.stderr.strip() == f"tiktoken-encodings-offline: {summary[len('verify FAILED: ') :]}"
    assert "ok       o200k_base" in result.stdout  # tiktoken still builds it, from the blob
    report = json.loads(verify_offline(runtime_venv, target, "--json").stdout)
    assert report["ok"] is False
    tables = report["tables"]
    bad = {Path(t["path"]).name: t["actual_sha256"] for t in tables if t["actual_sha256"] != t["expected_sha256"]}
    assert bad == {o200k.name: hashlib.sha256(data).hexdigest(), cl100k.name: None}


def truncated(table: bytes, blob: bytes) -> bytes:
    return table[: len(table) // 2]


def garbage(table: bytes, blob: bytes) -> bytes:
    return hashlib.sha256(table).digest() * (len(table) // 32)


def header_only(table: bytes, blob: bytes) -> bytes:
    return table[:32]


def huge_counts(table: bytes, blob: bytes) -> bytes:
    return table[:8] + struct.pack("<6I", 1, table[12], 0xFFFFFFFF, 0xFFFFFFF0, 0xFFFFFFFF, 0xFFFFFFFF) + table[32:]


def two_ranks_swapped(table: bytes, blob: bytes) -> bytes:
    """A well-formed table that is not tiktoken's parse of its blob: ranks 100 and 101 swapped."""
    fastpath = build_module()
    tokens = list(fastpath.tiktoken_bpe_ranks(blob))
    tokens[100], tokens[101] = tokens[101], tokens[100]
    return bytes(fastpath.encode_ranks({token: rank for rank, token in enumerate(tokens)}))


@pytest.mark.parametrize("damage", [truncated, garbage, header_only, huge_counts, two_ranks_swapped])
def test_verify_names_a_table_that_does_not_decode_although_its_row_matches(
    damage: Any, runtime_venv: Path, target: Path
) -> None:
    """derived.tsv edited to the damaged table's SHA-256 and size: the hash check alone passes it."""
    fast_dir = target / "tiktoken_encodings_offline" / FAST_FOLDER
    table = table_of(fast_dir, CL100K.url)
    original = table.read_bytes()
    broken = damage(original, (target / "tiktoken_encodings_offline" / "data" / CL100K.cache_name).read_bytes())
    digest = hashlib.sha256(broken).hexdigest()
    table.unlink()
    (fast_dir / f"{digest[:32]}.ranks").write_bytes(broken)
    derived = fast_dir / "derived.tsv"
    old = f"{table.name}\t{hashlib.sha256(original).hexdigest()}\t{len(original)}\t"
    derived.write_text(derived.read_text().replace(old, f"{digest[:32]}.ranks\t{digest}\t{len(broken)}\t"))
    result = verify_offline(runtime_venv, target)
    assert result.returncode == 1
    assert f"DAMAGED  {digest[:32]}.ranks  (fast path table of cl100k_base.tiktoken)" in result.stdout
    if damage is two_ranks_swapped:  # only tiktoken's own parse of the blob tells
        assert f"         it is not what tiktoken parses from {CL100K.url}" in result.stdout
    else:
        assert "         it does not decode (" in result.stdout
    summary = result.stdout.splitlines()[-1]
    assert f"damaged: {fast_dir / digest[:32]}.ranks" in summary and summary.endswith(REINSTALL_FIX)
    report = json.loads(verify_offline(runtime_venv, target, "--json").stdout)
    assert [t["error"] is not None for t in report["tables"]].count(True) == 1


def test_verify_checks_derived_tsv_against_the_record(runtime_venv: Path, target: Path) -> None:
    """A row made from another version of a carried blob is one the runtime would not use; a carried
    blob with no row gets no fast path. Both are damage to the installation, named with the fix."""
    derived = target / "tiktoken_encodings_offline" / FAST_FOLDER / "derived.tsv"
    r50k = MANIFEST.blobs_for(["r50k_base"])[0]
    rows = derived.read_text().split("\n")
    rows = [row.replace(CL100K.sha256, "0" * 64) for row in rows if not row.startswith(r50k.url)]
    derived.write_text("\n".join(rows))
    result = verify_offline(runtime_venv, target)
    assert result.returncode == 1
    assert f"UNUSED   {table_of(derived.parent, CL100K.url).name}" in result.stdout
    assert f"made from another version of {CL100K.url} ({'0' * 64}; vendored.tsv records {CL100K.sha256})" in (
        result.stdout
    )
    summary = result.stdout.splitlines()[-1]
    assert f"{derived} lists no table for {r50k.url}" in summary
    cl100k_table = table_of(derived.parent, CL100K.url)
    assert f"unused: {cl100k_table} (made from another version of {CL100K.url}" in summary
    assert "damaged" not in summary
    assert "--force-reinstall" in result.stdout.splitlines()[-1]
    derived.write_text("source\tsha256\n")
    malformed = verify_offline(runtime_venv, target)
    assert malformed.returncode == 1 and f"{derived} is not a record of this version" in malformed.stdout
    derived.unlink()
    missing = verify_offline(runtime_venv, target)
    assert missing.returncode == 1 and f"{derived} is missing" in missing.stdout


# --- Built with the standard library, byte-identical, only what a wheel carries ------------------


def fast_members(wheel: Path) -> dict[str, bytes]:
    prefix = f"tiktoken_encodings_offline/{FAST_FOLDER}/"
    with zipfile.ZipFile(wheel) as archive:
        files = [n for n in archive.namelist() if n.startswith(prefix) and not n.endswith("/")]  # no folder entries
        return {n[len(prefix) :]: archive.read(n) for n in files}


def record_rows(members: dict[str, bytes]) -> list[list[str]]:
    return [row.split("\t") for row in members["derived.tsv"].decode().splitlines()]


def test_full_wheel_tables_are_listed_with_their_hashes(full_wheel: Path) -> None:
    members = fast_members(full_wheel)
    header, *rows = record_rows(members)
    assert header == ["source", "source_sha256", "file", "sha256", "size", "format"]
    assert sorted(row[0].rsplit("/", 1)[-1] for row in rows) == [
        "cl100k_base.tiktoken", "encoder.json", "o200k_base.tiktoken", "p50k_base.tiktoken", "r50k_base.tiktoken",
    ]  # fmt: skip
    for source, source_sha256, file, sha256, size, version in rows:
        assert [MANIFEST.blobs[url].sha256 for url in source.split(" ")] == source_sha256.split(" ")
        assert file == f"{sha256[:32]}.ranks" and hashlib.sha256(members[file]).hexdigest() == sha256
        assert int(size) == len(members[file]) and version == "1"
    by_file = {row[0].rsplit("/", 1)[-1]: row[2] for row in rows}
    assert by_file["encoder.json"] == by_file["r50k_base.tiktoken"]  # gpt2's ranks are r50k_base's: stored once
    assert set(members) == {"derived.tsv", *by_file.values()} and len(members) == 5
    assert full_wheel.stat().st_size <= 6_500_000


def test_slim_wheel_carries_only_its_tables(files_dir: Path, full_wheel: Path, tmp_path: Path) -> None:
    wheel, _ = build_wheel(tmp_path / "dist", build_env(files_dir, TIKTOKEN_ENCODINGS_OFFLINE_ENCODINGS="gpt2"))
    assert wheel is not None
    members = fast_members(wheel)
    _, *rows = record_rows(members)
    assert [row[0] for row in rows] == [" ".join(MANIFEST.encodings["gpt2"])]
    assert set(members) == {"derived.tsv", rows[0][2]}
    assert members[rows[0][2]] == fast_members(full_wheel)[rows[0][2]]  # the same bytes as the full wheel's


def test_tables_do_not_depend_on_the_hash_seed(files_dir: Path, tmp_path: Path) -> None:
    code = (
        "import sys; sys.path[:0] = [sys.argv[1] + '/buildtime']\n"
        "from pathlib import Path; import shutil\n"
        "from tiktoken_encodings_offline_build import fastpath, manifest\n"
        "m = manifest.load_manifest(); blobs = sorted(m.blobs.values()); staged = Path(sys.argv[3])\n"
        "staged.mkdir(exist_ok=True)\n"
        "[shutil.copyfile(Path(sys.argv[2]) / b.path, staged / b.cache_name) for b in blobs]\n"
        "fastpath.write_derived(m, blobs, staged, Path(sys.argv[4]))"
    )
    outputs = []
    for seed in ("0", "12345"):
        out = tmp_path / f"seed-{seed}"
        env = clean_env(PYTHONHASHSEED=seed)
        subprocess.run([sys.executable, "-c", code, str(ROOT), str(files_dir), str(tmp_path / "staged"), str(out)],
                       env=env, check=True)  # fmt: skip
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
        assert all(oct(p.stat().st_mode & 0o777) == "0o644" for p in out.iterdir())
    assert outputs[0] == outputs[1] and len(outputs[0]) == 5
    assert os.path.getsize(tmp_path / "staged" / O200K.cache_name) == O200K.size


def build_module() -> Any:
    from tiktoken_encodings_offline_build import fastpath

    return fastpath


def test_build_derives_only_from_the_verified_blob(files_dir: Path, tmp_path: Path) -> None:
    blob = MANIFEST.blobs_for(["r50k_base"])[0]
    staged = tmp_path / "staged"
    staged.mkdir()
    data = bytearray((files_dir / blob.path).read_bytes())
    data[100] ^= 0x01
    (staged / blob.cache_name).write_bytes(bytes(data))
    with pytest.raises(
        build_module().DamagedFile, match=r"r50k_base\.tiktoken: the staged file is not the verified blob"
    ):
        build_module().write_derived(MANIFEST, [blob], staged, tmp_path / "out")
    assert not (tmp_path / "out" / "derived.tsv").exists()


def test_build_refuses_gpt2_files_tiktoken_would_refuse() -> None:
    vocab = b"#version: 0.2\nh e\n"
    with pytest.raises(build_module().DamagedFile, match=r"vocab.bpe and encoder.json disagree"):
        build_module().data_gym_ranks(vocab, json.dumps({"h": 0, "e": 1}).encode())


# --- Issue 24 items 4 and 15: tiktoken's own functions only, decided by identity ------------------

# Swaps the ranks of "hello" and " world" in what tiktoken's loader returns: a user's replacement
# made before the first get_encoding, which plain tiktoken calls (openai_public imports it then).
SWAPPING_LOADER = (
    "import tiktoken, tiktoken.load\n"
    "own = tiktoken.load.load_tiktoken_bpe\n"
    "def load_tiktoken_bpe(tiktoken_bpe_file, expected_hash=None):\n"
    "    ranks = own(tiktoken_bpe_file, expected_hash)\n"
    "    ranks[b'hello'], ranks[b' world'] = ranks[b' world'], ranks[b'hello']\n"
    "    return ranks\n"
    "tiktoken.load.load_tiktoken_bpe = load_tiktoken_bpe\n"
    "print(tiktoken.get_encoding('cl100k_base').encode('hello world'))\n"
)
STATUS = "from tiktoken_encodings_offline._runtime import status; print(status()[1])\n"


def test_a_loader_replaced_before_the_first_get_encoding_is_called(target: Path, layouts: dict[str, Path]) -> None:
    # A --target install: the plugin activates the package inside the first get_encoding.
    plain = clean_env(TIKTOKEN_ENCODINGS_OFFLINE_DISABLE="1", TIKTOKEN_CACHE_DIR=str(layouts["cache"]))
    assert python_offline(Path(sys.executable), SWAPPING_LOADER, env=plain).stdout.strip() == "[1917, 15339]"
    out = python_offline(Path(sys.executable), SWAPPING_LOADER + STATUS, env=clean_env(PYTHONPATH=str(target)))
    ids, state = out.stdout.splitlines()
    assert ids == "[1917, 15339]" and out.stderr == ""
    assert "left as found: load_tiktoken_bpe (replaced by someone else)" in state
    assert "via data_gym_to_mergeable_bpe_ranks" in state  # tiktoken's own other loader is still served


def test_openai_public_rebound_before_activation_is_left_alone(target: Path) -> None:
    code = (
        REBIND_OPENAI_PUBLIC + "ids = tiktoken.get_encoding('r50k_base').encode('hello world')\n"
        "print(ids, len(calls), public.load_tiktoken_bpe is mine)\n" + STATUS
    )
    out = python_offline(Path(sys.executable), code, env=clean_env(PYTHONPATH=str(target))).stdout.splitlines()
    assert out[0] == "[31373, 995] 1 True"
    assert out[1].startswith("on for ") and "via load_tiktoken_bpe, data_gym_to_mergeable_bpe_ranks" in out[1]


@pytest.mark.parametrize("extra", ["*args", "**kwargs"])
def test_tiktokens_own_loader_taking_more_arguments_keeps_tiktokens_path(
    extra: str, target: Path, tmp_path: Path
) -> None:
    # A tiktoken whose own load_tiktoken_bpe takes *args or **kwargs: calls it cannot bind for sure.
    import tiktoken

    shadow = tmp_path / "tiktoken-copy"
    shutil.copytree(Path(tiktoken.__file__).parent, shadow / "tiktoken")
    load_py = shadow / "tiktoken" / "load.py"
    plain = "def load_tiktoken_bpe(tiktoken_bpe_file: str, expected_hash: str | None = None)"
    assert plain in load_py.read_text()
    load_py.write_text(load_py.read_text().replace(plain, plain[:-1] + f", {extra})"))
    code = (
        "import os, sys\n"
        "opened = []\n"
        "sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == 'open' else None)\n"
        "import tiktoken, tiktoken.load\n"
        "print(tiktoken.get_encoding('cl100k_base').encode('hello world'), 'load.py' in tiktoken.load.__file__)\n"
        "files = {os.path.basename(p) for p in opened if p.endswith('.ranks') or '/data/' in p}\n"
        "print(sorted(files - {'vendored.tsv'}))\n" + STATUS
    )
    env = clean_env(PYTHONPATH=f"{shadow}{os.pathsep}{target}")
    ids, opened, state = python_offline(Path(sys.executable), code, env=env).stdout.splitlines()
    assert ids == "[15339, 1917] True"
    assert opened == str([CL100K.cache_name])  # tiktoken's own parser read the blob; no table
    assert "left as found: load_tiktoken_bpe (other parameters)" in state
