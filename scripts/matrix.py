"""The interpreter matrix: every supported CPython, each a real Debian one in a minimal root.

    python scripts/matrix.py [--only 3.9,3.13] [--jobs 2]

Per interpreter: build both wheels with it (hatchling's newest release for it), the base and its
companion (autostart/), install the base with each listed tiktoken (binary wheels only), and, with no
network: every encoding's ids against plain tiktoken's on the real files, a zipped install, a
read-only install, ``verify``, that the base runs nothing at start-up, and, with the companion added,
the zero-import activation of its ``.pth`` line; on the free-threaded builds (compiled from Debian's
source packages), threads released at once on their first loads, zipped and installed, with and
without the companion, the GIL off. Prints a table; exits 1 on any failure.
INTERPRETERS is the one list of what is tested: the classifiers and the README's "Tested on" line
are checked against it (tests/test_matrix_metadata.py). Needs root; see docs/matrix.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from debian_root import RootError, RootSpec, cache_dir, check_tools, ensure_root, prepare_network, run_in_root

PROJECT = Path(__file__).resolve().parent.parent
FILES_ENV = "TIKTOKEN_ENCODINGS_OFFLINE_TEST_FILES"
FILES_DIR = Path(os.environ.get(FILES_ENV, PROJECT.parent / "shared" / "encodings-mirror"))
NEWEST = "newest"
PACKAGE = "tiktoken-encodings-offline"
CHECKS = (
    "build",
    "install",
    "offline",
    "zip-bare",
    "zipped",
    "ids",
    "verify",
    "read-only",
    "base-start-up",
    "companion",
    "threads-zipped",
    "threads",
    "threads-zipped+companion",
    "threads+companion",
)
COMPANION = "tiktoken-encodings-offline-autostart"
THREAD_PROCESSES, THREADS = 20, 32  # the thread probe on the free-threaded rows (tests/probe_threads.py)


@dataclass(frozen=True)
class Interpreter:
    version: str  # "3.13t": the free-threaded build, made from the suite's own source package
    suite: str
    extra_packages: tuple[str, ...] = ()
    tiktokens: tuple[str, ...] = (NEWEST,)  # 0.7.0 has wheels for CPython 3.8 to 3.12 only

    @property
    def python(self) -> str:
        return f"python{self.version}"

    @property
    def free_threaded(self) -> bool:
        return self.version.endswith("t")

    def root_spec(self) -> RootSpec:
        if self.free_threaded:  # a root of its own: a compiler, the build's libraries, the interpreter in /usr/local
            return RootSpec(self.suite, FREE_THREADED_BUILD_PACKAGES, f"python{self.version[:-1]}")
        return RootSpec(self.suite, (self.python, f"{self.python}-venv", "ca-certificates", *self.extra_packages))


INTERPRETERS = (
    # debootstrap does not resolve the virtual python3.X-distutils that python3.X-venv needs there
    Interpreter("3.9", "bullseye", ("python3-distutils",), (NEWEST, "0.7.0")),
    Interpreter("3.11", "bookworm", ("python3-distutils",), (NEWEST, "0.7.0")),
    Interpreter("3.13", "trixie"),
    Interpreter("3.14", "sid"),
    Interpreter("3.15", "sid"),
    # Free-threaded (--disable-gil), built from Debian's python3.X source package: docs/matrix.md.
    # tiktoken 0.13.0 is the newest with a cp313t wheel. 3.14t (sid's python3.14, tiktoken 0.14.0's
    # cp314t) is one line here once the Debian mirror serves that source package (docs/matrix.md).
    Interpreter("3.13t", "trixie"),
)
# What CPython's configure and make need, and what pip needs of the interpreter: ssl, zlib, ctypes.
FREE_THREADED_BUILD_PACKAGES = (
    "ca-certificates", "gcc", "libc6-dev", "make", "pkgconf", "xz-utils", "libssl-dev", "zlib1g-dev", "libffi-dev",
)  # fmt: skip


FREE_THREADING_CLASSIFIER = "Programming Language :: Python :: Free Threading :: 3 - Stable"


def readme_tested_on_line() -> str:
    """The README's marker line, generated from INTERPRETERS."""
    versions = ", ".join(i.version for i in INTERPRETERS if not i.free_threaded)
    threaded = ", ".join(i.version for i in INTERPRETERS if i.free_threaded)
    return (
        f"Tested on: CPython {versions}, free-threaded {threaded} (Debian's own interpreters and source "
        "packages, Linux x86_64; scripts/matrix.py)"
    )


