"""Command line: python -m tiktoken_encodings_offline {path,list,verify,export,doctor}.

Every command reports what is wrong with the installation or the host instead of raising: the
report on stdout (JSON with ``--json``), one line on stderr, exit 1; bad arguments exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import sys
from dataclasses import asdict
from typing import IO, TYPE_CHECKING, Any, Callable, NoReturn

from . import __version__
from . import _files as package  # package._quiet: the command reports in one line of its own
from ._export import BadArgumentError, export_command
from ._files import DATA_DIR, FIX, _notice, installation, misnamed_row

if TYPE_CHECKING:
    from ._verify import TableCheck

Outcome = tuple[Any, "str | None", str]  # JSON report, the one-line problem (None: all is well), text


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a path the console's encoding cannot hold is printed escaped
        if getattr(stream, "errors", None) == "strict":  # (surrogateescape, the C locale's, prints its bytes)
            with contextlib.suppress(AttributeError, ValueError):
                stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    argv = sys.argv[1:] if argv is None else argv
    as_json = any(len(arg) > 2 and "--json".startswith(arg) for arg in argv)  # until parsed (--js is --json)
    command, exit_code, installation_first = "", 1, True
    package._quiet = True
    try:
        args = _parser().parse_args(argv)
        command, as_json = args.command, args.json  # `export -- --json` names a folder
        if sys.stdout is None:  # started with stdout closed (`>&-`): a file the command opens could take fd 1
            raise StdoutError(OSError(errno.EBADF, "it is closed: nothing was done; > /dev/null discards the report"))
        report, problem, text = _COMMANDS[args.command](args)
        inexact = None
        if as_json:
            report = {**report, "ok": problem is None} if isinstance(report, dict) else report
        elif args.command == "path" and problem is None:  # a shell must get the real folder back, or nothing
            problem = inexact = _not_read_back_exactly(text, sys.stdout)
        if inexact is None and (as_json or text):  # path with no folder prints nothing
            _print(json.dumps(report, indent=2) if as_json else text)
        as_json = False  # the report is out
    except StdoutError as error:
        problem, as_json, installation_first = _stdout_problem(error.args[0]), False, False
        if problem is None:  # the reader went away (`... | head`): end quietly, as Unix tools do
            return 1
        problem = f"{command}: {problem}" if command else problem
    except KeyboardInterrupt:
        return 130
    except (UsageError, BadArgumentError) as error:
        problem, exit_code = str(error), 2
    except Exception as error:  # a state nobody foresaw: still one line, never a traceback
        problem = f"{command or 'the command line'} failed unexpectedly ({type(error).__name__}: {error})"
    finally:
        package._quiet = False
    if problem is None:
        return 0
    if as_json:  # a failure before the report (an argument, the unforeseen): a JSON document still
        with contextlib.suppress(StdoutError):  # stdout refusing that too: the line below still says why
            _print(json.dumps({"ok": False, "problem": problem}, indent=2))
    # One line: what the import already said about the installation, or this command's finding.
    already_said = installation()[1] if exit_code == 1 and installation_first else None
    _notice(already_said or problem)
    return exit_code


class StdoutError(Exception):
    """stdout refused the report (a full disk, a closed stdout, a reader gone): the OSError is its argument."""


class UsageError(Exception):
    """A bad command line: one line on stderr (exit 2), as every other problem."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        command = self.prog.partition(" ")[2]
        usage = " ".join(self.format_usage().split())
        raise UsageError(f"{command}: {message}; {usage}" if command else f"{message}; {usage}")

    def _print_message(self, message: str, file: Any = None) -> None:
        if file is not None and file is not sys.stdout:
            super()._print_message(message, file)
        elif message:  # --help, --version: argparse would drop an error writing them and exit 0
            _print(message.rstrip("\n"))


