"""Issues 13.1-3 and 27: the companion's start-up line activates the package with no import, at the
first import of tiktoken.load or openai_harmony.

The venvs here hold the base wheel and tiktoken-encodings-offline-autostart (the companion);
tests/test_autostart.py has the base alone and the companion left alone. Every run is offline (a
network namespace with no network), with no variable of ours or tiktoken's set, and with an empty
TMPDIR, so tiktoken's default cache cannot help either.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import PROBE
from helpers import MANIFEST, clean_env, copy_project, make_venv, offline, run, wheel_members

START_MODULE = "_tiktoken_encodings_offline_startup"
START_LINE = "tiktoken_encodings_offline_autostart.pth"

# Calls that load encoding files with no get_encoding before them, so tiktoken never loads its
# plugins: every constructor of tiktoken_ext.openai_public, and the loaders on every vendored URL.
DIRECT_CALLS = f"""
import hashlib, json, sys
sys.path.insert(0, {str(PROBE.parent)!r})
from probe_encodings import MIXED_TEXT
import tiktoken, tiktoken.load, tiktoken_ext.openai_public as public

def digest(ranks):
    return hashlib.sha256(repr(sorted(ranks.items())).encode()).hexdigest()

blobs = {json.dumps({blob.url: blob.sha256 for blob in MANIFEST.blobs.values()})}
out = {{"encodings": {{}}, "ranks": {{}}}}
for name in {sorted(MANIFEST.encodings)!r}:
    encoding = tiktoken.Encoding(**public.ENCODING_CONSTRUCTORS[name]())
    out["encodings"][name] = encoding.encode(MIXED_TEXT, allowed_special="all")
gpt2 = sorted(url for url in blobs if "/gpt-2/" in url)  # encoder.json, vocab.bpe
for url, sha256 in blobs.items():
    if url not in gpt2:
        out["ranks"][url] = digest(tiktoken.load.load_tiktoken_bpe(url, sha256))
out["ranks"]["gpt-2"] = digest(
    tiktoken.load.data_gym_to_mergeable_bpe_ranks(gpt2[1], gpt2[0], blobs[gpt2[1]], blobs[gpt2[0]])
)
out["activated"] = getattr(tiktoken.load.read_file_cached, "__tiktoken_encodings_offline__", False)
print(json.dumps(out))
"""


def offline_python(python: Path | str, code: str, tmp_path: Path, *flags: str, check: bool = True, **env: str):  # type: ignore[no-untyped-def]
    empty_tmp = tmp_path / "empty-tmp"
    empty_tmp.mkdir(exist_ok=True)
    return run(offline([python, *flags, "-c", code]), env=clean_env(TMPDIR=str(empty_tmp), **env), check=check)


@pytest.fixture(scope="module")
def direct_reference(layouts: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The direct calls run by plain tiktoken (no package at all) reading the real files, offline."""
    result = offline_python(
        sys.executable, DIRECT_CALLS, tmp_path_factory.mktemp("plain"), TIKTOKEN_CACHE_DIR=str(layouts["cache"])
    )
    out: dict[str, object] = json.loads(result.stdout)
    assert out.pop("activated") is False
    return out


def site_packages(python: Path) -> Path:
    return Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())


def test_direct_calls_give_the_reference_ids_with_no_import(
    companion_venv: Path, direct_reference: dict[str, object], reference: dict[str, object], tmp_path: Path
) -> None:
    out = json.loads(offline_python(companion_venv, DIRECT_CALLS, tmp_path).stdout)
    assert out.pop("activated") is True
    assert out == direct_reference
    assert out["encodings"] == reference["encodings"]
    assert len(out["ranks"]) == len(MANIFEST.blobs) - 1  # the two GPT-2 files make one table


