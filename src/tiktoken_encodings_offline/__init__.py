"""tiktoken's encoding files, shipped in this package for hosts with no internet access.

Nothing to call: tiktoken loads the ``tiktoken_ext`` plugin this package ships before it builds
its first encoding, and the plugin activates the package. Importing it activates it too:

* ``TIKTOKEN_CACHE_DIR`` (and ``TIKTOKEN_RS_CACHE_DIR``, for openai-harmony) is set to the
  vendored folder when it is unset and the folder is intact, so other tools and child processes
  find the files;
* ``tiktoken.load.read_file_cached`` is wrapped to answer from the vendored files, whatever
  ``TIKTOKEN_CACHE_DIR`` says, and to pass every other request on as plain tiktoken would.

``TIKTOKEN_ENCODINGS_OFFLINE_DISABLE=1`` turns all of it off. A damaged installation never
raises: tiktoken carries on as without the package, with one line on stderr saying what to fix.
The reading is in ``_files``; a zipped install's folder, made only when asked for, in ``_zipped``.
"""

from __future__ import annotations

import os
import sys

from ._files import DATA_DIR, DISABLE_ENV, HARMONY_FILES, IN_ARCHIVE, _env_flag, _notice, installation

TYPE_CHECKING = False  # typing costs more to import than this whole package may take
if TYPE_CHECKING:
    from ._fallback import EncodingNotVendoredError
    from ._files import Row
    from ._verify import VerifyResult

__version__ = "0.1.0"
__all__ = ["EncodingNotVendoredError", "activate", "encodings", "verify", "where"]

_where: tuple[str, str | None] | None = None


def where() -> str:
    """The folder holding the vendored files under tiktoken's cache names.

    It is a valid ``TIKTOKEN_CACHE_DIR`` / ``TIKTOKEN_RS_CACHE_DIR``. Treat it as read-only. In a
    zipped install it is a checked copy made once per user (see ``_zipped``), which this call
    registers as those variables where unset; when no safe place for it exists, a notice says so
    and this is the path inside the archive.
    """
    return _where_and_problem()[0]


def _where_and_problem() -> tuple[str, str | None]:
    global _where
    if _where is None:
        if IN_ARCHIVE:
            from ._zipped import user_folder

            folder, problem = user_folder()
            if problem:
                _notice(problem)
            elif folder and not _env_flag(DISABLE_ENV):
                _register_environment(folder, installation()[0])
            _where = folder or DATA_DIR, problem
        else:
            _where = DATA_DIR, None
    return _where


def encodings() -> list[str]:
    """The names of the encodings this installation carries (none when its record is damaged)."""
    return list(dict.fromkeys(row[0] for row in installation()[0]))


if not TYPE_CHECKING:  # to a type checker the name is the import above: a typo stays an error

    def __getattr__(name: str) -> type:
        # Defined where it is raised, in a module a load served from the wheel never imports.
        if name == "EncodingNotVendoredError":
            from ._fallback import EncodingNotVendoredError

            return EncodingNotVendoredError
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return [*globals(), "EncodingNotVendoredError"]


def verify(load: bool = True) -> VerifyResult:
    """Re-hash every vendored file and, with ``load``, build each carried encoding from them only."""
    from ._verify import verify as _verify

    return _verify(DATA_DIR, load=load)


def activate() -> None:
    """Register the folder and, once tiktoken is imported, serve from it. Idempotent, thread-safe.

    It never raises: a damaged install, or a tiktoken whose reader is not where it used to be,
    leaves tiktoken as it is, with one line on stderr (not a warning: ``-W error`` would raise it).
    """
    try:
        if _env_flag(DISABLE_ENV):
            return
        rows, problem, _ = installation()
        if problem:
            _notice(problem)
        elif not IN_ARCHIVE:  # a zipped install has no folder until where() makes one
            _register_environment(DATA_DIR, rows)
        if "tiktoken.load" in sys.modules or "tiktoken" in sys.modules:
            from ._runtime import install

            install(DATA_DIR)
        elif IN_ARCHIVE:
            _watch_for_tiktoken()
    except Exception as error:
        _notice(f"not active, tiktoken works as without it ({type(error).__name__}: {error})")


def _watch_for_tiktoken() -> None:
    """No .pth is read from an archive, and no folder is registered: the start-up hook's finder
    (in the archive too) then activates at the first import of ``tiktoken.load``, so that a direct
    ``tiktoken.load`` call made after ``import tiktoken_encodings_offline`` is served."""
    try:  # noqa: SIM105 - contextlib costs import time
        import _tiktoken_encodings_offline_startup  # noqa: F401 - importing it installs the finder
    except ImportError:  # a wheel built with startup-hook = false: get_encoding still activates
        pass


def _register_environment(folder: str, rows: list[Row]) -> None:
    """Point tiktoken's and harmony's cache variables at an intact folder, where they are unset."""
    if "TIKTOKEN_CACHE_DIR" not in os.environ and "DATA_GYM_CACHE_DIR" not in os.environ:
        os.environ["TIKTOKEN_CACHE_DIR"] = folder
    files = {row[1] for row in rows}
    if "TIKTOKEN_RS_CACHE_DIR" not in os.environ and files.issuperset(HARMONY_FILES):
        os.environ["TIKTOKEN_RS_CACHE_DIR"] = folder


activate()
