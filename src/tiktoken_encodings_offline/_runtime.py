"""What runs inside tiktoken: wrappers that serve the vendored files and their pre-parsed ranks.

* ``read_file_cached`` answers from the vendored folder for a URL it carries, when tiktoken's
  ``expected_hash`` (if given) is the manifest's; any other request goes to ``_fallback``.
* The fast path: ``load_tiktoken_bpe`` and ``data_gym_to_mergeable_bpe_ranks`` (and
  ``tiktoken_ext.openai_public``'s copies, while they are tiktoken's) answer only a plain call for
  the URL(s) carried, with the manifest's hashes, from a table whose SHA-256 ``fastpath/derived.tsv``
  records (format: buildtime/tiktoken_encodings_offline_build/fastpath.py); all else is tiktoken's.

This loads inside tiktoken's first ``get_encoding``: one module, functions only (docs/fastpath.md).
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from itertools import chain

from ._files import (
    FIX,
    IN_ARCHIVE,
    PACKAGE_DIR,
    RECORD_LIMIT,
    _env_flag,
    _is_hex,
    _notice,
    damage_or_error,
    read_record,
    read_regular_file,
    read_verified,
)

TYPE_CHECKING = False  # typing's aliases cost import time inside tiktoken's first get_encoding()
if TYPE_CHECKING:
    from typing import Any, Callable

    from ._files import Row

    ReadFileCached = Callable[..., bytes]
    Ranks = dict[bytes, int]
    DerivedRow = tuple[tuple[str, ...], tuple[str, ...], str, str, int, str]
    # A table: the SHA-256 of the blob(s) it was made from, its path, its SHA-256 and its size.
    Table = tuple[tuple[str, ...], str, str, int]
    RanksFor = Callable[[tuple[str, ...], tuple[Any, ...]], Ranks | None]

_MARKER = "__tiktoken_encodings_offline__"
_lock = threading.Lock()
_served = ""  # the folder install() serves: a reload of tiktoken.load installs it again


def _new_lock_in_child() -> None:
    """A forked child has only the forking thread: a lock another thread held would never open."""
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_new_lock_in_child)


def install(folder: str) -> None:
    """Wrap tiktoken's reader so it serves ``folder``, then its loaders (the fast path). Idempotent,
    thread-safe, and it never raises for the fast path: at most one notice, and tiktoken's loaders."""
    global _fastpath_state, _served
    import tiktoken.load

    with _lock:
        if is_installed():
            return
        rows, problem, damaged = read_record(folder)
        if problem:
            _notice(problem)
        unreadable_record = problem if problem and not damaged and not rows else None
        wrapped = _wrap(tiktoken.load.read_file_cached, folder, rows, damaged, unreadable_record)
        tiktoken.load.read_file_cached = wrapped
        _served = folder
        try:
            _fastpath_state = _install_fastpath(rows, FOLDER)
        except Exception as error:
            _fastpath_state = f"off: {type(error).__name__}: {error}"
            _notice(f"fast path off, tiktoken parses its files itself ({type(error).__name__}: {error}); {FIX}")


def _unwrapped_by_a_reload(load: Any) -> bool:
    """Whether ``importlib.reload(tiktoken.load)`` made a new, plain reader since ``install``: it
    is tiktoken's own function (its globals are the module's), not ours. Someone else's reader
    (a test double, a recorder) is theirs to keep."""
    reader = getattr(load, "read_file_cached", None)
    return not getattr(reader, _MARKER, False) and getattr(reader, "__globals__", None) is vars(load)


def is_installed() -> bool:
    import tiktoken.load

    return bool(getattr(getattr(tiktoken.load, "read_file_cached", None), _MARKER, False))


