"""Check an installation: every vendored file intact, every carried encoding built from them alone."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib.metadata import version

from ._manifest import read_record, sha256_file

SAMPLE = "hello world 你好 안녕하세요 🙂 def f(x):\n    return x  \t\n"


@dataclass(frozen=True)
class FileCheck:
    file: str
    url: str
    size: int
    expected_sha256: str
    actual_sha256: str | None  # None: missing or unreadable

    @property
    def ok(self) -> bool:
        return self.actual_sha256 == self.expected_sha256


@dataclass(frozen=True)
class EncodingCheck:
    name: str
    error: str | None  # None: built from the vendored files and round-tripped a sample
    skipped: str | None = None  # why it was not built, e.g. the installed tiktoken predates it

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class VerifyResult:
    folder: str
    files: tuple[FileCheck, ...]
    encodings: tuple[EncodingCheck, ...] = field(default=())
    problem: str | None = None  # an installation-wide problem, e.g. no record

    @property
    def ok(self) -> bool:
        return self.problem is None and all(c.ok for c in self.files) and all(c.ok for c in self.encodings)


def check_files(folder: str) -> tuple[tuple[FileCheck, ...], str | None]:
    try:
        record = read_record(folder)
    except ValueError as error:
        return (), str(error)
    if record is None:
        return (), f"{folder} holds no vendored files (no {os.path.join(folder, 'vendored.tsv')})"
    checks = []
    for blob in record.blobs:
        try:
            actual: str | None = sha256_file(os.path.join(folder, blob.cache_name))
        except OSError:
            actual = None
        checks.append(FileCheck(blob.cache_name, blob.url, blob.size, blob.sha256, actual))
    return tuple(checks), None


def verify(folder: str, load: bool = True) -> VerifyResult:
    files, problem = check_files(folder)
    if problem or not load:
        return VerifyResult(folder, files, (), problem)
    record = read_record(folder)
    assert record is not None
    return VerifyResult(folder, files, tuple(_load(name, folder) for name in record.encodings))


def _load(name: str, folder: str) -> EncodingCheck:
    """Build one encoding afresh with the network blocked and only the vendored files allowed."""
    import tiktoken
    import tiktoken.load
    import tiktoken.registry

    from ._runtime import install, serving_only_vendored

    install(folder)
    tiktoken.registry.list_encoding_names()  # loads the plugins
    constructor = (tiktoken.registry.ENCODING_CONSTRUCTORS or {}).get(name)
    if constructor is None:  # o200k_harmony on tiktoken < 0.10: its files are checked above
        return EncodingCheck(name, None, f"tiktoken {version('tiktoken')} has no such encoding")

    def no_network(blobpath: str) -> bytes:
        raise RuntimeError(f"verify blocks network access, and {blobpath} was asked for")

    real_read_file = tiktoken.load.read_file
    tiktoken.load.read_file = no_network
    try:
        with serving_only_vendored():
            encoding = tiktoken.Encoding(**constructor())
        tokens = encoding.encode(SAMPLE)
        if encoding.decode(tokens) != SAMPLE:
            return EncodingCheck(name, "a sample text did not decode back to itself")
    except Exception as error:
        return EncodingCheck(name, f"{type(error).__name__}: {error}")
    finally:
        tiktoken.load.read_file = real_read_file
    return EncodingCheck(name, None)
