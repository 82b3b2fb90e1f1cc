"""Issue 4: offline at run time, with no import of the package, and nothing clobbered.

Every test runs the installed wheel in a fresh venv (or a --target install) inside a network
namespace with no network at all, and compares token ids with plain tiktoken's on the real files.
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import PROBE, build_env
from helpers import (
    MANIFEST,
    build_wheel,
    clean_env,
    expected_blobs,
    make_venv,
    offline,
    run,
)

PACKAGE_ENV = "TIKTOKEN_ENCODINGS_OFFLINE_"


def site_packages(python: Path) -> Path:
    out = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout
    return Path(out.strip())


def probe(python: Path | str, env: dict[str, str] | None = None, *flags: str) -> dict[str, object]:
    result = run(offline([python, *flags, PROBE]), env=env or clean_env())
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def python_offline(python: Path | str, code: str, env: dict[str, str] | None = None, check: bool = True):  # type: ignore[no-untyped-def]
    return run(offline([python, "-c", code]), env=env or clean_env(), check=check)


def listing(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def installed(runtime_venv: Path) -> Path:
    """The installed package folder in the runtime venv."""
    return site_packages(runtime_venv) / "tiktoken_encodings_offline"


@pytest.fixture
def target_install(full_wheel: Path, tmp_path: Path) -> Path:
    """The wheel unpacked by pip into a folder of its own, for tests that damage it."""
    target = tmp_path / "target"
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(full_wheel)])
    return target


# --- Done when ------------------------------------------------------------------------------------


def test_every_encoding_gives_the_reference_ids_offline_without_importing_the_package(
    runtime_venv: Path, reference: dict[str, object], installed: Path
) -> None:
    before = listing(installed)
    assert probe(runtime_venv) == reference
    assert set(reference["encodings"]) == set(MANIFEST.encodings)  # type: ignore[arg-type]
    assert reference["models"]["gpt-4o"][0] == "o200k_base"  # type: ignore[index]
    assert reference["models"]["text-davinci-003"][0] == "p50k_base"  # type: ignore[index]
    # known ids, independent of both runs
    assert reference["models"]["gpt-4"] == ["cl100k_base", [15339, 1917]]  # type: ignore[index]
    assert reference["models"]["gpt-4o"] == ["o200k_base", [24912, 2375]]  # type: ignore[index]
    assert listing(installed) == before  # nothing written into the package


def test_with_the_package_imported_too(runtime_venv: Path, reference: dict[str, object]) -> None:
    code = f"import tiktoken_encodings_offline, runpy; runpy.run_path({str(PROBE)!r}, run_name='__main__')"
    assert json.loads(python_offline(runtime_venv, code).stdout) == reference


def test_verify_exits_zero_offline(runtime_venv: Path) -> None:
    result = run(offline([runtime_venv, "-m", "tiktoken_encodings_offline", "verify"]), env=clean_env())
    assert "verified: all intact" in result.stdout
    # six files, five fast path tables (gpt2's row and r50k_base's name the same table), seven encodings
    assert result.stdout.count("\nok       ") == 6 + 5 + 7


def test_read_only_install(runtime_venv: Path, installed: Path, reference: dict[str, object]) -> None:
    site = installed.parent
    script = (
        f'mount --bind "{site}" "{site}" && mount -o remount,bind,ro "{site}" && '
        f'! touch "{installed}/probe-write" 2>/dev/null && '
        f'"{runtime_venv}" "{PROBE}" && "{runtime_venv}" -m tiktoken_encodings_offline verify >&2'
    )
    result = run(["unshare", "--mount", "--net", "sh", "-c", script], env=clean_env())
    assert json.loads(result.stdout) == reference
    assert "verified: all intact" in result.stderr


def test_a_cache_folder_the_user_chose_stays_as_set_and_untouched(
    runtime_venv: Path, reference: dict[str, object], tmp_path: Path
) -> None:
    chosen = tmp_path / "my-cache"
    chosen.mkdir()
    env = clean_env(TIKTOKEN_CACHE_DIR=str(chosen))
    code = (
        f"import os, runpy; runpy.run_path({str(PROBE)!r}, run_name='__main__'); "
        "print('\\n' + os.environ['TIKTOKEN_CACHE_DIR'])"
    )
    out, cache_dir = python_offline(runtime_venv, code, env).stdout.strip().rsplit("\n", 1)
    assert json.loads(out) == reference
    assert cache_dir == str(chosen)
    assert list(chosen.iterdir()) == []


def test_empty_cache_dir_means_no_cache_and_still_loads(runtime_venv: Path, reference: dict[str, object]) -> None:
    code = (
        f"import os, runpy; runpy.run_path({str(PROBE)!r}, run_name='__main__'); "
        "print('\\n' + repr(os.environ['TIKTOKEN_CACHE_DIR']))"
    )
    out, value = python_offline(runtime_venv, code, clean_env(TIKTOKEN_CACHE_DIR="")).stdout.strip().rsplit("\n", 1)
    assert json.loads(out) == reference
    assert value == "''"


def test_a_library_repointing_the_variable_after_import(runtime_venv: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    code = (
        "import os, tiktoken_encodings_offline, tiktoken\n"
        f"os.environ['TIKTOKEN_CACHE_DIR'] = {str(elsewhere)!r}\n"
        "print(tiktoken.get_encoding('cl100k_base').encode('hello world'))"
    )
    assert python_offline(runtime_venv, code).stdout.strip() == "[15339, 1917]"
    assert not elsewhere.exists()


def test_warnings_as_errors(runtime_venv: Path, reference: dict[str, object]) -> None:
    assert probe(runtime_venv, None, "-W", "error") == reference


def test_environment_is_registered_on_import_only_where_unset(runtime_venv: Path, installed: Path) -> None:
    code = (
        "import os, sys, tiktoken_encodings_offline as t\n"
        "print(os.environ.get('TIKTOKEN_CACHE_DIR'), os.environ.get('TIKTOKEN_RS_CACHE_DIR'), "
        "'tiktoken' in sys.modules, t.where(), ','.join(t.encodings()))"
    )
    data = str(installed / "data")
    assert python_offline(runtime_venv, code).stdout.split() == [
        data,
        data,
        "True",
        data,
        "gpt2,r50k_base,p50k_base,p50k_edit,cl100k_base,o200k_base,o200k_harmony",
    ]  # fmt: skip (the import imports tiktoken, to serve it: issue 27)
    kept = python_offline(runtime_venv, code, clean_env(DATA_GYM_CACHE_DIR="/x", TIKTOKEN_RS_CACHE_DIR="/y"))
    assert kept.stdout.split()[:3] == ["None", "/y", "True"]


def test_disable_turns_everything_off(runtime_venv: Path) -> None:
    env = clean_env(TIKTOKEN_ENCODINGS_OFFLINE_DISABLE="1")
    code = (
        "import os, tiktoken_encodings_offline, tiktoken\n"
        "print(os.environ.get('TIKTOKEN_CACHE_DIR'))\n"
        "tiktoken.get_encoding('cl100k_base')"
    )
    result = python_offline(runtime_venv, code, env, check=False)
    assert result.returncode != 0 and result.stdout.strip() == "None"
    assert "ConnectionError" in result.stderr  # plain tiktoken, offline


def test_openai_harmony_loads_gpt_oss_offline_after_the_import(runtime_venv: Path) -> None:
    run([str(runtime_venv), "-m", "pip", "install", "-q", "openai-harmony"], env=clean_env())
    code = (
        "import tiktoken_encodings_offline\n"
        "from openai_harmony import load_harmony_encoding, HarmonyEncodingName\n"
        "enc = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)\n"
        "print(enc.name, enc.encode('hello world'))"
    )
    assert python_offline(runtime_venv, code).stdout.strip() == "HarmonyGptOss [24912, 2375]"
    # Switched off, nothing points harmony at the files: it tries the network and fails.
    disabled = clean_env(TIKTOKEN_ENCODINGS_OFFLINE_DISABLE="1")
    without = python_offline(
        runtime_venv, code.replace("import tiktoken_encodings_offline\n", ""), disabled, check=False
    )
    assert without.returncode != 0 and "HarmonyError" in without.stderr


def test_eight_processes_loading_at_once(runtime_venv: Path) -> None:
    code = (
        "import subprocess, sys\n"
        'child = \'import tiktoken; print(tiktoken.get_encoding("o200k_base").encode("hello world"))\'\n'
        "procs = [subprocess.Popen([sys.executable, '-c', child], stdout=subprocess.PIPE, text=True) "
        "for _ in range(8)]\n"
        "outs = [p.communicate()[0].strip() for p in procs]\n"
        "print(outs, [p.returncode for p in procs])"
    )
    out = python_offline(runtime_venv, code).stdout.strip()
    assert out == str(["[24912, 2375]"] * 8) + " " + str([0] * 8)


def test_tiktoken_0_7(full_wheel: Path, reference: dict[str, object], tmp_path: Path) -> None:
    python = make_venv(tmp_path / "venv", "tiktoken==0.7.0", str(full_wheel))
    result = probe(python)
    assert result["tiktoken"] == "0.7.0"
    encodings = result["encodings"]
    assert isinstance(encodings, dict) and set(encodings) == set(MANIFEST.encodings) - {"o200k_harmony"}
    for name, ids in encodings.items():
        assert ids == reference["encodings"][name], name  # type: ignore[index]
    # The wheel carries o200k_harmony's file too; that tiktoken 0.7 lacks the encoding is no failure.
    verify = run(offline([python, "-m", "tiktoken_encodings_offline", "verify"]), env=clean_env())
    assert "skipped  o200k_harmony: tiktoken 0.7.0 has no such encoding" in verify.stdout
    assert "ok       o200k_base" in verify.stdout and "verified: all intact" in verify.stdout


# --- Failure paths, a damaged install, strict mode, slim wheels --------------------------------


def test_a_failing_activation_degrades_to_plain_tiktoken_with_one_notice(
    target_install: Path, layouts: dict[str, Path]
) -> None:
    record = target_install / "tiktoken_encodings_offline" / "data" / "vendored.tsv"
    record.write_text("not a record\n" + record.read_text().split("\n", 1)[1])
    env = clean_env(PYTHONPATH=str(target_install), TIKTOKEN_CACHE_DIR=str(layouts["cache"]))
    code = "import tiktoken; print(tiktoken.get_encoding('cl100k_base').encode('hello world'))"
    result = run(offline([sys.executable, "-W", "error", "-c", code]), env=env)
    assert result.stdout.strip() == "[15339, 1917]"
    assert result.stderr == f"tiktoken-encodings-offline: {record} is damaged (its first line is not the header); " \
        "reinstall the wheel (pip install --force-reinstall --no-deps tiktoken-encodings-offline)\n"  # fmt: skip


def test_an_import_never_raises_even_if_tiktoken_moves_its_reader(target_install: Path) -> None:
    # A later tiktoken could rename read_file_cached: the package must not break an explicit import.
    code = (
        "import os, tiktoken.load; del tiktoken.load.read_file_cached\n"
        "import tiktoken_encodings_offline as t\n"
        "print(os.environ['TIKTOKEN_CACHE_DIR'] == t.where())"
    )
    env = clean_env(PYTHONPATH=str(target_install))
    result = run(offline([sys.executable, "-W", "error", "-c", code]), env=env)
    assert result.stdout.strip() == "True"  # the folder is still registered for tiktoken to read
    assert result.stderr.count("tiktoken-encodings-offline: not active") == 1
    assert "AttributeError" in result.stderr


def test_a_damaged_blob_is_never_served(target_install: Path) -> None:
    blob = MANIFEST.blobs_for(["cl100k_base"])[0]
    path = target_install / "tiktoken_encodings_offline" / "data" / blob.cache_name
    path.write_bytes(path.read_bytes()[:-1] + b"!")
    env = clean_env(PYTHONPATH=str(target_install))
    code = "import tiktoken; tiktoken.get_encoding('cl100k_base')"
    result = run(offline([sys.executable, "-c", code]), env=env, check=False)
    assert result.returncode != 0  # offline, the fall-back download fails as plain tiktoken's would
    assert f"{path} is damaged" in result.stderr
    assert path.read_bytes()[-1:] == b"!"  # and the package folder was not touched

    verify = run([sys.executable, "-m", "tiktoken_encodings_offline", "verify", "--json"], env=env, check=False)
    assert verify.returncode == 1
    report = json.loads(verify.stdout)
    assert report["ok"] is False
    damaged = [f for f in report["files"] if f["actual_sha256"] != f["expected_sha256"]]
    assert [f["file"] for f in damaged] == [blob.cache_name]


@pytest.fixture(scope="session")
def slim_venv(files_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("slim")
    wheel, _ = build_wheel(out / "dist", build_env(files_dir, TIKTOKEN_ENCODINGS_OFFLINE_ENCODINGS="cl100k_base"))
    assert wheel is not None
    return make_venv(out / "venv", str(wheel))


def test_slim_wheel_missing_encoding_offline_behaves_as_plain_tiktoken(slim_venv: Path) -> None:
    code = "import tiktoken; tiktoken.get_encoding('o200k_base')"
    result = python_offline(slim_venv, code, check=False)
    assert result.returncode != 0 and "requests.exceptions.ConnectionError" in result.stderr
    assert python_offline(slim_venv, code.replace("o200k_base", "cl100k_base")).returncode == 0


def test_slim_wheel_strict_mode_fails_at_once_naming_the_encoding(slim_venv: Path) -> None:
    env = clean_env(TIKTOKEN_ENCODINGS_OFFLINE_STRICT="1")
    result = python_offline(slim_venv, "import tiktoken; tiktoken.get_encoding('o200k_harmony')", env, check=False)
    assert "EncodingNotVendoredError: encoding o200k_base / o200k_harmony needs" in result.stderr
    assert "(it carries: cl100k_base)" in result.stderr


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_fifo_or_folder_planted_as_a_cached_file_is_not_waited_on(
    kind: str, slim_venv: Path, files_dir: Path, tmp_path: Path
) -> None:
    blob = MANIFEST.blobs_for(["o200k_base"])[0]
    cache = tmp_path / "data-gym-cache"
    cache.mkdir()
    planted = cache / blob.cache_name
    if kind == "fifo":
        os.mkfifo(planted)
    else:
        planted.mkdir()
    code = connected(files_dir) + "import tiktoken\nprint(tiktoken.get_encoding('o200k_base').encode('hello world'))"
    result = run(offline([slim_venv, "-c", code]), env=clean_env(TMPDIR=str(tmp_path)), timeout=60)
    assert result.stdout.strip() == "[24912, 2375]" and "Traceback" not in result.stderr


def test_a_download_that_does_not_fit_in_the_temp_folder_serves_and_leaves_nothing(
    slim_venv: Path, files_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "data-gym-cache"  # a 100 KiB disk: o200k_base (3.6 MB) cannot be kept there
    cache.mkdir()
    code = connected(files_dir) + "import tiktoken\nprint(tiktoken.get_encoding('o200k_base').encode('hello world'))"
    # The listing runs in the same mount namespace, after the process: what the run left on that disk.
    script = f'mount -t tmpfs -o size=100k tmpfs "{cache}" && "$@" && echo LEFT: && ls -A "{cache}"'
    cmd = ["unshare", "--mount", "sh", "-c", script, "full", *offline([slim_venv, "-c", code])]
    result = run(cmd, env=clean_env(TMPDIR=str(tmp_path)))
    served, left = result.stdout.split("LEFT:")
    assert served.strip() == "[24912, 2375]" and "Traceback" not in result.stderr
    assert left.split() == []


def test_a_package_removed_under_a_running_process_says_so_for_a_request_it_does_not_serve(
    full_wheel: Path, tmp_path: Path
) -> None:
    target = tmp_path / "target"
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(full_wheel)])
    package = target / "tiktoken_encodings_offline"
    code = (
        "import shutil, tiktoken, tiktoken.load, tiktoken_encodings_offline\n"
        f"shutil.rmtree({str(package)!r})  # as pip uninstall or an upgrade would\n"
        "try:\n"
        "    tiktoken.load.read_file_cached('https://example.invalid/other.tiktoken')\n"
        "except RuntimeError as error:\n"
        "    print(error)"
    )
    out = python_offline(sys.executable, code, clean_env(PYTHONPATH=str(target))).stdout
    assert "cannot answer https://example.invalid/other.tiktoken" in out
    assert "the package's files went away: it was removed or upgraded while this process ran" in out


def test_the_strict_mode_error_is_caught_by_its_public_name(slim_venv: Path) -> None:
    code = (
        "import pickle, tiktoken, tiktoken_encodings_offline as t\n"
        "try:\n"
        "    tiktoken.get_encoding('o200k_base')\n"
        "except t.EncodingNotVendoredError as error:\n"
        "    again = pickle.loads(pickle.dumps(error))\n"
        "    print(type(again) is t.EncodingNotVendoredError, type(error).__module__, 'o200k_base' in str(error))"
    )
    env = clean_env(TIKTOKEN_ENCODINGS_OFFLINE_STRICT="1")
    assert python_offline(slim_venv, code, env).stdout.split() == ["True", "tiktoken_encodings_offline", "True"]


def connected(files_dir: Path) -> str:
    """Code that makes tiktoken's download function hand back the real bytes, as if connected."""
    return (
        "import tiktoken.load\n"
        f"root = {str(files_dir)!r}\n"
        "tiktoken.load.read_file = lambda url: open(root + '/' + url.split('.net/', 1)[1], 'rb').read()\n"
    )


