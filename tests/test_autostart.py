"""Issue 27: two distributions at one version. The base wheel runs nothing at start-up; the companion,
tiktoken-encodings-offline-autostart (autostart/), holds the start-up line; one command builds both.

Every run of a venv is offline (a network namespace with no network), with no variable of ours or
tiktoken's set, and an empty TMPDIR, so tiktoken's default cache cannot help.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from conftest import PROBE, build_env
from helpers import ROOT, build_wheel, clean_env, copy_project, make_venv, offline, run

if sys.version_info >= (3, 11):
    import tomllib
else:  # hatchling depends on tomli there
    import tomli as tomllib

BASE, COMPANION = "tiktoken-encodings-offline", "tiktoken-encodings-offline-autostart"
BASE_GONE = (
    "tiktoken-encodings-offline-autostart: nothing to activate: tiktoken-encodings-offline is not installed, "
    "tiktoken works as without it; fix: pip install tiktoken-encodings-offline, or pip uninstall "
    "tiktoken-encodings-offline-autostart\n"
)
MODULES = "import json, sys; print(json.dumps(sorted(sys.modules)))"


def offline_python(python: Path | str, code: str, tmp_path: Path, *flags: str, check: bool = True, **env: str):  # type: ignore[no-untyped-def]
    empty_tmp = tmp_path / "empty-tmp"
    empty_tmp.mkdir(exist_ok=True)
    return run(offline([python, *flags, "-c", code]), env=clean_env(TMPDIR=str(empty_tmp), **env), check=check)


def site_packages(python: Path) -> Path:
    return Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())


def test_one_version_everywhere() -> None:
    """The companion's version, its pin on the base, the base's version and its [autostart] pin agree."""
    init = (ROOT / "src" / "tiktoken_encodings_offline" / "__init__.py").read_text(encoding="utf-8")
    found = re.search(r'^__version__ = "(.+)"$', init, re.M)
    assert found, "no __version__ in the package's __init__.py"
    version = found.group(1)
    base = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    companion = tomllib.loads((ROOT / "autostart" / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert base["optional-dependencies"] == {"autostart": [f"{COMPANION}=={version}"]}
    assert (companion["name"], companion["version"]) == (COMPANION, version)
    assert companion["dependencies"] == [f"{BASE}=={version}"]
    assert companion["requires-python"] == base["requires-python"]


def test_the_base_alone_imports_nothing_of_ours_at_start_up_and_serves_get_encoding(
    runtime_venv: Path, reference: dict[str, object], tmp_path: Path
) -> None:
    """The base wheel alone: start-up imports exactly what a venv without it imports, and tiktoken's
    plugin serves every encoding offline with no import."""
    plain = make_venv(tmp_path / "plain")  # the same Python, pip and setuptools, no package of ours
    with_base = json.loads(offline_python(runtime_venv, MODULES, tmp_path).stdout)
    without = json.loads(offline_python(plain, MODULES, tmp_path).stdout)
    assert with_base == without

    def start_up_files(python: Path) -> list[str]:
        return sorted(path.name for path in site_packages(python).iterdir() if path.suffix in (".pth", ".start"))

    assert start_up_files(runtime_venv) == start_up_files(plain)  # setuptools' distutils-precedence.pth
    probe = run(offline([runtime_venv, PROBE]), env=clean_env(TMPDIR=str(tmp_path / "empty-tmp")))
    assert json.loads(probe.stdout) == reference


@pytest.fixture
def companion_left(full_wheel: Path, companion_wheel: Path, tmp_path: Path) -> Path:
    """A venv that held both, after `pip uninstall tiktoken-encodings-offline` (pip keeps the companion)."""
    python = make_venv(tmp_path / "venv", str(full_wheel), str(companion_wheel))
    run([str(python), "-m", "pip", "uninstall", "-y", "-q", BASE], env=clean_env())
    listed = run([str(python), "-m", "pip", "list", "--format", "json"], env=clean_env()).stdout
    installed = {entry["name"]: entry["version"] for entry in json.loads(listed)}
    assert COMPANION in installed and BASE not in installed
    assert (site_packages(python) / "tiktoken_encodings_offline_autostart.pth").is_file()
    return python


GET_ENCODING = "tiktoken.get_encoding('cl100k_base')"
DIRECT = "tiktoken.Encoding(**tiktoken_ext.openai_public.o200k_base())"


@pytest.mark.parametrize("first", [GET_ENCODING, DIRECT], ids=["get_encoding-first", "direct-first"])
def test_the_companion_left_alone_starts_silently_and_says_once_what_to_do(
    companion_left: Path, tmp_path: Path, first: str
) -> None:
    started = offline_python(companion_left, "pass", tmp_path, "-W", "error")
    assert (started.returncode, started.stdout, started.stderr) == (0, "", "")
    second = DIRECT if first == GET_ENCODING else GET_ENCODING
    code = (
        "import tiktoken, tiktoken_ext.openai_public\n"
        f"for call in ({first!r}, {second!r}):\n"
        "    try:\n"
        "        eval(call)\n"
        "    except Exception as error:\n"
        "        print(type(error).__name__)\n"
        "import sys; print('tiktoken_encodings_offline' in sys.modules)"
    )
    result = offline_python(companion_left, code, tmp_path, "-W", "error")
    assert result.stdout.split() == ["ConnectionError", "ConnectionError", "False"]  # plain tiktoken, offline
    assert result.stderr == BASE_GONE


@pytest.mark.parametrize("disabled", [False, True], ids=["on", "switched-off"])
def test_the_switch_silences_a_late_start_up_line_too(companion_left: Path, tmp_path: Path, disabled: bool) -> None:
    """Issue 28, item 12: the .pth read late (site.addsitedir by hand after tiktoken.load is imported)
    activates at once, unless TIKTOKEN_ENCODINGS_OFFLINE_DISABLE is on: then nothing is tried, and
    nothing is said."""
    site = str(site_packages(companion_left))
    code = f"import site, sys; sys.path.append({site!r}); import tiktoken.load; site.addsitedir({site!r})"
    switch = {"TIKTOKEN_ENCODINGS_OFFLINE_DISABLE": "1"} if disabled else {}
    result = offline_python(companion_left, code, tmp_path, "-S", **switch)
    assert result.stderr == ("" if disabled else BASE_GONE)


def test_the_extra_installs_the_companion_at_the_base_version(
    full_wheel: Path, companion_wheel: Path, reference: dict[str, object], tmp_path: Path
) -> None:
    """`pip install "tiktoken-encodings-offline[autostart]"` from a folder holding both wheels (as one
    index would), offline: both at one version, and a direct constructor call is served with no import."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for wheel in (full_wheel, companion_wheel):
        (wheels / wheel.name).write_bytes(wheel.read_bytes())
    python = make_venv(tmp_path / "venv", "tiktoken")
    install = [python, "-m", "pip", "install", "-q", "--no-index", "--find-links", wheels, f"{BASE}[autostart]"]
    run(offline(install), env=clean_env())
    versions = f"from importlib.metadata import version as v; print(v({BASE!r}), v({COMPANION!r}))"
    assert run([str(python), "-c", versions], env=clean_env()).stdout.split() == ["0.1.0", "0.1.0"]
    code = (
        f"import sys; sys.path.insert(0, {str(PROBE.parent)!r})\n"
        "from probe_encodings import MIXED_TEXT\n"
        "import tiktoken, tiktoken_ext.openai_public as p\n"
        "print(tiktoken.Encoding(**p.o200k_base()).encode(MIXED_TEXT, allowed_special='all'))"
    )
    served = offline_python(python, code, tmp_path).stdout
    assert json.loads(served) == reference["encodings"]["o200k_base"]  # type: ignore[index]


