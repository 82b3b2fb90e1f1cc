"""The project's standard-library modules, loaded by file for the scripts and the tests.

Importing the package would activate it (and needs it installed), so ``_manifest.py`` and
``_fetch.py`` are loaded by path, as the build hook does.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_SRC = ROOT / "src" / "tiktoken_encodings_offline"


def load_by_path(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


manifest_module = load_by_path("_tiktoken_encodings_offline_manifest", PACKAGE_SRC / "_manifest.py")
fetch_module = load_by_path("_tiktoken_encodings_offline_fetch", PACKAGE_SRC / "_fetch.py")
