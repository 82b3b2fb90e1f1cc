"""Issue 2: the wheel built from files on disk: staged, verified, reproducible, slim, sdist, editable."""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import PROBE, build_env
from helpers import (
    MANIFEST,
    ROOT,
    blob_members,
    build_wheel,
    clean_env,
    copy_project,
    expected_blobs,
    make_venv,
    offline,
    run,
    wheel_members,
    wheel_metadata,
)

CODE_MEMBERS = {
    "tiktoken_encodings_offline/__init__.py",
    "tiktoken_encodings_offline/__main__.py",
    "tiktoken_encodings_offline/_distributions.py",
    "tiktoken_encodings_offline/_doctor.py",
    "tiktoken_encodings_offline/_export.py",
    "tiktoken_encodings_offline/_fallback.py",
    "tiktoken_encodings_offline/_files.py",
    "tiktoken_encodings_offline/_manifest.py",
    "tiktoken_encodings_offline/_runtime.py",
    "tiktoken_encodings_offline/_verify.py",
    "tiktoken_encodings_offline/manifest.json",
    "tiktoken_encodings_offline/py.typed",
    "tiktoken_ext/tiktoken_encodings_offline.py",
    "tiktoken_encodings_offline/_pyinstaller/__init__.py",
    "tiktoken_encodings_offline/_pyinstaller/hook-tiktoken.registry.py",
    "tiktoken_encodings_offline/_pyinstaller/hook-tiktoken_encodings_offline.py",
    "tiktoken_encodings_offline/_pyinstaller/rthooks.dat",
    "tiktoken_encodings_offline/_pyinstaller/rthooks/pyi_rth_encodings_offline.py",
}


def published_sums(files_dir: Path) -> dict[str, str]:
    """SHA256SUMS of the real files, keyed by tiktoken cache name: independent of the manifest."""
    sums = {}
    for line in (files_dir / "SHA256SUMS").read_text().splitlines():
        digest, path = line.split(maxsplit=1)
        sums[MANIFEST.blobs[f"https://openaipublic.blob.core.windows.net/{path}"].cache_name] = digest
    return sums


def test_full_wheel_carries_the_six_published_blobs_under_sha1_names(full_wheel: Path, files_dir: Path) -> None:
    assert full_wheel.name == "tiktoken_encodings_offline-0.1.0-py3-none-any.whl"
    assert blob_members(full_wheel) == published_sums(files_dir)
    members = set(wheel_members(full_wheel))
    # The pre-parsed tables under fastpath/ are checked by tests/test_fastpath.py.
    package_members = {m for m in members if ".dist-info/" not in m and "/fastpath/" not in m}
    data = {f"tiktoken_encodings_offline/data/{name}" for name in published_sums(files_dir)}
    assert package_members == CODE_MEMBERS | data | {"tiktoken_encodings_offline/data/vendored.tsv"}
    assert "tiktoken_ext/__init__.py" not in members


def test_code_is_stored_uncompressed_and_data_deflated(full_wheel: Path) -> None:
    # zipimport inflates behind a flag with no lock: a stored member is read without it (issue D2)
    with zipfile.ZipFile(full_wheel) as archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
    code = [info for info in infos if info.filename.endswith(".py")]
    assert {info.filename for info in code} >= {m for m in CODE_MEMBERS if m.endswith(".py")}
    assert [info.filename for info in code if info.compress_type != zipfile.ZIP_STORED] == []
    blobs = [info for info in infos if info.filename.startswith("tiktoken_encodings_offline/data/")]
    assert blobs and all(info.compress_type == zipfile.ZIP_DEFLATED for info in blobs)


def test_record_lists_every_encoding_and_blob_without_paths_or_times(full_wheel: Path) -> None:
    with zipfile.ZipFile(full_wheel) as archive:
        record = archive.read("tiktoken_encodings_offline/data/vendored.tsv").decode()
    rows = [line.split("\t") for line in record.splitlines()]
    assert rows[0] == ["encoding", "file", "url", "sha256", "size"]
    assert [row[0] for row in rows[1:]] == [
        "gpt2", "gpt2", "r50k_base", "p50k_base", "p50k_edit", "cl100k_base", "o200k_base", "o200k_harmony",
    ]  # fmt: skip
    for _, file, url, sha256, size in rows[1:]:
        blob = MANIFEST.blobs[url]
        assert (file, sha256, int(size)) == (blob.cache_name, blob.sha256, blob.size)
    assert "/work" not in record and "/tmp" not in record


def test_metadata_lists_the_carried_encodings(full_wheel: Path) -> None:
    metadata = wheel_metadata(full_wheel)
    assert "Version: 0.1.0\n" in metadata
    assert "Carries: gpt2, r50k_base, p50k_base, p50k_edit, cl100k_base, o200k_base, o200k_harmony." in metadata
    assert "Requires-Dist: tiktoken>=0.7" in metadata