def _wrap(
    original: ReadFileCached, folder: str, rows: list[Row], damaged: dict[str, str], unreadable_record: str | None
) -> ReadFileCached:
    """``damaged``: why each listed URL is not served; ``unreadable_record``: why nothing is."""
    served = {url: (os.path.join(folder, file), sha256, size) for _, file, url, sha256, size in rows}
    carried = list(dict.fromkeys(row[0] for row in rows))

    @functools.wraps(original)
    def read_file_cached(blobpath: str, expected_hash: str | None = None) -> bytes:
        blob = served.get(blobpath)
        if blob is not None and expected_hash in (None, blob[1]):
            path, sha256, size = blob
            data = read_verified(path, sha256, size, FIX)
            if data is not None:
                return data
            damaged.setdefault(blobpath, f"{path} is damaged; {FIX}")
        try:
            from ._fallback import read_unserved
        except (ImportError, OSError) as error:  # not imported until now: the package's files went away
            # meanwhile (zipimport raises OSError for an archive no longer where a relative path said)
            raise RuntimeError(
                f"tiktoken-encodings-offline cannot answer {blobpath}: {error}; the package's files went away: "
                "it was removed or upgraded while this process ran, or it is on sys.path by a relative path "
                "and the working directory changed; restart it (with an absolute path on sys.path)"
            ) from None
        why = damaged.get(blobpath, unreadable_record)
        return read_unserved(original, blobpath, expected_hash, folder, why, carried)

    setattr(read_file_cached, _MARKER, True)
    return read_file_cached


# The fast path: pre-parsed ranks (docs/fastpath.md)

OFF_ENV = "TIKTOKEN_ENCODINGS_OFFLINE_NO_FASTPATH"
FOLDER = os.path.join(PACKAGE_DIR, "fastpath")
DERIVED_NAME = "derived.tsv"
RECORD_COLUMNS = ("source", "source_sha256", "file", "sha256", "size", "format")
FORMAT_VERSION = 1
MAGIC = b"TEOranks"
HEADER_SIZE = 32  # the magic, then six uint32: version, separator, count, body size, exceptions, runs
_FAST_MARKER = "__tiktoken_encodings_offline_fastpath__"

# tiktoken's parameters, 0.7.0 to 0.14.0: (names, defaults) each version may have
LOAD_BPE = "load_tiktoken_bpe"
DATA_GYM = "data_gym_to_mergeable_bpe_ranks"
SIGNATURES: dict[str, tuple[tuple[tuple[str, ...], tuple[Any, ...]], ...]] = {
    LOAD_BPE: ((("tiktoken_bpe_file", "expected_hash"), (None,)),),
    DATA_GYM: (
        (("vocab_bpe_file", "encoder_json_file", "vocab_bpe_hash", "encoder_json_hash"), (None, None)),
        (
            ("vocab_bpe_file", "encoder_json_file", "vocab_bpe_hash", "encoder_json_hash", "clobber_one_byte_tokens"),
            (None, None, False),
        ),
    ),
}
# the parameters naming each loader's source files, and those naming their expected SHA-256, in order
SOURCE_PARAMETERS = {
    LOAD_BPE: (("tiktoken_bpe_file",), ("expected_hash",)),
    DATA_GYM: (("vocab_bpe_file", "encoder_json_file"), ("vocab_bpe_hash", "encoder_json_hash")),
}

_fastpath_state = "not installed: tiktoken has not been imported with this package active"


def status() -> tuple[bool, str]:
    """Whether tiktoken's loaders are the fast path's now, and what was installed or why not."""
    import tiktoken.load

    active = any(getattr(getattr(tiktoken.load, name, None), _FAST_MARKER, False) for name in SIGNATURES)
    return active, _fastpath_state