def root_specs() -> dict[str, RootSpec]:
    """Each interpreter's root by name: one per suite (their packages together), one per free-threaded build."""
    packages: dict[str, set[str]] = {}
    specs = {}
    for interp in INTERPRETERS:
        spec = interp.root_spec()
        if interp.free_threaded:
            specs[spec.name] = spec
        else:
            packages.setdefault(spec.suite, set()).update(spec.packages)
    return {suite: RootSpec(suite, tuple(sorted(names))) for suite, names in packages.items()} | specs


def root_name(interp: Interpreter) -> str:
    return interp.root_spec().name


@dataclass
class Row:
    interpreter: str
    tiktoken: str
    results: dict[str, str] = field(default_factory=dict)
    wheel_sha256: str = ""
    notes: list[str] = field(default_factory=list)

    def failed(self) -> bool:
        return any(result.startswith("FAIL") for result in self.results.values())


def manifest_blobs() -> list[tuple[str, str]]:
    """(url, sha256) of every file the manifest lists."""
    manifest = json.loads((PROJECT / "src" / "tiktoken_encodings_offline" / "manifest.json").read_text("utf-8"))
    return [(blob["url"], blob["sha256"]) for blob in manifest["blobs"]]


def reference_ids() -> dict[str, object]:
    """Plain tiktoken of this interpreter (no package) reading the real files, offline."""
    with tempfile.TemporaryDirectory() as cache:
        for url, _ in manifest_blobs():
            relative = url.split(".net/", 1)[1]
            shutil.copyfile(FILES_DIR / relative, Path(cache) / hashlib.sha1(url.encode()).hexdigest())
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIKTOKEN")} | {"TIKTOKEN_CACHE_DIR": cache}
        cmd = ["unshare", "--net", sys.executable, str(PROJECT / "tests" / "probe_encodings.py")]
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
        manifest = str(PROJECT / "src" / "tiktoken_encodings_offline" / "manifest.json")
        cmd = ["unshare", "--net", sys.executable, str(PROJECT / "tests" / "probe_threads.py"), "reference", manifest]
        threads = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0 or threads.returncode != 0:
        stderr = (result.stderr + threads.stderr)[-2000:]
        raise RootError(f"the reference ids (host tiktoken on {FILES_DIR}) failed:\n{stderr}")
    return json.loads(result.stdout) | {"threads": json.loads(threads.stdout)}  # type: ignore[no-any-return]


def compare_ids(stdout: str, reference: dict[str, object]) -> str:
    try:
        served = json.loads(stdout)
    except ValueError:
        return "FAIL (no ids printed)"
    ref_encodings: dict[str, object] = reference["encodings"]  # type: ignore[assignment]
    wrong = [name for name, ids in served["encodings"].items() if ref_encodings.get(name) != ids]
    ref_models: dict[str, object] = reference["models"]  # type: ignore[assignment]
    wrong += [model for model, value in served["models"].items() if ref_models.get(model) != value]
    return f"FAIL (differ: {', '.join(wrong)})" if wrong else f"ok ({len(served['encodings'])} encodings)"


STARTED = time.monotonic()


def progress(line: str) -> None:
    """One line as each phase starts: a run takes many minutes, and pip in a root prints nothing."""
    print(f"[{time.monotonic() - STARTED:4.0f} s] {line}", flush=True)


