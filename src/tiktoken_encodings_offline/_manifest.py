"""The manifest (which blobs each tiktoken encoding needs), for ``verify``, ``doctor`` and messages.

The run-time side only: the build has its own model in ``buildtime/`` (it writes the record),
the runtime reads the record without trusting it (``_files.read_rows`` and
``read_record``). Both read the one manifest, ``manifest.json``. Activation does not
import this module: it works on the record's rows.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from ._files import FIX, PACKAGE_DIR, damage_or_error, read_regular_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, Callable

__all__ = ["Blob", "Manifest", "cache_name", "load_manifest", "manifest_problem", "record_requests", "sha256_file"]

UPSTREAM_BASE = "https://openaipublic.blob.core.windows.net/"
MANIFEST_PATH = os.path.join(PACKAGE_DIR, "manifest.json")
MANIFEST_LIMIT = 1 << 20  # bytes read at most: a whole one is a few kB


@dataclass(frozen=True)
class Blob:
    """One file tiktoken downloads, identified by its canonical upstream URL."""

    url: str
    sha256: str
    size: int

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def cache_name(self) -> str:
        """The name tiktoken (and openai-harmony) cache this blob under."""
        return cache_name(self.url)


def cache_name(url: str) -> str:
    return hashlib.sha1(url.encode()).hexdigest()


class Manifest:
    """Every encoding of tiktoken and the blobs it reads."""

    __slots__ = ("blobs", "encodings", "generated_from")

    def __init__(
        self, generated_from: str, blobs: Mapping[str, Blob], encodings: Mapping[str, tuple[str, ...]]
    ) -> None:
        self.generated_from = generated_from
        self.blobs = blobs  # by URL
        self.encodings = encodings  # encoding name -> blob URLs

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

    # out of the archive in a zipped install, by the member's own name (see _files)
    return parse_manifest(json.loads(read_regular_file(path, MANIFEST_LIMIT)))


def manifest_problem() -> str | None:
    """Why the package's manifest.json cannot be used (with the fix), or None: read as load_manifest
    reads it, so a FIFO there is never waited on."""
    try:
        load_manifest()
    except OSError as error:
        return f"{damage_or_error(MANIFEST_PATH, error)}; {FIX}"
    except (ValueError, KeyError, TypeError, AttributeError) as error:  # not JSON, or not the manifest's shape
        found = f"no {error} entry" if isinstance(error, KeyError) else f"{type(error).__name__}: {error}"
        return f"{MANIFEST_PATH} is damaged ({found}); {FIX}"
    return None


def sha256_file(path: str, limit: int) -> str:
    """The SHA-256 of at most ``limit`` bytes of a regular file; OSError for anything else, which
    is read like a missing file (see ``read_regular_file``: a FIFO or a device never blocks)."""
    return hashlib.sha256(read_regular_file(path, limit)).hexdigest()


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