def test_slim_wheel_download_goes_where_plain_tiktoken_puts_it(
    slim_venv: Path, files_dir: Path, tmp_path: Path
) -> None:
    blob = MANIFEST.blobs_for(["o200k_base"])[0]
    code = connected(files_dir) + (
        "import tiktoken, tiktoken_encodings_offline as t, os\n"
        "print(tiktoken.get_encoding('o200k_base').encode('hello world'), sorted(os.listdir(t.where())))"
    )
    env = clean_env(TMPDIR=str(tmp_path))
    out = python_offline(slim_venv, code, env).stdout.strip()
    assert out.startswith("[24912, 2375] ")
    assert eval(out.split(" ", 2)[2]) == sorted([*expected_blobs(["cl100k_base"]), "vendored.tsv"])
    assert [p.name for p in (tmp_path / "data-gym-cache").iterdir()] == [blob.cache_name]


def test_a_download_is_never_written_through_a_link_planted_in_the_shared_temp_folder(
    slim_venv: Path, files_dir: Path, tmp_path: Path
) -> None:
    # The temporary name is random; here os.urandom is made predictable so a link can wait there.
    blob = MANIFEST.blobs_for(["o200k_base"])[0]
    cache = tmp_path / "data-gym-cache"
    cache.mkdir()
    victim = tmp_path / "victim"
    (cache / f"{blob.cache_name}.{'00' * 8}.tmp").symlink_to(victim)
    code = connected(files_dir) + (
        "import os, tiktoken\n"
        "os.urandom = lambda n: bytes(n)\n"
        "print(tiktoken.get_encoding('o200k_base').encode('hello world'))"
    )
    out = python_offline(slim_venv, code, clean_env(TMPDIR=str(tmp_path))).stdout.strip()
    assert out == "[24912, 2375]"  # the download serves; it is only not kept
    assert not victim.exists()
    assert sorted(p.name for p in cache.iterdir()) == [f"{blob.cache_name}.{'00' * 8}.tmp"]


