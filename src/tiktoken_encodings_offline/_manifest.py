"""The manifest (which blobs each tiktoken encoding needs) and the record of what a wheel carries.

The run-time side only: the build has its own model in ``buildtime/`` (it writes the record),
the runtime reads the record without trusting it (``tiktoken_encodings_offline.read_rows`` and
``_runtime.read_record``). Both read the one manifest, ``manifest.json``.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections import namedtuple
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

UPSTREAM_BASE = "https://openaipublic.blob.core.windows.net/"
MANIFEST_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "manifest.json")


if TYPE_CHECKING:

    class _BlobFields(NamedTuple):
        url: str
        sha256: str
        size: int

    class _ManifestFields(NamedTuple):
        generated_from: str
        blobs: Mapping[str, Blob]  # by URL
        encodings: Mapping[str, tuple[str, ...]]  # encoding name -> blob URLs

    class _RecordFields(NamedTuple):
        encodings: Mapping[str, tuple[Blob, ...]]  # each carried encoding and the blobs it reads

else:
    # The same fields, built without typing.NamedTuple, whose classes take about 0.3 ms each to
    # create: the runtime imports this module inside tiktoken's first get_encoding().
    _BlobFields = namedtuple("_BlobFields", "url sha256 size")
    _ManifestFields = namedtuple("_ManifestFields", "generated_from blobs encodings")
    _RecordFields = namedtuple("_RecordFields", "encodings")


class Blob(_BlobFields):
    """One file tiktoken downloads, identified by its canonical upstream URL."""

    __slots__ = ()

    @property
    def path(self) -> str:
        """The path under the upstream host, e.g. ``encodings/cl100k_base.tiktoken``."""
        return self.url[len(UPSTREAM_BASE) :]

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def cache_name(self) -> str:
        """The name tiktoken (and openai-harmony) cache this blob under."""
        return cache_name(self.url)


def cache_name(url: str) -> str:
    return hashlib.sha1(url.encode()).hexdigest()


class Manifest(_ManifestFields):
    """Every encoding of tiktoken and the blobs it reads."""

    __slots__ = ()

    def encodings_needing(self, url: str) -> list[str]:
        return [name for name, needed in self.encodings.items() if url in needed]


def parse_manifest(document: Mapping[str, Any]) -> Manifest:
    blobs = {b["url"]: Blob(b["url"], b["sha256"], int(b["size"])) for b in document["blobs"]}
    encodings = {name: tuple(urls) for name, urls in document["encodings"].items()}
    for url in blobs:
        if not url.startswith(UPSTREAM_BASE):
            raise ValueError(f"manifest blob {url} is not under {UPSTREAM_BASE}")
    for name, urls in encodings.items():
        unknown = [url for url in urls if url not in blobs]
        if unknown:
            raise ValueError(f"manifest encoding {name} needs blobs that are not listed: {unknown}")
    return Manifest(str(document["generated_from"]), blobs, encodings)


def load_manifest(path: str = MANIFEST_PATH) -> Manifest:
    import json  # not at the top: activation reads only the record

    with open(path, encoding="utf-8") as f:
        return parse_manifest(json.load(f))


def sha256_file(path: str | os.PathLike[str], limit: int) -> str:
    """The SHA-256 of at most ``limit`` bytes of a regular file.

    A device or a FIFO planted under a vendored name would make an unbounded read hang (or block
    at open): it is an OSError here, read like a missing file.
    """
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(f"{path} is not a regular file")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while limit > 0:
            chunk = f.read(min(limit, 1 << 20))
            if not chunk:
                break
            digest.update(chunk)
            limit -= len(chunk)
    return digest.hexdigest()


def read_verified(path: str, sha256: str, fix: str) -> bytes | None:
    """The bytes of ``path`` if they hash to ``sha256``; else None, and one notice naming the file and ``fix``."""
    from . import _notice

    try:
        with open(path, "rb", buffering=0) as f:
            data = f.read()
    except OSError as error:
        _notice(f"cannot read {path} ({error.strerror or error}); {fix}")
        return None
    if hashlib.sha256(data).hexdigest() != sha256:
        _notice(f"{path} is damaged (SHA-256 differs from {sha256}); {fix}")
        return None
    return data


def record_requests(constructor: Callable[[], object]) -> dict[str, str | None]:
    """The URLs and expected hashes one tiktoken encoding constructor asks for; nothing is read.

    ``tiktoken.load.read_file_cached`` is swapped for a recorder that hands back placeholder
    bytes (openai_public imports ``load_tiktoken_bpe`` by name, so that one cannot be patched).
    """
    import tiktoken.load

    requested: dict[str, str | None] = {}

    def recorder(blobpath: str, expected_hash: str | None = None) -> bytes:
        requested[blobpath] = expected_hash
        return b"{}" if blobpath.endswith(".json") else b""

    original = tiktoken.load.read_file_cached
    tiktoken.load.read_file_cached = recorder
    try:
        constructor()
    except Exception:
        # Placeholder bytes are no vocabulary: a constructor may fail once it parses them (gpt2
        # checks its two files against each other). By then its requests are recorded.
        if not requested:
            raise
    finally:
        tiktoken.load.read_file_cached = original
    return requested


# The record: what one wheel carries, written into its data folder by the build hook. It is
# tab-separated so that the package's import can read it with string methods alone.


class Record(_RecordFields):
    """What one data folder carries, read from its vendored.tsv."""

    __slots__ = ()

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return tuple(sorted({blob for blobs in self.encodings.values() for blob in blobs}))
