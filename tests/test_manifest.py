"""The manifest is the single source of truth: it must match the real files and the installed tiktoken."""

from __future__ import annotations

import sys
from pathlib import Path

from helpers import MANIFEST, ROOT, copy_project, run

UPDATE_SCRIPT = ROOT / "scripts" / "update_manifest.py"


def published_sums(files_dir: Path) -> dict[str, str]:
    lines = (files_dir / "SHA256SUMS").read_text().splitlines()
    return {path: digest for digest, path in (line.split(maxsplit=1) for line in lines if line.strip())}


def test_manifest_lists_the_six_published_blobs_with_their_sha256_and_size(files_dir: Path) -> None:
    assert {blob.path: blob.sha256 for blob in MANIFEST.blobs.values()} == published_sums(files_dir)
    for blob in MANIFEST.blobs.values():
        assert blob.size == (files_dir / blob.path).stat().st_size, blob.path


def test_manifest_covers_every_encoding_of_tiktoken() -> None:
    assert set(MANIFEST.encodings) == {
        "gpt2", "r50k_base", "p50k_base", "p50k_edit", "cl100k_base", "o200k_base", "o200k_harmony",
    }  # fmt: skip
    assert MANIFEST.encodings["gpt2"] == (
        "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
        "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
    )
    assert MANIFEST.encodings["o200k_harmony"] == MANIFEST.encodings["o200k_base"]
    # tiktoken's cache names: sha1 of the canonical URL
    assert MANIFEST.blobs_for(["cl100k_base"])[0].cache_name == "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"


def test_manifest_matches_the_installed_tiktoken() -> None:
    result = run([sys.executable, str(UPDATE_SCRIPT), "--check"], check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_drift_check_fails_when_one_manifest_hash_is_altered(tmp_path: Path) -> None:
    copy = copy_project(tmp_path / "project")
    package = copy / "src" / "tiktoken_encodings_offline"
    text = (package / "manifest.json").read_text()
    cl100k = MANIFEST.blobs_for(["cl100k_base"])[0].sha256
    (package / "manifest.json").write_text(text.replace(cl100k, "0" * 64))

    result = run([sys.executable, str(copy / "scripts" / "update_manifest.py"), "--check"], check=False)

    assert result.returncode == 1
    assert "does not match the installed tiktoken" in result.stdout
    assert f"cl100k_base.tiktoken: sha256 {'0' * 64} -> {cl100k}" in result.stdout