def test_activation_is_idempotent_and_thread_safe(runtime_venv: Path) -> None:
    code = (
        "import threading, tiktoken, tiktoken.load, tiktoken_encodings_offline as t\n"
        "threads = [threading.Thread(target=t.activate) for _ in range(16)]\n"
        "[th.start() for th in threads]; [th.join() for th in threads]\n"
        "tiktoken.list_encoding_names(); t.activate()\n"
        "f = tiktoken.load.read_file_cached; depth = 0\n"
        "while hasattr(f, '__wrapped__'): f, depth = f.__wrapped__, depth + 1\n"
        "print(depth)"
    )
    assert python_offline(runtime_venv, code).stdout.strip() == "1"


def test_list_encoding_names_is_unchanged_by_the_plugin(runtime_venv: Path, reference: dict[str, object]) -> None:
    code = "import tiktoken; print(tiktoken.list_encoding_names())"
    assert python_offline(runtime_venv, code).stdout.strip() == str(list(reference["encodings"]))  # type: ignore[call-overload]


def test_wheel_ships_no_tiktoken_ext_init(full_wheel: Path) -> None:
    with zipfile.ZipFile(full_wheel) as archive:
        assert [n for n in archive.namelist() if n.startswith("tiktoken_ext/") and not n.endswith("/")] == [
            "tiktoken_ext/tiktoken_encodings_offline.py"
        ]


