"""tiktoken's encoding files, shipped in this package for hosts with no internet access.

Nothing to call: tiktoken loads the ``tiktoken_ext`` plugin this package ships before it builds
its first encoding, and the plugin activates the package. Importing it activates it too, for
everything in the process (a direct ``tiktoken.Encoding(...)`` or ``load_tiktoken_bpe`` call):

* ``TIKTOKEN_CACHE_DIR`` (and ``TIKTOKEN_RS_CACHE_DIR``, for openai-harmony) is set to the
  vendored folder when it is unset and the folder is intact, so other tools and child processes
  find the files;
* tiktoken is imported, and ``tiktoken.load.read_file_cached`` is wrapped to answer from the
  vendored files, whatever ``TIKTOKEN_CACHE_DIR`` says, and to pass every other request on as
  plain tiktoken would.

``TIKTOKEN_ENCODINGS_OFFLINE_DISABLE=1`` turns all of it off. A damaged installation never
raises: tiktoken carries on as without the package, with one line on stderr saying what to fix.
The package writes nothing, except where ``export`` is told to. The reading is in ``_files``.
"""

from __future__ import annotations

import os

from ._files import DATA_DIR, DISABLE_ENV, HARMONY_FILES, IN_ARCHIVE, _env_flag, _notice, installation, misnamed_row

TYPE_CHECKING = False  # typing costs more to import than this whole package may take
if TYPE_CHECKING:
    from ._export import ExportError, NoFolderError
    from ._fallback import EncodingNotVendoredError
    from ._files import Row
    from ._verify import VerifyResult

__version__ = "0.1.0"
__all__ = [
    "EncodingNotVendoredError",
    "ExportError",
    "NoFolderError",
    "activate",
    "encodings",
    "export",
    "verify",
    "where",
]

_registered: list[str] = []  # the cache variables this package set in this process (doctor tells them apart)


def where() -> str:
    """The folder holding the vendored files under tiktoken's cache names.

    It is a valid ``TIKTOKEN_CACHE_DIR`` / ``TIKTOKEN_RS_CACHE_DIR``. Treat it as read-only. In a
    zipped install (the wheel file on ``sys.path``) there is no such folder, and nothing is
    extracted: it raises ``NoFolderError``, naming the archive and ``export``, which makes one.
    """
    if IN_ARCHIVE:
        from ._export import NoFolderError

        archive = getattr(__spec__.loader, "archive", None) or os.path.dirname(DATA_DIR)
        raise NoFolderError(
            f"no folder holds the vendored files of a zipped install: they are inside the archive {archive}, "
            "and tiktoken is served from it; for a folder (TIKTOKEN_CACHE_DIR, "
            "TIKTOKEN_RS_CACHE_DIR) run: python -m tiktoken_encodings_offline export DIR "
            "(or call tiktoken_encodings_offline.export(DIR))"
        )
    return DATA_DIR


def encodings() -> list[str]:
    """The names of the encodings this installation carries (none when its record is damaged)."""
    return list(dict.fromkeys(row[0] for row in installation()[0]))


# Classes cost import time (docs/fastpath.md): each is defined where it is raised, imported then.
_LAZY = {"EncodingNotVendoredError": "_fallback", "ExportError": "_export", "NoFolderError": "_export"}

if not TYPE_CHECKING:  # to a type checker the names are the imports above: a typo stays an error

    def __getattr__(name: str) -> type:
        if name in _LAZY:
            from importlib import import_module

            return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)  # type: ignore[no-any-return]
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return [*globals(), *_LAZY]


def verify(load: bool = True) -> VerifyResult:
    """Re-hash every vendored file and, with ``load``, build each carried encoding from them only."""
    from ._verify import verify as _verify

    return _verify(DATA_DIR, load=load)


def export(folder: str | os.PathLike[str], original_names: bool = False) -> str:
    """Copy the vendored files into ``folder`` (created if missing) under tiktoken's cache names, or
    with ``original_names`` the upstream ones; return its absolute path. A file already there with
    the right bytes is kept; each other one is written to a new temporary file in ``folder``,
    verified, then renamed into place. Raises ``ExportError`` naming what is wrong and the fix.
    The same as ``python -m tiktoken_encodings_offline export``, and the only place this package writes.
    """
    from ._export import export as _export

    return _export(os.fspath(folder), original_names)


def activate() -> None:
    """Register the folder, import tiktoken and serve it from the folder. Idempotent, thread-safe.

    It never raises: a damaged install, or a tiktoken whose reader is not where it used to be,
    leaves tiktoken as it is, with one line on stderr (not a warning: ``-W error`` would raise it).
    tiktoken not installed is no notice (``doctor`` and ``verify`` say so): there is nothing to serve.
    """
    try:
        if _env_flag(DISABLE_ENV):
            return
        rows, problem, _ = installation()
        problem = problem or misnamed_row(DATA_DIR, rows)  # what install() finds too: said once
        if problem:
            _notice(problem)
        elif not IN_ARCHIVE:  # a zipped install has no folder: tiktoken is served from the archive
            _register_environment(DATA_DIR, rows)
        try:
            import tiktoken.load  # noqa: F401 - what install() wraps; the user imported us to use it
        except ModuleNotFoundError as error:
            if error.name == "tiktoken":
                return
            raise
        from ._runtime import install

        install(DATA_DIR)
    except Exception as error:
        _notice(f"not active, tiktoken works as without it ({type(error).__name__}: {error})")


def _register_environment(folder: str, rows: list[Row]) -> None:
    """Point tiktoken's and harmony's cache variables at an intact folder, where they are unset."""
    if "TIKTOKEN_CACHE_DIR" not in os.environ and "DATA_GYM_CACHE_DIR" not in os.environ:
        os.environ["TIKTOKEN_CACHE_DIR"] = folder
        _registered.append("TIKTOKEN_CACHE_DIR")
    files = {row[1] for row in rows}
    if "TIKTOKEN_RS_CACHE_DIR" not in os.environ and files.issuperset(HARMONY_FILES):
        os.environ["TIKTOKEN_RS_CACHE_DIR"] = folder
        _registered.append("TIKTOKEN_RS_CACHE_DIR")


activate()
