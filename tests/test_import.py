"""Issue 27.2 and 28.3: ``import tiktoken_encodings_offline`` serves everything in the process by itself.

With no start-up line (the base wheel alone), after the import a direct constructor call and
``load_tiktoken_bpe(url, hash)`` are served offline whatever ``TIKTOKEN_CACHE_DIR`` says, in each
shape the package is used in: a venv, ``python -S`` with ``PYTHONPATH``, a ``pip install --target``
folder, and the wheel file itself on ``PYTHONPATH``. Token ids are compared with plain tiktoken's
on the real files; the user's cache folder stays empty.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import PROBE
from helpers import MANIFEST, clean_env, make_venv, offline, run

# Before the packaging split (issue 27.1) the full wheel still carries the start-up line: these
# tests remove it, so that what they check is the import alone, as with the base wheel.
TIKTOKEN_SITE = sysconfig.get_paths()["purelib"]  # this interpreter's tiktoken, for python -S

O200K, R50K = MANIFEST.blobs_for(["o200k_base"])[0], MANIFEST.blobs_for(["r50k_base"])[0]
DIRECT = f"""
import json, sys
sys.path.append({str(PROBE.parent)!r})
import tiktoken_encodings_offline
import tiktoken, tiktoken.load, tiktoken.registry, tiktoken_ext.openai_public as public
from probe_encodings import MIXED_TEXT

def ids(params):
    return tiktoken.Encoding(**params).encode(MIXED_TEXT, allowed_special="all")

o200k = {{**public.o200k_base(), "mergeable_ranks": tiktoken.load.load_tiktoken_bpe({O200K.url!r}, {O200K.sha256!r})}}
r50k = {{**public.r50k_base(), "mergeable_ranks": tiktoken.load.load_tiktoken_bpe({R50K.url!r}, {R50K.sha256!r})}}
print(json.dumps({{
    "cl100k_base": ids(public.cl100k_base()),
    "gpt2": ids(public.gpt2()),
    "o200k_base": ids(o200k),
    "r50k_base": ids(r50k),
    "plugins loaded": tiktoken.registry.ENCODING_CONSTRUCTORS is not None,
}}))
"""


@pytest.fixture(scope="module")
def target(full_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("import") / "target"
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(folder), str(full_wheel)])
    return folder


@pytest.fixture(scope="module")
def base_venv(full_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    python = make_venv(tmp_path_factory.mktemp("import") / "venv", str(full_wheel))
    return python


def shape(name: str, target: Path, base_venv: Path, full_wheel: Path) -> tuple[list[str], dict[str, str]]:
    """The interpreter and flags, and the PYTHONPATH, of one way of using the package."""
    return {
        "venv": ([str(base_venv)], {}),
        "python -S": ([sys.executable, "-S"], {"PYTHONPATH": f"{target}:{TIKTOKEN_SITE}"}),
        "--target": ([sys.executable], {"PYTHONPATH": str(target)}),
        "zipped": ([sys.executable], {"PYTHONPATH": str(full_wheel)}),
    }[name]


SHAPES = ["venv", "python -S", "--target", "zipped"]


@pytest.mark.parametrize("name", SHAPES)
def test_after_the_import_direct_calls_are_served_whatever_tiktoken_cache_dir_says(
    name: str, target: Path, base_venv: Path, full_wheel: Path, reference: dict[str, object], tmp_path: Path
) -> None:
    command, env = shape(name, target, base_venv, full_wheel)
    empty = tmp_path / "empty-cache"  # the user's own cache folder, holding nothing
    empty.mkdir()
    result = run(offline([*command, "-W", "error", "-c", DIRECT]), env=clean_env(TIKTOKEN_CACHE_DIR=str(empty), **env))
    served = json.loads(result.stdout)
    assert served.pop("plugins loaded") is False  # the import alone served them, not tiktoken's plugin
    assert served == {name: reference["encodings"][name] for name in served}  # type: ignore[index]
    assert result.stderr == "" and list(empty.iterdir()) == []


@pytest.mark.parametrize("name", SHAPES)
def test_doctor_says_the_reader_is_wrapped_by_the_import_in_each_shape(
    name: str, target: Path, base_venv: Path, full_wheel: Path, tmp_path: Path
) -> None:
    command, env = shape(name, target, base_venv, full_wheel)
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    cmd = [*command, "-m", "tiktoken_encodings_offline", "doctor", "--json"]
    report = json.loads(run(offline(cmd), env=clean_env(TIKTOKEN_CACHE_DIR=str(empty), **env)).stdout)
    assert report["tiktoken"]["reader_wrapped"] is True and report["problems"] == []
    assert report["startup_hook"] == "none"


def test_doctor_checks_the_reader_before_tiktokens_plugin_wraps_it_again(target: Path) -> None:
    # A reader unwrapped after the import: the plugin, loaded by doctor's own look at tiktoken,
    # would wrap it again. doctor must judge what the import did, not what the plugin repairs.
    code = (
        "import sys, tiktoken.load, tiktoken_encodings_offline\n"
        "tiktoken.load.read_file_cached = tiktoken.load.read_file_cached.__wrapped__\n"
        "from tiktoken_encodings_offline.__main__ import main\n"
        "sys.exit(main(['doctor', '--json']))"
    )
    result = run(offline([sys.executable, "-c", code]), env=clean_env(PYTHONPATH=str(target)), check=False)
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["tiktoken"]["reader_wrapped"] is False
    assert any("not wrapped after `import tiktoken_encodings_offline`" in p for p in report["problems"])


def test_without_tiktoken_the_import_is_silent_and_any_other_failure_is_one_notice(
    target: Path, tmp_path: Path
) -> None:
    code = "import tiktoken_encodings_offline as t; print(t.encodings()[:1])"
    alone = run(offline([sys.executable, "-S", "-c", code]), env=clean_env(PYTHONPATH=str(target)))
    assert (alone.stdout, alone.stderr) == ("['gpt2']\n", "")  # doctor and verify say tiktoken is missing
    broken = tmp_path / "broken"  # a tiktoken with no tiktoken.load
    (broken / "tiktoken").mkdir(parents=True)
    (broken / "tiktoken" / "__init__.py").write_text("")
    env = clean_env(PYTHONPATH=f"{target}:{broken}")
    result = run(offline([sys.executable, "-S", "-W", "error", "-c", code]), env=env)
    assert result.stdout == "['gpt2']\n"
    assert result.stderr == (
        "tiktoken-encodings-offline: not active, tiktoken works as without it "
        "(ModuleNotFoundError: No module named 'tiktoken.load')\n"
    )


RACE = f"""
import json, sys, threading
sys.setswitchinterval(1e-6)
barrier = threading.Barrier(3)
out, errors = {{}}, []

