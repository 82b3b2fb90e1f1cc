"""ruff (lint, format, Python 3.9 syntax via target-version) and mypy run with the tests."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

from helpers import ROOT, run


def test_ruff_lint_and_format() -> None:
    run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT)
    run([sys.executable, "-m", "ruff", "format", "--check", "."], cwd=ROOT)


def test_mypy() -> None:
    result = run([sys.executable, "-m", "mypy"], cwd=ROOT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_plugin_parses_on_python_3_9() -> None:
    # tiktoken imports the plugin on every Python it supports; compile it as 3.9 would.
    source = (ROOT / "src" / "tiktoken_ext" / "tiktoken_encodings_offline.py").read_text()
    ast.parse(source, "tiktoken_encodings_offline.py", feature_version=(3, 9))


def test_a_type_checker_sees_the_public_names_only(tmp_path: Path) -> None:
    # The package answers EncodingNotVendoredError lazily (a module __getattr__); to mypy that must
    # not make every other name valid too.
    user = tmp_path / "user.py"
    user.write_text(
        "import tiktoken_encodings_offline as t\n"
        "error: type[t.EncodingNotVendoredError] = t.EncodingNotVendoredError\n"
        "t.activte()\n"
    )
    command = [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(user)]
    result = run(
        command,
        cwd=tmp_path,
        env={**os.environ, "MYPYPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'autostart'}"},
        check=False,
    )
    assert result.returncode == 1, result.stdout
    assert 'user.py:3: error: Module has no attribute "activte"' in result.stdout
    assert "Found 1 error in 1 file" in result.stdout
