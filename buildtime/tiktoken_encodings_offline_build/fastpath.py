"""Build time: each carried encoding's mergeable ranks, pre-parsed from its verified blob(s).

tiktoken parses its text files on every first load (``load_tiktoken_bpe`` decodes 200k base64
lines; ``data_gym_to_mergeable_bpe_ranks`` walks gpt2's merges and JSON). This module does the
same parse once, at build time, with the standard library, and writes the result as a plain
binary table the run time (``tiktoken_encodings_offline._runtime``) turns into a dict with a
single ``bytes.split``. The table format, version 1, all integers little-endian uint32:

    header   b"TEOranks", version, separator byte, token count n, body length, exceptions, runs
    body     the n tokens in tiktoken's key order, joined by the separator byte
    exceptions (index, length, token bytes) for each token that holds the separator or is empty;
             its place in the body is empty
    runs     (first rank, count) pairs: the ranks of the tokens in order, e.g. one run (0, n)

The separator is the byte held by the fewest tokens (in the real files, one: its own single-byte
token). Files are named by the first ``NAME_DIGITS`` hex digits of their SHA-256 (a member name of
the wheel stays within 80 characters, for Windows' MAX_PATH), so gpt2's table, equal to
r50k_base's, is stored once. ``derived.tsv`` lists them: the source blob URL(s) and SHA-256(s),
the file, its full SHA-256 and size, and the format version. Nothing depends on time, paths or the Python version.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .files import DamagedFile, write_file

FORMAT_VERSION = 1
MAGIC = b"TEOranks"
HEADER = struct.Struct("<8s6I")
FOLDER = "fastpath"  # beside the data folder, inside the package
NAME_DIGITS = 32  # a table's name: this many hex digits of its SHA-256 (derived.tsv keeps all 64)
RECORD_NAME = "derived.tsv"
RECORD_COLUMNS = ("source", "source_sha256", "file", "sha256", "size", "format")
TIKTOKEN_BPE_SUFFIX = ".tiktoken"
DATA_GYM_FILES = ("vocab.bpe", "encoder.json")  # data_gym_to_mergeable_bpe_ranks' argument order


def tiktoken_bpe_ranks(contents: bytes) -> dict[bytes, int]:
    """What ``tiktoken.load.load_tiktoken_bpe`` returns for these bytes (0.7.0 to 0.14.0 alike)."""
    ranks = {}
    for line in contents.splitlines():
        if not line:
            continue
        token, rank = line.split()
        ranks[base64.b64decode(token)] = int(rank)
    return ranks


def data_gym_ranks(vocab_bpe: bytes, encoder_json: bytes) -> dict[bytes, int]:
    """What ``tiktoken.load.data_gym_to_mergeable_bpe_ranks`` returns for these two files."""
    rank_to_intbyte = [b for b in range(2**8) if chr(b).isprintable() and chr(b) != " "]
    data_gym_byte_to_byte = {chr(b): b for b in rank_to_intbyte}
    n = 0
    for b in range(2**8):
        if b not in rank_to_intbyte:
            rank_to_intbyte.append(b)
            data_gym_byte_to_byte[chr(2**8 + n)] = b
            n += 1

    def decode_data_gym(value: str) -> bytes:
        return bytes(data_gym_byte_to_byte[c] for c in value)

    merges = [tuple(line.split()) for line in vocab_bpe.decode().split("\n")[1:-1]]
    ranks = {bytes([b]): i for i, b in enumerate(rank_to_intbyte)}
    n = len(ranks)
    for first, second in merges:
        ranks[decode_data_gym(first) + decode_data_gym(second)] = n
        n += 1
    encoder = {decode_data_gym(k): v for k, v in json.loads(encoder_json).items()}
    encoder.pop(b"<|endoftext|>", None)
    encoder.pop(b"<|startoftext|>", None)
    if ranks != encoder:
        raise DamagedFile("vocab.bpe and encoder.json disagree: tiktoken would refuse them")
    return ranks


def encode_ranks(ranks: Mapping[bytes, int]) -> bytes:
    """The version-1 table of ``ranks``, keeping its key order."""
    tokens = list(ranks)
    holders = [0] * 256
    for token in tokens:
        for byte in set(token):
            holders[byte] += 1
    separator = min(range(256), key=lambda byte: (holders[byte], byte))
    sep = bytes([separator])
    exceptions = [(i, token) for i, token in enumerate(tokens) if sep in token or not token]
    body = sep.join(b"" if sep in token else token for token in tokens)
    runs: list[list[int]] = []
    for rank in ranks.values():
        if runs and runs[-1][0] + runs[-1][1] == rank:
            runs[-1][1] += 1
        else:
            runs.append([rank, 1])
    header = HEADER.pack(MAGIC, FORMAT_VERSION, separator, len(tokens), len(body), len(exceptions), len(runs))
    tail = b"".join(struct.pack("<2I", i, len(token)) + token for i, token in exceptions)
    return header + body + tail + struct.pack(f"<{2 * len(runs)}I", *(x for run in runs for x in run))


def table_name(sha256: str) -> str:
    """A table's file name: the start of its SHA-256, short enough for Windows' MAX_PATH."""
    return f"{sha256[:NAME_DIGITS]}.ranks"


def sources(manifest: Any, urls: Sequence[str]) -> list[tuple[str, ...]]:
    """The argument URLs of each tiktoken loader call the carried encodings make, once each."""
    found: dict[tuple[str, ...], None] = {}
    for name in manifest.encodings_served_by(urls):
        needed = tuple(manifest.encodings[name])
        names = tuple(url.rsplit("/", 1)[-1] for url in needed)
        if (len(needed) == 1 and needed[0].endswith(TIKTOKEN_BPE_SUFFIX)) or names == DATA_GYM_FILES:
            found[needed] = None
    return sorted(found)


def write_derived(manifest: Any, blobs: Sequence[Any], blob_dir: Path, out: Path) -> None:
    """Write the tables for ``blobs`` (verified, staged in ``blob_dir`` under cache names) into ``out``."""
    out.mkdir()
    by_url = {blob.url: blob for blob in blobs}
    rows = ["\t".join(RECORD_COLUMNS)]
    for source in sources(manifest, list(by_url)):
        contents = []
        for url in source:
            data = (blob_dir / by_url[url].cache_name).read_bytes()
            if hashlib.sha256(data).hexdigest() != by_url[url].sha256:
                raise DamagedFile(f"{url}: the staged file is not the verified blob")
            contents.append(data)
        ranks = tiktoken_bpe_ranks(contents[0]) if len(source) == 1 else data_gym_ranks(*contents)
        table = encode_ranks(ranks)
        digest = hashlib.sha256(table).hexdigest()
        path = out / table_name(digest)
        if not path.exists():  # gpt2 and r50k_base share one table
            write_file(path, table)
        shas = " ".join(by_url[url].sha256 for url in source)
        rows.append("\t".join([" ".join(source), shas, path.name, digest, str(len(table)), str(FORMAT_VERSION)]))
    write_file(out / RECORD_NAME, ("\n".join(rows) + "\n").encode())
