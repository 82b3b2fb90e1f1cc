"""Download and verify the encoding files into a folder, for a build host that is offline too.

Run on any connected machine (standard library only; it uses the build's own fetcher), carry the
folder across the air gap, then build with TIKTOKEN_ENCODINGS_OFFLINE_SOURCE_DIR=<that folder>:

    python scripts/prefetch.py encodings-files/                       # all encodings
    python scripts/prefetch.py encodings-files/ --encodings cl100k_base,o200k_base
    cd encodings-files && sha256sum -c SHA256SUMS                      # on the other side
    (Windows: README.md, "On Windows", gives the PowerShell check and how to set the variable)

The folder uses the upstream path layout (encodings/..., gpt-2/encodings/main/...) and holds a
SHA256SUMS file. The mirror, proxy, CA, timeout, retry and worker variables of the build apply
here too. A file already in the folder is kept if it is intact and fetched again if it is not.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "buildtime"))

from tiktoken_encodings_offline_build.fetch import FetchError, fetch_all
from tiktoken_encodings_offline_build.files import DamagedFile, copy_verified, sha256_file, write_file
from tiktoken_encodings_offline_build.manifest import Blob, load_manifest
from tiktoken_encodings_offline_build.options import OptionError, fetch_settings, network_advice, read_options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("destination", type=Path, help="the folder to fill (created if missing)")
    parser.add_argument("--encodings", default="", help="comma-separated encodings (default: all)")
    args = parser.parse_args(argv)

    manifest = load_manifest()
    names = [name.strip() for name in args.encodings.split(",") if name.strip()] or list(manifest.encodings)
    unknown = [name for name in names if name not in manifest.encodings]
    if unknown:
        parser.error(f"unknown encoding(s) {', '.join(unknown)}; valid: {', '.join(manifest.encodings)}")
    blobs = manifest.blobs_for(names)
    destination: Path = args.destination

    try:
        options = read_options({}, os.environ)
        settings = fetch_settings(options, os.environ, print, use_cache=False)
    except OptionError as error:
        print(f"prefetch: {error}", file=sys.stderr)
        return 2
    missing = [blob for blob in blobs if not _intact(blob, destination / blob.path)]
    try:
        if missing:
            destination.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=".prefetch-", dir=destination) as work:
                found = fetch_all(missing, settings, Path(work))
                for blob in missing:
                    target = destination / blob.path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    copy_verified(found[blob.url], target, blob.sha256)
        damaged = [blob.path for blob in blobs if not _intact(blob, destination / blob.path, quiet=True)]
        if damaged:  # written, then changed under us: never list such a file as verified
            raise DamagedFile(f"{', '.join(damaged)} changed after being written in {destination}")
    except FetchError as error:
        fix = f"\nFix: {network_advice(settings, os.environ)}; then run prefetch again (it keeps the intact files)"
        print(f"prefetch failed:\n{error}" + (fix if error.kind == "download" else ""), file=sys.stderr)
        return 1
    except DamagedFile as error:
        print(f"prefetch failed: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"prefetch failed: cannot write in {error.filename}: {error.strerror}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("prefetch stopped: interrupted; run it again to finish (intact files are kept)", file=sys.stderr)
        return 130

    sums = "".join(f"{blob.sha256}  {blob.path}\n" for blob in sorted(blobs, key=lambda b: b.path))
    try:
        write_file(destination / "SHA256SUMS", sums.encode())
    except OSError as error:
        print(f"prefetch failed: cannot write in {error.filename}: {error.strerror}", file=sys.stderr)
        return 1
    print(f"{len(blobs)} files verified in {destination.resolve()} (see SHA256SUMS)")
    print(f"build with: TIKTOKEN_ENCODINGS_OFFLINE_SOURCE_DIR={destination.resolve()} pip wheel . --no-deps -w dist")
    return 0


def _intact(blob: Blob, path: Path, quiet: bool = False) -> bool:
    """True if ``path`` holds the published bytes; a damaged file there is said and replaced."""
    if not path.is_file():
        return False
    actual = sha256_file(path)
    if actual == blob.sha256:
        return True
    if not quiet:
        print(f"{path}: damaged (SHA-256 {actual}, expected {blob.sha256}); fetching it again")
    return False


if __name__ == "__main__":
    sys.exit(main())
