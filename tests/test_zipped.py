"""A zipped install: the wheel file itself on sys.path (PySpark --py-files, Bazel zips, zipapps).

Nothing imports the package: tiktoken finds the plugin in the zip's ``tiktoken_ext/`` folder, and
every encoding must load with no network. Before CPython 3.14, zipimport sees that namespace
folder only through a directory entry, which the build hook adds. This interpreter is older than
3.12, so the package reads the zip through ``importlib_resources``; ``scripts/matrix.py`` runs
the same check on 3.13 and later, where the standard library's ``importlib.resources`` does.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import build_env
from helpers import build_wheel, clean_env, make_venv, offline, run

PROBE = Path(__file__).with_name("probe_encodings.py")

pytestmark = pytest.mark.slow


def test_every_folder_in_the_wheel_has_its_own_entry(full_wheel: Path) -> None:
    with zipfile.ZipFile(full_wheel) as archive:
        names = archive.namelist()
    folders = {name[: name.rindex("/") + 1] for name in names if "/" in name.rstrip("/")}
    parents = {folder[: index + 1] for folder in folders for index, c in enumerate(folder) if c == "/"}
    missing = sorted(parents - set(names))
    assert missing == [], f"folders with no zip entry (zipimport before 3.14 cannot see them): {missing}"
    assert "tiktoken_ext/" in names


def test_zipped_wheel_serves_every_encoding_offline_with_no_import(
    full_wheel: Path, reference: dict[str, object], tmp_path: Path
) -> None:
    requirements = ["tiktoken"] + (["importlib-resources>=5.10"] if sys.version_info < (3, 12) else [])
    python = make_venv(tmp_path / "venv", *requirements)
    empty_tmp = tmp_path / "tmp"  # tiktoken's default cache lives under the temp folder: keep it empty
    empty_tmp.mkdir()
    env = clean_env(PYTHONPATH=str(full_wheel), TMPDIR=str(empty_tmp))
    installed = run([str(python), "-m", "pip", "list", "--format=freeze"], env=clean_env()).stdout.lower()
    assert "tiktoken-encodings-offline" not in installed and "tiktoken_encodings_offline" not in installed

    result = run(offline([str(python), str(PROBE)]), env=env, check=False)

    assert result.returncode == 0, f"the zipped wheel did not serve the encodings offline:\n{result.stderr[-3000:]}"
    served = json.loads(result.stdout)
    assert served["encodings"] == reference["encodings"]
    assert served["models"] == reference["models"]
    assert list(empty_tmp.iterdir()) == [], "tiktoken wrote a cache: the files came from somewhere else"


def test_a_zipped_slim_wheel_in_strict_mode_names_the_encoding_it_does_not_carry(
    files_dir: Path, tmp_path: Path
) -> None:
    # The message reads the manifest out of the zip (through the module's loader), not from a path.
    wheel, _ = build_wheel(tmp_path / "dist", build_env(files_dir, TIKTOKEN_ENCODINGS_OFFLINE_ENCODINGS="cl100k_base"))
    assert wheel is not None
    env = clean_env(PYTHONPATH=str(wheel), TIKTOKEN_ENCODINGS_OFFLINE_STRICT="1")
    code = "import tiktoken; tiktoken.get_encoding('o200k_harmony')"
    result = run(offline([sys.executable, "-c", code]), env=env, check=False)
    assert result.returncode == 1
    assert "EncodingNotVendoredError: encoding o200k_base / o200k_harmony needs" in result.stderr
    assert "(it carries: cl100k_base)" in result.stderr
