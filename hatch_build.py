"""Hatchling hooks that put tiktoken's encoding files into the wheel.

The build hook reads top to bottom: resolve the options and the blobs the selected encodings
need, fetch each (local folder, build cache, mirror or upstream), verify every byte against the
manifest, and stage the blobs under tiktoken's cache names, force-included as package data.
The metadata hook gives a slim wheel its own version label and lists what a wheel carries.

Build isolation gives these hooks hatchling and the standard library only, so the manifest and
the fetcher are loaded by path: importing the package would activate it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from hatchling.builders.hooks.plugin.interface import BuildHookInterface
from hatchling.metadata.plugin.interface import MetadataHookInterface

ROOT = Path(__file__).resolve().parent
PACKAGE = ROOT / "src" / "tiktoken_encodings_offline"
DATA_IN_WHEEL = "tiktoken_encodings_offline/data"
HOOK_TABLE = ("tool", "hatch", "build", "targets", "wheel", "hooks", "custom")
ENV_PREFIX = "TIKTOKEN_ENCODINGS_OFFLINE_"

# Options: the key in the hook's pyproject.toml table; the environment variable is ENV_PREFIX
# plus the key in upper case with "_" for "-", and wins over the table.
OPTION_KEYS = (
    "source-dir",
    "encodings",
    "cache-dir",
    "mirror",
    "no-network",
    "ca-bundle",
    "connect-timeout",
    "read-timeout",
    "retries",
    "workers",
)
SECRET_ENV = ENV_PREFIX + "MIRROR_TOKEN"  # from the environment only, never from a file


def _load_by_path(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


_manifest = _load_by_path("_tiktoken_encodings_offline_manifest", PACKAGE / "_manifest.py")
_fetch = _load_by_path("_tiktoken_encodings_offline_fetch", PACKAGE / "_fetch.py")


class BuildError(Exception):
    pass


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper().replace("-", "_")


def read_options(table: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """The options that are set: the environment wins over the pyproject.toml table."""
    unknown = sorted(set(table) - set(OPTION_KEYS) - {"path", "dependencies", "require-runtime-dependencies"})
    if unknown:
        raise BuildError(f"unknown option(s) {unknown} in the build hook's table; valid: {list(OPTION_KEYS)}")
    options: dict[str, str] = {}
    for key in OPTION_KEYS:
        value = environ.get(env_name(key), table.get(key))
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(value)
        options[key] = str(value).strip() if not isinstance(value, bool) else ("1" if value else "0")
    return options


def select_encodings(options: Mapping[str, str], manifest: Any) -> list[str]:
    """The encodings to carry: all by default, or the listed ones (an unknown name is an error)."""
    listed = [name.strip() for name in options.get("encodings", "").split(",") if name.strip()]
    if not listed:
        return list(manifest.encodings)
    unknown = [name for name in listed if name not in manifest.encodings]
    if unknown:
        raise BuildError(
            f"{env_name('encodings')} names unknown encoding(s) {', '.join(unknown)}; "
            f"valid names: {', '.join(manifest.encodings)}"
        )
    return listed


def carried_encodings(options: Mapping[str, str], manifest: Any) -> list[str]:
    """Every encoding the selected blobs serve (o200k_base also brings o200k_harmony)."""
    blobs = manifest.blobs_for(select_encodings(options, manifest))
    return manifest.encodings_served_by(blob.url for blob in blobs)  # type: ignore[no-any-return]


def local_version_label(carried: list[str], manifest: Any) -> str:
    """'' for the full wheel, else a PEP 440 local label naming what a slim wheel carries."""
    if set(carried) == set(manifest.encodings):
        return ""
    return ".".join(name.replace("_", "") for name in carried)


def _flag(options: Mapping[str, str], key: str) -> bool:
    value = options.get(key, "").lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise BuildError(f"{env_name(key)}={value!r}: expected 1/0, true/false, yes/no or on/off")


def _number(options: Mapping[str, str], key: str, default: float, cast: Callable[[str], Any] = float) -> Any:
    if key not in options:
        return default
    try:
        return cast(options[key])
    except ValueError:
        raise BuildError(f"{env_name(key)}={options[key]!r}: expected a number") from None


def _directory(options: Mapping[str, str], key: str, log: Callable[[str], None]) -> Path | None:
    if not options.get(key):
        return None
    path = Path(options[key]).expanduser()
    if not path.is_absolute():
        path = path.resolve()
        log(
            f"{env_name(key)} is relative; resolved against {Path.cwd()} to {path} (the build's working "
            f"directory: frontends use the project or an unpacked sdist; pass an absolute path)"
        )
    return path


def default_cache_dir() -> Path:
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "tiktoken-encodings-offline"


def fetch_settings(options: Mapping[str, str], environ: Mapping[str, str], log: Callable[[str], None]) -> Any:
    source_dir = _directory(options, "source-dir", log)
    if source_dir is not None and not source_dir.is_dir():
        raise BuildError(
            f"{env_name('source-dir')}={options['source-dir']} is not a folder ({source_dir}). "
            f"Fix: pass the absolute path of a folder holding the encoding files."
        )
    if "cache-dir" not in options:
        cache_dir: Path | None = default_cache_dir()
    else:
        cache_dir = _directory(options, "cache-dir", log)  # "" turns the cache off
    if options.get("mirror") and not options["mirror"].startswith(("http://", "https://")):
        raise BuildError(f"{env_name('mirror')} must be an http:// or https:// base URL")
    return _fetch.FetchSettings(
        source_dir=source_dir,
        cache_dir=cache_dir,
        mirror=options.get("mirror") or None,
        token=environ.get(SECRET_ENV) or None,
        ca_bundle=options.get("ca-bundle") or None,
        network=not _flag(options, "no-network"),
        connect_timeout=_number(options, "connect-timeout", 15.0),
        read_timeout=_number(options, "read-timeout", 60.0),
        retries=_number(options, "retries", 4, int),
        workers=_number(options, "workers", 6, int),
        log=log,
    )


def stage(manifest: Any, blobs: list[Any], files: Mapping[str, Path], staging: Path) -> None:
    """Write each verified blob under its tiktoken cache name, and the record of what is there."""
    staging.mkdir()
    for blob in blobs:
        _fetch.copy_verified(files[blob.url], staging / blob.cache_name, blob.sha256)
    record = staging / _manifest.RECORD_NAME
    with open(record, "w", encoding="utf-8", newline="\n") as f:
        f.write(_manifest.record_text(manifest, blobs))
    record.chmod(0o644)


def _pyproject_table() -> Mapping[str, Any]:
    """The build hook's table, for the metadata hook (hatchling hands each hook only its own)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # hatchling depends on tomli there
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
    table: Any = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for key in HOOK_TABLE:
        table = table.get(key, {})
    return table  # type: ignore[no-any-return]


