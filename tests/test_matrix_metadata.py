"""What the package says it supports is what CI runs (scripts/matrix.py's INTERPRETERS), and the matrix's roots."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from helpers import ROOT, clean_env, run

sys.path.insert(0, str(ROOT / "scripts"))
from matrix import FREE_THREADING_CLASSIFIER, INTERPRETERS, readme_tested_on_line

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

VERSION_CLASSIFIER = re.compile(r"Programming Language :: Python :: (3\.\d+)$")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
README = (ROOT / "README.md").read_text(encoding="utf-8")
MATRIX_VERSIONS = [interpreter.version for interpreter in INTERPRETERS if not interpreter.free_threaded]
FREE_THREADED_VERSIONS = [interpreter.version for interpreter in INTERPRETERS if interpreter.free_threaded]


def test_classifiers_name_exactly_the_interpreters_ci_runs() -> None:
    classifiers = PYPROJECT["project"]["classifiers"]
    listed = [match.group(1) for match in map(VERSION_CLASSIFIER.match, classifiers) if match]
    assert listed == MATRIX_VERSIONS
    # a free-threaded row (3.13t) is a build of a version the list names, and the classifier says it is tested
    assert {version.removesuffix("t") for version in FREE_THREADED_VERSIONS} <= set(MATRIX_VERSIONS)
    free_threading = [c for c in classifiers if c.startswith("Programming Language :: Python :: Free Threading")]
    assert free_threading == ([FREE_THREADING_CLASSIFIER] if FREE_THREADED_VERSIONS else [])


def test_requires_python_starts_at_the_oldest_interpreter_ci_runs() -> None:
    assert PYPROJECT["project"]["requires-python"] == f">={MATRIX_VERSIONS[0]}"


def test_readme_tested_on_line_is_the_matrix() -> None:
    expected = readme_tested_on_line()
    assert expected in README.splitlines() or f"- {expected}" in README.splitlines(), (
        f"README.md needs this line, generated from scripts/matrix.py INTERPRETERS:\n{expected}"
    )
    assert "checked by hand" not in README, "CI runs every interpreter now: drop the 'checked by hand' note"


def test_ci_runs_the_matrix() -> None:
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert any(line.split()[:2] == ["python", "scripts/matrix.py"] for line in ci_lines if line.strip())


# The roots' cache: built when missing, reused while fresh, rebuilt when stale, and a root that
# cannot be built fails the matrix with a clear message (a fake debootstrap stands in for Debian).
FAKE_DEBOOTSTRAP = """#!/bin/sh
echo "$@" >> "$CALLS"
[ -z "$FAIL" ] || { echo "E: Couldn't find these debs: python3.9-venv"; exit 1; }
mkdir -p "$4"
"""


def fake_debootstrap(tmp_path: Path, fail: bool = False) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "debootstrap"
    script.write_text(FAKE_DEBOOTSTRAP)
    script.chmod(0o755)
    return clean_env(
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        CALLS=str(tmp_path / "calls"),
        FAIL="1" if fail else "",
        TIKTOKEN_ENCODINGS_OFFLINE_MATRIX_CACHE=str(tmp_path / "roots"),
    )


def build_root(env: dict[str, str], packages: str = "python3.9 ca-certificates") -> subprocess.CompletedProcess[str]:
    return run([sys.executable, str(ROOT / "scripts" / "debian_root.py"), "bullseye", *packages.split()], env=env,
               check=False)  # fmt: skip


def test_a_root_is_built_once_then_reused_and_rebuilt_when_its_packages_change(tmp_path: Path) -> None:
    env = fake_debootstrap(tmp_path)
    assert build_root(env).returncode == 0
    assert build_root(env).returncode == 0
    assert len((tmp_path / "calls").read_text().splitlines()) == 1, "a fresh root was built again"
    assert build_root(env, "python3.9 python3.9-venv ca-certificates").returncode == 0
    calls = (tmp_path / "calls").read_text().splitlines()
    assert len(calls) == 2 and "--include=python3.9,python3.9-venv,ca-certificates" in calls[1]
    assert (tmp_path / "roots" / "bullseye").is_dir()


def test_a_root_older_than_30_days_is_rebuilt(tmp_path: Path) -> None:
    env = fake_debootstrap(tmp_path)
    assert build_root(env).returncode == 0
    stamp = tmp_path / "roots" / "bullseye" / "tiktoken-encodings-offline-root.json"
    old = time.time() - 31 * 86400
    os.utime(stamp, (old, old))
    assert build_root(env).returncode == 0
    assert len((tmp_path / "calls").read_text().splitlines()) == 2, "a root 31 days old was reused"


def test_a_root_that_cannot_be_built_fails_the_matrix_naming_it(tmp_path: Path) -> None:
    env = fake_debootstrap(tmp_path, fail=True)
    result = run([sys.executable, str(ROOT / "scripts" / "matrix.py"), "--only", "3.9"], env=env, check=False)
    assert result.returncode == 1
    assert "matrix: cannot build the bullseye root (debootstrap exit 1)" in result.stderr
    assert "Couldn't find these debs: python3.9-venv" in result.stderr
    assert "Traceback" not in result.stderr and "passed" not in result.stdout
    assert not (tmp_path / "roots" / "bullseye").exists()
