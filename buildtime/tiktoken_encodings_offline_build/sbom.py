"""Build time: the wheel's CycloneDX 1.6 SBOM (PEP 770), written with the standard library.

The SBOM names the package (``metadata.component``), its requirements (tiktoken, ...), and
every file the wheel carries outside ``.dist-info``, each with its SHA-256: each vendored blob as
``data`` with its canonical URL (an ``externalReferences`` entry of type ``distribution``) and its
terms as the README states them; each pre-parsed table as ``data`` derived from its blob(s)
(``pedigree.ancestors``); the two records; and the package's own files (the code as ``file``, the
rest, ``manifest.json`` first among them, as ``data``). The ``.dist-info`` files are hatchling's
metadata, hashed in its ``RECORD``, which the SBOM cannot list: ``RECORD`` holds the SBOM's own
hash. It is built from the staged folders themselves, so a file the SBOM cannot describe fails
the build. Nothing depends on time, paths or randomness: keys are sorted and the serial number is a
UUID derived from the content, so byte-identical wheels stay byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import fastpath
from .files import sha256_file
from .manifest import RECORD_NAME, Blob, Manifest

FILE_NAME = "sbom.cdx.json"  # short: <name>-<version>.dist-info/sboms/sbom.cdx.json
PROPERTY = "tiktoken-encodings-offline:"
GPT2_LICENCE_URL = "https://github.com/openai/gpt-2/blob/master/LICENSE"
# The README's "Where the files come from, and their terms", by upstream path prefix. A blob under
# no prefix here has no stated terms, and the build stops rather than guess them.
TERMS = {
    "gpt-2/": "GPT-2",
    "encodings/": "none published",
}
NO_LICENCE = (
    "none published: OpenAI states no licence for this file; tiktoken's MIT licence covers its code, not this file"
)


class SbomError(Exception):
    pass


@dataclass(frozen=True)
class Package:
    """What the SBOM says of the wheel itself, from the project's core metadata."""

    name: str
    version: str
    licence: str  # an SPDX expression, e.g. "MIT"
    requirements: Sequence[str]  # PEP 508 strings, e.g. "tiktoken>=0.7"
    gpt2_licence_text: str


def purl(name: str, version: str = "") -> str:
    """A PyPI package URL; the version's ``+`` (a local label) percent-encoded as purl asks."""
    normalized = re.sub(r"[-_.]+", "-", name).lower()
    return f"pkg:pypi/{normalized}" + (f"@{version.replace('+', '%2B')}" if version else "")


def sha256_hashes(digest: str) -> list[dict[str, str]]:
    return [{"alg": "SHA-256", "content": digest}]


def terms_of(blob: Blob) -> str:
    for prefix, terms in TERMS.items():
        if blob.path.startswith(prefix):
            return terms
    raise SbomError(
        f"{blob.url} has no stated terms: the SBOM would have to guess its licence. "
        f"Fix: add its path to TERMS in buildtime/tiktoken_encodings_offline_build/sbom.py "
        f"as the README's table states them"
    )


def licence_fields(blob: Blob, package: Package) -> dict[str, Any]:
    """The ``licenses`` entry as the README states it; none published is said, never made up."""
    if terms_of(blob) == "GPT-2":
        licence = {
            "name": "Modified MIT License (GPT-2)",
            "url": GPT2_LICENCE_URL,
            "acknowledgement": "declared",
            "text": {"content": package.gpt2_licence_text, "contentType": "text/plain"},
        }
        return {"licenses": [{"license": licence}]}
    # CycloneDX has no "no licence" identifier: no ``licenses`` means none is known, and the
    # property says why (an invented SPDX id or NOASSERTION would be wrong or rejected by tools).
    return {"properties": [{"name": f"{PROPERTY}licence", "value": NO_LICENCE}]}


def blob_component(blob: Blob, member: str, manifest: Manifest, package: Package) -> dict[str, Any]:
    served = [name for name, urls in manifest.encodings.items() if blob.url in urls]
    return {
        "type": "data",
        "bom-ref": member,
        "name": blob.path,
        "description": f"tiktoken encoding file, read for {', '.join(served)}; verified against the "
        f"SHA-256 tiktoken pins and stored under tiktoken's cache name",
        "hashes": sha256_hashes(blob.sha256),
        "externalReferences": [{"type": "distribution", "url": blob.url, "hashes": sha256_hashes(blob.sha256)}],
        "evidence": {"occurrences": [{"location": member}]},
        **licence_fields(blob, package),
    }


def ancestor(blob: Blob) -> dict[str, Any]:
    return {
        "type": "data",
        "name": blob.path,
        "hashes": sha256_hashes(blob.sha256),
        "externalReferences": [{"type": "distribution", "url": blob.url, "hashes": sha256_hashes(blob.sha256)}],
    }


