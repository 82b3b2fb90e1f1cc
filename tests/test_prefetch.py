"""Issue 5: the prefetch script for a two-hop air gap, where the build host is offline too."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import build_env
from helpers import ROOT, blob_members, build_wheel, clean_env, expected_blobs, offline, run
from mirror import Mirror

PREFETCH = ROOT / "scripts" / "prefetch.py"


def test_prefetched_folder_builds_the_same_wheel_offline(files_dir: Path, full_wheel: Path, tmp_path: Path) -> None:
    folder = tmp_path / "carried"
    with Mirror(files_dir) as mirror:
        env = clean_env(TIKTOKEN_ENCODINGS_OFFLINE_MIRROR=mirror.url)
        result = run([sys.executable, str(PREFETCH), str(folder)], env=env)
        assert len(mirror.seen) == 6
        assert "6 files verified" in result.stdout
        # idempotent: a second run keeps what is there
        run([sys.executable, str(PREFETCH), str(folder)], env=env)
        assert len(mirror.seen) == 6
    assert (folder / "SHA256SUMS").read_text() == (files_dir / "SHA256SUMS").read_text()
    run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=folder)

    # The build host has no network at all.
    cmd = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q"]
    run(offline([*cmd, "-w", tmp_path / "dist"]), env=build_env(folder, TIKTOKEN_ENCODINGS_OFFLINE_NO_NETWORK="1"))
    wheel = next((tmp_path / "dist").glob("*.whl"))
    assert wheel.read_bytes() == full_wheel.read_bytes()


def test_prefetch_chosen_encodings_only(files_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "slim"
    with Mirror(files_dir) as mirror:
        env = clean_env(TIKTOKEN_ENCODINGS_OFFLINE_MIRROR=mirror.url)
        run([sys.executable, str(PREFETCH), str(folder), "--encodings", "gpt2"], env=env)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "SHA256SUMS", "gpt-2/encodings/main/encoder.json", "gpt-2/encodings/main/vocab.bpe",
    ]  # fmt: skip
    wheel, _ = build_wheel(tmp_path / "dist", build_env(folder, TIKTOKEN_ENCODINGS_OFFLINE_ENCODINGS="gpt2"))
    assert wheel is not None and blob_members(wheel) == expected_blobs(["gpt2"])


def test_prefetch_unknown_encoding_exits_2(tmp_path: Path) -> None:
    result = run([sys.executable, str(PREFETCH), str(tmp_path), "--encodings", "nope"], env=clean_env(), check=False)
    assert result.returncode == 2 and "unknown encoding(s) nope; valid: gpt2," in result.stderr
