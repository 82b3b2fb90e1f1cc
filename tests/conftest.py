"""Fixtures: the real encoding files in three layouts, reference token ids, a built wheel."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import MANIFEST, ROOT, build_wheel, clean_env, fetch_module, make_venv, offline, run
from mirror import Mirror

# The real files, byte-identical to the published ones; this machine cannot reach the upstream.
FILES_DIR = Path(os.environ.get("TIKTOKEN_ENCODINGS_OFFLINE_TEST_FILES", ROOT.parent / "shared" / "encodings-mirror"))
PROBE = Path(__file__).with_name("probe_encodings.py")


def _need_real_files() -> Path:
    if (FILES_DIR / "SHA256SUMS").is_file():
        return FILES_DIR.resolve()
    message = f"the real encoding files are not at {FILES_DIR} (set TIKTOKEN_ENCODINGS_OFFLINE_TEST_FILES)"
    if os.environ.get("CI"):
        pytest.fail(message + ": CI must run every test", pytrace=False)
    pytest.skip(message)


# --- Disk: a full run builds wheels and venvs worth GBs; none of them outlives the run ----------------


@pytest.fixture(scope="session", autouse=True)
def _private_caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every process of the run (the package, tiktoken, openai-harmony, builds) keeps its caches in
    the run's own TMPDIR and XDG_CACHE_HOME, which go at the end with the rest: no
    /tmp/data-gym-cache, /tmp/tiktoken-rs-cache or ~/.cache/tiktoken-encodings-offline is left.
    pip's and uv's caches stay where they are (venvs are not downloaded anew); HOME stays (pip's
    configuration). Tests that need a default of their own set these variables themselves."""
    sandbox = tmp_path_factory.mktemp("private-caches")
    home_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    private = {
        "TMPDIR": sandbox / "tmp",
        "XDG_CACHE_HOME": sandbox / "cache",
        "PIP_CACHE_DIR": Path(os.environ.get("PIP_CACHE_DIR") or home_cache / "pip"),
        "UV_CACHE_DIR": Path(os.environ.get("UV_CACHE_DIR") or home_cache / "uv"),
    }
    saved = {name: os.environ.get(name) for name in private}
    saved_tempdir = tempfile.tempdir
    for name, path in private.items():
        if path.is_relative_to(sandbox):
            path.mkdir()
        os.environ[name] = str(path)
    tempfile.tempdir = None  # this process's tempfile.mkdtemp() too
    yield sandbox
    tempfile.tempdir = saved_tempdir
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


_failed_tmp_paths: set[Path] = set()  # kept for a look, as pytest's tmp_path_retention_policy "failed" keeps them


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    tmp_path = getattr(item, "funcargs", {}).get("tmp_path")
    if report.failed and isinstance(tmp_path, Path):
        _failed_tmp_paths.add(tmp_path)


@pytest.fixture(scope="session", autouse=True)
def _remove_large_artefacts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """At the end of the run, everything the session and module fixtures made (wheels, venvs, copies of
    the files) goes, even when tests failed: only the tmp_path of a failed test stays. pyproject's
    tmp_path_retention_policy = "failed" removes a passed test's tmp_path as it ends."""
    yield
    base = tmp_path_factory.getbasetemp()
    for entry in list(base.iterdir()):
        if entry not in _failed_tmp_paths and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)


@pytest.fixture(scope="session")
def files_dir() -> Path:
    """The real files in the upstream path layout (encodings/..., gpt-2/encodings/main/...)."""
    return _need_real_files()


@pytest.fixture(scope="session")
def layouts(files_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same six files as an upstream tree, a flat folder, and a tiktoken cache folder."""
    flat = tmp_path_factory.mktemp("flat")
    cache = tmp_path_factory.mktemp("tiktoken-cache")
    for blob in MANIFEST.blobs.values():
        shutil.copyfile(files_dir / blob.path, flat / blob.file_name)
        shutil.copyfile(files_dir / blob.path, cache / blob.cache_name)
    return {"upstream": files_dir, "flat": flat, "cache": cache}


def build_env(source_dir: Path | None, **overrides: str) -> dict[str, str]:
    """A build environment: a source folder, the build cache off, SOURCE_DATE_EPOCH fixed."""
    env = clean_env(SOURCE_DATE_EPOCH="1700000000", TIKTOKEN_ENCODINGS_OFFLINE_CACHE_DIR="")
    if source_dir is not None:
        env["TIKTOKEN_ENCODINGS_OFFLINE_SOURCE_DIR"] = str(source_dir)
    env.update(overrides)
    return env


@pytest.fixture(scope="session")
def full_wheel(files_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheel, _ = build_wheel(tmp_path_factory.mktemp("full-wheel"), build_env(files_dir))
    assert wheel is not None
    return wheel


@pytest.fixture(scope="session")
def companion_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiktoken-encodings-offline-autostart's wheel (autostart/): the start-up line and its module."""
    wheel, _ = build_wheel(tmp_path_factory.mktemp("companion-wheel"), build_env(None), project=ROOT / "autostart")
    assert wheel is not None
    return wheel


@pytest.fixture(scope="session")
def reference(layouts: dict[str, Path]) -> dict[str, object]:
    """Token ids from plain tiktoken (this interpreter's, no package) reading the real files, offline."""
    env = clean_env(TIKTOKEN_CACHE_DIR=str(layouts["cache"]))
    result = run(offline([sys.executable, str(PROBE)]), env=env)
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def runtime_venv(full_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only tiktoken (and its dependencies) and the full wheel: the base alone,
    with no start-up file (tests/test_startup.py adds the companion in venvs of its own)."""
    return make_venv(tmp_path_factory.mktemp("venv") / "venv", str(full_wheel))


@pytest.fixture(scope="session")
def companion_venv(full_wheel: Path, companion_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding tiktoken, the base wheel and the companion."""
    return make_venv(tmp_path_factory.mktemp("companion") / "venv", str(full_wheel), str(companion_wheel))


# The build's fetcher, called in-process against the loopback mirror.


@pytest.fixture
def mirror(files_dir: Path) -> Iterator[Mirror]:
    with Mirror(files_dir) as served:
        yield served


class Fetch:
    """Calls the build's fetcher with fast retries and a private cache; keeps its log lines."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.cache = tmp_path / "cache"
        self.logs: list[str] = []

    def __call__(self, blobs: list[Any], **overrides: Any) -> dict[str, Path]:
        settings = {
            "cache_dir": self.cache,
            "retries": 3,
            "backoff": 0.01,
            "connect_timeout": 2.0,
            "read_timeout": 2.0,
            "log": self.logs.append,
            **overrides,
        }
        found: dict[str, Path] = fetch_module.fetch_all(
            blobs, fetch_module.FetchSettings(**settings), self.tmp_path / "work"
        )
        return found

    def error(self, blobs: list[Any], **overrides: Any) -> str:
        with pytest.raises(fetch_module.FetchError) as caught:
            self(blobs, **overrides)
        return str(caught.value)


@pytest.fixture
def fetch(tmp_path: Path) -> Fetch:
    return Fetch(tmp_path)
