"""ruff (lint, format, Python 3.9 syntax via target-version) and mypy run with the tests."""

from __future__ import annotations

import ast
import sys

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
