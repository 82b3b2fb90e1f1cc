"""Issues 22 and 27: the published sdists, fetched from an index and built on a host that can fetch the files.

A user with only the sdists (from a private index) runs ``pip download --no-binary :all:``
then ``pip wheel`` on a connected host. Here pypiserver on loopback holds the base's and the
companion's sdists and nothing else, a loopback mirror stands in for the upstream host, and both
run with the pip commands in a network namespace that has loopback only; the two build lines are
the README's, run as written. Each wheel must be the checkout's, byte for byte.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tarfile
from pathlib import Path

from conftest import build_env
from helpers import ROOT, copy_project, offline, run

BIN = Path(sys.executable).parent  # python and pypi-server of the test environment
SDIST = "tiktoken_encodings_offline-0.1.0.tar.gz"
COMPANION_SDIST = "tiktoken_encodings_offline_autostart-0.1.0.tar.gz"
INDEX_PORT, MIRROR_PORT = 8080, 8081


def readme_block() -> str:
    """The README's sdist build lines, run as written."""
    found = re.search(r"<!-- sdist:build -->\n```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert found, "README.md has no sdist:build block"
    return found.group(1)


def wait_for(port: int) -> str:
    """A bounded wait (10 s) until something listens on the loopback port."""
    return (
        f"for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && break; sleep 0.1; done\n"
        f"(exec 3<>/dev/tcp/127.0.0.1/{port}) || {{ echo 'nothing listens on {port}' >&2; exit 1; }}\n"
    )


def test_the_sdists_from_an_index_build_the_checkout_wheels_byte_for_byte(
    files_dir: Path, full_wheel: Path, companion_wheel: Path, tmp_path: Path
) -> None:
    # The release step: the sdists of a fresh checkout, built with no encoding file anywhere.
    project = copy_project(tmp_path / "project")
    index = tmp_path / "index"
    env = build_env(tmp_path / "nowhere", TIKTOKEN_ENCODINGS_OFFLINE_NO_NETWORK="1")
    build = [sys.executable, "-m", "build", "--no-isolation", "-o", str(index)]
    run([*build, "--sdist", str(project)], env=env, cwd=project)
    run([*build, "--sdist", "autostart"], env=env, cwd=project)  # as the README names it, from the checkout
    assert sorted(path.name for path in index.iterdir()) == [SDIST, COMPANION_SDIST]
    with tarfile.open(index / SDIST) as archive:
        assert not [name for name in archive.getnames() if "/data/" in name or name.endswith(".tiktoken")]
    with tarfile.open(index / COMPANION_SDIST) as archive:
        assert sorted(name.split("/", 1)[1] for name in archive.getnames() if "/" in name) == [
            ".gitignore",  # hatchling adds the repository's
            "LICENSE",
            "PKG-INFO",
            "README.md",
            "_tiktoken_encodings_offline_startup.py",
            "pyproject.toml",
            "tiktoken_encodings_offline_autostart.pth",
        ]

    # The user's host: pip configured by nothing of this machine's, no cache, no source folder.
    env = {key: value for key, value in build_env(None).items() if not key.startswith("PIP_")}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_CACHE_DIR="1",
        PATH=f"{BIN}:{env['PATH']}",
        PIP_VERBOSE="1",  # the build's log: where each file came from
        INDEX_URL=f"http://127.0.0.1:{INDEX_PORT}/simple/",
        TIKTOKEN_ENCODINGS_OFFLINE_MIRROR=f"http://127.0.0.1:{MIRROR_PORT}/",
    )
    script = (
        "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"
        f"pypi-server run -i 127.0.0.1 -p {INDEX_PORT} -a . -P . {index} &\n"
        f"{sys.executable} {ROOT / 'tests' / 'mirror.py'} {files_dir} --port {MIRROR_PORT} &\n"
        + wait_for(INDEX_PORT)
        + wait_for(MIRROR_PORT)
        + readme_block()
    )
    cmd = offline(["bash", "-euo", "pipefail", "-c", script])
    result = run(cmd, env=env, cwd=tmp_path, timeout=300)
    output = result.stdout + result.stderr

    assert f"Looking in indexes: http://127.0.0.1:{INDEX_PORT}/simple/" in output
    assert "Looking in links" not in output
    assert sorted(path.name for path in (tmp_path / "sdist").iterdir()) == [SDIST, COMPANION_SDIST]
    for path in ("encodings/o200k_base.tiktoken", "gpt-2/encodings/main/vocab.bpe"):  # the mirror served them
        assert f"{path}: " in output and f"MB from http://127.0.0.1:{MIRROR_PORT}/{path} in " in output
    built = {wheel.name: hashlib.sha256(wheel.read_bytes()).hexdigest() for wheel in (tmp_path / "dist").iterdir()}
    expected = {wheel.name: hashlib.sha256(wheel.read_bytes()).hexdigest() for wheel in (full_wheel, companion_wheel)}
    assert built == expected
