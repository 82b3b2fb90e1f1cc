"""Issue 27.4: doctor says which of the two distributions are installed, and what openai-harmony needs.

The companion (``tiktoken-encodings-offline-autostart``) is faked by its ``.dist-info`` alone in a
``--target`` folder: doctor reads only its metadata (importlib.metadata), and in a ``--target``
folder no start-up line runs anyway. openai-harmony is the real one, from the package index.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from helpers import clean_env, offline, run

BASE, COMPANION = "tiktoken-encodings-offline", "tiktoken-encodings-offline-autostart"


@pytest.fixture
def target(full_wheel: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "target"
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(folder), str(full_wheel)])
    return folder


@pytest.fixture(scope="module")
def harmony(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("harmony") / "site"
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(folder), "openai-harmony"],
        env=clean_env())  # fmt: skip
    return folder


def fake_companion(target: Path, version: str) -> None:
    """What pip leaves for an installed companion at ``version``, its dist-info: a companion of another
    version than the base cannot be built from this checkout."""
    info = target / f"tiktoken_encodings_offline_autostart-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {COMPANION}\nVersion: {version}\n")


def doctor(*paths: Path, **env: str) -> tuple[int, dict[str, object], str]:
    pythonpath = ":".join(map(str, paths))
    command = [sys.executable, "-m", "tiktoken_encodings_offline", "doctor"]
    as_json = run(offline([*command, "--json"]), env=clean_env(PYTHONPATH=pythonpath, **env), check=False)
    text = run(offline(command), env=clean_env(PYTHONPATH=pythonpath, **env), check=False)
    assert as_json.returncode == text.returncode and "Traceback" not in as_json.stderr + text.stderr
    return as_json.returncode, json.loads(as_json.stdout), text.stdout


def test_doctor_names_the_base_alone(target: Path) -> None:
    code, report, text = doctor(target)
    assert code == 0 and report["distributions"] == {BASE: "0.1.0", COMPANION: None}
    assert report["startup_hook"] == "none"
    assert f"{BASE}: 0.1.0\n{COMPANION}: not installed\n" in text
    assert f'start-up line: none, {COMPANION} (pip install "{BASE}[autostart]") is not installed' in text


def test_doctor_names_the_companion_and_a_version_mismatch_is_a_problem(target: Path) -> None:
    fake_companion(target, "0.1.0")
    code, report, text = doctor(target)
    assert code == 0 and report["distributions"] == {BASE: "0.1.0", COMPANION: "0.1.0"}
    assert report["startup_hook"] == "not read"  # a --target folder is no site folder: its line never runs
    assert f"{COMPANION}: 0.1.0\n" in text

    shutil.rmtree(target / "tiktoken_encodings_offline_autostart-0.1.0.dist-info")
    fake_companion(target, "0.0.9")
    code, report, text = doctor(target)
    problem = (
        f'{COMPANION} 0.0.9 requires {BASE} 0.0.9, but 0.1.0 is installed; fix: pip install "{BASE}[autostart]==0.1.0"'
    )
    assert code == 1 and report["problems"] == [problem] and f"problem: {problem}" in text


def test_doctor_notes_both_fixes_for_harmony_with_neither_the_companion_nor_the_variable(
    target: Path, harmony: Path, tmp_path: Path
) -> None:
    data = target / "tiktoken_encodings_offline" / "data"
    note = (
        "openai-harmony {version} reads TIKTOKEN_RS_CACHE_DIR, which a program gets only by importing "
        f"tiktoken_encodings_offline before openai_harmony: {COMPANION} is not installed and you have not set it; "
        f'fix: pip install "{BASE}[autostart]" (it sets it at the first import of openai_harmony), '
        f"or export TIKTOKEN_RS_CACHE_DIR={data}"
    )
    code, report, text = doctor(target, harmony)
    version = report["harmony"]["version"]  # type: ignore[index]
    assert code == 0 and note.format(version=version) in report["notes"]  # type: ignore[operator]
    assert f"note: {note.format(version=version)}" in text
    assert "only where the program imports tiktoken_encodings_offline first" in text

    exported = tmp_path / "exported"  # the variable set by the user, to a folder export made: no note
    run(offline([sys.executable, "-m", "tiktoken_encodings_offline", "export", str(exported)]),
        env=clean_env(PYTHONPATH=str(target)))  # fmt: skip
    code, report, _ = doctor(target, harmony, TIKTOKEN_RS_CACHE_DIR=str(exported))
    assert code == 0 and not any("openai-harmony" in n for n in report["notes"])  # type: ignore[union-attr]
    assert report["harmony"]["ready"] is True  # type: ignore[index]

    fake_companion(target, "0.1.0")  # the companion sets it at the first import of openai_harmony: no note
    code, report, _ = doctor(target, harmony)
    assert code == 0 and not any("openai-harmony" in n for n in report["notes"])  # type: ignore[union-attr]


@pytest.mark.parametrize("companion", [False, True], ids=["alone", "with-companion"])
def test_doctor_notes_the_export_fix_for_harmony_beside_a_zipped_install(
    full_wheel: Path, harmony: Path, tmp_path: Path, companion: bool
) -> None:
    # a zipped install has no folder for TIKTOKEN_RS_CACHE_DIR: neither the import nor the companion sets it
    archive = tmp_path / "teo.zip"
    shutil.copyfile(full_wheel, archive)
    companion_site = tmp_path / "companion"
    companion_site.mkdir()
    if companion:
        fake_companion(companion_site, "0.1.0")
    note = (
        "openai-harmony {version} reads its files only from the folder TIKTOKEN_RS_CACHE_DIR names, "
        "and a zipped install has none: nothing sets it, so harmony downloads (and fails offline); "
        "fix: python -m tiktoken_encodings_offline export DIR, then export TIKTOKEN_RS_CACHE_DIR=DIR"
    )
    code, report, text = doctor(archive, companion_site, harmony)
    version = report["harmony"]["version"]  # type: ignore[index]
    assert report["distributions"][COMPANION] == ("0.1.0" if companion else None)  # type: ignore[index]
    harmony_notes = [n for n in report["notes"] if "openai-harmony" in n]  # type: ignore[union-attr]
    assert code == 0 and harmony_notes == [note.format(version=version)], report
    assert report["harmony"]["ready"] is False and f"note: {note.format(version=version)}" in text  # type: ignore[index]
    assert f"openai-harmony {version}: will download on first use\n" in text