def readme_build_command() -> str:
    """Step 1 of the README's "Getting it": the one command that builds both wheels."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"# 1\. build, on a host that can fetch the files, in a checkout\n(.+)\n", readme)
    assert found, "README.md has no step 1 under Getting it"
    return found.group(1)


def test_one_command_builds_both_wheels_byte_for_byte(
    files_dir: Path, full_wheel: Path, companion_wheel: Path, tmp_path: Path
) -> None:
    """README "Getting it", step 1, in a fresh checkout (isolated builds, each with its own hatchling):
    the same bytes as the wheels built apart, so each rebuild is reproducible."""
    command = readme_build_command()
    assert command == "python -m pip wheel . ./autostart --no-deps -w dist"
    project = copy_project(tmp_path / "project")
    env = build_env(files_dir, PATH=f"{Path(sys.executable).parent}:{clean_env()['PATH']}")
    run(["bash", "-euo", "pipefail", "-c", command], env=env, cwd=project)
    built = {path.name: path.read_bytes() for path in (project / "dist").iterdir()}
    assert built == {full_wheel.name: full_wheel.read_bytes(), companion_wheel.name: companion_wheel.read_bytes()}


@pytest.mark.parametrize("where", ["environment", "table"])
def test_the_removed_startup_hook_option_fails_the_build_saying_what_to_do(
    files_dir: Path, tmp_path: Path, where: str
) -> None:
    """A build that still sets startup-hook (either value) fails at once, naming the setting and the companion."""
    project = copy_project(tmp_path / "project")
    env = build_env(files_dir)
    if where == "environment":
        env["TIKTOKEN_ENCODINGS_OFFLINE_STARTUP_HOOK"] = "0"
        named = "TIKTOKEN_ENCODINGS_OFFLINE_STARTUP_HOOK"
    else:
        pyproject = project / "pyproject.toml"
        table = "[tool.hatch.build.targets.wheel.hooks.custom]\n"
        pyproject.write_text(pyproject.read_text().replace(table, table + "startup-hook = true\n"))
        named = "pyproject.toml key 'startup-hook'"
    wheel, result = build_wheel(tmp_path / "dist", env, project=project, check=False)
    assert wheel is None and result.returncode != 0
    output = result.stdout + result.stderr
    assert f"{named} is no longer an option: the wheel never has a start-up file now" in output
    assert 'pip install "tiktoken-encodings-offline[autostart]"' in output and "Fix: remove the setting" in output
