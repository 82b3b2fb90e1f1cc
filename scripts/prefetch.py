"""Download and verify the encoding files into a folder, for a build host that is offline too.

Run on any connected machine (standard library only; it uses the build's own fetcher), carry the
folder across the air gap, then build with TIKTOKEN_ENCODINGS_OFFLINE_SOURCE_DIR=<that folder>:

    python scripts/prefetch.py encodings-files/                       # all encodings
    python scripts/prefetch.py encodings-files/ --encodings cl100k_base,o200k_base
    cd encodings-files && sha256sum -c SHA256SUMS                      # on the other side

The folder uses the upstream path layout (encodings/..., gpt-2/encodings/main/...) and holds a
SHA256SUMS file. The mirror, proxy, CA and timeout variables of the build apply here too.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from _project import fetch_module as _fetch
from _project import manifest_module as _manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("destination", type=Path, help="the folder to fill (created if missing)")
    parser.add_argument("--encodings", default="", help="comma-separated encodings (default: all)")
    args = parser.parse_args(argv)

    manifest = _manifest.load_manifest()
    names = [name.strip() for name in args.encodings.split(",") if name.strip()] or list(manifest.encodings)
    unknown = [name for name in names if name not in manifest.encodings]
    if unknown:
        parser.error(f"unknown encoding(s) {', '.join(unknown)}; valid: {', '.join(manifest.encodings)}")
    blobs = manifest.blobs_for(names)

    env = os.environ
    settings = _fetch.FetchSettings(
        source_dir=args.destination if args.destination.is_dir() else None,  # keeps what is already there
        cache_dir=None,
        mirror=env.get("TIKTOKEN_ENCODINGS_OFFLINE_MIRROR") or None,
        token=env.get("TIKTOKEN_ENCODINGS_OFFLINE_MIRROR_TOKEN") or None,
        ca_bundle=env.get("TIKTOKEN_ENCODINGS_OFFLINE_CA_BUNDLE") or None,
        connect_timeout=float(env.get("TIKTOKEN_ENCODINGS_OFFLINE_CONNECT_TIMEOUT", 15)),
        read_timeout=float(env.get("TIKTOKEN_ENCODINGS_OFFLINE_READ_TIMEOUT", 60)),
        retries=int(env.get("TIKTOKEN_ENCODINGS_OFFLINE_RETRIES", 4)),
        log=print,
    )
    with tempfile.TemporaryDirectory(prefix="tiktoken-prefetch-") as work:
        try:
            found = _fetch.fetch_all(blobs, settings, Path(work))
        except _fetch.FetchError as error:
            print(f"prefetch failed:\n{error}", file=sys.stderr)
            return 1
        for blob in blobs:
            target = args.destination / blob.path
            if found[blob.url] != target:
                target.parent.mkdir(parents=True, exist_ok=True)
                _fetch.copy_verified(found[blob.url], target, blob.sha256)

    sums = "".join(f"{blob.sha256}  {blob.path}\n" for blob in sorted(blobs, key=lambda b: b.path))
    (args.destination / "SHA256SUMS").write_text(sums, encoding="utf-8")
    print(f"{len(blobs)} files verified in {args.destination.resolve()} (see SHA256SUMS)")
    print(
        f"build with: TIKTOKEN_ENCODINGS_OFFLINE_SOURCE_DIR={args.destination.resolve()} pip wheel . --no-deps -w dist"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