class OfflineEncodingsMetadataHook(MetadataHookInterface):
    """A slim wheel gets a local version label; every wheel's summary lists its encodings."""

    def update(self, metadata: dict[str, Any]) -> None:
        manifest = _manifest.load_manifest(PACKAGE / "manifest.json")
        try:
            carried = carried_encodings(read_options(_pyproject_table(), os.environ), manifest)
        except BuildError as error:
            raise SystemExit(f"tiktoken-encodings-offline: {error}") from None
        label = local_version_label(carried, manifest)
        if label:
            metadata["version"] = f"{metadata['version']}+{label}"
        metadata["description"] = (
            f"tiktoken's encoding files as a pip-installable wheel, for hosts with no internet "
            f"access. Carries: {', '.join(carried)}."
        )


class OfflineEncodingsBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return  # the sdist carries code, hook and manifest, never a blob
        self.workdir: Path | None = None
        try:
            self._build(version, build_data)
        except (BuildError, _fetch.FetchError) as error:
            self._remove_workdir()
            self.app.abort(f"tiktoken-encodings-offline: cannot build the wheel:\n{error}")
        except BaseException:
            self._remove_workdir()
            raise

    def _build(self, version: str, build_data: dict[str, Any]) -> None:
        log = self.app.display_info
        options = read_options(self.config, os.environ)
        manifest = _manifest.load_manifest(PACKAGE / "manifest.json")
        blobs = manifest.blobs_for(select_encodings(options, manifest))
        settings = fetch_settings(options, os.environ, log)
        if settings.source_dir is not None:
            log(f"source folder: {settings.source_dir}")

        editable = version == "editable"
        # Editable installs import from src/, so the blobs must sit there; otherwise stage
        # outside src/ in one folder, whose force-included walk hatchling sorts.
        self.workdir = Path(tempfile.mkdtemp(prefix=".data-", dir=PACKAGE if editable else None))
        files = _fetch.fetch_all(blobs, settings, self.workdir / "downloads")
        staging = self.workdir / "data"
        stage(manifest, blobs, files, staging)
        if editable:
            _replace_dir(staging, PACKAGE / _manifest.DATA_DIR_NAME)
            self._remove_workdir()
        else:
            build_data["force_include"][str(staging)] = DATA_IN_WHEEL
        carried = manifest.encodings_served_by(blob.url for blob in blobs)
        log(f"staged {len(blobs)} encoding files for: {', '.join(carried)}")

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        self._remove_workdir()
        if self.target_name == "wheel":
            add_directory_entries(Path(artifact_path))

    def _remove_workdir(self) -> None:
        if getattr(self, "workdir", None) is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)  # type: ignore[arg-type]
            self.workdir = None


def _replace_dir(new: Path, target: Path) -> None:
    old = target.with_name(f".{target.name}-old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def add_directory_entries(wheel: Path) -> None:
    """Give every folder in the wheel its own zip entry, reproducibly.

    Hatchling writes file entries only; before CPython 3.14, zipimport finds a namespace folder
    (``tiktoken_ext/``) in a zip on ``sys.path`` only through its entry, so a zipped install would
    never be activated. Each missing folder goes just before its first file, stamped with that
    file's time (hatchling's reproducible one); the files are copied unchanged, in their order.
    """
    import zipfile

    fd, name = tempfile.mkstemp(prefix=".dirs-", suffix=".whl", dir=wheel.parent)
    temporary = Path(name)
    try:
        with open(fd, "wb") as out_file, zipfile.ZipFile(wheel) as source, zipfile.ZipFile(out_file, "w") as target:
            present = {info.filename for info in source.infolist() if info.is_dir()}
            for info in source.infolist():
                parts = info.filename.rstrip("/").split("/")[:-1]
                for depth in range(1, len(parts) + 1):
                    folder = "/".join(parts[:depth]) + "/"
                    if folder not in present:
                        present.add(folder)
                        entry = zipfile.ZipInfo(folder, info.date_time)
                        entry.create_system = 3  # Unix, whatever the building OS
                        entry.external_attr = (0o40755 << 16) | 0x10  # drwxr-xr-x, MS-DOS folder bit
                        target.writestr(entry, b"", compress_type=zipfile.ZIP_STORED)
                target.writestr(info, source.read(info), compress_type=info.compress_type)
        temporary.chmod(wheel.stat().st_mode & 0o777)
        temporary.replace(wheel)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
