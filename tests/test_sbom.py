"""Issues 22 and 28: every wheel carries a valid CycloneDX 1.6 SBOM (PEP 770) listing every file it carries."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from conftest import build_env
from helpers import (
    MANIFEST,
    ROOT,
    blob_members,
    build_wheel,
    copy_project,
    expected_blobs,
    make_venv,
    run,
    wheel_members,
)
from tiktoken_encodings_offline_build import fastpath, sbom

PACKAGE = "tiktoken_encodings_offline/"
DATA_FOLDERS = (f"{PACKAGE}data/", f"{PACKAGE}fastpath/")
GPT2_LICENCE = (ROOT / "LICENSES" / "GPT-2.txt").read_text()
NO_HATCHLING_SBOM = "no SBOM in this wheel: hatchling 1.27.0 cannot put one in .dist-info/sboms/"


def read_sbom(wheel: Path) -> tuple[str, str]:
    """The SBOM's member name and text; the wheel must hold exactly one."""
    with zipfile.ZipFile(wheel) as archive:
        names = [name for name in archive.namelist() if "/sboms/" in name and not name.endswith("/")]
        assert len(names) == 1, names
        return names[0], archive.read(names[0]).decode()


def check_sbom(wheel: Path, version: str, encodings: list[str]) -> dict[str, Any]:
    """What every wheel's SBOM must be; returns it parsed for the test's own checks."""
    name, text = read_sbom(wheel)
    assert name == f"tiktoken_encodings_offline-{version}.dist-info/sboms/sbom.cdx.json"
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text, all_errors=True)
    assert errors is None, [str(error) for error in errors]
    bom = json.loads(text)
    assert bom["specVersion"] == "1.6" and "timestamp" not in bom["metadata"]
    assert text == json.dumps(bom, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    members = wheel_members(wheel)
    with zipfile.ZipFile(wheel) as archive:
        record = archive.read(name.replace("sboms/sbom.cdx.json", "RECORD")).decode()
    assert f"{name},sha256=" in record  # hatchling recorded it: pip installs and uninstalls it

    purl = f"pkg:pypi/tiktoken-encodings-offline@{version.replace('+', '%2B')}"
    assert bom["metadata"]["component"] == {
        "type": "library",
        "bom-ref": purl,
        "name": "tiktoken-encodings-offline",
        "version": version,
        "purl": purl,
        "licenses": [{"expression": "MIT"}],
    }
    by_ref = {component["bom-ref"]: component for component in bom["components"]}
    tiktoken = by_ref["pkg:pypi/tiktoken"]
    assert (tiktoken["name"], tiktoken["scope"]) == ("tiktoken", "required")
    assert tiktoken["properties"] == [{"name": "tiktoken-encodings-offline:requirement", "value": "tiktoken>=0.7"}]
    assert "pkg:pypi/tiktoken" in bom["dependencies"][0]["dependsOn"] and bom["dependencies"][0]["ref"] == purl

    # Every file the wheel carries outside .dist-info (hatchling's metadata, hashed in RECORD, which
    # holds the SBOM's own hash) is a component, with the SHA-256 of the wheel's member: the data
    # (issue 28, item 9: manifest.json and rthooks.dat too) as "data", the code as "file".
    listed = {c["evidence"]["occurrences"][0]["location"]: c for c in bom["components"] if c["type"] != "library"}
    carried = {member for member in members if ".dist-info/" not in member}
    data_members = {member for member in carried if not member.endswith(".py")}
    assert {f"{PACKAGE}manifest.json", f"{PACKAGE}_pyinstaller/rthooks.dat"} <= data_members
    assert data_members - set(listed) == set(), "data files the SBOM does not list"
    assert set(listed) == carried
    for member, component in listed.items():
        assert component["hashes"] == [{"alg": "SHA-256", "content": members[member]}], member
        assert component["type"] == ("data" if member in data_members else "file"), member
    files = {member: component for member, component in listed.items() if component["type"] == "data"}

    # Each vendored file: its canonical URL and SHA-256 (the manifest's) and its terms, as the README states.
    blobs = MANIFEST.blobs_for(encodings)
    assert {m[len(f"{PACKAGE}data/") :] for m in files if not m.endswith(".tsv") and "/data/" in m} == set(
        expected_blobs(encodings)
    )
    for blob in blobs:
        component = files[f"{PACKAGE}data/{blob.cache_name}"]
        digest = [{"alg": "SHA-256", "content": blob.sha256}]
        assert component["name"] == blob.path and component["hashes"] == digest
        assert component["externalReferences"] == [{"type": "distribution", "url": blob.url, "hashes": digest}]
        if blob.path.startswith("gpt-2/"):
            (licence,) = component["licenses"]
            assert licence["license"]["name"] == "Modified MIT License (GPT-2)"
            assert licence["license"]["text"]["content"] == GPT2_LICENCE
            assert "properties" not in component
        else:
            assert "licenses" not in component  # none is published: said, never made up
            (said,) = component["properties"]
            assert said["name"] == "tiktoken-encodings-offline:licence"
            assert said["value"].startswith("none published: OpenAI states no licence for this file")

    # Each pre-parsed table is derived from exactly the files derived.tsv names for it.
    with zipfile.ZipFile(wheel) as archive:
        rows = [line.split("\t") for line in archive.read(f"{PACKAGE}fastpath/derived.tsv").decode().splitlines()[1:]]
    assert rows
    for file in {row[2] for row in rows}:
        sources = [url for row in rows if row[2] == file for url in row[0].split()]
        component = files[f"{PACKAGE}fastpath/{file}"]
        ancestors = component["pedigree"]["ancestors"]
        assert sorted(a["externalReferences"][0]["url"] for a in ancestors) == sorted(set(sources))
        for ancestor in ancestors:
            blob = MANIFEST.blobs[ancestor["externalReferences"][0]["url"]]
            assert ancestor["hashes"] == [{"alg": "SHA-256", "content": blob.sha256}]
    return bom  # type: ignore[no-any-return]


def test_the_full_wheels_sbom_is_valid_and_covers_every_data_file(full_wheel: Path) -> None:
    bom = check_sbom(full_wheel, "0.1.0", list(MANIFEST.encodings))
    tables = [c for c in bom["components"] if "pedigree" in c]
    assert len(tables) == 4  # gpt2 and r50k_base share one table
    shared = next(c for c in tables if len(c["pedigree"]["ancestors"]) == 3)
    assert {a["name"] for a in shared["pedigree"]["ancestors"]} == {
        "encodings/r50k_base.tiktoken",
        "gpt-2/encodings/main/vocab.bpe",
        "gpt-2/encodings/main/encoder.json",
    }
    staged = [c for c in bom["components"] if c["bom-ref"].startswith(DATA_FOLDERS)]
    assert len(staged) == 6 + 4 + 2  # the files, the tables, the two records


def test_a_slim_wheels_sbom_lists_only_what_it_carries(files_dir: Path, tmp_path: Path) -> None:
    wheel, _ = build_wheel(tmp_path, build_env(files_dir, TIKTOKEN_ENCODINGS_OFFLINE_ENCODINGS="gpt2"))
    assert wheel is not None
    bom = check_sbom(wheel, "0.1.0+g", ["gpt2"])
    staged = [c for c in bom["components"] if c["bom-ref"].startswith(DATA_FOLDERS)]
    names = sorted(c["name"] for c in staged if "pedigree" not in c)
    assert names[:2] == ["gpt-2/encodings/main/encoder.json", "gpt-2/encodings/main/vocab.bpe"]
    assert len(names) == 4  # and the two records
    assert bom["metadata"]["component"]["purl"] == "pkg:pypi/tiktoken-encodings-offline@0.1.0%2Bg"


def test_the_sbom_depends_on_no_time_and_no_folder(files_dir: Path, full_wheel: Path, tmp_path: Path) -> None:
    # Another time and another temporary folder change the wheel's timestamps, never its SBOM.
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = build_env(files_dir, SOURCE_DATE_EPOCH="1800000000", TMPDIR=str(tmp))
    wheel, _ = build_wheel(tmp_path / "dist", env)
    assert wheel is not None and wheel.read_bytes() != full_wheel.read_bytes()
    assert read_sbom(wheel) == read_sbom(full_wheel)
    assert str(tmp_path) not in read_sbom(wheel)[1] and "/tmp" not in read_sbom(wheel)[1]


def test_a_blob_with_no_stated_terms_fails_the_build_naming_it(files_dir: Path, tmp_path: Path) -> None:
    # A new file in the manifest must get its terms written down; the build never guesses them.
    project = copy_project(tmp_path / "project")
    module = project / "buildtime" / "tiktoken_encodings_offline_build" / "sbom.py"
    text = module.read_text()
    assert '    "encodings/": "none published",\n' in text
    module.write_text(text.replace('    "encodings/": "none published",\n', ""))
    env = build_env(files_dir, TIKTOKEN_ENCODINGS_OFFLINE_ENCODINGS="cl100k_base")
    wheel, result = build_wheel(tmp_path / "dist", env, project=project, check=False)
    assert wheel is None and result.returncode != 0
    output = result.stdout + result.stderr
    blob = MANIFEST.blobs_for(["cl100k_base"])[0]
    assert "tiktoken-encodings-offline: cannot build the wheel:" in output and "Traceback" not in output
    assert f"{blob.url} has no stated terms: the SBOM would have to guess its licence" in output
    assert "Fix: add its path to TERMS in buildtime/tiktoken_encodings_offline_build/sbom.py" in output


def test_a_staged_file_the_sbom_cannot_describe_is_an_error(files_dir: Path, tmp_path: Path) -> None:
    # The SBOM is made from the staged folders, so nothing can ride into the wheel undescribed.
    blobs = MANIFEST.blobs_for(["r50k_base"])
    data, tables = tmp_path / "data", tmp_path / "fastpath"
    data.mkdir()
    for blob in blobs:
        shutil.copyfile(files_dir / blob.path, data / blob.cache_name)
    fastpath.write_derived(MANIFEST, blobs, data, tables)
    package = sbom.Package("tiktoken-encodings-offline", "0.1.0+r", "MIT", ["tiktoken>=0.7"], GPT2_LICENCE)
    folders = ((data, f"{PACKAGE}data"), (tables, f"{PACKAGE}fastpath"))
    assert json.loads(sbom.document(package, MANIFEST, blobs, *folders, []))["components"]
    for folder in (data, tables):
        stray = folder / "stray.bin"
        stray.write_bytes(b"x")
        with pytest.raises(sbom.SbomError, match=f"{stray} is staged for the wheel but the SBOM cannot describe it"):
            sbom.document(package, MANIFEST, blobs, *folders, [])
        stray.unlink()


@pytest.mark.slow
def test_hatchling_1_27_builds_without_an_sbom_and_says_why_once(files_dir: Path, tmp_path: Path) -> None:
    # 1.27 is the newest hatchling on Python 3.9; its wheels cannot carry .dist-info/sboms/.
    python = make_venv(tmp_path / "venv", "hatchling==1.27.0")
    env = build_env(files_dir, TIKTOKEN_ENCODINGS_OFFLINE_ENCODINGS="r50k_base")
    cmd = [str(python), "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-v", "-w", "dist"]
    result = run(cmd, env=env, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert output.count(NO_HATCHLING_SBOM) == 1, output
    wheel = next((tmp_path / "dist").glob("*.whl"))
    assert blob_members(wheel) == expected_blobs(["r50k_base"])
    with zipfile.ZipFile(wheel) as archive:
        assert (
            "Generator: hatchling 1.27.0" in archive.read("tiktoken_encodings_offline-0.1.0+r.dist-info/WHEEL").decode()
        )
        assert not [name for name in archive.namelist() if "/sboms/" in name]