def _print(text: str) -> None:
    """``text`` and a newline on stdout. Its failure is raised as StdoutError; fd 1 then goes to
    os.devnull, so that the flush at exit finds nothing to fail on (no "Exception ignored")."""
    try:
        if sys.stdout is None:
            raise OSError(errno.EBADF, "it is closed")
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except OSError as error:
        with contextlib.suppress(AttributeError, OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise StdoutError(error) from error


def _stdout_problem(error: OSError) -> str | None:
    """The line for a report stdout refused; None where its reader went away: EPIPE, or EINVAL,
    which is what Windows says for a pipe closed at the other end."""
    if error.errno in (errno.EPIPE, errno.EINVAL):
        return None
    return f"cannot write the report to stdout ({error.strerror or error})"


def _not_read_back_exactly(folder: str, stream: IO[str]) -> str | None:
    """Why a shell capturing ``stream`` would not get ``folder`` back, or None. A POSIX shell keeps
    the bytes, and a path is bytes there; PowerShell and cmd decode a pipe with the console's code
    page (the OEM one), while Python writes the ANSI one: C:\\Users\\Zoë would come back as ZoÙ."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    errors = "surrogateescape" if getattr(stream, "errors", None) == "surrogateescape" else "strict"
    reader = _shell_encoding(stream)
    try:
        written = folder.encode(encoding, errors)
        if (written == os.fsencode(folder)) if reader is None else (written.decode(reader) == folder):
            return None
    except (UnicodeError, LookupError):
        pass
    shell = f", read back as {reader}" if reader else ""
    return (
        f"path: {folder} would not read back exactly from stdout (written as {encoding}{shell}); "
        "use `path --json` (lossless), or set PYTHONUTF8=1 "
        "(PowerShell: also [Console]::OutputEncoding = [Text.Encoding]::UTF8)"
    )


def _shell_encoding(stream: IO[str]) -> str | None:
    """What a shell capturing ``stream`` decodes it with; None on POSIX, where it keeps the bytes.
    On Windows: the console itself, which Python writes in UTF-16; else the console's output code
    page, which PowerShell and cmd decode a pipe with; with no console, as written."""
    if os.name != "nt":
        return None
    if stream.isatty():
        return "utf-8"
    try:
        import ctypes

        page = ctypes.windll.kernel32.GetConsoleOutputCP()  # type: ignore[attr-defined]
    except (ImportError, AttributeError, OSError):
        page = 0
    return f"cp{page}" if page else getattr(stream, "encoding", None) or "utf-8"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tiktoken-encodings-offline",
        description="tiktoken's encoding files, vendored for hosts with no internet access.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (
        ("path", "print the folder of the vendored files (a TIKTOKEN_CACHE_DIR); none in a zipped install: use export"),
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
    return parser


def path_command(args: argparse.Namespace) -> Outcome:
    """The vendored folder. A zipped install has none: exit 1 with the line saying to use
    ``export``, and nothing on stdout (``"$(... path)"`` must not name the archive)."""
    from . import where
    from ._export import NoFolderError

    try:
        folder = where()
    except NoFolderError as error:
        return {"folder": None, "problem": str(error)}, str(error), ""
    rows, problem, _ = installation()
    return {"folder": folder}, problem or misnamed_row(DATA_DIR, rows), folder  # what the import checks


def list_command(args: argparse.Namespace) -> Outcome:
    from ._verify import check_files

    files, problem = check_files(DATA_DIR)
    intact = {check.url: check.ok for check in files}
    rows: list[dict[str, Any]] = []
    for name, file, url, _, size in installation()[0] if problem is None else ():
        if not rows or rows[-1]["encoding"] != name:
            rows.append({"encoding": name, "files": [], "intact": True})
        rows[-1]["files"].append({"file": file, "url": url, "size": size, "intact": intact[url]})
        rows[-1]["intact"] = rows[-1]["intact"] and intact[url]
    lines = [f"folder: {DATA_DIR}"] + ([f"problem: {problem}"] if problem else [])
    for row in rows:
        state = "ok" if row["intact"] else "MISSING OR DAMAGED"
        parts = ", ".join(f"{f['url'].rsplit('/', 1)[-1]} {f['size'] / 1e6:.1f} MB" for f in row["files"])
        lines.append(f"{row['encoding']:<14} {state:<8} {parts}")
    damaged = [check for check in files if not check.ok]
    if problem is None and damaged:
        problem = _damaged_line(damaged)
    return {"folder": DATA_DIR, "problem": problem, "encodings": rows}, problem, "\n".join(lines)


def verify_command(args: argparse.Namespace) -> Outcome:
    from ._verify import NOT_BUILT, verify

    result = verify(DATA_DIR)  # in a zipped install, the archive itself: what tiktoken is served from
    lines = [f"folder: {result.folder}"] + ([f"problem: {result.problem}"] if result.problem else [])
    for check in result.files:
        if check.ok:
            lines.append(f"ok       {check.file}  {check.url}")
        elif check.actual_sha256 is None:
            lines.append(f"MISSING  {check.file}  {check.url}")
        else:
            lines.append(f"DAMAGED  {check.file}  {check.url}")
            lines.append(f"         expected {check.expected_sha256}, found {check.actual_sha256}")
    lines += _table_lines(result.tables)
    for encoding in result.encodings:
        if encoding.skipped:
            lines.append(f"skipped  {encoding.name}: {encoding.skipped}")
        elif encoding.ok:
            lines.append(f"ok       {encoding.name}")
        else:
            lines.append(f"FAILED   {encoding.name}: {encoding.error}")
    damaged = [check for check in result.files if not check.ok]
    problem = result.problem or (_damaged_line(damaged) if damaged else None)
    problem = problem or _damaged_tables_line(result.tables, result.tables_problem)
    if problem is None and not result.ok:
        problem = "an encoding did not build from the vendored files; " + FIX
    not_built = problem is None and any(e.skipped == NOT_BUILT for e in result.encodings)
    verdict = "verified: all intact" if not not_built else "verified: files intact, encodings not built"
    lines.append(verdict if problem is None else f"verify FAILED: {problem}")
    return {**asdict(result), "problem": problem}, problem, "\n".join(lines)


def _damaged_line(damaged: list[Any]) -> str:
    """One line for every damaged or missing file; a missing one may be openai-harmony's doing."""
    folder = DATA_DIR
    names = ", ".join(os.path.join(folder, c.file) + (" (missing)" if c.actual_sha256 is None else "") for c in damaged)
    line = f"damaged: {names}; {FIX}"
    if any(c.actual_sha256 is None for c in damaged):
        line += (
            " (openai-harmony deletes a file it finds damaged in TIKTOKEN_RS_CACHE_DIR, "
            "and that folder is this package's)"
        )
    return line


def _table_lines(tables: tuple[TableCheck, ...]) -> list[str]:
    lines = []
    for table in tables:
        name = os.path.basename(table.path)
        made_from = " + ".join(url.rsplit("/", 1)[-1] for url in table.source)
        intact = table.actual_sha256 == table.expected_sha256
        unused = intact and table.mismatch is not None
        state = "ok" if table.ok else "MISSING" if table.actual_sha256 is None else "UNUSED" if unused else "DAMAGED"
        lines.append(f"{state:<8} {name}  (fast path table of {made_from})")
        if table.actual_sha256 not in (None, table.expected_sha256):
            lines.append(f"         expected {table.expected_sha256}, found {table.actual_sha256}")
        if table.error:
            lines.append(f"         {table.error}")
        if table.mismatch:
            lines.append(f"         not for this installation's files: {table.mismatch}")
    return lines


def _damaged_tables_line(tables: tuple[TableCheck, ...], problem: str | None) -> str | None:
    """One line for the fast path's tables: tiktoken still works without them (it parses the files)."""
    damaged, unused = [], []
    for table in tables:
        if table.ok:
            continue
        if table.actual_sha256 == table.expected_sha256 and table.mismatch and not table.error:
            unused.append(f"{table.path} ({table.mismatch})")
        else:
            damaged.append(table.path + (" (missing)" if table.actual_sha256 is None else ""))
    parts = [f"{what}: {', '.join(paths)}" for what, paths in (("damaged", damaged), ("unused", unused)) if paths]
    parts += [problem] if problem else []
    if not parts:
        return None
    return f"{'; '.join(parts)} (the fast path's pre-parsed tables: until then tiktoken parses its files itself); {FIX}"


def doctor_command(args: argparse.Namespace) -> Outcome:
    from ._doctor import doctor

    return doctor()


_COMMANDS: dict[str, Callable[[argparse.Namespace], Outcome]] = {
    "path": path_command,
    "list": list_command,
    "verify": verify_command,
    "export": export_command,
    "doctor": doctor_command,
}


if __name__ == "__main__":
    sys.exit(main())