def run(name, work):
    try:
        barrier.wait()
        out[name] = work()
    except BaseException as error:
        errors.append(repr(error))

def tiktoken_first():  # imports tiktoken and builds an encoding: the plugin imports the package
    import tiktoken
    return tiktoken.get_encoding("cl100k_base").encode("hello world")

def package_first():  # imports the package (which imports tiktoken), then calls tiktoken.load directly
    import tiktoken_encodings_offline, tiktoken.load
    return len(tiktoken.load.load_tiktoken_bpe({R50K.url!r}, {R50K.sha256!r}))

def load_first():  # imports tiktoken.load: the start-up line, when installed, activates there
    import tiktoken.load
    if sys.argv[1:] != ["start-up line"]:  # nothing serves a thread that did not import the package yet
        return True
    return len(tiktoken.load.load_tiktoken_bpe({O200K.url!r}, {O200K.sha256!r}))

threads = [threading.Thread(target=run, args=work) for work in
           (("tiktoken", tiktoken_first), ("package", package_first), ("load", load_first))]
[t.start() for t in threads]
[t.join(30) for t in threads]
import tiktoken.load
f, depth = tiktoken.load.read_file_cached, 0
while hasattr(f, "__wrapped__"):
    f, depth = f.__wrapped__, depth + 1