def _install_fastpath(rows: list[Row], folder: str) -> str:
    import tiktoken.load

    if _env_flag(OFF_ENV):
        return f"off: {OFF_ENV} is set"
    by_source = read_tables(rows, folder)
    if not by_source:
        return f"off: no pre-parsed tables in {folder} (an older installation)"
    ranks_for = _ranks_for(by_source, tiktoken.load, tiktoken.load.read_file_cached, not IN_ARCHIVE)
    public = sys.modules.get("tiktoken_ext.openai_public")
    done, skipped = [], []
    for name in SIGNATURES:
        original = getattr(tiktoken.load, name, None)
        # tiktoken's own function was made by running tiktoken/load.py: its globals are that module's.
        # Anything else (a user's replacement, made before the first get_encoding) is theirs to keep.
        own = getattr(original, "__globals__", None) is vars(tiktoken.load)
        names = _parameters(original, name) if own else None
        if original is None or names is None:
            why = "missing" if original is None else "other parameters" if own else "replaced by someone else"
            skipped.append(f"{name} ({why})")
            continue
        fast = _fast_loader(original, name, names, ranks_for, tiktoken.load)
        setattr(tiktoken.load, name, fast)
        held = getattr(public, name, None)
        if public is not None and (held is original or getattr(held, _FAST_MARKER, False)):  # else: someone else's
            setattr(public, name, fast)
        done.append(name)
    files = sorted({url.rsplit("/", 1)[-1] for source in by_source for url in source})
    state = f"on for {', '.join(files)} via {', '.join(done)}" if done else "off"
    return state + (f"; left as found: {', '.join(skipped)}" if skipped else "")


def tiktokens_own(loader: Any) -> Any:
    """tiktoken's own function behind the fast path's ``loader``; any other ``loader`` itself."""
    return loader.__wrapped__ if getattr(loader, _FAST_MARKER, False) else loader


def _parameters(function: object, name: str) -> tuple[str, ...] | None:
    """The parameter names of tiktoken's loader ``name`` when its signature is one we know, else None."""
    code = getattr(function, "__code__", None)
    if code is None or code.co_kwonlyargcount or code.co_flags & 0x0C:  # *args, **kwargs
        return None
    names = tuple(code.co_varnames[: code.co_argcount])
    known = SIGNATURES.get(name, ())
    return names if (names, getattr(function, "__defaults__", None)) in known else None


def read_tables(rows: list[Row], folder: str) -> dict[tuple[str, ...], Table]:
    """The tables of ``derived.tsv`` whose sources are blobs the record's ``rows`` carry, by source URLs.

    No record: {}. A record that is not exactly this version's is an error.
    """
    carried = {url: sha256 for _, _, url, sha256, _ in rows}
    tables = {}
    for source, shas, path, sha256, size, version in read_derived(folder) or ():
        if version == str(FORMAT_VERSION) and all(carried.get(url) == sha for url, sha in zip(source, shas)):
            tables[source] = (shas, path, sha256, size)
    return tables


def read_derived(folder: str = FOLDER) -> list[DerivedRow] | None:
    """The rows of ``folder``'s derived.tsv: (source URLs, their SHA-256, the table's path, its
    SHA-256, its size, its format). None when there is no such file; ValueError (naming the file)
    when it is not exactly a record of this version. Each SHA-256 is 64 hex digits, and the table's
    name is the first 32 of them + ``.ranks``: no row names a file outside ``folder``."""
    path = os.path.join(folder, DERIVED_NAME)
    try:
        raw = read_regular_file(path, RECORD_LIMIT)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        raise ValueError(damage_or_error(path, error)) from None
    try:
        header, *lines = raw.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    if tuple(header.split("\t")) != RECORD_COLUMNS or lines[-1:] != [""]:
        raise ValueError(f"{path} is not a record of this version")
    rows = []
    for line in lines[:-1]:
        fields = line.split("\t")
        if len(fields) != len(RECORD_COLUMNS) or fields[2] != f"{fields[3][:32]}.ranks" or not fields[4].isdigit():
            raise ValueError(f"{path}: invalid row {line!r}")
        source, shas = tuple(fields[0].split(" ")), tuple(fields[1].split(" "))
        hashes_valid = _is_hex(fields[3], 64) and all(_is_hex(sha, 64) for sha in shas)
        if len(source) != len(shas) or not fields[4].isascii() or not hashes_valid:
            raise ValueError(f"{path}: invalid row {line!r}")
        rows.append((source, shas, os.path.join(folder, fields[2]), fields[3], int(fields[4]), fields[5]))
    return rows