def test_a_request_with_another_hash_never_gets_the_wheels_bytes(runtime_venv: Path, tmp_path: Path) -> None:
    # tiktoken pins each file's SHA-256: a tiktoken that expects other bytes must not get these.
    blob = MANIFEST.blobs_for(["cl100k_base"])[0]
    code = (
        "import tiktoken.load, tiktoken_encodings_offline\n"
        f"print(len(tiktoken.load.read_file_cached({blob.url!r}, {blob.sha256!r})))\n"
        f"tiktoken.load.read_file_cached({blob.url!r}, {'0' * 64!r})"
    )
    result = python_offline(runtime_venv, code, clean_env(TMPDIR=str(tmp_path)), check=False)
    assert result.stdout.strip() == str(blob.size)  # the pinned hash is served from the wheel
    assert result.returncode == 1 and "ConnectionError" in result.stderr  # another goes to the network


def test_harmony_folder_is_registered_only_with_both_files_harmony_reads(slim_venv: Path) -> None:
    code = "import os, tiktoken_encodings_offline as t; print(t.encodings(), os.environ.get('TIKTOKEN_RS_CACHE_DIR'))"
    assert python_offline(slim_venv, code).stdout.strip() == "['cl100k_base'] None"


# --- Issue 24: verify() changes nothing for the rest of the process ---------------------------------