@pytest.mark.parametrize("layout", ["flat", "cache"])
def test_every_source_layout_gives_a_byte_identical_wheel(
    layout: str, layouts: dict[str, Path], full_wheel: Path, tmp_path: Path
) -> None:
    source = tmp_path / layout
    shutil.copytree(layouts[layout], source)
    for path in source.iterdir():  # permissions must not leak into the wheel
        path.chmod(0o755 if layout == "flat" else 0o600)
    wheel, _ = build_wheel(tmp_path / "dist", build_env(source))
    assert wheel is not None
    assert wheel.read_bytes() == full_wheel.read_bytes()


def test_slim_wheel_has_its_own_version_label_and_only_its_blobs(files_dir: Path, tmp_path: Path) -> None:
    env = build_env(files_dir, TIKTOKEN_ENCODINGS_OFFLINE_ENCODINGS="cl100k_base, o200k_base")
    wheel, _ = build_wheel(tmp_path, env)
    assert wheel is not None
    assert wheel.name == "tiktoken_encodings_offline-0.1.0+coh-py3-none-any.whl"
    assert blob_members(wheel) == expected_blobs(["cl100k_base", "o200k_base"])
    metadata = wheel_metadata(wheel)
    assert "Version: 0.1.0+coh\n" in metadata
    assert "Carries: cl100k_base, o200k_base, o200k_harmony." in metadata


MAX_MEMBER_NAME = 80  # a Microsoft Store Python's user site-packages (~144) + 80 stays below MAX_PATH (259)


@pytest.mark.parametrize("encodings", ["", "r50k_base,p50k_base,cl100k_base,o200k_base"], ids=["full", "slim"])
def test_every_wheel_member_name_fits_windows_max_path(
    encodings: str, full_wheel: Path, files_dir: Path, tmp_path: Path
) -> None:
    """Issue 24, item 10: tables, .dist-info (with the slim wheel's longest label) and licences."""
    wheel = full_wheel
    if encodings:  # every encoding but gpt2: the longest local label there is
        wheel, _ = build_wheel(tmp_path, build_env(files_dir, TIKTOKEN_ENCODINGS_OFFLINE_ENCODINGS=encodings))
        assert wheel is not None
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert any(".dist-info/licenses/LICENSES/" in name for name in names)
    assert any(name.endswith(".ranks") for name in names)
    too_long = [name for name in names if len(name) > MAX_MEMBER_NAME]
    assert too_long == []
    assert "+" not in wheel.name if not encodings else "+rpecoh-" in wheel.name  # one letter an encoding