@pytest.mark.parametrize("how", ["disable", "disable-install-by-hand", "dash-S"])
def test_disable_and_dash_s_leave_plain_tiktoken(companion_venv: Path, tmp_path: Path, how: str) -> None:
    code = (
        f"import sys; print({START_MODULE!r} in sys.modules, 'tiktoken_encodings_offline' in sys.modules)\n"
        "import tiktoken, tiktoken_ext.openai_public as p\n"
        "print('tiktoken_encodings_offline' in sys.modules)\n"
        "tiktoken.Encoding(**p.cl100k_base())"
    )
    site = str(site_packages(companion_venv))
    disabled = {"TIKTOKEN_ENCODINGS_OFFLINE_DISABLE": "1"}
    if how == "disable":
        result = offline_python(companion_venv, code, tmp_path, check=False, **disabled)
    elif how == "disable-install-by-hand":  # install() called with no .pth read
        start = f"import {START_MODULE}; {START_MODULE}.install()\n"
        result = offline_python(companion_venv, start + code, tmp_path, "-S", check=False, PYTHONPATH=site, **disabled)
    else:  # no site: no .pth at all; site-packages reached through PYTHONPATH, which reads no .pth
        result = offline_python(companion_venv, code, tmp_path, "-S", check=False, PYTHONPATH=site)
    hook_module_imported = how != "dash-S"  # by the .pth line or by hand, and it then did nothing
    assert result.stdout.split() == [str(hook_module_imported), "False", "False"]
    assert result.returncode == 1 and "ConnectionError" in result.stderr  # plain tiktoken, offline


def test_start_up_imports_the_hook_module_and_nothing_else(companion_venv: Path, tmp_path: Path) -> None:
    """The modules of a venv without the package, and the hook module; tiktoken activates."""
    plain = make_venv(tmp_path / "plain")  # the same Python, pip and setuptools, no package of ours
    modules = "import json, sys; print(json.dumps(sorted(sys.modules)))"
    active = "import tiktoken.load; print(getattr(tiktoken.load.read_file_cached, '__tiktoken_encodings_offline__', 0))"
    with_hook, hook_active = offline_python(companion_venv, f"{modules}\n{active}", tmp_path).stdout.splitlines()
    without = offline_python(plain, modules, tmp_path).stdout
    assert set(json.loads(with_hook)) - set(json.loads(without)) == {START_MODULE}
    assert set(json.loads(without)) <= set(json.loads(with_hook))
    assert hook_active == "True"


@pytest.mark.parametrize("name", ["tiktoken.load", "openai_harmony"])
def test_the_package_is_imported_at_the_first_import_of_tiktoken_load_or_harmony_only(
    harmony_venv: Path, tmp_path: Path, name: str
) -> None:
    """Other imports (json, email, a missing module, tiktoken itself) leave it out; the watched one
    brings it and activates (tiktoken reads every file through tiktoken.load)."""
    code = (
        "import os, sys\n"
        "seen = lambda: print('tiktoken_encodings_offline' in sys.modules, os.environ.get('TIKTOKEN_RS_CACHE_DIR'))\n"
        "seen()\n"
        "import json, email.message\n"
        "try:\n    import no_such_module\nexcept ImportError:\n    pass\n"
        f"{'import tiktoken' if name == 'tiktoken.load' else 'pass'}\n"
        "seen()\n"
        f"import {name}\n"
        "seen()"
    )
    out = offline_python(harmony_venv, code, tmp_path).stdout.splitlines()
    data = site_packages(harmony_venv) / "tiktoken_encodings_offline" / "data"
    assert out == ["False None", "False None", f"True {data}"]


# Each entry of sys.meta_path, as one word: its class name (a class by its own name).
META_PATH = (
    "import sys\n"
    "def meta_path():\n"
    "    print(' '.join(type(e).__name__ if not isinstance(e, type) else e.__name__ for e in sys.meta_path))\n"
)
FINDER = "TiktokenEncodingsOfflineFinder"


def read_pth_again(site: Path) -> str:
    """Code that makes site read the companion's .pth once more, as a second site dir holding it would."""
    return f"import site; site.addpackage({str(site)!r}, {START_LINE!r}, set())\n"