# Three threads verify at once; each holds its first encoding build until a fourth thread has
# downloaded a file from a loopback server with tiktoken's own downloader.
CONCURRENT_VERIFY = """
import http.server, threading
import tiktoken, tiktoken.load
import tiktoken_encodings_offline as package

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "5"); self.end_headers()
        self.wfile.write(b"bytes")
    def log_message(self, *args): pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
own_read_file = tiktoken.load.read_file
all_inside, downloaded, first = threading.Barrier(4), threading.Event(), threading.local()
real_encoding = tiktoken.Encoding

class Held(real_encoding):
    def __init__(self, *args, **kwargs):
        if not getattr(first, "done", False):
            first.done = True
            all_inside.wait(60)
            downloaded.wait(60)
        super().__init__(*args, **kwargs)

tiktoken.Encoding = Held
results, got = [], []
def verify():
    results.append(package.verify().ok)
def download():
    all_inside.wait(60)
    try:
        got.append(tiktoken.load.read_file(f"http://127.0.0.1:{server.server_address[1]}/file"))
    except Exception as error:
        got.append(f"{type(error).__name__}: {error}")
    downloaded.set()
threads = [threading.Thread(target=verify) for _ in range(3)] + [threading.Thread(target=download)]
for thread in threads: thread.start()
for thread in threads: thread.join(120)
print(results, got, tiktoken.load.read_file is own_read_file)
"""