def _bind(names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The arguments of a call by parameter name; None when the call is not a plain one."""
    if len(args) > len(names) or not set(kwargs) <= set(names[len(args) :]):
        return None
    return {**dict(zip(names, args)), **kwargs}


def _ranks_for(by_source: dict[tuple[str, ...], Table], load: Any, reader: ReadFileCached, pre_read: bool) -> RanksFor:
    def ranks_for(source: tuple[str, ...], hashes: tuple[Any, ...]) -> Ranks | None:
        table = by_source.get(source)
        # someone who replaced read_file_cached (a test double, a recorder) wants it called
        if table is None or hashes != table[0] or load.read_file_cached is not reader:
            return None
        # What tiktoken's loader reads first, through the same checks: a damaged blob gives the same
        # notice, strict-mode error or fall-back; bytes that come back have the table's source hash.
        # Not in an archive: inflating a blob only to hash it cost a zipped first load too much (docs/fastpath.md).
        for url, sha256 in zip(source, hashes) if pre_read else ():
            reader(url, sha256)
        return load_table(table)

    return ranks_for


def _fast_loader(
    original: Callable[..., Ranks], name: str, names: tuple[str, ...], ranks_for: RanksFor, load: Any
) -> Any:
    files, hashes = SOURCE_PARAMETERS[name]

    @functools.wraps(original)
    def fast_loader(*args: Any, **kwargs: Any) -> Ranks:
        # tiktoken_ext.openai_public holds this function past a reload of tiktoken.load (autoreload,
        # a test suite), which unwraps the reader: install again, and answer with what it installs.
        if _unwrapped_by_a_reload(load):
            install(_served)
            current: Any = getattr(load, name, None)
            if current is not fast_loader and getattr(current, _FAST_MARKER, False):
                return current(*args, **kwargs)  # type: ignore[no-any-return]
        call = _bind(names, args, kwargs)
        plain = call is not None and call.get("clobber_one_byte_tokens", False) is False
        if call is not None and plain and set(files) <= set(call):
            ranks = ranks_for(tuple(call[f] for f in files), tuple(call.get(h) for h in hashes))
            if ranks is not None:
                return ranks
        return original(*args, **kwargs)

    setattr(fast_loader, _FAST_MARKER, True)
    return fast_loader


def load_table(table: Table) -> Ranks | None:
    """A fresh dict from a verified table; None (and one notice) when it is missing or damaged."""
    _, path, sha256, size = table
    data = read_verified(path, sha256, size, FIX)
    if data is None:
        return None
    try:
        return decode_table(data)
    except (ValueError, IndexError) as error:
        _notice(f"{path} cannot be read ({error}); {FIX}")
        return None


def decode_table(data: bytes) -> Ranks:
    """The dict a version-1 table holds, in its key order (see the build's fastpath.py)."""
    version, separator, count, body_size, exceptions, runs = _uint32s(data, len(MAGIC), 6)
    if data[: len(MAGIC)] != MAGIC or version != FORMAT_VERSION or separator > 255:
        raise ValueError("not a version-1 ranks table")
    offset = HEADER_SIZE + body_size
    tokens = data[HEADER_SIZE:offset].split(bytes([separator])) if count else []
    for _ in range(exceptions):
        index, size = _uint32s(data, offset, 2)
        tokens[index] = data[offset + 8 : offset + 8 + size]
        offset += 8 + size
    pairs = tuple(_uint32s(data, offset, 2 * runs))
    if len(tokens) != count or sum(pairs[1::2]) != count or offset + 8 * runs != len(data):
        raise ValueError(f"its {len(tokens)} tokens, {sum(pairs[1::2])} ranks and header ({count}) disagree")
    runs_of_ranks = (range(first, first + size) for first, size in zip(pairs[::2], pairs[1::2]))
    return dict(zip(tokens, range(count) if pairs == (0, count) else chain.from_iterable(runs_of_ranks)))


def _uint32s(data: bytes, offset: int, count: int) -> list[int]:
    """``count`` little-endian uint32 from ``offset`` (an explicit byte order: right on a big-endian host too)."""
    end = offset + 4 * count
    if end > len(data):
        raise ValueError(f"it ends at byte {len(data)}, before byte {end}")
    return [int.from_bytes(data[start : start + 4], "little") for start in range(offset, end, 4)]