@pytest.mark.parametrize("install_too", [False, True], ids=["pth", "pth-and-install-by-hand"])
def test_one_finder_first_and_none_once_both_names_are_imported(
    harmony_venv: Path, tmp_path: Path, install_too: bool
) -> None:
    """One finder first in sys.meta_path from start-up on, however often the .pth is read (a venv's
    site reads it twice already) or install() is called; it leaves once tiktoken.load and
    openai_harmony are imported.
    Every other import hook stays where it was."""
    site = site_packages(harmony_venv)
    again = f"import {START_MODULE}; {START_MODULE}.install()\n" if install_too else ""
    code = (
        f"{META_PATH}"
        "meta_path()\n"
        f"{read_pth_again(site)}{again}"
        "meta_path()\n"
        "import tiktoken.load\n"
        "meta_path()\n"
        "import openai_harmony\n"
        "meta_path()"
    )
    at_start, read_again, after_tiktoken, after_harmony = offline_python(
        harmony_venv, code, tmp_path
    ).stdout.splitlines()
    first, *others = at_start.split()
    assert first == FINDER and others[-1] == "PathFinder" and FINDER not in others
    assert read_again == at_start and after_tiktoken == at_start
    assert after_harmony.split() == others


@pytest.mark.parametrize("switch", ["set-after-start-up", "unset-after-start-up"])
def test_the_switch_is_read_at_the_first_import_of_tiktoken(companion_venv: Path, tmp_path: Path, switch: str) -> None:
    """TIKTOKEN_ENCODINGS_OFFLINE_DISABLE counts as it is when tiktoken is first imported.

    Set then: every trigger leaves, nothing activates, and tiktoken fails offline as plain tiktoken
    does. Unset then (though set at start-up): the package activates.
    """
    disabled = switch == "set-after-start-up"
    code = (
        f"{META_PATH}import os\n"
        f"os.environ['TIKTOKEN_ENCODINGS_OFFLINE_DISABLE'] = {'1' if disabled else '0'!r}\n"
        "import tiktoken, tiktoken_ext.openai_public as p\n"
        "meta_path()\n"
        "print('tiktoken_encodings_offline' in sys.modules, os.environ.get('TIKTOKEN_CACHE_DIR'))\n"
        "print(tiktoken.Encoding(**p.o200k_base()).encode('hello world'))"
    )
    at_start = {} if disabled else {"TIKTOKEN_ENCODINGS_OFFLINE_DISABLE": "1"}
    result = offline_python(companion_venv, code, tmp_path, check=False, **at_start)
    meta_path, imported, *ids = result.stdout.splitlines()
    if disabled:
        assert FINDER not in meta_path.split() and imported == "False None"
        assert ids == [] and result.returncode == 1 and "ConnectionError" in result.stderr  # plain tiktoken
    else:
        data = site_packages(companion_venv) / "tiktoken_encodings_offline" / "data"
        assert imported == f"True {data}" and ids == ["[24912, 2375]"], result.stderr


def test_a_missing_module_fails_as_before_and_activates_nothing(
    full_wheel: Path, companion_wheel: Path, tmp_path: Path
) -> None:
    wheels = (str(full_wheel), str(companion_wheel))
    python = make_venv(tmp_path / "venv", *wheels, pip_args=("--no-deps",))  # no tiktoken, no harmony
    code = (
        "import os, sys\n"
        "for name in ('tiktoken', 'openai_harmony'):\n"
        "    try:\n"
        "        __import__(name)\n"
        "    except ModuleNotFoundError as error:\n"
        "        print(error)\n"
        "print('tiktoken_encodings_offline' in sys.modules, os.environ.get('TIKTOKEN_CACHE_DIR'))"
    )
    out = offline_python(python, code, tmp_path).stdout.splitlines()
    assert out == ["No module named 'tiktoken'", "No module named 'openai_harmony'", "False None"]


