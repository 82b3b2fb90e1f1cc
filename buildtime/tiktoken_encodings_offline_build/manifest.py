"""The manifest (which blobs each tiktoken encoding reads) and the record a wheel carries.

The build's own model of ``src/tiktoken_encodings_offline/manifest.json``; the runtime reads the
record with its own, smaller code. The record format is a contract with the runtime: one header
``encoding file url sha256 size`` and one tab-separated row per (encoding, blob).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

UPSTREAM_BASE = "https://openaipublic.blob.core.windows.net/"
PACKAGE_SRC = Path(__file__).resolve().parent.parent.parent / "src" / "tiktoken_encodings_offline"
MANIFEST_PATH = PACKAGE_SRC / "manifest.json"
DATA_DIR_NAME = "data"
RECORD_NAME = "vendored.tsv"
RECORD_COLUMNS = ("encoding", "file", "url", "sha256", "size")


def cache_name(url: str) -> str:
    """The name tiktoken (and openai-harmony) cache a URL's file under."""
    return hashlib.sha1(url.encode()).hexdigest()


@dataclass(frozen=True, order=True)
class Blob:
    """One file tiktoken downloads, identified by its canonical upstream URL."""

    url: str
    sha256: str
    size: int

    @property
    def path(self) -> str:
        """The path under the upstream host, e.g. ``encodings/cl100k_base.tiktoken``."""
        return self.url[len(UPSTREAM_BASE) :]

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def cache_name(self) -> str:
        return cache_name(self.url)


@dataclass(frozen=True)
class Manifest:
    """Every encoding of tiktoken and the blobs it reads."""

    generated_from: str
    blobs: Mapping[str, Blob]  # by URL
    encodings: Mapping[str, tuple[str, ...]]  # encoding name -> blob URLs

    def blobs_for(self, encoding_names: Iterable[str]) -> list[Blob]:
        """The distinct blobs the named encodings need, sorted by URL."""
        urls = {url for name in encoding_names for url in self.encodings[name]}
        return [self.blobs[url] for url in sorted(urls)]

    def encodings_served_by(self, urls: Iterable[str]) -> list[str]:
        """Every encoding all of whose blobs are among ``urls``."""
        available = set(urls)
        return [name for name, needed in self.encodings.items() if set(needed) <= available]

    def to_json(self) -> str:
        document = {
            "generated_from": self.generated_from,
            "blobs": [{"url": b.url, "sha256": b.sha256, "size": b.size} for b in sorted(self.blobs.values())],
            "encodings": {name: list(urls) for name, urls in self.encodings.items()},
        }
        return json.dumps(document, indent=2) + "\n"


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


def load_manifest(path: Path = MANIFEST_PATH) -> Manifest:
    return parse_manifest(json.loads(path.read_text(encoding="utf-8")))


def record_text(manifest: Manifest, blobs: Sequence[Blob]) -> str:
    """The record of a data folder holding ``blobs``: one row per encoding and blob, no paths, no times."""
    rows = ["\t".join(RECORD_COLUMNS)]
    for name in manifest.encodings_served_by(blob.url for blob in blobs):
        for url in manifest.encodings[name]:
            blob = manifest.blobs[url]
            rows.append(f"{name}\t{blob.cache_name}\t{blob.url}\t{blob.sha256}\t{blob.size}")
    return "\n".join(rows) + "\n"


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
