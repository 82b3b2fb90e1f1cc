"""Issue 5: the README's commands, run as written, end to end through a real private index.

A loopback mirror stands in for the upstream host on the build step; pypiserver is the private
index; the index, the upload and both installs (pip and uv, caches off) run in a network namespace
that has loopback and nothing else.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from conftest import PROBE
from helpers import ROOT, blob_members, clean_env, copy_project, expected_blobs, offline, run
from mirror import Mirror

README = (ROOT / "README.md").read_text()
BIN = Path(sys.executable).parent  # python, pypi-server, twine and uv of the test environment


def block(name: str) -> str:
    found = re.search(rf"<!-- walkthrough:{name} -->\n```sh\n(.*?)```", README, re.S)
    assert found, f"README.md has no walkthrough block {name}"
    return found.group(1)


def index_env(**overrides: str) -> dict[str, str]:
    """No pip or uv configuration of this machine (extra indexes, find-links), and no caches."""
    env = {k: v for k, v in clean_env().items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_CACHE_DIR="1", UV_NO_CONFIG="1", UV_NO_CACHE="1")
    env.update(overrides)
    return env


def bash(script: str, cwd: Path, env: dict[str, str], network: bool = True) -> str:
    # Background servers die with the script, so a failure cannot leave the output pipe open.
    cmd = ["bash", "-euo", "pipefail", "-c", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + script]
    result = run(cmd if network else offline(cmd), env=env, cwd=cwd, timeout=300)
    return result.stdout + result.stderr


def test_walkthrough_build_publish_install_with_pip_and_uv(
    files_dir: Path, reference: dict[str, object], tmp_path: Path
) -> None:
    # 1. The build host: a checkout; the mirror stands in for the upstream host.
    project = copy_project(tmp_path / "project")
    with Mirror(files_dir) as upstream:
        env = clean_env(
            PATH=f"{BIN}:{os.environ['PATH']}",
            TIKTOKEN_ENCODINGS_OFFLINE_MIRROR=upstream.url,
            TIKTOKEN_ENCODINGS_OFFLINE_CACHE_DIR=str(tmp_path / "build-cache"),
        )
        bash(block("build"), project, env)
        assert len(upstream.seen) == 6
    wheel, companion = sorted((project / "dist").glob("*.whl"))  # the base, and the companion (autostart/)
    assert wheel.name.startswith("tiktoken_encodings_offline-") and "_autostart-" in companion.name
    assert blob_members(wheel) == expected_blobs()

    # 2. The index: packages downloaded on a connected machine, then served with no network.
    index = tmp_path / "index"
    index.mkdir()
    shutil.copytree(project / "dist", index / "dist")
    bash(block("index-download"), index, clean_env(PATH=f"{BIN}:{os.environ['PATH']}"))

    # 3. The air-gapped hosts: fresh venvs, pip then uv, in the same namespace as the index.
    pip_venv, uv_venv = tmp_path / "pip-host", tmp_path / "uv-host"
    for host in (pip_venv, uv_venv):
        host.mkdir()
    script = "\n".join(
        [
            f"cd {index} && export PATH={BIN}:$PATH",
            block("index-serve"),
            f"cd {pip_venv} && {sys.executable} -m venv venv && PATH={pip_venv}/venv/bin:$PATH",
            block("airgap"),
            f"python {PROBE} > probe.json",
            f"cd {uv_venv} && cp {pip_venv}/requirements.txt . && {BIN}/uv venv -q venv",
            f"export VIRTUAL_ENV={uv_venv}/venv",
            f"PATH={uv_venv}/venv/bin:{BIN}:$PATH",
            block("airgap-uv"),
            f"python {PROBE} > probe.json",
        ]
    )
    output = bash(script, tmp_path, index_env(INDEX_URL="http://127.0.0.1:8080/simple/"), network=False)

    assert "Looking in indexes: http://127.0.0.1:8080/simple/\n" in output
    assert "Looking in links" not in output and "file:///" not in output
    assert "verified: all intact" in output
    assert "[24912, 2375]" in output
    assert "+ tiktoken-encodings-offline==0.1.0" in output  # uv's install line
    for host in (pip_venv, uv_venv):
        assert json.loads((host / "probe.json").read_text()) == reference


def test_walkthrough_export_for_a_non_python_service(runtime_venv: Path, tmp_path: Path) -> None:
    # The gateway stands in for a Go service: plain tiktoken (no package) reading TIKTOKEN_CACHE_DIR.
    gateway = tmp_path / "gateway"
    code = "import tiktoken; print('gateway', tiktoken.get_encoding('o200k_base').encode('hello world'))"
    gateway.write_text(f'#!/bin/sh\nexec {sys.executable} -c "{code}"\n')
    gateway.chmod(0o755)
    env = clean_env(PATH=f"{runtime_venv.parent}:{os.environ['PATH']}")
    output = bash(block("export"), tmp_path, env, network=False)
    assert "gateway [24912, 2375]" in output
    assert len(list((tmp_path / "tiktoken-cache").iterdir())) == 6


def test_walkthrough_harmony_without_importing_the_package(runtime_venv: Path, tmp_path: Path) -> None:
    run([str(runtime_venv), "-m", "pip", "install", "-q", "openai-harmony"], env=clean_env())
    env = clean_env(PATH=f"{runtime_venv.parent}:{os.environ['PATH']}")
    assert bash(block("harmony"), tmp_path, env, network=False).strip() == "HarmonyGptOss"


@pytest.mark.parametrize("name", ["build", "index-download", "index-serve", "airgap", "airgap-uv", "export", "harmony"])
def test_every_walkthrough_block_is_exercised(name: str) -> None:
    assert block(name).strip()
    assert README.count("<!-- walkthrough:") == 7  # a new block needs a test above


DOCS = ["docs/runtime.md", "docs/benchmarks.md", "docs/releases.md", "docs/development.md"]


def test_the_first_screen_and_the_docs_it_links() -> None:
    setup = re.search(r"```sh\n(.*?)```", README, re.S)
    assert setup and len(setup.group(1).splitlines()) == 2  # .ci/run executes exactly this block
    first_screen = README[: README.index("## Walkthrough")]
    assert "stands in for the upstream host on machines that cannot reach it" in first_screen
    for doc in DOCS:
        assert f"]({doc})" in README and (ROOT / doc).is_file(), doc
    # maintainer material lives in docs/, the user's path in the README
    assert "## Benchmarks" not in README and "## Versions and releases" not in README
    for heading in ("## Commands and exit codes", "## Troubleshooting", "### Options", "## Deployment"):
        assert heading in README
    assert "\n## Checking a guard\n" in (ROOT / "docs/development.md").read_text()


def test_the_damage_notice_shown_is_what_a_damaged_install_prints(full_wheel: Path, tmp_path: Path) -> None:
    shown = re.search(r"```text\n(tiktoken-encodings-offline: .*?)\n```", README).group(1)  # type: ignore[union-attr]
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(tmp_path), str(full_wheel)])
    record = tmp_path / "tiktoken_encodings_offline" / "data" / "vendored.tsv"
    record.write_text(record.read_text()[:-10])
    env = clean_env(PYTHONPATH=str(tmp_path))
    printed = run(offline([sys.executable, "-c", "import tiktoken_encodings_offline"]), env=env)
    assert printed.stderr.strip() == shown.replace(".../", f"{tmp_path}/")