@pytest.mark.parametrize("imported_first", [False, True], ids=["before-tiktoken", "after-tiktoken"])
def test_install_by_hand_activates_on_its_own(companion_venv: Path, tmp_path: Path, imported_first: bool) -> None:
    """The module imported and install() called with no .pth read.

    Also run after tiktoken is imported (as a tool that installs it late would): it activates at once.
    """
    site = site_packages(companion_venv)
    first = "import tiktoken.load\n" if imported_first else ""
    code = (
        f"import sys; sys.path.append({str(site)!r})\n{first}"
        f"import {START_MODULE}; {START_MODULE}.install()\n"
        "import tiktoken, tiktoken_ext.openai_public as p\n"
        "print(tiktoken.Encoding(**p.o200k_base()).encode('hello world'))"
    )
    assert offline_python(companion_venv, code, tmp_path, "-S").stdout.strip() == "[24912, 2375]"


def test_the_pth_line_is_one_plain_import_and_no_start_file_ships(companion_wheel: Path, full_wheel: Path) -> None:
    """A reviewer reads the whole start-up line at a glance: the companion holds it and its module,
    nothing else. No PEP 829 .start file while every Python that reads one imports pkgutil and more
    at each start (docs/runtime.md). The base wheel has no start-up file at all."""
    members = {name for name in wheel_members(companion_wheel) if ".dist-info/" not in name}
    assert members == {START_LINE, f"{START_MODULE}.py"}
    with zipfile.ZipFile(companion_wheel) as archive:
        line = archive.read(START_LINE)
    assert line == f"import {START_MODULE}\n".encode() and len(line) <= 100
    base = wheel_members(full_wheel)
    assert [name for name in base if name.endswith((".pth", ".start")) or name == f"{START_MODULE}.py"] == []
    assert {name.split("/")[0] for name in base if ".dist-info/" not in name} == {
        "tiktoken_encodings_offline",
        "tiktoken_ext",
    }


@pytest.mark.parametrize("imported_first", [False, True], ids=["before-tiktoken", "after-tiktoken"])
def test_the_pth_line_activates_when_site_reads_it_late(
    companion_venv: Path, tmp_path: Path, imported_first: bool
) -> None:
    """site.addsitedir by hand (as a tool may do), before or after tiktoken is imported: active either way."""
    site = site_packages(companion_venv)
    first = f"sys.path.append({str(site)!r}); import tiktoken.load\n" if imported_first else ""
    code = (
        f"import site, sys\n{first}"
        f"site.addsitedir({str(site)!r})\n"
        "import tiktoken, tiktoken_ext.openai_public as p\n"
        "print(tiktoken.Encoding(**p.o200k_base()).encode('hello world'))"
    )
    assert offline_python(companion_venv, code, tmp_path, "-S").stdout.strip() == "[24912, 2375]"


def test_import_hooks_and_loaders_stay_as_they_were(companion_venv: Path, tmp_path: Path) -> None:
    """pytest's assertion rewriting still rewrites; tiktoken keeps its own loader and resources."""
    run([str(companion_venv), "-m", "pip", "install", "-q", "pytest"], env=clean_env())
    (tmp_path / "test_in_venv.py").write_text(
        "import importlib.resources, sys, tiktoken, tiktoken_ext.openai_public as p\n"
        "def test_loader():\n"
        "    assert type(tiktoken.__loader__).__name__ == 'SourceFileLoader'\n"
        "    assert tiktoken.__spec__.loader is tiktoken.__loader__\n"
        "    assert importlib.resources.files('tiktoken').joinpath('py.typed').is_file()\n"
        "def test_rewritten():\n"
        "    assert tiktoken.Encoding(**p.cl100k_base()).encode('hello world') == [1, 2]\n"
    )
    result = run(offline([companion_venv, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)]),
                 env=clean_env(TMPDIR=str(tmp_path)), check=False)  # fmt: skip
    assert "1 failed, 1 passed" in result.stdout, result.stdout
    assert "assert [15339, 1917] == [1, 2]" in result.stdout  # rewritten by pytest, served offline


