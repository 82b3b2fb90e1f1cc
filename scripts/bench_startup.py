"""The start-up rows of scripts/bench.py (issues 13, 21 and 27): what the companion's .pth line adds
to start-up, and that the base wheel alone adds nothing.

Run alone (``python scripts/bench_startup.py [--repeat N] [WHEEL]``) it takes the base wheel in dist/
(and the companion's beside it, or builds that from autostart/) and prints the same rows.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers import clean_env  # noqa: E402

VENVS = ("plain", "floor", "base", "hook")
CHILD_TIMEOUT = 60  # seconds: a `python -c pass` takes ~20 ms, and ~3 s under valgrind
INSTRUCTIONS_GOAL = 1.03  # issue 21: hook / plain instructions of `python -c pass` on the host's Python
BASE_INSTRUCTIONS_GOAL = 1.005  # issue 27: the base alone runs nothing at start-up (its files only lengthen a listing)
WALL_GOAL = 1.10  # issue 21: hook / plain wall time, paired, on every interpreter of the matrix
COMPANION_GLOB = "tiktoken_encodings_offline_autostart-*.whl"
START_MODULE = "_tiktoken_encodings_offline_startup"

# Run inside a Debian root by that root's interpreter: ``python -c pass`` of two venvs, in turns whose
# order alternates; each turn's ratio hook / plain, wall time (perf_counter around spawn and wait).
PAIRS = """
import os, sys, time
plain, hook, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
def wall(python):
    started = time.perf_counter()
    pid = os.posix_spawn(python, [python, "-c", "pass"], dict(os.environ))
    _, status = os.waitpid(pid, 0)
    assert status == 0, python
    return time.perf_counter() - started
ratios, plains, hooks = [], [], []
for turn in range(repeat):
    if turn % 2:
        h = wall(hook); p = wall(plain)
    else:
        p = wall(plain); h = wall(hook)
    ratios.append(h / p); plains.append(p); hooks.append(h)