class Runner:
    """One interpreter's build, installs and checks inside its root; /matrix/<version> is its folder."""

    def __init__(self, interp: Interpreter, root: Path, reference: dict[str, object], log: Path) -> None:
        self.interp, self.root, self.reference, self.log = interp, root, reference, log
        self.inside = f"/matrix/{interp.version}"
        self.work = root / self.inside.lstrip("/")

    def sh(
        self, script: str, *, network: bool = False, read_only: bool = False, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = run_in_root(self.root, ["sh", "-ec", script], network=network, read_only=read_only, env=env)
        with open(self.log, "a", encoding="utf-8") as out:
            out.write(f"$ {script}\n[exit {result.returncode}]\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}\n")
        return result

    def verdict(self, result: subprocess.CompletedProcess[str], ok: str = "ok") -> str:
        if result.returncode == 0:
            return ok
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return f"FAIL ({last[:90]})"

    def build(self) -> tuple[str, Path | None]:
        progress(f"python{self.interp.version}: building the wheel")
        shutil.rmtree(self.work, ignore_errors=True)
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=PROJECT, capture_output=True,
                                text=True, check=True).stdout.split()  # fmt: skip
        for relative in listed:
            if (PROJECT / relative).is_file():
                (self.work / "project" / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(PROJECT / relative, self.work / "project" / relative)
        shutil.copytree(FILES_DIR, self.work / "encodings")
        d = self.inside
        result = self.sh(
            f"{self.interp.python} -m venv {d}/build && {d}/build/bin/python -m pip install -q -U pip && "
            f"{d}/build/bin/python -m pip wheel -q --no-deps -w {d}/dist {d}/project {d}/project/autostart",
            network=True,
            env={
                "TIKTOKEN_ENCODINGS_OFFLINE_SOURCE_DIR": f"{d}/encodings",
                "TIKTOKEN_ENCODINGS_OFFLINE_CACHE_DIR": "",
                "TIKTOKEN_ENCODINGS_OFFLINE_NO_NETWORK": "1",
            },
        )
        wheels = sorted((self.work / "dist").glob("*.whl"))  # the base sorts first ("-" before "_")
        if result.returncode != 0 or len(wheels) != 2:
            return self.verdict(result), None
        with zipfile.ZipFile(wheels[0]) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".dist-info/WHEEL"))
            generator = next(line for line in archive.read(name).decode().splitlines() if line.startswith("Generator"))
        return f"ok ({generator.split(': ', 1)[1]})", wheels[0]

    def check_tiktoken(self, tiktoken: str, wheel: Path) -> Row:
        row = Row(self.interp.version, tiktoken)
        if not self.interp.free_threaded:  # the thread probe runs where no GIL hides a race
            for check in CHECKS:
                if check.startswith("threads"):
                    row.results[check] = "n/a (GIL)"
        d, venv = self.inside, f"{self.inside}/tt-{tiktoken}"
        py, whl = f"{venv}/bin/python", f"{d}/dist/{wheel.name}"
        spec = "tiktoken" if tiktoken == NEWEST else f"tiktoken=={tiktoken}"
        phase = f"python{self.interp.version} tiktoken {tiktoken}:"
        progress(f"{phase} installing tiktoken")
        row.results["install"] = self.verdict(self.sh(
            f"{self.interp.python} -m venv {venv} && {py} -m pip install -q -U pip && "
            f"{py} -m pip install -q --only-binary :all: '{spec}'", network=True))  # fmt: skip
        if row.results["install"] != "ok":
            return row
        version = self.sh(f"{py} -c 'from importlib.metadata import version; print(version(\"tiktoken\"))'")
        row.tiktoken = version.stdout.strip() or tiktoken
        reach = f"{py} -c 'import socket; socket.create_connection((\"pypi.org\", 443), timeout=5)'"
        offline = self.sh(reach).returncode != 0  # the checks below prove nothing if this reaches PyPI
        row.results["offline"] = "ok (no network)" if offline else "FAIL (PyPI reachable in the offline namespace)"
        progress(f"{phase} zipped install")
        # The wheel copied to a .zip name (as Spark's --py-files needs), alone beside tiktoken: the
        # standard library reads it; an explicit import under -W error prints nothing.
        zipped = {"PYTHONPATH": f"{venv}-wheel.zip"}
        bare = self.sh(f"cp {whl} {venv}-wheel.zip && {py} -W error -c 'import tiktoken_encodings_offline' 2>&1 | "
                       "(! grep .)", env=zipped)  # fmt: skip
        row.results["zip-bare"] = self.verdict(bare)
        probe = f"{py} {d}/project/tests/probe_encodings.py"
        row.results["zipped"] = self.ids(self.sh(probe, env=zipped))
        if self.interp.free_threaded:
            progress(f"{phase} threads, zipped")
            row.results["threads-zipped"] = self.threads(py, env=zipped)
        progress(f"{phase} installing the wheel, ids")
        installed = self.sh(f"{py} -m pip install -q --no-index --find-links {d}/dist "
                            f"tiktoken-encodings-offline")  # fmt: skip
        if installed.returncode != 0:
            row.results["ids"] = self.verdict(installed)
            return row
        row.results["ids"] = self.ids(self.sh(probe))
        verify = f"{venv}/bin/tiktoken-encodings-offline verify"
        progress(f"{phase} verify, read-only install, base start-up")
        row.results["verify"] = self.verdict(self.sh(verify))
        writable = f"if touch {venv}/.written 2>/dev/null; then echo 'the root is writable' >&2; exit 1; fi"
        row.results["read-only"] = self.ids(self.sh(f"{writable}; {verify} >&2 && {probe}", read_only=True))
        row.results["base-start-up"] = self.base_startup(py, wheel)
        if self.interp.free_threaded:
            progress(f"{phase} threads, installed")
            row.results["threads"] = self.threads(py, where=True)
        progress(f"{phase} the companion's zero-import activation")
        row.results["companion"] = self.companion(py)
        if self.interp.free_threaded and row.results["companion"].startswith("ok"):
            progress(f"{phase} threads with the companion, zipped and installed")
            row.results["threads-zipped+companion"] = self.threads(py, env=zipped)  # the zip comes first on sys.path
            row.results["threads+companion"] = self.threads(py, where=True)
        return row

    def threads(self, py: str, *, env: dict[str, str] | None = None, where: bool = False) -> str:
        """Fresh processes of threads released at once on their first loads, the GIL off (tests/probe_threads.py)."""
        expected = self.work / "threads-expected.json"
        expected.write_text(json.dumps(self.reference["threads"]), encoding="utf-8")
        d = self.inside
        command = (f"{py} {d}/project/tests/probe_threads.py run {d}/{expected.name} --free-threaded "
                   f"--processes {THREAD_PROCESSES} --threads {THREADS}" + (" --where" if where else ""))  # fmt: skip
        result = self.sh(command, env=env)
        if result.returncode != 0:
            first = (result.stderr.strip().splitlines() or ["no output"])[0]
            return f"FAIL ({result.stdout.strip()}: {first[:160]})"
        return f"ok ({result.stdout.strip()})"

    def ids(self, result: subprocess.CompletedProcess[str]) -> str:
        return compare_ids(result.stdout, self.reference) if result.returncode == 0 else self.verdict(result)

    def base_startup(self, py: str, wheel: Path) -> str:
        """The base wheel holds no start-up file, and start-up imports nothing of this project."""
        with zipfile.ZipFile(wheel) as archive:
            hooks = [n for n in archive.namelist() if "/" not in n and n.endswith((".pth", ".start"))]
        if hooks:
            return f"FAIL (the base wheel holds {', '.join(hooks)})"
        code = "import sys; ours = [m for m in sys.modules if 'tiktoken' in m]; assert not ours, ours"
        return self.verdict(self.sh(f'{py} -c "{code}"'), ok="ok (nothing)")

    def companion(self, py: str) -> str:
        """The companion installed beside the base: tiktoken's loader called directly (no import of the
        package, no plugin lookup) is served offline by its .pth line, on every interpreter (3.15
        included: PEP 829 keeps .pth import lines working through 3.17)."""
        installed = self.sh(f"{py} -m pip install -q --no-index --find-links {self.inside}/dist {COMPANION}")
        if installed.returncode != 0:
            return self.verdict(installed)
        url, sha256 = manifest_blobs()[0]
        code = f"import tiktoken.load; assert tiktoken.load.read_file_cached({url!r}, {sha256!r})"
        return self.verdict(self.sh(f'{py} -c "{code}"'), ok="ok (no import)")


