"""The vendored files of a package imported from a zip (a zipapp, a frozen app's archive)."""

from __future__ import annotations

import sys


def extracted_data_dir(package: str, origin: str | None) -> tuple[str | None, str | None]:
    """A temporary copy of ``package``'s data folder, kept for the process, or None and what is
    wrong (None: there is no such folder). Any loader, any failure: never raises."""
    try:
        if sys.version_info >= (3, 12):
            from importlib.resources import as_file, files
        else:  # the stdlib's as_file cannot extract a folder before 3.12
            from importlib_resources import as_file, files  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None, (
            "installed as a zip, its files need importlib-resources to be read on Python < 3.12; "
            "fix: pip install importlib-resources"
        )
    import atexit
    import contextlib

    try:
        data = files(package) / "data"
        if not data.is_dir():
            return None, None
        stack = contextlib.ExitStack()
        atexit.register(stack.close)
        return str(stack.enter_context(as_file(data))), None
    except Exception as error:
        return None, f"cannot extract its files from {origin} ({type(error).__name__}: {error})"
