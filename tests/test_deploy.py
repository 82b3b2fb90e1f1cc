"""Issues 13.4-5 and 27: frozen and zipped apps carry the files, the plugins and the activation by themselves.

One small app, whose first call is a direct constructor call, is frozen by PyInstaller (onedir and
--onefile) from the base wheel alone (its run-time hook imports the package), and zipped by shiv and
pex with the companion too (they read its .pth), with no flag about this package. Each result runs
offline with an empty TMPDIR and must print the ids plain tiktoken gives on the real files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from helpers import clean_env, make_venv, offline, run

BIN = Path(sys.executable).parent

APP = """
import json
import tiktoken
import tiktoken_ext.openai_public

TEXT = "Hello, world! 中文分词 🙂 def add(a, b): return a + b <|endoftext|>"


def main():
    # A direct constructor call first: before any get_encoding, tiktoken has loaded no plugin.
    direct = tiktoken.Encoding(**tiktoken_ext.openai_public.cl100k_base())
    print(json.dumps({
        "cl100k_base": direct.encode(TEXT, allowed_special="all"),
        "o200k_base": tiktoken.get_encoding("o200k_base").encode(TEXT, allowed_special="all"),
        "gpt-4o": tiktoken.encoding_for_model("gpt-4o").encode(TEXT, allowed_special="all"),
    }))


if __name__ == "__main__":
    main()
"""

# What tiktoken's PRs #509/#529 (or a user's own hook) would add: a hook for the module "tiktoken",
# here one that knows only tiktoken's own plugin. It outranks any other hook for "tiktoken".
TIKTOKEN_OWN_HOOK = """
hiddenimports = ["tiktoken_ext.openai_public"]
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("app")
    (folder / "app.py").write_text(APP, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def app_reference(app: Path, layouts: dict[str, Path]) -> dict[str, object]:
    """The app run by plain tiktoken (no package) reading the real files, offline."""
    env = clean_env(TIKTOKEN_CACHE_DIR=str(layouts["cache"]))
    out: dict[str, object] = json.loads(run(offline([sys.executable, app / "app.py"]), env=env).stdout)
    return out


def run_offline(cmd: list[str | Path], tmp_path: Path, **env: str) -> dict[str, object]:
    empty_tmp = tmp_path / "empty-tmp"
    empty_tmp.mkdir()
    result = run(offline(cmd), env=clean_env(TMPDIR=str(empty_tmp), **env), cwd=tmp_path)  # type: ignore[arg-type]
    assert list(empty_tmp.iterdir()) == []  # nothing left behind, nothing read from there
    out: dict[str, object] = json.loads(result.stdout)
    return out


@pytest.fixture(scope="module")
def pyinstaller_venv(full_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_venv(tmp_path_factory.mktemp("pyinstaller") / "venv", str(full_wheel), "pyinstaller")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["onedir", "onefile"])
def test_pyinstaller_app_runs_offline_with_nothing_passed(
    pyinstaller_venv: Path, app: Path, app_reference: dict[str, object], tmp_path: Path, mode: str
) -> None:
    pyinstaller = pyinstaller_venv.parent / "pyinstaller"
    cmd = [str(pyinstaller), "--noconfirm", "--log-level", "WARN", "--distpath", str(tmp_path / "dist"),
           "--workpath", str(tmp_path / "build"), "--specpath", str(tmp_path), str(app / "app.py")]  # fmt: skip
    if mode == "onefile":
        cmd.insert(1, "--onefile")
        binary = tmp_path / "dist" / "app"
    else:  # and with a hook for "tiktoken" of tiktoken's or the user's: ours must not replace it or vanish
        hooks = tmp_path / "their-hooks"
        hooks.mkdir()
        (hooks / "hook-tiktoken.py").write_text(TIKTOKEN_OWN_HOOK, encoding="utf-8")
        cmd[1:1] = ["--additional-hooks-dir", str(hooks)]
        binary = tmp_path / "dist" / "app" / "app"
    run(cmd, env=clean_env(), cwd=tmp_path)
    assert run_offline([binary], tmp_path) == app_reference


@pytest.mark.slow
def test_shiv_zipapp_runs_offline(
    full_wheel: Path, companion_wheel: Path, app: Path, app_reference: dict[str, object], tmp_path: Path
) -> None:
    pyz = tmp_path / "app.pyz"
    run([str(BIN / "shiv"), "-q", "-o", str(pyz), "-e", "app:main", "--site-packages", str(app), str(full_wheel),
         str(companion_wheel), "tiktoken"], env=clean_env())  # fmt: skip
    shiv_root = tmp_path / "shiv-root"  # where shiv unpacks the zipapp on its first run
    assert run_offline([sys.executable, pyz], tmp_path, SHIV_ROOT=str(shiv_root)) == app_reference


@pytest.mark.slow
def test_pex_runs_offline(
    full_wheel: Path, companion_wheel: Path, app: Path, app_reference: dict[str, object], tmp_path: Path
) -> None:
    pex = tmp_path / "app.pex"
    pex_root = str(tmp_path / "pex-root")  # pex's cache: ~/.cache/pex by default, left behind
    home = tmp_path / "home"  # stands in for ~, to see that nothing is left there
    home.mkdir()
    run([str(BIN / "pex"), str(full_wheel), str(companion_wheel), "tiktoken", "-D", str(app), "-e", "app:main", "-o",
         str(pex)], env=clean_env(PEX_ROOT=pex_root, HOME=str(home)))  # fmt: skip
    assert run_offline([sys.executable, pex], tmp_path, PEX_ROOT=pex_root) == app_reference
    assert list(home.iterdir()) == []