def test_verify_blocks_the_network_for_its_own_loads_only(runtime_venv: Path) -> None:
    out = python_offline(runtime_venv, CONCURRENT_VERIFY).stdout.strip()
    assert out == "[True, True, True] [b'bytes'] True"


def test_verify_with_the_package_disabled_does_not_switch_it_on(runtime_venv: Path) -> None:
    code = (
        "import tiktoken, tiktoken.load, tiktoken_encodings_offline as package\n"
        "result = package.verify()\n"
        "print(result.ok, all(c.ok for c in result.files), {str(e.skipped).split(':')[0] for e in result.encodings})\n"
        "print(tiktoken.load.read_file_cached.__module__, tiktoken.load.load_tiktoken_bpe.__module__)\n"
        "try:\n"
        "    tiktoken.get_encoding('cl100k_base')\n"
        "except Exception as error:\n"
        "    print('plain tiktoken:', type(error).__name__)\n"
    )
    env = clean_env(TIKTOKEN_ENCODINGS_OFFLINE_DISABLE="1", TIKTOKEN_CACHE_DIR="")  # "": no cache at all
    out = python_offline(runtime_venv, code, env=env).stdout.splitlines()
    assert out[0] == "True True {'TIKTOKEN_ENCODINGS_OFFLINE_DISABLE is set'}"
    assert out[1] == "tiktoken.load tiktoken.load"  # tiktoken's own reader and loader: the package is off
    assert out[2].startswith("plain tiktoken: ")  # it downloads, and there is no network
    result = run(offline([runtime_venv, "-m", "tiktoken_encodings_offline", "verify"]), env=env)
    assert result.stdout.splitlines()[-1] == "verified: files intact, encodings not built"


# --- Issue 24 item 15: the bounded read ------------------------------------------------------------


def test_a_file_longer_than_its_size_is_read_to_one_byte_past_it(runtime_venv: Path) -> None:
    # /proc/self/status: a regular file whose fstat says 0 bytes and whose reads give more, as a
    # vendored file another process appends to between fstat and read.
    code = (
        "import os\n"
        "from tiktoken_encodings_offline import _files as package\n"
        "from tiktoken_encodings_offline._manifest import sha256_file\n"
        "path = '/proc/self/status'\n"
        "print(os.stat(path).st_size, len(open(path, 'rb').read()) > 100)\n"
        "print(len(package.read_regular_file(path, 1, 0)), len(package.read_regular_file(path, 7)))\n"
        "import hashlib\n"
        "print(sha256_file(path, 3) == hashlib.sha256(open(path, 'rb').read()[:3]).hexdigest())\n"
    )
    assert python_offline(runtime_venv, code).stdout.splitlines() == ["0 True", "1 7", "True"]