def test_a_hook_that_asks_the_other_finders_by_keyword_still_imports(companion_venv: Path, tmp_path: Path) -> None:
    """Before tiktoken is imported, a front hook that passes ``target=`` on to every other finder
    (Mercurial's and birdseye's do) reaches the trigger: it must take keywords like any finder."""
    (tmp_path / "demo_mod.py").write_text("VALUE = 42\n")
    code = (
        "import sys\n"
        "class Hook:\n"
        "    def find_spec(self, fullname, path, target=None):\n"
        "        for finder in [f for f in sys.meta_path if f is not self]:\n"
        "            spec = finder.find_spec(fullname, path=path, target=target)\n"
        "            if spec is not None:\n"
        "                return spec\n"
        "sys.meta_path.insert(0, Hook())\n"
        "import demo_mod, tiktoken, tiktoken.load\n"
        "print(demo_mod.VALUE, getattr(tiktoken.load.read_file_cached, '__tiktoken_encodings_offline__', False))"
    )
    result = offline_python(companion_venv, code, tmp_path, PYTHONPATH=str(tmp_path))
    assert result.stdout.split() == ["42", "True"]


def test_a_broken_package_leaves_tiktoken_working_and_says_so(
    full_wheel: Path, companion_wheel: Path, tmp_path: Path
) -> None:
    """The hook never raises: with the package damaged, start-up and tiktoken go on as without it."""
    target = tmp_path / "site"
    wheels = [str(full_wheel), str(companion_wheel)]
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), *wheels])
    (target / "tiktoken_encodings_offline" / "__init__.py").write_text("raise RuntimeError('damaged on purpose')\n")
    code = (
        f"import site; site.addsitedir({str(target)!r}); print('started')\n"
        "import tiktoken.load; print(tiktoken.get_encoding.__module__)"
    )
    result = offline_python(sys.executable, code, tmp_path)
    assert result.stdout.split() == ["started", "tiktoken.registry"]
    assert result.stderr.count("tiktoken-encodings-offline: not active") == 1
    assert "RuntimeError: damaged on purpose" in result.stderr and "Traceback" not in result.stderr


def test_editable_install_activates_with_no_import(
    files_dir: Path, companion_wheel: Path, tmp_path: Path, direct_reference: dict[str, object]
) -> None:
    """The base installed editable (its files staged into src/), the companion beside it."""
    project = copy_project(tmp_path / "project")
    python = make_venv(tmp_path / "venv", "tiktoken")
    env = clean_env(TIKTOKEN_ENCODINGS_OFFLINE_SOURCE_DIR=str(files_dir), TIKTOKEN_ENCODINGS_OFFLINE_CACHE_DIR="")
    run([str(python), "-m", "pip", "install", "-q", "-e", str(project), str(companion_wheel)], env=env)
    site = site_packages(python)
    assert sorted(p.name for p in site.glob("*tiktoken_encodings_offline*.pth")) == [
        "_editable_impl_tiktoken_encodings_offline.pth",  # hatchling's: puts src/ on sys.path
        START_LINE,  # the companion's (the base's editable install adds none)
    ]
    out = json.loads(offline_python(python, DIRECT_CALLS, tmp_path).stdout)
    assert out.pop("activated") is True
    assert out == direct_reference


HARMONY = """
import json, os
from openai_harmony import (Conversation, HarmonyEncodingName, Message, Role, SystemContent,
                            load_harmony_encoding)
encoding = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
conversation = Conversation.from_messages([
    Message.from_role_and_content(Role.SYSTEM, SystemContent.new()),
    Message.from_role_and_content(Role.USER, "What is 2 + 2?"),
])
tokens = encoding.render_conversation_for_completion(conversation, Role.ASSISTANT)
reply = encoding.encode("<|channel|>final<|message|>4<|return|>", allowed_special="all")
parsed = encoding.parse_messages_from_completion_tokens(reply, Role.ASSISTANT)
print(json.dumps({"tokens": tokens, "text": encoding.decode(tokens),
                  "parsed": [[m.author.role.value, m.channel, m.content[0].text] for m in parsed]}))
"""


