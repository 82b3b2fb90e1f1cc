"""Hatchling hooks that put tiktoken's encoding files into the wheel.

The build hook reads top to bottom: resolve the options and the blobs the selected encodings
need, fetch each (local folder, build cache, mirror or upstream), verify every byte against the
manifest, and stage the blobs under tiktoken's cache names, force-included as package data.
The metadata hook gives a slim wheel its own version label and lists what a wheel carries.

The fetcher and the manifest model are build-time code in ``buildtime/`` (the sdist carries it,
the wheel never does): that folder goes on ``sys.path`` and its package is imported normally.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface
from hatchling.metadata.plugin.interface import MetadataHookInterface

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "buildtime"))

from tiktoken_encodings_offline_build import fastpath, sbom  # noqa: E402
from tiktoken_encodings_offline_build.fetch import FetchError, FetchSettings, fetch_all  # noqa: E402
from tiktoken_encodings_offline_build.files import DamagedFile, InUse, copy_verified, rename, write_file  # noqa: E402
from tiktoken_encodings_offline_build.manifest import (  # noqa: E402
    DATA_DIR_NAME,
    MANIFEST_PATH,
    PACKAGE_SRC,
    RECORD_NAME,
    Blob,
    Manifest,
    load_manifest,
    record_text,
)
from tiktoken_encodings_offline_build.options import (  # noqa: E402
    OptionError,
    env_name,
    fetch_settings,
    network_advice,
    read_options,
)

DATA_IN_WHEEL = "tiktoken_encodings_offline/data"
HOOK_TABLE = ("tool", "hatch", "build", "targets", "wheel", "hooks", "custom")
PREBUILT_WHEEL_HINT = (
    "If this is an offline host and pip fell back to building tiktoken-encodings-offline from "
    "its sdist, install the prebuilt wheel from your private index instead "
    "(pip install --only-binary tiktoken-encodings-offline tiktoken-encodings-offline)."
)


class BuildError(Exception):
    pass


def select_encodings(options: Mapping[str, tuple[str, str]], manifest: Manifest) -> list[str]:
    """The encodings to carry: all by default, or the listed ones (an unknown name is an error)."""
    value, where = options.get("encodings", ("", env_name("encodings")))
    listed = [name.strip() for name in value.split(",") if name.strip()]
    if not listed:
        return list(manifest.encodings)
    unknown = [name for name in listed if name not in manifest.encodings]
    if unknown:
        raise BuildError(
            f"{where} names unknown encoding(s) {', '.join(unknown)}; valid names: {', '.join(manifest.encodings)}"
        )
    return listed


def carried_encodings(options: Mapping[str, tuple[str, str]], manifest: Manifest) -> list[str]:
    """Every encoding the selected blobs serve (o200k_base also brings o200k_harmony)."""
    blobs = manifest.blobs_for(select_encodings(options, manifest))
    return manifest.encodings_served_by(blob.url for blob in blobs)


# One letter for each encoding in a slim wheel's local version label: the label goes into every
# .dist-info member name, which must stay within 80 characters (Windows' MAX_PATH), so the
# readable names (cl100kbase.o200kbase.o200kharmony) do not fit. The summary names them in full.
LABEL_LETTERS = {
    "gpt2": "g",
    "r50k_base": "r",
    "p50k_base": "p",
    "p50k_edit": "e",
    "cl100k_base": "c",
    "o200k_base": "o",
    "o200k_harmony": "h",
}


def local_version_label(carried: list[str], manifest: Manifest) -> str:
    """'' for the full wheel, else a PEP 440 local label of one letter for each carried encoding."""
    if set(carried) == set(manifest.encodings):
        return ""
    unlettered = [name for name in carried if name not in LABEL_LETTERS]
    if unlettered:
        raise BuildError(f"hatch_build.py: LABEL_LETTERS has no letter for {', '.join(unlettered)}; add one")
    return "".join(LABEL_LETTERS[name] for name in carried)


def slim_wheel_notice(version: str) -> str:
    """The one line a slim build prints: PEP 440 sorts a local label above the plain version."""
    plain = version.split("+")[0]
    return (
        f"tiktoken-encodings-offline: this is the slim wheel {version}: wherever the full {plain} is offered too, "
        f"pip installs this one, even for =={plain}. Publish it in a repository of its own and pin it "
        f"with ==={version} (the full wheel: ==={plain}); README: Slim wheels"
    )


def fix_for(error: FetchError, settings: FetchSettings) -> str:
    """The build's advice for a fetch failure, naming only the settings that are in play."""
    if error.kind == "offline":
        advice = (
            "Fix: put the files in TIKTOKEN_ENCODINGS_OFFLINE_SOURCE_DIR (scripts/prefetch.py makes such "
            "a folder on a connected machine), or allow the download."
        )
    elif error.kind in ("damaged", "disk"):
        return ""  # its message names the file or folder and the fix
    else:
        route = network_advice(settings, os.environ)
        advice = f"Fix: {route}, or build from a folder of the files with TIKTOKEN_ENCODINGS_OFFLINE_SOURCE_DIR."
    return f"\n{advice}\n{PREBUILT_WHEEL_HINT}"