def run_interpreter(interp: Interpreter, root: Path, reference: dict[str, object], log: Path) -> list[Row]:
    runner = Runner(interp, root, reference, log)
    built, wheel = runner.build()
    if wheel is None:
        return [Row(interp.version, t, {"build": built}) for t in interp.tiktokens]
    rows = [runner.check_tiktoken(t, wheel) for t in interp.tiktokens]
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    for row in rows:
        row.results = {"build": built, **row.results}
        row.wheel_sha256 = digest
    return rows


def table(rows: list[Row]) -> str:
    lines = ["| Python | tiktoken | " + " | ".join(CHECKS) + " |", "|---" * (len(CHECKS) + 2) + "|"]
    for row in rows:
        cells = [row.results.get(check, "not run") for check in CHECKS]
        lines.append(f"| {row.interpreter} | {row.tiktoken} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def wheel_summary(rows: list[Row]) -> str:
    built: dict[str, list[str]] = {}
    for row in rows:
        if row.wheel_sha256 and row.interpreter not in built.get(row.wheel_sha256, []):
            built.setdefault(row.wheel_sha256, []).append(row.interpreter)
    verdict = "byte-identical" if len(built) == 1 else f"{len(built)} distinct wheels"
    lines = [f"\nwheels built by the interpreters: {verdict}"]
    lines += [f"  sha256 {digest}: Python {', '.join(versions)}" for digest, versions in built.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated interpreter versions (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="roots built and interpreters run at once")
    args = parser.parse_args(argv)
    chosen = [i for i in INTERPRETERS if not args.only or i.version in args.only.split(",")]
    started = time.monotonic()
    progress(f"matrix: {', '.join(i.python for i in chosen)}, {args.jobs} at once")
    try:
        check_tools()
        if not (FILES_DIR / "SHA256SUMS").is_file():
            raise RootError(f"the real encoding files are not at {FILES_DIR} (set {FILES_ENV})")
        progress("reference ids from this interpreter's tiktoken")
        reference = reference_ids()
        wanted = {root_name(i) for i in chosen}
        specs = {name: spec for name, spec in root_specs().items() if name in wanted}
        logs = cache_dir() / "logs"  # this run's: the previous run's are replaced
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir(parents=True)
        progress(f"Debian roots: {', '.join(specs)} (built once, then reused)")
        with ThreadPoolExecutor(args.jobs) as pool:
            roots = dict(zip(specs, pool.map(lambda s: ensure_root(s, logs / f"{s.name}.log"), specs.values())))
        for root in roots.values():
            prepare_network(root)
        print(f"roots ready after {time.monotonic() - started:.0f} s: {', '.join(roots)}", flush=True)
        with ThreadPoolExecutor(args.jobs) as pool:
            jobs = [(i, roots[root_name(i)], reference, logs / f"python{i.version}.log") for i in chosen]
            rows = [row for rows in pool.map(lambda job: run_interpreter(*job), jobs) for row in rows]
    except RootError as error:
        print(f"matrix: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("matrix: interrupted", file=sys.stderr)
        return 130
    print(table(rows))
    print(wheel_summary(rows))
    print(f"logs: {logs}; total {time.monotonic() - started:.0f} s")
    failed = [f"{row.interpreter}/{row.tiktoken}" for row in rows if row.failed() or "ids" not in row.results]
    print(f"matrix: {len(rows) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
