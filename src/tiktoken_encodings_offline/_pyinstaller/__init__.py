"""PyInstaller hooks of tiktoken-encodings-offline, found through the ``pyinstaller40`` entry point.

* ``hook-tiktoken.registry.py``: tiktoken finds its encodings by listing the ``tiktoken_ext``
  namespace at run time, which PyInstaller cannot see; collect every module of it (tiktoken's own
  ``openai_public`` and this package's plugin) and this package. It is named after
  ``tiktoken.registry``, not ``tiktoken``, so that a ``hook-tiktoken.py`` from tiktoken itself
  (its PRs #509 and #529 propose one) or from the user runs as well instead of replacing it.
* ``hook-tiktoken_encodings_offline.py``: the vendored files and the record.
* ``rthooks/pyi_rth_encodings_offline.py``: the frozen app reads no ``.pth``; this run-time hook
  imports the package, which activates it, before the app's code runs.
"""

from __future__ import annotations

import os


def get_hook_dirs() -> list[str]:
    return [os.path.dirname(os.path.abspath(__file__))]