def table_components(manifest: Manifest, tables: Path, prefix: str) -> dict[str, dict[str, Any]]:
    """Each pre-parsed table (by file name), derived from the blob(s) its ``derived.tsv`` rows name."""
    rows = (tables / fastpath.RECORD_NAME).read_text(encoding="utf-8").splitlines()
    assert rows[0].split("\t") == list(fastpath.RECORD_COLUMNS), rows[0]
    sources: dict[str, dict[str, None]] = {}  # gpt2 and r50k_base share one table: both are its sources
    for row in rows[1:]:
        source, _, file, _, _, _ = row.split("\t")
        sources.setdefault(file, {}).update(dict.fromkeys(source.split()))
    components = {}
    for file, urls in sources.items():
        member = f"{prefix}/{file}"
        names = sorted({manifest.blobs[url].file_name for url in urls})
        components[file] = {
            "type": "data",
            "bom-ref": member,
            "name": f"{fastpath.FOLDER}/{file}",
            "description": f"tiktoken's mergeable ranks pre-parsed at build time from {', '.join(names)} "
            f"(table format {fastpath.FORMAT_VERSION}); the terms of those files apply",
            "hashes": sha256_hashes(sha256_file(tables / file)),
            "pedigree": {
                "ancestors": [ancestor(manifest.blobs[url]) for url in urls],
                "notes": "derived: the same ranks tiktoken would parse from the ancestor file(s)",
            },
            "evidence": {"occurrences": [{"location": member}]},
        }
    return components


def record_component(path: Path, member: str, description: str, package: Package) -> dict[str, Any]:
    return {
        "type": "data",
        "bom-ref": member,
        "name": member,
        "description": description,
        "hashes": sha256_hashes(sha256_file(path)),
        "licenses": [{"expression": package.licence}],
        "evidence": {"occurrences": [{"location": member}]},
    }


OWN_FILES = {  # what a reader of the SBOM would want said of the package's own data files
    "tiktoken_encodings_offline/manifest.json": "the manifest: each encoding's files with their URL, size and the "
    "SHA-256 tiktoken pins, which every check of the build and the run time trusts",
    "tiktoken_encodings_offline/_pyinstaller/rthooks.dat": "PyInstaller's list of this package's run-time hooks",
}
CODE_SUFFIXES = (".py",)


def own_file_component(path: Path, member: str, package: Package) -> dict[str, Any]:
    """A file of the package itself: its code (``file``) or its own data (``data``), under its licence."""
    code = member.endswith(CODE_SUFFIXES)
    return {
        "type": "file" if code else "data",
        "bom-ref": member,
        "name": member,
        "description": OWN_FILES.get(member, f"{'code' if code else 'a data file'} of {package.name}"),
        "hashes": sha256_hashes(sha256_file(path)),
        "licenses": [{"expression": package.licence}],
        "evidence": {"occurrences": [{"location": member}]},
    }


def requirement_component(requirement: str) -> dict[str, Any]:
    """A requirement as a component: a version range is no version, so the purl has none."""
    name = re.split(r"[\s;<>=!~\[(@]", requirement.strip(), maxsplit=1)[0]  # hatchling checked the syntax
    return {
        "type": "library",
        "bom-ref": purl(name),
        "name": name,
        "purl": purl(name),
        # "optional": not installed where its environment marker is false
        "scope": "optional" if ";" in requirement else "required",
        "properties": [{"name": f"{PROPERTY}requirement", "value": requirement}],
    }


def document(
    package: Package,
    manifest: Manifest,
    blobs: Sequence[Blob],
    data: tuple[Path, str],
    tables: tuple[Path, str],
    own_files: Sequence[tuple[Path, str]],
) -> bytes:
    """The SBOM of a wheel carrying the staged ``data`` and ``tables`` folders, each given with its
    path in the wheel, and ``own_files`` (each file and its path in the wheel: the package's code and
    data). Every file in the staged folders is described, or the build fails naming it.
    """
    (staged, data_prefix), (tables_dir, tables_prefix) = data, tables
    by_cache_name = {blob.cache_name: blob for blob in blobs}
    requirements = [requirement_component(requirement) for requirement in package.requirements]
    files: list[dict[str, Any]] = []
    for path in sorted(staged.iterdir()):
        member = f"{data_prefix}/{path.name}"
        if path.name in by_cache_name:
            files.append(blob_component(by_cache_name[path.name], member, manifest, package))
        elif path.name == RECORD_NAME:
            files.append(record_component(path, member, "the record of the vendored files", package))
        else:
            raise SbomError(f"{path} is staged for the wheel but the SBOM cannot describe it")
    tables_by_name = table_components(manifest, tables_dir, tables_prefix)
    for path in sorted(tables_dir.iterdir()):
        member = f"{tables_prefix}/{path.name}"
        if path.name in tables_by_name:
            files.append(tables_by_name[path.name])
        elif path.name == fastpath.RECORD_NAME:
            files.append(record_component(path, member, "the record of the pre-parsed tables", package))
        else:
            raise SbomError(f"{path} is staged for the wheel but the SBOM cannot describe it")
    staged_members = {component["bom-ref"] for component in files}
    for path, member in sorted(own_files, key=lambda file: file[1]):
        if member not in staged_members:  # the staged folders' files, listed by the hook too
            files.append(own_file_component(path, member, package))
    me = purl(package.name, package.version)
    bom: dict[str, Any] = {
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "metadata": {
            "lifecycles": [{"phase": "build"}],
            "component": {
                "type": "library",
                "bom-ref": me,
                "name": package.name,
                "version": package.version,
                "purl": me,
                "licenses": [{"expression": package.licence}],
            },
        },
        "components": requirements + files,
        "dependencies": [
            {"ref": me, "dependsOn": [component["bom-ref"] for component in requirements]},
            *({"ref": component["bom-ref"]} for component in requirements),
        ],
    }
    body = _dumps(bom)
    bom["serialNumber"] = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, me + '#' + hashlib.sha256(body).hexdigest())}"
    return _dumps(bom)


def _dumps(bom: Mapping[str, Any]) -> bytes:
    return (json.dumps(bom, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
