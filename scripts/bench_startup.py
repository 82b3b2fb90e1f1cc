"""The start-up rows of scripts/bench.py (issue 13): what the wheel's .pth line adds to start-up."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from helpers import clean_env

VENVS = ("plain", "floor", "hook")
CHILD_TIMEOUT = 60  # seconds: a `python -c pass` takes ~20 ms, and ~3 s under valgrind


def startup_cost(work: Path, wheel: Path, repeat: int) -> dict[str, Any]:
    """Interpreter start with the wheel's start-up hook vs a plain venv, in fresh processes.

    Three venvs hold the same pip and setuptools (and their .pth files): "plain"; "floor", which
    adds a .pth holding only ``import sys`` (what any .pth import line costs: site reads the file,
    compiles the line and runs it); "hook", which adds the wheel (--no-deps: tiktoken installs no
    start-up file). Each run of ``python -c pass`` is measured by the CPU time (user + system) of
    its process, which a busy shared machine disturbs far less than wall time; the three run in
    rotating order, and each is paired with the plain run of its own turn. With valgrind on PATH,
    the instructions each start-up executes (PYTHONHASHSEED=0: the same count at every run), which
    do not move with the machine's speed at all. Also the .pth alone, in-process, and the modules
    imported at start-up that plain start-up does not import (the .pth line imports none: its
    trigger imports the hook module at the first import of tiktoken or openai_harmony).
    """
    pythons = {}
    for name in VENVS:
        subprocess.run([sys.executable, "-m", "venv", str(work / name)], check=True, capture_output=True)
        pythons[name] = str(work / name / "bin" / "python")
    install = [pythons["hook"], "-m", "pip", "install", "-q", "--no-deps", str(wheel)]
    subprocess.run(install, check=True, capture_output=True, env=clean_env())
    env = clean_env()
    (_purelib(pythons["floor"], env) / "floor.pth").write_text("import sys\n", encoding="utf-8")
    times: dict[str, list[float]] = {name: [] for name in VENVS}
    for turn in range(repeat):
        for name in VENVS[turn % 3 :] + VENVS[: turn % 3]:
            times[name].append(_cpu_seconds([pythons[name], "-c", "pass"], env))
    purelib = _purelib(pythons["hook"], env)
    modules = {
        name: set(subprocess.run([pythons[name], "-c", "import sys; print(*sys.modules)"], check=True, env=env,
                                 capture_output=True, text=True).stdout.split())
        for name in ("plain", "hook")
    }  # fmt: skip
    return {
        "plain_ms": min(times["plain"]) * 1e3,
        "hook_ms": min(times["hook"]) * 1e3,
        "added_ms": _paired_median(times["hook"], times["plain"]) * 1e3,
        "floor_ms": _paired_median(times["floor"], times["plain"]) * 1e3,
        "instructions": _instructions(pythons, env),
        "pth_ms": _pth_alone_ms(pythons["hook"], purelib, env, repeat),
        "added_modules": sorted(modules["hook"] - modules["plain"]),
    }


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


def _pth_alone_ms(python: str, purelib: Path, env: dict[str, str], repeat: int) -> float:
    """The wheel's .pth through site.addpackage, in-process as start-up runs it: best of ``repeat``.

    As at start-up: site-packages on sys.path, its directory listing already read (by the imports
    of the .pth files before ours, or of the first module from there).
    """
    code = (
        "import importlib.machinery, os, site, sys, time\n"
        f"purelib = {str(purelib)!r}; sys.path.append(purelib)\n"
        "importlib.machinery.PathFinder.find_spec('warm_up', [purelib])\n"
        "t = time.perf_counter()\n"
        "site.addpackage(purelib, 'tiktoken_encodings_offline.pth', set())\n"
        "print((time.perf_counter() - t) * 1e3)\n"
        "assert sys.meta_path[0].find_spec is sys.meta_path[0], 'the .pth line did not run'"
    )
    run = [python, "-S", "-c", code]
    return min(
        float(subprocess.run(run, check=True, env=env, capture_output=True, text=True).stdout) for _ in range(repeat)
    )


def startup_rows(bench: Any, wheel: Path) -> None:
    """Issue 13: the .pth start-up hook adds <= 0.2 ms and imports no module."""
    cost = startup_cost(bench.work, wheel, bench.repeat * 10)
    added, floor = cost["added_ms"], cost["floor_ms"]
    bench.row("start-up with the .pth hook - plain start-up (fresh processes, paired median)", added,
              f"{added:+.2f} ms (best {cost['hook_ms']:.2f} vs {cost['plain_ms']:.2f})", "<= 0.2 ms",
              added <= 0.2)  # fmt: skip
    bench.row("  the floor: a .pth holding only `import sys` - plain", floor, f"{floor:+.2f} ms",
              "shown", None)  # fmt: skip
    counts = cost["instructions"]
    if counts is not None:
        hook, floor_count, plain = (counts[name] / 1e6 for name in ("hook", "floor", "plain"))
        bench.row("  instructions (valgrind): hook; `import sys` .pth - plain", hook - plain,
                  f"{hook - plain:+.2f}M; {floor_count - plain:+.2f}M of {plain:.1f}M", "shown", None)  # fmt: skip
    bench.row("  the .pth processed as site does, in-process (best)", cost["pth_ms"], f"{cost['pth_ms']:.3f} ms",
              "shown", None)  # fmt: skip
    extra = cost["added_modules"]
    bench.row("  modules imported at start-up that plain start-up does not", len(extra), ", ".join(extra) or "none",
              "none", extra == [])  # fmt: skip
