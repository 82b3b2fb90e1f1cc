"""Regenerate src/tiktoken_encodings_offline/manifest.json from the installed tiktoken.

Nothing is downloaded: every encoding constructor of tiktoken is run with
``tiktoken.load.read_file_cached`` replaced by a recorder that notes the URL and the
``expected_hash`` it is asked for and hands back placeholder bytes. The blob sizes are kept
from the current manifest where the hash is unchanged; a new or changed blob needs
``--source-dir``, a folder holding the real files (any layout the build hook accepts).

    python scripts/update_manifest.py             # rewrite the manifest
    python scripts/update_manifest.py --check     # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "buildtime"))

from tiktoken_encodings_offline_build import manifest as _manifest
from tiktoken_encodings_offline_build.files import sha256_file


def current_manifest(source_dir: Path | None, check: bool) -> _manifest.Manifest:
    import tiktoken
    import tiktoken.registry

    try:
        previous = _manifest.load_manifest()
        known_sizes = {(b.url, b.sha256): b.size for b in previous.blobs.values()}
    except FileNotFoundError:
        known_sizes = {}

    tiktoken.registry._find_constructors()
    constructors = tiktoken.registry.ENCODING_CONSTRUCTORS or {}
    blobs: dict[str, _manifest.Blob] = {}
    encodings: dict[str, tuple[str, ...]] = {}
    for name, constructor in constructors.items():
        requests = _manifest.record_requests(constructor)
        encodings[name] = tuple(requests)
        for url, expected_hash in requests.items():
            if not url.startswith(_manifest.UPSTREAM_BASE):
                sys.exit(f"{name} reads {url}, which is not under {_manifest.UPSTREAM_BASE}")
            if expected_hash is None:
                sys.exit(f"{name} reads {url} without an expected_hash: nothing to pin it to")
            size = known_sizes.get((url, expected_hash))
            if size is None:
                # --check needs no size: a new or changed blob is a difference already.
                size = -1 if check and source_dir is None else measure(url, expected_hash, source_dir)
            blobs[url] = _manifest.Blob(url, expected_hash, size)
    manifest: _manifest.Manifest = _manifest.Manifest(f"tiktoken {version('tiktoken')}", blobs, encodings)
    return manifest


def measure(url: str, sha256: str, source_dir: Path | None) -> int:
    if source_dir is None:
        sys.exit(f"{url} is new or changed: pass --source-dir with the real file to record its size")
    blob = _manifest.Blob(url, sha256, 0)
    candidates = [source_dir / blob.path, source_dir / blob.file_name, source_dir / blob.cache_name]
    for candidate in candidates:
        if candidate.is_file():
            actual = sha256_file(candidate)
            if actual != sha256:
                sys.exit(f"{candidate}: SHA-256 {actual}, but tiktoken pins {sha256}")
            return int(candidate.stat().st_size)
    sys.exit(f"{url}: not found in {source_dir} (looked for {', '.join(map(str, candidates))})")


def differences(old: _manifest.Manifest, new: _manifest.Manifest) -> list[str]:
    lines = [f"encoding {name}: {old.encodings.get(name)} -> {new.encodings.get(name)}"
             for name in sorted(set(old.encodings) | set(new.encodings))
             if old.encodings.get(name) != new.encodings.get(name)]  # fmt: skip
    for url in sorted(set(old.blobs) | set(new.blobs)):
        before, after = old.blobs.get(url), new.blobs.get(url)
        if (before and before.sha256) != (after and after.sha256):
            lines.append(f"{url}: sha256 {before and before.sha256} -> {after and after.sha256}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the manifest is out of date")
    parser.add_argument("--source-dir", type=Path, help="folder with the real files, for new sizes")
    args = parser.parse_args(argv)

    current = current_manifest(args.source_dir, args.check)
    text = current.to_json()
    manifest_path = Path(_manifest.MANIFEST_PATH)
    on_disk = manifest_path.read_text(encoding="utf-8") if manifest_path.exists() else ""
    if args.check:
        if text != on_disk:
            print(f"{manifest_path} does not match the installed tiktoken; run {sys.argv[0]}")
            for line in differences(_manifest.load_manifest(manifest_path), current):
                print(f"  {line}")
            return 1
        print(f"{manifest_path} matches the installed tiktoken")
        return 0
    manifest_path.write_text(text, encoding="utf-8")
    print(f"wrote {manifest_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