def test_a_checkout_with_autocrlf_builds_the_same_wheel(files_dir: Path, tmp_path: Path) -> None:
    """Issue 24, item 14: .gitattributes pins LF, so Git for Windows' core.autocrlf=true changes no byte."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    members = {}
    for autocrlf in ("false", "true"):
        tree, archive = tmp_path / f"autocrlf-{autocrlf}", tmp_path / f"autocrlf-{autocrlf}.tar"
        git = ["git", "-c", f"core.autocrlf={autocrlf}", "archive", "--worktree-attributes", "-o", str(archive)]
        run([*git, "HEAD"], cwd=ROOT)  # a checkout's bytes: archive converts line ends as checkout does
        tree.mkdir()
        run(["tar", "-xf", str(archive), "-C", str(tree)])
        wheel, _ = build_wheel(tmp_path / f"dist-{autocrlf}", build_env(files_dir), project=tree)
        assert wheel is not None
        members[autocrlf] = wheel_members(wheel)
    assert members["true"] == members["false"]


def test_unknown_encoding_fails_listing_the_valid_names(files_dir: Path, tmp_path: Path) -> None:
    env = build_env(files_dir, TIKTOKEN_ENCODINGS_OFFLINE_ENCODINGS="cl100k_base,o300k_base")
    wheel, result = build_wheel(tmp_path, env, check=False)
    assert wheel is None and result.returncode != 0
    output = result.stdout + result.stderr
    assert "unknown encoding(s) o300k_base" in output
    assert "valid names: gpt2, r50k_base, p50k_base, p50k_edit, cl100k_base, o200k_base, o200k_harmony" in output


def test_corrupted_file_fails_the_build_naming_it_and_leaves_nothing(layouts: dict[str, Path], tmp_path: Path) -> None:
    source = tmp_path / "flat"
    shutil.copytree(layouts["flat"], source)
    damaged = source / "o200k_base.tiktoken"
    damaged.write_bytes(damaged.read_bytes()[:-10] + b"0123456789")
    build_tmp = tmp_path / "tmp"
    build_tmp.mkdir()
    dist = tmp_path / "dist"

    wheel, result = build_wheel(dist, build_env(source, TMPDIR=str(build_tmp)), check=False)

    assert wheel is None and result.returncode != 0
    output = result.stdout + result.stderr
    blob = MANIFEST.blobs_for(["o200k_base"])[0]
    assert f"{damaged} is not the published encodings/o200k_base.tiktoken" in output
    assert f"expected SHA-256 {blob.sha256}" in output
    assert f"found    SHA-256 {_sha256(damaged)}" in output
    assert "Fix: replace it with the original file" in output
    assert list(dist.iterdir()) == []
    assert [p.name for p in build_tmp.iterdir() if p.name.startswith(".data-")] == []


def test_missing_files_with_network_off_list_every_place_looked(layouts: dict[str, Path], tmp_path: Path) -> None:
    source = tmp_path / "partial"
    source.mkdir()
    shutil.copy(layouts["flat"] / "cl100k_base.tiktoken", source)
    env = build_env(source, TIKTOKEN_ENCODINGS_OFFLINE_NO_NETWORK="1")

    wheel, result = build_wheel(tmp_path / "dist", env, check=False)

    assert wheel is None
    output = result.stdout + result.stderr
    assert "network access is turned off" in output
    assert f"{source / 'encodings' / 'o200k_base.tiktoken'} (not there)" in output
    assert f"{source / 'o200k_base.tiktoken'} (not there)" in output
    assert f"{source / 'fb374d419588a4632f3f557e76b4b70aebbca790'} (not there)" in output
    assert "cl100k_base.tiktoken (sha256" not in output  # found, so not listed as missing
    assert "install the prebuilt wheel from your private index" in output


def test_relative_source_dir_is_resolved_against_the_build_directory(files_dir: Path, tmp_path: Path) -> None:
    # pip runs the backend in the project folder: that is the working directory the hook sees.
    relative = os.path.relpath(files_dir, ROOT)
    env = build_env(None, TIKTOKEN_ENCODINGS_OFFLINE_SOURCE_DIR=relative)
    cmd = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-v", "-w", "dist"]
    result = run(cmd, env=env, cwd=tmp_path)
    assert f"is relative; resolved against {ROOT} to {files_dir}" in result.stdout + result.stderr
    assert blob_members(next((tmp_path / "dist").glob("*.whl"))) == expected_blobs()


def test_options_come_from_the_pyproject_table_and_the_environment_wins(files_dir: Path, tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    pyproject = project / "pyproject.toml"
    table = "[tool.hatch.build.targets.wheel.hooks.custom]\n"
    pyproject.write_text(pyproject.read_text().replace(table, table + 'encodings = ["gpt2"]\n'))

    from_table, _ = build_wheel(tmp_path / "a", build_env(files_dir), project=project)
    from_env, _ = build_wheel(
        tmp_path / "b", build_env(files_dir, TIKTOKEN_ENCODINGS_OFFLINE_ENCODINGS="r50k_base"), project=project
    )

    assert from_table is not None and from_env is not None
    assert "+g-" in from_table.name and blob_members(from_table) == expected_blobs(["gpt2"])
    assert "+r-" in from_env.name and blob_members(from_env) == expected_blobs(["r50k_base"])


def test_sdist_holds_no_blob_reads_none_and_its_wheel_works(files_dir: Path, full_wheel: Path, tmp_path: Path) -> None:
    # A source folder that does not exist and no network: building the sdist must not care.
    env = build_env(tmp_path / "nowhere", TIKTOKEN_ENCODINGS_OFFLINE_NO_NETWORK="1")
    run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", str(tmp_path), str(ROOT)], env=env)
    sdist = next(tmp_path.glob("*.tar.gz"))
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
        sizes = {member.size for member in archive.getmembers()}
    assert any(name.endswith("/hatch_build.py") for name in names)
    assert any(name.endswith("/manifest.json") for name in names)
    assert not any("/data/" in name or name.endswith((".tiktoken", ".bpe", "encoder.json")) for name in names)
    assert not sizes & {blob.size for blob in MANIFEST.blobs.values()}

    wheel, _ = build_wheel(tmp_path / "dist", build_env(files_dir), project=sdist)
    assert wheel is not None
    assert wheel.read_bytes() == full_wheel.read_bytes()


def test_editable_install_serves_the_blobs_from_src(
    files_dir: Path, reference: dict[str, object], tmp_path: Path
) -> None:
    project = copy_project(tmp_path / "project")
    python = make_venv(tmp_path / "venv", "tiktoken")
    env = build_env(files_dir)
    run([str(python), "-m", "pip", "install", "-q", "-e", str(project)], env=env)

    data = project / "src" / "tiktoken_encodings_offline" / "data"
    assert {p.name: _sha256(p) for p in data.iterdir() if p.suffix != ".tsv"} == expected_blobs()
    assert [p.name for p in data.parent.iterdir() if p.name.startswith(".data-")] == []
    where = run([str(python), "-m", "tiktoken_encodings_offline", "path"], env=clean_env()).stdout.strip()
    assert where == str(data)

    probe = run(offline([python, PROBE]), env=clean_env())
    assert probe.stdout.strip() and _json(probe.stdout) == reference
    verify = run(offline([python, "-m", "tiktoken_encodings_offline", "verify"]), env=clean_env())
    assert "verified: all intact" in verify.stdout


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _json(text: str) -> object:
    import json

    return json.loads(text)