print(json.dumps({{"out": out, "errors": errors, "depth": depth, "alive": sum(t.is_alive() for t in threads)}}))
"""


@pytest.mark.parametrize("hook", ["no start-up line", "start-up line"])
def test_threads_importing_tiktoken_and_the_package_at_once_never_deadlock(
    hook: str, target: Path, companion_venv: Path, tmp_path: Path
) -> None:
    # With the start-up line, the import of tiktoken.load activates under that module's import lock
    # while another thread, inside the package's import, imports tiktoken.load: Python must resolve it.
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    if hook == "start-up line":
        command, env = [str(companion_venv)], clean_env(TIKTOKEN_CACHE_DIR=str(empty))
    else:
        command, env = [sys.executable], clean_env(TIKTOKEN_CACHE_DIR=str(empty), PYTHONPATH=str(target))
    processes = [
        subprocess.Popen(
            offline([*command, "-c", RACE, hook]), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(12)
    ]
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0 and err == "", err
        report = json.loads(out)
        assert report["errors"] == [] and report["alive"] == 0 and report["depth"] == 1, report
        loaded = 199998 if hook == "start-up line" else True
        assert report["out"] == {"tiktoken": [15339, 1917], "package": 50256, "load": loaded}, report
    assert list(empty.iterdir()) == []


RELOAD = f"""
import importlib, json, sys
sys.path.append({str(PROBE.parent)!r})
import tiktoken, tiktoken.load
from probe_encodings import MIXED_TEXT

first = tiktoken.get_encoding("cl100k_base")  # the plugin activates the package
importlib.reload(tiktoken.load)  # a notebook's autoreload: tiktoken's own, unwrapped reader again
ids = {{name: tiktoken.get_encoding(name).encode(MIXED_TEXT, allowed_special="all")
        for name in ("o200k_base", "gpt2", "p50k_base")}}
print(json.dumps({{"ids": ids, "wrapped": hasattr(tiktoken.load.read_file_cached, "__wrapped__")}}))
"""


def test_a_reload_of_tiktoken_load_does_not_unwrap_the_reader_for_good(
    target: Path, reference: dict[str, object], tmp_path: Path
) -> None:
    empty = tmp_path / "empty-cache"  # later encodings are not in the user's cache
    empty.mkdir()
    env = clean_env(PYTHONPATH=str(target), TIKTOKEN_CACHE_DIR=str(empty))
    result = run(offline([sys.executable, "-W", "error", "-c", RELOAD]), env=env)
    report = json.loads(result.stdout)
    assert report["ids"] == {name: reference["encodings"][name] for name in report["ids"]}  # type: ignore[index]
    assert report["wrapped"] is True and result.stderr == "" and list(empty.iterdir()) == []


DIRECT_AFTER_RELOAD = f"""
import importlib, json, sys
sys.path.append({str(PROBE.parent)!r})
import tiktoken_encodings_offline
import tiktoken, tiktoken.load, tiktoken_ext.openai_public as public
from probe_encodings import MIXED_TEXT

tiktoken.get_encoding("gpt2")
importlib.reload(tiktoken.load)  # nothing of the package runs until something calls it
tiktoken_encodings_offline.activate()  # what docs/runtime.md says a direct tiktoken.load call then needs
url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
ranks = tiktoken.load.load_tiktoken_bpe(url)
public.load_tiktoken_bpe = lambda *args, **kwargs: ranks  # the constructor's other arguments, with these ranks
ids = tiktoken.Encoding(**public.o200k_base()).encode(MIXED_TEXT, allowed_special="all")
print(json.dumps({{"ids": ids, "wrapped": hasattr(tiktoken.load.read_file_cached, "__wrapped__")}}))
"""


@pytest.mark.parametrize("fastpath", ["on", "off"])
def test_activate_after_a_reload_serves_a_direct_tiktoken_load_call(
    target: Path, reference: dict[str, object], tmp_path: Path, fastpath: str
) -> None:
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    off = {"TIKTOKEN_ENCODINGS_OFFLINE_NO_FASTPATH": "1"} if fastpath == "off" else {}
    env = clean_env(PYTHONPATH=str(target), TIKTOKEN_CACHE_DIR=str(empty), **off)
    result = run(offline([sys.executable, "-W", "error", "-c", DIRECT_AFTER_RELOAD]), env=env)
    report = json.loads(result.stdout)
    assert report["ids"] == reference["encodings"]["o200k_base"]  # type: ignore[index]
    assert report["wrapped"] is True and result.stderr == "" and list(empty.iterdir()) == []