@pytest.fixture(scope="module")
def harmony_venv(full_wheel: Path, companion_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding only tiktoken, openai-harmony, the base wheel and the companion."""
    wheels = (str(full_wheel), str(companion_wheel))
    return make_venv(tmp_path_factory.mktemp("harmony") / "venv", *wheels, "openai-harmony")


def test_openai_harmony_renders_and_parses_with_no_import_and_no_variable(
    harmony_venv: Path, layouts: dict[str, Path], tmp_path: Path
) -> None:
    out = json.loads(offline_python(harmony_venv, HARMONY, tmp_path).stdout)
    assert out["text"].startswith("<|start|>system<|message|>") and "What is 2 + 2?" in out["text"]
    assert out["parsed"] == [["assistant", "final", "4"]]
    # The same ids as plain tiktoken's o200k_harmony on the real files.
    plain = (
        "import json, sys, tiktoken\n"
        "text = sys.stdin.read()\n"
        "print(json.dumps(tiktoken.get_encoding('o200k_harmony').encode(text, allowed_special='all')))"
    )
    env = clean_env(TIKTOKEN_CACHE_DIR=str(layouts["cache"]))
    result = subprocess.run(offline([sys.executable, "-c", plain]), input=out["text"], env=env,
                            capture_output=True, text=True, check=True, timeout=300)  # fmt: skip
    assert json.loads(result.stdout) == out["tokens"]


@pytest.mark.parametrize("checked", ["openai_harmony", "tiktoken"])
def test_a_find_spec_check_before_the_import_still_activates(
    harmony_venv: Path, direct_reference: dict[str, object], tmp_path: Path, checked: str
) -> None:
    # Libraries check that a module is there (importlib.util.find_spec) before they import it: the
    # check runs no module, so the import after it must still be the one that activates.
    check = f"import importlib.util; assert importlib.util.find_spec({checked!r}) is not None\n"
    out = json.loads(offline_python(harmony_venv, check + HARMONY, tmp_path).stdout)
    assert out["parsed"] == [["assistant", "final", "4"]]
    out = json.loads(offline_python(harmony_venv, check + DIRECT_CALLS, tmp_path).stdout)
    assert out.pop("activated") is True
    assert out == direct_reference


@pytest.mark.parametrize("variable", ["TIKTOKEN_RS_CACHE_DIR", "TIKTOKEN_ENCODINGS_BASE"])
def test_a_variable_the_user_set_for_harmony_wins(harmony_venv: Path, tmp_path: Path, variable: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = offline_python(harmony_venv, HARMONY, tmp_path, check=False, **{variable: str(empty)})
    assert result.returncode == 1 and "HarmonyError" in result.stderr  # harmony looked there, not in the wheel


ACTIVATED = "getattr(sys.modules['tiktoken.load'].read_file_cached, '__tiktoken_encodings_offline__', False)"


@pytest.mark.parametrize("disabled", [False, True], ids=["active", "switched-off"])
def test_an_import_hook_after_the_finder_still_loads_tiktoken(
    companion_venv: Path, tmp_path: Path, disabled: bool
) -> None:
    """The finder hands a watched import to the finders after it, in order: an import hook placed
    after it (before PathFinder) is the one that loads tiktoken.load, and the package activates after.
    The hook asks every other finder itself, this one included (which then answers None).
    Switched off, the finder leaves at that import, and the hook after it still loads the module."""
    code = (
        "import sys\n"
        "class Marking:\n"
        "    def __init__(self, loader):\n"
        "        self.loader = loader\n"
        "    def create_module(self, spec):\n"
        "        return None\n"
        "    def exec_module(self, module):\n"
        "        module.LOADED_BY = 'Hook'\n"
        "        self.loader.exec_module(module)\n"
        "class Hook:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name != 'tiktoken.load':\n"
        "            return None\n"
        "        for finder in [f for f in sys.meta_path if f is not self]:  # as Mercurial's hook does\n"
        "            spec = finder.find_spec(name, path, target)\n"
        "            if spec is not None:\n"
        "                spec.loader = Marking(spec.loader)\n"
        "                return spec\n"
        "sys.meta_path.insert(1, Hook())\n"
        "print(*[type(e).__name__ for e in sys.meta_path[:2]])\n"
        "import tiktoken, tiktoken.load\n"
        f"print(getattr(tiktoken.load, 'LOADED_BY', None), {ACTIVATED})"
    )
    switch = {"TIKTOKEN_ENCODINGS_OFFLINE_DISABLE": "1"} if disabled else {}
    order, loaded = offline_python(companion_venv, code, tmp_path, **switch).stdout.splitlines()
    assert order == f"{FINDER} Hook"
    assert loaded == f"Hook {not disabled}"


LEGACY_FINDER = """
import sys
from importlib.machinery import PathFinder
class Marking:
    def __init__(self, loader):
        self.loader = loader
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        module.LOADED_BY = "Legacy"
        self.loader.exec_module(module)
class Legacy:  # six before 1.16, old plugin loaders: find_module only
    def find_module(self, fullname, path=None):
        if fullname == "tiktoken.load" and {claims}:
            return Marking(PathFinder.find_spec(fullname, path).loader)
        return None
sys.meta_path.insert(1, Legacy())
"""
LOADED_BY = "\nprint(getattr(tiktoken.load, 'LOADED_BY', None))"


@pytest.mark.parametrize("claims", [False, True], ids=["declines-every-name", "loads-tiktoken.load"])
def test_a_find_module_only_finder_after_the_finder_still_activates(
    companion_venv: Path, direct_reference: dict[str, object], tmp_path: Path, claims: bool
) -> None:
    """Issue 28, item 2a: such a finder placed after ours is skipped (Python 3.12 on) or asked through
    find_module (3.9 to 3.11) exactly as Python would; either way the direct calls are served."""
    code = LEGACY_FINDER.format(claims=claims) + DIRECT_CALLS + LOADED_BY
    out, loaded_by = offline_python(companion_venv, code, tmp_path).stdout.splitlines()
    served = json.loads(out)
    assert served.pop("activated") is True
    assert served == direct_reference
    python_asks_it = sys.version_info < (3, 12)  # the venv's Python is this one
    assert loaded_by == ("Legacy" if claims and python_asks_it else "None")


@pytest.fixture(scope="module")
def typeguard_venv(companion_venv: Path) -> Path:
    run([str(companion_venv), "-m", "pip", "install", "-q", "typeguard>=4"], env=clean_env())
    return companion_venv


def test_typeguards_import_hook_in_front_still_activates(
    typeguard_venv: Path, direct_reference: dict[str, object], tmp_path: Path
) -> None:
    """Issue 28, item 2b: what `pytest --typeguard-packages=tiktoken` does. typeguard's hook goes first
    and resolves tiktoken's modules through PathFinder itself; ours moves back in front of it at the next
    import it is asked about, then asks it like any finder after it: tiktoken.load is instrumented by
    typeguard (its loader) and served by the package."""
    hook = "from typeguard import install_import_hook\ninstall_import_hook('tiktoken')\n"
    loader = "\nprint(type(tiktoken.load.__loader__).__name__)"
    out, loader_name = offline_python(typeguard_venv, hook + DIRECT_CALLS + loader, tmp_path).stdout.splitlines()
    served = json.loads(out)
    assert served.pop("activated") is True
    assert served == direct_reference
    assert loader_name == "TypeguardLoader"


LAZY_TIKTOKEN = (
    "import importlib.util, sys\n"
    "spec = importlib.util.find_spec('tiktoken')\n"
    "spec.loader = importlib.util.LazyLoader(spec.loader)\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "sys.modules['tiktoken'] = module\n"
    "spec.loader.exec_module(module)\n"
)


@pytest.mark.parametrize(
    "first_use",
    ["import tiktoken.load", "tiktoken.Encoding; import tiktoken_ext.openai_public"],
    ids=["import-tiktoken.load", "attribute-then-openai_public"],
)
def test_tiktoken_imported_through_lazyloader_activates_one_tiktoken_load(
    companion_venv: Path, tmp_path: Path, first_use: str
) -> None:
    """importlib.util.LazyLoader runs tiktoken at its first use, which may be `import tiktoken.load`
    itself: the tiktoken.load that Python keeps is the one served, before any get_encoding."""
    code = (
        f"{LAZY_TIKTOKEN}tiktoken = module\n{first_use}\n"
        f"print(tiktoken.load is sys.modules['tiktoken.load'], {ACTIVATED})\n"
        "import tiktoken_ext.openai_public as p\n"
        "print(tiktoken.Encoding(**p.o200k_base()).encode('hello world'))"
    )
    assert offline_python(companion_venv, code, tmp_path).stdout.splitlines() == ["True True", "[24912, 2375]"]


# Threads importing tiktoken and openai_harmony at once; a watcher counts the finders all along.
THREADS = """
import importlib.util, os, sys, threading
sys.setswitchinterval(1e-6)
counts, done = [], threading.Event()
count = lambda: sum(type(e).__name__ == "TiktokenEncodingsOfflineFinder" for e in list(sys.meta_path))
start = threading.Barrier(33)
def load(i):
    start.wait()
    if i % 4 == 3:  # the check many libraries make before they import (it runs no module), until imported
        for _ in range(2000):
            if "tiktoken.load" in sys.modules:
                break
            assert importlib.util.find_spec("tiktoken.load") is not None
    else:
        __import__(("tiktoken", "openai_harmony", "tiktoken.load")[i % 4])
    counts.append(count())
def watch():
    start.wait()
    while not done.is_set():
        counts.append(count())
threads = [threading.Thread(target=load, args=(i,)) for i in range(32)]
watcher = threading.Thread(target=watch)
for thread in [*threads, watcher]:
    thread.start()
for thread in threads:
    thread.join(60)
done.set(); watcher.join(60)
print(count(), max(counts), min(counts), {activated})
"""


@pytest.mark.parametrize("broken", [False, True], ids=["intact", "package-unimportable"])
def test_concurrent_first_imports_leave_one_finder_then_none_and_say_a_notice_once(
    harmony_venv: Path, tmp_path: Path, broken: bool
) -> None:
    """32 threads (and a watcher) in each of 12 fresh processes: never two finders, none at the end,
    activated when intact. With the package unimportable (slowly, so that the activations after
    tiktoken.load and after openai_harmony both fail at once), tiktoken works and the notice is said once."""
    activated = (
        "'broken'" if broken else ACTIVATED.replace("sys.modules['tiktoken.load']", "sys.modules.get('tiktoken.load')")
    )
    code = THREADS.format(activated=activated)
    broken_package = tmp_path / "broken" / "tiktoken_encodings_offline" / "__init__.py"
    broken_package.parent.mkdir(parents=True)
    broken_package.write_text("import time\ntime.sleep(0.3)\nraise RuntimeError('damaged on purpose')\n")
    env = {"PYTHONPATH": str(broken_package.parent.parent)} if broken else {}
    for _ in range(12):
        result = offline_python(harmony_venv, code, tmp_path, **env)
        final, most, _least, state = result.stdout.split()
        assert (final, most) == ("0", "1"), result.stdout
        notices = result.stderr.count("tiktoken-encodings-offline: not active")
        if broken:
            assert state == "broken" and notices == 1, result.stderr
        else:
            assert state == "True" and notices == 0, result.stderr