ratios.sort()
print(ratios[len(ratios) // 2], min(plains) * 1e3, min(hooks) * 1e3)
"""


def companion_wheel(wheel: Path, work: Path) -> Path:
    """The companion's wheel beside the base's (dist/), else built from autostart/ into ``work``."""
    beside = sorted(wheel.parent.glob(COMPANION_GLOB))
    if beside:
        return beside[-1]
    out = work / "companion"
    cmd = [sys.executable, "-m", "pip", "wheel", str(ROOT / "autostart"), "--no-deps", "--no-build-isolation",
           "-q", "-w", str(out)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, env=clean_env())
    return next(out.glob(COMPANION_GLOB))


def startup_cost(work: Path, wheel: Path, companion: Path, repeat: int) -> dict[str, Any]:
    """Interpreter start with the companion's start-up hook, or the base wheel alone, vs the same venv
    without them, in fresh processes.

    Four venvs on this Python hold the same pip, setuptools and tiktoken (none of them ships a
    start-up file): "plain"; "floor", which adds a .pth holding only ``import sys`` (what any .pth
    import line costs); "base", which adds the base wheel; "hook", which adds the base wheel and the
    companion. Each run of ``python -c pass`` is measured by
    the CPU time (user + system) of its process, which a busy shared machine disturbs far less than
    wall time; the three run in rotating order, and each is paired with the plain run of its own
    turn. With valgrind on PATH, the instructions each start-up executes (PYTHONHASHSEED=0: the same
    count at every run), which do not move with the machine's speed at all. Also the modules imported
    at start-up that plain start-up does not import (the hook module alone with the companion, none
    with the base alone).
    """
    env = clean_env()
    pythons = {}
    subprocess.run([sys.executable, "-m", "venv", str(work / "plain")], check=True, capture_output=True)
    pip = [str(work / "plain" / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "tiktoken"], check=True, capture_output=True, env=env)
    for name in VENVS:
        if name != "plain":  # a copy: the same files, so the same directory listings
            shutil.copytree(work / "plain", work / name, symlinks=True)
        pythons[name] = str(work / name / "bin" / "python")
    for name, wheels in (("base", [wheel]), ("hook", [wheel, companion])):
        install = [pythons[name], "-m", "pip", "install", "-q", "--no-deps", *map(str, wheels)]
        subprocess.run(install, check=True, capture_output=True, env=env)
    (_purelib(pythons["floor"], env) / "floor.pth").write_text("import sys\n", encoding="utf-8")
    times: dict[str, list[float]] = {name: [] for name in VENVS}
    for turn in range(repeat):
        shift = turn % len(VENVS)
        for name in VENVS[shift:] + VENVS[:shift]:
            times[name].append(_cpu_seconds([pythons[name], "-c", "pass"], env))
    modules = {
        name: set(subprocess.run([pythons[name], "-c", "import sys; print(*sys.modules)"], check=True, env=env,
                                 capture_output=True, text=True).stdout.split())
        for name in ("plain", "base", "hook")
    }  # fmt: skip
    return {
        "plain_ms": min(times["plain"]) * 1e3,
        "hook_ms": min(times["hook"]) * 1e3,
        "added_ms": _paired_median(times["hook"], times["plain"]) * 1e3,
        "base_added_ms": _paired_median(times["base"], times["plain"]) * 1e3,
        "floor_ms": _paired_median(times["floor"], times["plain"]) * 1e3,
        "instructions": _instructions(pythons, env),
        "added_modules": sorted(modules["hook"] - modules["plain"]),
        "base_added_modules": sorted(modules["base"] - modules["plain"]),
    }


def matrix_wall_ratios(wheel: Path, companion: Path, repeat: int) -> dict[str, tuple[float, float, float] | str]:
    """For each interpreter of scripts/matrix.py whose Debian root is built: hook / plain wall time.

    Two venvs of that interpreter inside its root, with pip (and no tiktoken: no network there, and
    tiktoken ships no start-up file), "hook" holding the base wheel and the companion too. Paired
    median of the ratios, and the best of each. A root that is not built is said so, never skipped
    silently.
    """
    from debian_root import root_path, run_in_root
    from matrix import INTERPRETERS

    results: dict[str, tuple[float, float, float] | str] = {}
    for interp in INTERPRETERS:
        root = root_path(interp.root_spec())  # a free-threaded build has a root of its own, in /usr/local
        if not any((root / folder / interp.python).exists() for folder in ("usr/bin", "usr/local/bin")):
            results[interp.version] = f"no root at {root}"
            continue
        inside = f"/bench-startup/{interp.version}"
        work = root / inside.lstrip("/")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            shutil.copy2(wheel, work / wheel.name)
            shutil.copy2(companion, work / companion.name)
            (work / "pairs.py").write_text(PAIRS, encoding="utf-8")
            py = interp.python
            script = (
                f"{py} -m venv {inside}/plain && {py} -m venv {inside}/hook && "
                f"{inside}/hook/bin/python -m pip install -q --no-index --no-deps {inside}/{wheel.name} "
                f"{inside}/{companion.name} && "
                f"{py} {inside}/pairs.py {inside}/plain/bin/python {inside}/hook/bin/python {repeat}"
            )
            result = run_in_root(root, ["sh", "-ec", script], network=False, timeout=1800)
            if result.returncode != 0:
                results[interp.version] = "failed: " + (result.stderr.strip().splitlines() or ["no output"])[-1]
            else:
                ratio, plain_ms, hook_ms = (float(x) for x in result.stdout.split())
                results[interp.version] = (ratio, plain_ms, hook_ms)
        finally:
            shutil.rmtree(root / "bench-startup", ignore_errors=True)
    return results


def _purelib(python: str, env: dict[str, str]) -> Path:
    where = [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    return Path(subprocess.run(where, check=True, env=env, capture_output=True, text=True).stdout.strip())


def _paired_median(runs: list[float], plain_runs: list[float]) -> float:
    """The median of each run minus the plain run of its turn: drift on a shared machine hits both alike."""
    paired = sorted(run - plain for run, plain in zip(runs, plain_runs))
    return paired[len(paired) // 2]


def _timed_out(signum: int, frame: FrameType | None) -> None:
    raise TimeoutError(f"a child process ran for more than {CHILD_TIMEOUT} s")


def _cpu_seconds(argv: list[str], env: dict[str, str]) -> float:
    """The CPU time (user + system) of one child process running ``argv``, which must exit 0."""
    pid = os.posix_spawn(argv[0], argv, env)
    # os.wait4 has no timeout of its own: an alarm ends the wait with TimeoutError, as Ctrl-C does.
    previous = signal.signal(signal.SIGALRM, _timed_out)
    signal.alarm(CHILD_TIMEOUT)
    try:
        _, status, usage = os.wait4(pid, 0)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {os.waitstatus_to_exitcode(status)}")
    return usage.ru_utime + usage.ru_stime


def _instructions(pythons: dict[str, str], env: dict[str, str]) -> dict[str, int] | None:
    """Instructions executed by ``python -c pass`` in each venv, under valgrind (None without it)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    counts = {}
    for name, python in pythons.items():
        cmd = [valgrind, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", python, "-c", "pass"]
        result = subprocess.run(cmd, check=True, env={**env, "PYTHONHASHSEED": "0"}, capture_output=True, text=True,
                                timeout=CHILD_TIMEOUT * 5)  # fmt: skip
        refs = re.search(r"I\s+refs:\s+([\d,]+)", result.stderr)  # "==123== I   refs:      37,897,061"
        if refs is None:
            raise RuntimeError(f"no instruction count in valgrind's output:\n{result.stderr}")
        counts[name] = int(refs.group(1).replace(",", ""))
    return counts


def startup_rows(bench: Any, wheel: Path) -> None:
    """Issue 21: with the companion, instructions <= 1.03x on this Python, wall time <= 1.10x on every
    matrix interpreter. Issue 27: the base wheel alone imports nothing at start-up and costs ~1.00x."""
    companion = companion_wheel(wheel, bench.work)
    cost = startup_cost(bench.work, wheel, companion, bench.repeat * 10)
    added, floor = cost["added_ms"], cost["floor_ms"]
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    counts = cost["instructions"]
    if counts is None:
        bench.row(f"start-up instructions, {python}: hook / plain (valgrind)", 0.0, "no valgrind on PATH",
                  f"<= {INSTRUCTIONS_GOAL}", False)  # fmt: skip
    else:
        hook, floor_count, base, plain = (counts[name] / 1e6 for name in ("hook", "floor", "base", "plain"))
        bench.row(f"start-up instructions, {python}: base + companion / plain (valgrind, PYTHONHASHSEED=0)",
                  hook / plain, f"{hook / plain:.3f} ({hook - plain:+.2f}M of {plain:.1f}M)",
                  f"<= {INSTRUCTIONS_GOAL}", hook / plain <= INSTRUCTIONS_GOAL)  # fmt: skip
        bench.row("  the floor: a .pth holding only `import sys` - plain", floor_count - plain,
                  f"{floor_count - plain:+.2f}M", "shown", None)  # fmt: skip
        bench.row(f"start-up instructions, {python}: the base alone / plain", base / plain,
                  f"{base / plain:.4f} ({base - plain:+.3f}M)", f"<= {BASE_INSTRUCTIONS_GOAL}",
                  base / plain <= BASE_INSTRUCTIONS_GOAL)  # fmt: skip
    bench.row(f"start-up CPU time, {python}: base + companion - plain (paired median)", added,
              f"{added:+.2f} ms (floor {floor:+.2f}, base alone {cost['base_added_ms']:+.2f})", "shown",
              None)  # fmt: skip
    extra = cost["added_modules"]
    bench.row("  modules imported at start-up that plain start-up does not: base + companion", len(extra),
              ", ".join(extra) or "none", START_MODULE, extra == [START_MODULE])  # fmt: skip
    base_extra = cost["base_added_modules"]
    bench.row("  modules imported at start-up that plain start-up does not: the base alone", len(base_extra),
              ", ".join(base_extra) or "none", "none", base_extra == [])  # fmt: skip
    for version, result in matrix_wall_ratios(wheel, companion, bench.repeat * 5).items():
        what = f"start-up wall time, {version} (Debian root): base + companion / plain, paired"
        if isinstance(result, str):
            bench.row(what, 0.0, result[:22], f"<= {WALL_GOAL}", False)
        else:
            ratio, plain_ms, hook_ms = result
            bench.row(what, ratio, f"{ratio:.3f} ({hook_ms:.1f}/{plain_ms:.1f} ms)", f"<= {WALL_GOAL}",
                      ratio <= WALL_GOAL)  # fmt: skip


class _Rows:
    """The part of bench.py's Bench that startup_rows uses, to run these rows alone."""

    def __init__(self, work: Path, repeat: int) -> None:
        self.work, self.repeat, self.missed = work, repeat, 0

    def row(self, what: str, figure: float, shown: str, goal: str, ok: bool | None) -> None:
        self.missed += ok is False
        state = "" if ok is None else ("ok" if ok else "MISSED")
        print(f"  {what:<66} {shown:>26}  {goal:<12} {state}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description="The start-up rows of scripts/bench.py, alone.")
    parser.add_argument("wheel", type=Path, nargs="?", help="the wheel (default: the one in dist/)")
    parser.add_argument("--repeat", type=int, default=40, help="as bench.py's: x10 turns here, x5 in each root")
    args = parser.parse_args()
    wheel = args.wheel or next(iter(sorted((ROOT / "dist").glob("tiktoken_encodings_offline-*.whl"))), None)
    if wheel is None:
        parser.error("no wheel in dist/: build one, or name it")
    with tempfile.TemporaryDirectory(prefix="tiktoken-bench-startup-") as work:
        rows = _Rows(Path(work), args.repeat)
        startup_rows(rows, wheel.resolve())
    return 1 if rows.missed else 0


if __name__ == "__main__":
    sys.exit(main())
