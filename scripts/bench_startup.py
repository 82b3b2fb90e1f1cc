"""The start-up rows of scripts/bench.py (issue 13): what the wheel's .pth line adds to start-up."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from helpers import clean_env


def startup_cost(work: Path, wheel: Path, repeat: int) -> dict[str, Any]:
    """Interpreter start with the wheel's start-up hook vs a plain venv, in fresh processes.

    Both venvs hold the same pip and setuptools (and their .pth files); one also holds the wheel
    (--no-deps: tiktoken installs no start-up file). Whole start-ups are timed interleaved, in
    alternating order; the .pth alone is timed in-process (site.addpackage on it, as start-up does),
    which is steady where two ~15 ms start-ups are not. Also the modules imported at start-up that
    plain start-up does not import (the .pth line imports none: its finder imports the hook module
    at the first import of tiktoken or openai_harmony).
    """
    pythons = {}
    for name in ("plain", "hook"):
        subprocess.run([sys.executable, "-m", "venv", str(work / name)], check=True, capture_output=True)
        pythons[name] = str(work / name / "bin" / "python")
    install = [pythons["hook"], "-m", "pip", "install", "-q", "--no-deps", str(wheel)]
    subprocess.run(install, check=True, capture_output=True, env=clean_env())
    env = clean_env()
    times: dict[str, list[float]] = {"plain": [], "hook": []}
    for turn in range(repeat):
        for name in ("plain", "hook") if turn % 2 else ("hook", "plain"):
            started = time.perf_counter()
            subprocess.run([pythons[name], "-c", "pass"], check=True, env=env)
            times[name].append(time.perf_counter() - started)
    # Each hook run against the plain run next to it: drift on a shared machine hits both alike.
    paired = sorted(hook - plain for hook, plain in zip(times["hook"], times["plain"]))
    # As at start-up: site-packages on sys.path, its directory listing already read (by the
    # imports of the .pth files before ours, or of the first module from there).
    where = [pythons["hook"], "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    purelib = subprocess.run(where, check=True, env=env, capture_output=True, text=True).stdout.strip()
    pth_alone = (
        "import importlib.machinery, os, site, sys, time\n"
        f"purelib = {purelib!r}; sys.path.append(purelib)\n"
        "importlib.machinery.PathFinder.find_spec('warm_up', [purelib])\n"
        "t = time.perf_counter()\n"
        "site.addpackage(purelib, 'tiktoken_encodings_offline.pth', set())\n"
        "print((time.perf_counter() - t) * 1e3)\n"
        "assert type(sys.meta_path[0]).__name__.startswith('TiktokenEncodingsOffline'), 'the .pth line did not run'"
    )
    pth_ms = min(
        float(subprocess.run([pythons["hook"], "-S", "-c", pth_alone], check=True, env=env, capture_output=True,
                             text=True).stdout)
        for _ in range(repeat)
    )  # fmt: skip
    modules = {
        name: set(subprocess.run([python, "-c", "import sys; print(*sys.modules)"], check=True, env=env,
                                 capture_output=True, text=True).stdout.split())
        for name, python in pythons.items()
    }  # fmt: skip
    return {
        "plain_ms": min(times["plain"]) * 1e3,
        "hook_ms": min(times["hook"]) * 1e3,
        "added_ms": paired[len(paired) // 2] * 1e3,
        "pth_ms": pth_ms,
        "added_modules": sorted(modules["hook"] - modules["plain"]),
    }


def startup_rows(bench: Any, wheel: Path) -> None:
    """Issue 13: the .pth start-up hook adds <= 0.2 ms and imports no module."""
    cost = startup_cost(bench.work, wheel, bench.repeat * 10)
    added = cost["added_ms"]
    bench.row("start-up with the .pth hook - plain start-up (fresh processes, paired median)", added,
              f"{added:+.2f} ms (best {cost['hook_ms']:.2f} vs {cost['plain_ms']:.2f})", "<= 0.2 ms",
              added <= 0.2)  # fmt: skip
    bench.row("  the .pth processed as site does, in-process (best)", cost["pth_ms"], f"{cost['pth_ms']:.3f} ms",
              "shown", None)  # fmt: skip
    extra = cost["added_modules"]
    bench.row("  modules imported at start-up that plain start-up does not", len(extra), ", ".join(extra) or "none",
              "none", extra == [])  # fmt: skip
