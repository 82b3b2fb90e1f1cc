"""Test harness shared by every test module: builds, wheels, venvs, and a world with no network."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "TIKTOKEN_ENCODINGS_OFFLINE_"
DATA_PREFIX = "tiktoken_encodings_offline/data/"


sys.path.insert(0, str(ROOT / "buildtime"))  # the build-side package, as hatch_build.py reaches it
from tiktoken_encodings_offline_build import fetch  # noqa: E402
from tiktoken_encodings_offline_build.manifest import load_manifest  # noqa: E402

MANIFEST = load_manifest()
fetch_module = fetch  # the tests' one way into the fetcher


def clean_env(**overrides: str) -> dict[str, str]:
    """The environment with every variable of ours and tiktoken's removed, then ``overrides``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(ENV_PREFIX)
        and key not in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR", "TIKTOKEN_RS_CACHE_DIR", "PIP_REQUIRE_VIRTUALENV")
    }
    env.update(overrides)
    return env


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None, check: bool = True,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:  # fmt: skip
    result = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


def offline(cmd: list[str]) -> list[str]:
    """``cmd`` in a new network namespace: no network at all, loopback up for local servers."""
    return ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "offline", *map(str, cmd)]


def build_wheel(
    out_dir: Path,
    env: dict[str, str],
    project: Path = ROOT,
    isolation: bool = False,
    check: bool = True,
) -> tuple[Path | None, subprocess.CompletedProcess[str]]:
    """``pip wheel`` the project into an empty ``out_dir``: the wheel (None if the build failed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "wheel", str(project), "--no-deps", "-w", str(out_dir), "-q"]
    if not isolation:
        cmd.append("--no-build-isolation")
    result = run(cmd, env=env, check=check)
    wheels = sorted(out_dir.glob("*.whl"))
    assert len(wheels) <= 1, wheels
    return (wheels[0] if wheels else None), result


def wheel_members(wheel: Path) -> dict[str, str]:
    """Every file in a wheel with the SHA-256 of its bytes (folder entries left out)."""
    with zipfile.ZipFile(wheel) as archive:
        names = [name for name in archive.namelist() if not name.endswith("/")]
        return {name: hashlib.sha256(archive.read(name)).hexdigest() for name in names}


def blob_members(wheel: Path) -> dict[str, str]:
    """The vendored blobs of a wheel: cache name -> SHA-256."""
    return {
        name[len(DATA_PREFIX) :]: digest
        for name, digest in wheel_members(wheel).items()
        if name.startswith(DATA_PREFIX) and not name.endswith(".tsv")
    }


def expected_blobs(encodings: list[str] | None = None) -> dict[str, str]:
    blobs = MANIFEST.blobs_for(encodings or list(MANIFEST.encodings))
    return {blob.cache_name: blob.sha256 for blob in blobs}


def wheel_metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return archive.read(name).decode()


def make_venv(path: Path, *requirements: str, pip_args: tuple[str, ...] = ()) -> Path:
    """A fresh venv with ``requirements`` installed; returns its python."""
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    python = path / "bin" / "python"
    if requirements:
        run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *pip_args, *requirements],
            env=clean_env())  # fmt: skip
    return python


def copy_project(destination: Path) -> Path:
    """The project's tracked-or-new files, as a fresh clone would have them (no dist, no staged data)."""
    listed = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT).stdout.split()
    for relative in listed:
        source = ROOT / relative
        if source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination
