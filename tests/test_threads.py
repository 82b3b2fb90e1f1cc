"""Threads released at once on a fresh process's first loads get plain tiktoken's answers (issue 29).

``probe_threads.py`` does the work; here it runs on this interpreter (with the GIL), installed and
zipped, with fewer processes than the matrix's free-threaded rows run (scripts/matrix.py: 20
processes of 32 threads on 3.13t). What the package caches is set once, whatever the
threads: a forced race shows it.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from helpers import ROOT, clean_env, offline, run

PROBE = Path(__file__).with_name("probe_threads.py")
MANIFEST_JSON = ROOT / "src" / "tiktoken_encodings_offline" / "manifest.json"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def expected(layouts: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Plain tiktoken's answers (this interpreter's, no package) on the real files, offline."""
    result = run(offline([sys.executable, str(PROBE), "reference", str(MANIFEST_JSON)]),
                 env=clean_env(TIKTOKEN_CACHE_DIR=str(layouts["cache"])))  # fmt: skip
    path = tmp_path_factory.mktemp("threads") / "expected.json"
    path.write_text(result.stdout, encoding="utf-8")
    return path


# A variant is one entry: the interpreter (a venv fixture, or this one: tiktoken alone), the
# wheels put on PYTHONPATH as .zip copies, and whether the threads call where() (it names a
# folder only when installed).
VARIANTS = {
    "installed": ("runtime_venv", (), True),
    "zipped": (None, ("full_wheel",), False),
    "installed+companion": ("companion_venv", (), True),
    # the zip comes before site-packages on sys.path: the companion's line activates the archive's package
    "zipped+companion": ("companion_venv", ("full_wheel",), False),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_threads_released_at_once_get_plain_tiktokens_answers(
    variant: str, expected: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    venv, zipped, where = VARIANTS[variant]
    python = request.getfixturevalue(venv) if venv else Path(sys.executable)
    archives = []
    for name in zipped:
        archives.append(tmp_path / f"{name}.zip")
        shutil.copyfile(request.getfixturevalue(name), archives[-1])
    (tmp_path / "home").mkdir()
    env = clean_env(HOME=str(tmp_path / "home"), TMPDIR=str(tmp_path / "home"))
    if archives:
        env["PYTHONPATH"] = ":".join(map(str, archives))
    command = [str(python), str(PROBE), "run", str(expected), "--processes", "6", "--threads", "32"]

    result = run(offline([*command, *(["--where"] if where else [])]), env=env, check=False)

    assert result.returncode == 0 and result.stderr == "", result.stdout + result.stderr
    assert result.stdout == "6 of 6 processes of 32 threads right (GIL not checked)\n"
    assert sorted(p.name for p in (tmp_path / "home").iterdir()) == []  # nothing written, no copy made


# Each snippet makes the race certain: the cached value's first computation (or the check of what
# was said) is slowed, and 16 threads released at once all ask; it must be done once.
RACES = {
    "installation": """
import time, tiktoken_encodings_offline._files as files
original, calls = files.inspect, []
def slow_inspect(folder):
    calls.append(folder); time.sleep(0.2); return original(folder)
files.inspect, files._state = slow_inspect, None
answers = race(files.installation)
assert len(calls) == 1, calls
assert all(answer is answers[0] for answer in answers)
""",
    "notice": """
import time, tiktoken_encodings_offline._files as files
class SlowSet(set):
    def __contains__(self, item):
        found = set.__contains__(self, item); time.sleep(0.2); return found
files._said = SlowSet()
race(lambda: files._notice("said once"))
""",
}
RACE = """
import threading
def race(function):
    barrier, answers = threading.Barrier(16), []
    def run():
        barrier.wait(); answers.append(function())
    threads = [threading.Thread(target=run) for _ in range(16)]
    [thread.start() for thread in threads]; [thread.join() for thread in threads]
    return answers
"""


@pytest.mark.parametrize("cached", RACES)
def test_what_the_package_caches_is_set_once_whatever_the_threads(
    cached: str, runtime_venv: Path, tmp_path: Path
) -> None:
    result = run([str(runtime_venv), "-c", RACE + RACES[cached]], env=clean_env(), check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == ("tiktoken-encodings-offline: said once\n" if cached == "notice" else "")
