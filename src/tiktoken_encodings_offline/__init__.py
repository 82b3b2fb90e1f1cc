"""tiktoken's encoding files, shipped in this package for hosts with no internet access.

Nothing to call: tiktoken loads the ``tiktoken_ext`` plugin this package ships before it builds
its first encoding, and the plugin activates the package. Importing it activates it too:

* ``TIKTOKEN_CACHE_DIR`` (and ``TIKTOKEN_RS_CACHE_DIR``, for openai-harmony) is set to the
  vendored folder when it is unset, so other tools and child processes find the files;
* ``tiktoken.load.read_file_cached`` is wrapped to answer from the vendored files, whatever
  ``TIKTOKEN_CACHE_DIR`` says, and to pass every other request on as plain tiktoken would.

``TIKTOKEN_ENCODINGS_OFFLINE_DISABLE=1`` turns all of it off.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing costs more to import than this whole package may take
if TYPE_CHECKING:
    from ._verify import VerifyResult

__version__ = "0.1.0"
__all__ = ["activate", "encodings", "verify", "where"]

DISABLE_ENV = "TIKTOKEN_ENCODINGS_OFFLINE_DISABLE"
STRICT_ENV = "TIKTOKEN_ENCODINGS_OFFLINE_STRICT"
# openai-harmony asks for these two; point it at the vendored folder only if both are here.
HARMONY_ENCODINGS = ("o200k_base", "cl100k_base")

_where: str | None = None
_said: set[str] = set()


def where() -> str:
    """The folder holding the vendored files under tiktoken's cache names.

    It is a valid ``TIKTOKEN_CACHE_DIR`` / ``TIKTOKEN_RS_CACHE_DIR``. Treat it as read-only.
    """
    global _where
    if _where is None:
        here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
        _where = here if os.path.isdir(here) else _extracted_data_dir() or here
    return _where


def _extracted_data_dir() -> str | None:
    """For loaders with no file system path (a zip): a temporary copy, kept for the process."""
    if sys.version_info >= (3, 12):
        from importlib.resources import as_file, files
    else:  # the stdlib's as_file cannot extract a folder before 3.12
        from importlib_resources import as_file, files  # type: ignore[import-not-found,unused-ignore]
    import atexit
    import contextlib

    try:
        data = files(__name__) / "data"
        if not data.is_dir():
            return None
    except (ModuleNotFoundError, OSError):
        return None
    stack = contextlib.ExitStack()
    atexit.register(stack.close)
    return str(stack.enter_context(as_file(data)))


def encodings() -> list[str]:
    """The names of the encodings this installation carries."""
    # The first column of the record (see _manifest.read_record), read without importing
    # anything: this runs on every import of the package.
    try:
        with open(os.path.join(where(), "vendored.tsv"), encoding="utf-8") as f:
            rows = f.read().splitlines()[1:]
    except OSError:
        return []
    return list(dict.fromkeys(row.split("\t", 1)[0] for row in rows))


def verify(load: bool = True) -> VerifyResult:
    """Re-hash every vendored file and, with ``load``, build each carried encoding from them only."""
    from ._verify import verify as _verify

    return _verify(where(), load=load)


def _env_flag(name: str) -> bool:
    """Whether a switch of ours is on: unset, "", 0, false, no and off mean off."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def activate() -> None:
    """Register the folder and, once tiktoken is imported, serve from it. Idempotent, thread-safe.

    It never raises: a damaged install, or a tiktoken whose reader is not where it used to be,
    leaves tiktoken as it is, with one line on stderr (not a warning: ``-W error`` would raise it).
    """
    if _env_flag(DISABLE_ENV):
        return
    _register_environment()
    if "tiktoken.load" in sys.modules or "tiktoken" in sys.modules:
        try:
            from ._runtime import install

            install(where())
        except Exception as error:
            _notice(f"not active, tiktoken works as without it ({type(error).__name__}: {error})")


def _notice(message: str) -> None:
    """Say something once per process, on stderr: a warning could become an error under -W error."""
    if message in _said:
        return
    _said.add(message)
    try:  # noqa: SIM105 - contextlib costs import time
        sys.stderr.write(f"tiktoken-encodings-offline: {message}\n")
    except Exception:  # noqa: S110 - stderr itself may be gone; never raise from here
        pass


def _register_environment() -> None:
    carried = encodings()
    if not carried:
        return
    folder = where()
    if "TIKTOKEN_CACHE_DIR" not in os.environ and "DATA_GYM_CACHE_DIR" not in os.environ:
        os.environ["TIKTOKEN_CACHE_DIR"] = folder
    if "TIKTOKEN_RS_CACHE_DIR" not in os.environ and set(HARMONY_ENCODINGS) <= set(carried):
        os.environ["TIKTOKEN_RS_CACHE_DIR"] = folder


activate()