def stage(manifest: Manifest, blobs: list[Blob], files: Mapping[str, Path], staging: Path) -> None:
    """Write each verified blob under its tiktoken cache name, and the record of what is there."""
    staging.mkdir()
    for blob in blobs:
        copy_verified(files[blob.url], staging / blob.cache_name, blob.sha256)
    write_file(staging / RECORD_NAME, record_text(manifest, blobs).encode())


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
        manifest = load_manifest(MANIFEST_PATH)
        try:
            carried = carried_encodings(read_options(_pyproject_table(), os.environ), manifest)
        except (BuildError, OptionError) as error:
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
        except (BuildError, OptionError, FetchError, DamagedFile, sbom.SbomError) as error:
            self._remove_workdir()
            self.app.abort(f"tiktoken-encodings-offline: cannot build the wheel:\n{error}{self.fix}")
        except InUse as error:  # Windows: another process has a staged file open
            self._remove_workdir()
            self.app.abort(f"tiktoken-encodings-offline: cannot build the wheel: {error.filename}: {error.strerror}")
        except OSError as error:  # staging: a full disk or a read-only TMPDIR
            self._remove_workdir()
            self.app.abort(
                f"tiktoken-encodings-offline: cannot build the wheel: {error.strerror}: {error.filename}. "
                f"Fix: free space there, or set TMPDIR to a folder with room"
            )
        except BaseException:  # Ctrl-C and SIGTERM included: the downloads are stopped by now
            self._remove_workdir()
            raise

    def _build(self, version: str, build_data: dict[str, Any]) -> None:
        log = self.app.display_info
        self.fix = ""
        options = read_options(self.config, os.environ)
        manifest = load_manifest(MANIFEST_PATH)
        blobs = manifest.blobs_for(select_encodings(options, manifest))
        settings = fetch_settings(options, os.environ, log)
        if settings.source_dir is not None:
            log(f"source folder: {settings.source_dir}")

        editable = version == "editable"
        # Editable installs import from src/, so the blobs must sit there; otherwise stage
        # outside src/ in one folder, whose force-included walk hatchling sorts.
        self.workdir = Path(tempfile.mkdtemp(prefix=".data-", dir=PACKAGE_SRC if editable else None))
        try:
            files = fetch_all(blobs, settings, self.workdir / "downloads")
        except FetchError as error:
            self.fix = fix_for(error, settings)
            raise
        staging = self.workdir / "data"
        stage(manifest, blobs, files, staging)
        tables = self.workdir / fastpath.FOLDER  # the pre-parsed ranks (docs/fastpath.md)
        fastpath.write_derived(manifest, blobs, staging, tables)
        if editable:
            _replace_dir(tables, PACKAGE_SRC / fastpath.FOLDER)
        else:
            build_data["force_include"][str(tables)] = f"tiktoken_encodings_offline/{fastpath.FOLDER}"
        if editable:
            _replace_dir(staging, PACKAGE_SRC / DATA_DIR_NAME)
            self._remove_workdir()
        else:
            build_data["force_include"][str(staging)] = DATA_IN_WHEEL
            self._add_sbom(manifest, blobs, build_data, staging, tables)
        carried = manifest.encodings_served_by(blob.url for blob in blobs)
        log(f"staged {len(blobs)} encoding files for: {', '.join(carried)}")
        if "+" in self.metadata.version:
            self.app.display_warning(slim_wheel_notice(self.metadata.version))

    def _add_sbom(
        self, manifest: Manifest, blobs: list[Blob], build_data: dict[str, Any], staging: Path, tables: Path
    ) -> None:
        """The wheel's CycloneDX SBOM (PEP 770), where hatchling can place it (1.28 and later)."""
        if "sbom_files" not in build_data:
            from hatchling import __about__

            self.app.display_warning(
                f"tiktoken-encodings-offline: no SBOM in this wheel: hatchling {__about__.__version__} cannot put one "
                f"in .dist-info/sboms/ (PEP 770 support came in hatchling 1.28, which needs Python 3.10 or later)"
            )
            return
        core = self.metadata.core
        package = sbom.Package(
            name=core.name,
            version=core.version,
            licence=core.license_expression,
            requirements=core.dependencies,
            gpt2_licence_text=(ROOT / "LICENSES" / "GPT-2.txt").read_text(encoding="utf-8"),
        )
        tables_in_wheel = f"tiktoken_encodings_offline/{fastpath.FOLDER}"
        with self.build_config.set_build_data(build_data):  # every file the wheel will carry, as hatchling sees it
            carried = [
                (Path(file.path), file.distribution_path.replace(os.sep, "/"))
                for file in self.build_config.builder.recurse_included_files()
            ]
        document = sbom.document(package, manifest, blobs, (staging, DATA_IN_WHEEL), (tables, tables_in_wheel), carried)
        path = staging.parent / sbom.FILE_NAME  # the work folder, removed in finalize
        write_file(path, document)
        build_data["sbom_files"].append(str(path))

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        self._remove_workdir()
        if self.target_name == "wheel":
            try:
                add_folders_and_store_code(Path(artifact_path))
            except InUse as error:  # Windows: a scanner has the new wheel open
                with contextlib.suppress(OSError):  # a wheel without its folder entries is no wheel of ours
                    Path(artifact_path).unlink()
                self.app.abort(
                    f"tiktoken-encodings-offline: cannot finish the wheel: {error.filename}: {error.strerror}"
                )

    def _remove_workdir(self) -> None:
        if getattr(self, "workdir", None) is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)  # type: ignore[arg-type]
            self.workdir = None


