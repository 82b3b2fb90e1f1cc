"""Issue 28, items 10 and 11: where wheels come from, and what pip installs from a repository
holding a slim and a full wheel.

PEP 440 sorts a local label above the plain version (0.1.0+r > 0.1.0) and lets ``==0.1.0`` match
0.1.0+r: with both wheels in one folder, pip installs the slim one even when asked for 0.1.0. Only
``===`` pins exactly. The README says so; this test holds it to what pip does.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from conftest import build_env
from helpers import ROOT, clean_env, run

NOTICE = (
    "tiktoken-encodings-offline: this is the slim wheel 0.1.0+r: wherever the full 0.1.0 is offered too, pip "
    "installs this one, even for ==0.1.0. Publish it in a repository of its own and pin it with ===0.1.0+r "
    "(the full wheel: ===0.1.0); README: Slim wheels"
)


def resolved(requirement: str, find_links: Path, report: Path) -> str:
    """The version pip would install for ``requirement`` from ``find_links`` alone (nothing installed)."""
    pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    cmd = [*pip, "--dry-run", "--ignore-installed", "--no-deps", "--no-index", "--find-links", str(find_links),
           "--report", str(report), requirement]  # fmt: skip
    run(cmd, env=clean_env())
    (chosen,) = json.loads(report.read_text())["install"]
    return str(chosen["metadata"]["version"])


@pytest.mark.slow
def test_pip_prefers_a_slim_wheel_in_a_shared_folder_and_triple_equals_pins_exactly(
    files_dir: Path, full_wheel: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "one-repository"
    env = build_env(files_dir, TIKTOKEN_ENCODINGS_OFFLINE_ENCODINGS="r50k_base")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        str(ROOT),
        "--no-deps",
        "--no-build-isolation",
        "-v",
        "-w",
        str(folder),
    ]
    result = run(cmd, env=env)
    output = result.stdout + result.stderr
    assert [line.strip() for line in output.splitlines() if "this is the slim wheel" in line] == [NOTICE]
    shutil.copy(full_wheel, folder)
    assert sorted(wheel.name for wheel in folder.iterdir()) == [
        "tiktoken_encodings_offline-0.1.0+r-py3-none-any.whl",
        "tiktoken_encodings_offline-0.1.0-py3-none-any.whl",
    ]
    report = tmp_path / "report.json"
    assert resolved("tiktoken-encodings-offline", folder, report) == "0.1.0+r"
    assert resolved("tiktoken-encodings-offline==0.1.0", folder, report) == "0.1.0+r"
    assert resolved("tiktoken-encodings-offline===0.1.0", folder, report) == "0.1.0"
    assert resolved("tiktoken-encodings-offline===0.1.0+r", folder, report) == "0.1.0+r"


def test_the_docs_tell_one_story_of_where_the_wheel_comes_from() -> None:
    """Item 11: the README says the wheel is not on PyPI and is built by each site; docs/releases.md
    once said a release uploads the wheel to PyPI. Every page must say the same."""
    readme = (ROOT / "README.md").read_text()
    releases = " ".join((ROOT / "docs" / "releases.md").read_text().split())
    assert "It is not on PyPI, and no release publishes a wheel anywhere" in " ".join(readme.split())
    assert "**No wheel is published**, neither on PyPI nor with the release, and nothing goes to PyPI" in releases
    for page in [readme, releases, *((ROOT / "docs").glob("*.md"))]:
        text = " ".join((page if isinstance(page, str) else page.read_text()).split())
        assert "twine upload" not in text or "private index" in text
        assert "uploads the wheel and the sdist to PyPI" not in text and "install the prebuilt wheel and" not in text
