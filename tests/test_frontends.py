"""Issue 5: every common frontend builds the same bytes; the wheel and sdist pass their checkers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import build_env
from helpers import ROOT, run, wheel_members

BIN = Path(sys.executable).parent
FRONTENDS = {
    "pip wheel": [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w"],
    "python -m build --wheel": [sys.executable, "-m", "build", "--wheel", "-o"],
    "python -m build (wheel from the sdist)": [sys.executable, "-m", "build", "-o"],
    "uv build --wheel": [str(BIN / "uv"), "build", "--wheel", "-q", "-o"],
}


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_frontends_build_byte_identical_wheels(
    frontend: str, files_dir: Path, full_wheel: Path, tmp_path: Path
) -> None:
    # Each in its own isolated build environment, so each resolves hatchling for itself.
    run([*FRONTENDS[frontend], str(tmp_path)], env=build_env(files_dir), cwd=ROOT)
    wheel = next(tmp_path.glob("*.whl"))
    assert wheel_members(wheel) == wheel_members(full_wheel)
    assert wheel.read_bytes() == full_wheel.read_bytes()


def test_twine_check_and_check_wheel_contents(files_dir: Path, tmp_path: Path) -> None:
    run([sys.executable, "-m", "build", "-o", str(tmp_path)], env=build_env(files_dir), cwd=ROOT)
    sdist, wheel = next(tmp_path.glob("*.tar.gz")), next(tmp_path.glob("*.whl"))
    twine = run([sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)])
    assert twine.stdout.count("PASSED") == 2
    contents = run([str(BIN / "check-wheel-contents"), str(wheel)], cwd=ROOT)  # reads pyproject.toml
    assert contents.stdout.strip().endswith(": OK")


def test_the_companion_passes_twine_check_and_check_wheel_contents(tmp_path: Path) -> None:
    companion = ROOT / "autostart"
    run([sys.executable, "-m", "build", "-o", str(tmp_path), str(companion)], env=build_env(None))
    sdist, wheel = next(tmp_path.glob("*.tar.gz")), next(tmp_path.glob("*.whl"))
    twine = run([sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)])
    assert twine.stdout.count("PASSED") == 2
    contents = run([str(BIN / "check-wheel-contents"), str(wheel)], cwd=companion)  # its own pyproject.toml
    assert contents.stdout.strip().endswith(": OK")