def _replace_dir(new: Path, target: Path) -> None:
    """Put the folder ``new`` in place of ``target`` (an editable install's staged files).

    The old folder is moved aside first, and moved back if ``new`` cannot take its place.
    """
    old = target.with_name(f".{target.name}-old-{os.getpid()}")
    aside = target.exists()
    if aside:
        rename(target, old)
    try:
        rename(new, target)
    except BaseException:
        if aside:
            try:
                rename(old, target)
            except OSError as error:
                raise InUse(
                    error.errno,
                    f"cannot put the previous files back: {error.strerror}; they are in {old}. Fix: move that "
                    f"folder back to {target.name} once the process holding it is done, then install again",
                    str(target),
                ) from None
        raise
    shutil.rmtree(old, ignore_errors=True)


def add_folders_and_store_code(wheel: Path) -> None:
    """Give every folder in the wheel its own zip entry, and store its code uncompressed, reproducibly.

    Hatchling writes file entries only; before CPython 3.14, zipimport finds a namespace folder
    (``tiktoken_ext/``) in a zip on ``sys.path`` only through its entry, so a zipped install would
    never be activated. Each missing folder goes just before its first file, stamped with that
    file's time (hatchling's reproducible one); the files are copied in their order, with their
    content and time. Each ``.py`` member is stored (ZIP_STORED): zipimport sets up its decompressor
    behind a flag with no lock, and two threads inflating at once are told "zlib not available";
    a stored member is read without it, so an import from a zipped install never meets that
    failure. The data stays deflated (the code is about 100 kB).
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
                code = info.filename.endswith(".py")
                compress_type = zipfile.ZIP_STORED if code else info.compress_type
                target.writestr(info, source.read(info), compress_type=compress_type)
        temporary.chmod(wheel.stat().st_mode & 0o777)
        rename(temporary, wheel)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
