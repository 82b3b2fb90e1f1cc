"""Command line: python -m tiktoken_encodings_offline {path,list,verify,export,doctor}."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from importlib.metadata import version
from typing import Any

from . import DISABLE_ENV, HARMONY_ENCODINGS, STRICT_ENV, _env_flag, where
from ._manifest import Blob, read_record, sha256_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tiktoken-encodings-offline",
        description="tiktoken's encoding files, vendored for hosts with no internet access.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("path", help="print the folder of the vendored files (a TIKTOKEN_CACHE_DIR)")
    for name, text in (
        ("list", "the vendored encodings and files: sizes, present and intact?"),
        ("verify", "re-hash every file and build every vendored encoding with the network blocked"),
        ("doctor", "what tiktoken and openai-harmony will read, and why"),
    ):
        commands.add_parser(name, help=text).add_argument("--json", action="store_true", help="JSON output")
    export = commands.add_parser("export", help="copy the files into DIR under their tiktoken cache names")
    export.add_argument("directory", metavar="DIR")
    export.add_argument(
        "--original-names",
        action="store_true",
        help="use the upstream file names (o200k_base.tiktoken, ...), as TIKTOKEN_ENCODINGS_BASE expects",
    )
    export.add_argument("--json", action="store_true", help="JSON output")
    args = parser.parse_args(argv)

    if args.command == "path":
        print(where())
        return 0
    handler = {"list": list_command, "verify": verify_command, "export": export_command, "doctor": doctor}
    result, ok, text = handler[args.command](args)
    print(json.dumps(result, indent=2) if args.json else text)
    return 0 if ok else 1


def list_command(args: argparse.Namespace) -> tuple[Any, bool, str]:
    from ._verify import check_files

    files, problem = check_files(where())
    intact = {check.url: check.ok for check in files}
    record = read_record(where()) if problem is None else None
    rows: list[dict[str, Any]] = [
        {
            "encoding": name,
            "files": [{"file": b.cache_name, "url": b.url, "size": b.size, "intact": intact[b.url]} for b in blobs],
            "intact": all(intact[b.url] for b in blobs),
        }
        for name, blobs in (record.encodings.items() if record else ())
    ]
    lines = [f"folder: {where()}"] + ([f"problem: {problem}"] if problem else [])
    for row in rows:
        state = "ok" if row["intact"] else "MISSING OR DAMAGED"
        parts = ", ".join(f"{f['url'].rsplit('/', 1)[-1]} {f['size'] / 1e6:.1f} MB" for f in row["files"])
        lines.append(f"{row['encoding']:<14} {state:<8} {parts}")
    ok = problem is None and all(row["intact"] for row in rows)
    return {"folder": where(), "problem": problem, "encodings": rows}, ok, "\n".join(lines)


def verify_command(args: argparse.Namespace) -> tuple[Any, bool, str]:
    from ._verify import verify

    result = verify(where())
    lines = [f"folder: {result.folder}"] + ([f"problem: {result.problem}"] if result.problem else [])
    for check in result.files:
        if check.ok:
            lines.append(f"ok       {check.file}  {check.url}")
        else:
            found = check.actual_sha256 or "missing"
            lines.append(f"DAMAGED  {check.file}  {check.url}")
            lines.append(f"         expected {check.expected_sha256}, found {found}")
    for encoding in result.encodings:
        if encoding.skipped:
            lines.append(f"skipped  {encoding.name}: {encoding.skipped}")
        elif encoding.ok:
            lines.append(f"ok       {encoding.name}")
        else:
            lines.append(f"FAILED   {encoding.name}: {encoding.error}")
    lines.append("verified: all intact" if result.ok else "verify FAILED: reinstall tiktoken-encodings-offline")
    return {**asdict(result), "ok": result.ok}, result.ok, "\n".join(lines)


def export_command(args: argparse.Namespace) -> tuple[Any, bool, str]:
    record = read_record(where())
    if record is None:
        return {"error": f"nothing to export: {where()} holds no vendored files"}, False, "nothing to export"
    os.makedirs(args.directory, exist_ok=True)
    written = []
    for blob in record.blobs:
        name = blob.file_name if args.original_names else blob.cache_name
        target = os.path.join(args.directory, name)
        state = "unchanged" if _holds(target, blob) else _write_verified(blob, target)
        written.append({"file": target, "url": blob.url, "sha256": blob.sha256, "state": state})
    text = "\n".join(f"{w['state']:<9} {w['file']}" for w in written)
    return {"directory": os.path.abspath(args.directory), "files": written}, True, text


def _holds(path: str, blob: Blob) -> bool:
    try:
        return os.path.getsize(path) == blob.size and sha256_file(path) == blob.sha256
    except OSError:
        return False


def _write_verified(blob: Blob, target: str) -> str:
    import hashlib

    with open(os.path.join(where(), blob.cache_name), "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != blob.sha256:
        raise SystemExit(f"{os.path.join(where(), blob.cache_name)} is damaged; reinstall tiktoken-encodings-offline")
    tmp = f"{target}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    if not _holds(target, blob):
        raise SystemExit(f"{target} does not read back as written; check the disk")
    return "written"


def doctor(args: argparse.Namespace) -> tuple[Any, bool, str]:
    """What tiktoken and openai-harmony read, which installed encodings are covered, conflicts."""
    import tiktoken
    import tiktoken.registry

    from ._manifest import record_requests
    from ._runtime import is_installed

    folder = where()
    record = read_record(folder)
    served = {blob.url: blob.sha256 for blob in record.blobs} if record else {}
    names = tiktoken.list_encoding_names()  # loads the plugins, ours included
    constructors = tiktoken.registry.ENCODING_CONSTRUCTORS or {}
    coverage = {}
    for name in names:
        asked = record_requests(constructors[name])
        coverage[name] = all(served.get(url) in (sha, None) and url in served for url, sha in asked.items())

    env = {key: os.environ.get(key) for key in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR", "TIKTOKEN_RS_CACHE_DIR")}
    conflicts = []
    if _env_flag(DISABLE_ENV):
        conflicts.append(f"{DISABLE_ENV} is set: the package is off")
    elif not is_installed():
        conflicts.append(
            "tiktoken's reader is not wrapped: something replaced tiktoken.load.read_file_cached, "
            "or this tiktoken has none (the files are then read only through TIKTOKEN_CACHE_DIR)"
        )
    missing = [name for name, covered in coverage.items() if not covered]
    if missing:
        conflicts.append(f"not carried, tiktoken will download them: {', '.join(missing)}")
    rs_dir = env["TIKTOKEN_RS_CACHE_DIR"]
    harmony_blobs = [blob for name in HARMONY_ENCODINGS for blob in (record.encodings.get(name, ()) if record else ())]
    harmony_ready = bool(rs_dir and harmony_blobs) and all(
        os.path.isfile(os.path.join(str(rs_dir), blob.cache_name)) for blob in harmony_blobs
    )
    if rs_dir and not harmony_ready:
        conflicts.append(f"TIKTOKEN_RS_CACHE_DIR={rs_dir} lacks the o200k_base/cl100k_base files harmony reads")

    def origin(key: str) -> str:
        value = env[key]
        if value is None:
            return "unset"
        return "set by this package" if value == folder else "set by you or another tool"

    tiktoken_version = version("tiktoken")
    report = {
        "folder": folder,
        "tiktoken": {"version": tiktoken_version, "reader_wrapped": is_installed()},
        "environment": {key: {"value": value, "origin": origin(key)} for key, value in env.items()},
        "strict": _env_flag(STRICT_ENV),
        "coverage": coverage,
        "harmony_ready": harmony_ready,
        "conflicts": conflicts,
    }
    lines = [
        f"vendored folder: {folder}",
        f"tiktoken {tiktoken_version}: reads "
        + ("the vendored files first (reader wrapped)" if is_installed() else "its cache only (NOT wrapped)"),
    ]
    lines += [f"  {key}={value!r} ({origin(key)})" for key, value in env.items()]
    lines += [f"  {name:<14} {'vendored' if covered else 'NOT carried'}" for name, covered in coverage.items()]
    lines.append(f"openai-harmony: {'reads the vendored files' if harmony_ready else 'will download on first use'}")
    lines += [f"conflict: {c}" for c in conflicts] or ["no conflicts"]
    return report, not conflicts, "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
