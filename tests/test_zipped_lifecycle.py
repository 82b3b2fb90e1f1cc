"""A zipped install across the ends of processes: kills, pools, forks, ``-W error``.

Nothing is extracted to serve tiktoken and nothing is written: after any mix of endings, the
test's HOME and TMPDIR hold nothing, and a forked child is served as its parent is.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_zipped import copies_of_the_data, private_env, zipped  # noqa: F401 - the fixture

from helpers import offline, run

pytestmark = pytest.mark.slow

# Each process loads encodings from the archive, some also import the package, then says "ready".
LOAD = (
    "import sys, tiktoken\n"
    "if 'import' in sys.argv: import tiktoken_encodings_offline\n"
    "for name in ('o200k_base', 'cl100k_base', 'gpt2'): tiktoken.get_encoding(name).encode('hello')\n"
    "print('ready', flush=True)\n"
)
ENDINGS = {
    "exit": "",
    "os._exit": "import os; os._exit(0)\n",
    "SIGKILL": "import time; time.sleep(60)\n",
    "SIGTERM": "import time; time.sleep(60)\n",
    "pool": (
        "import multiprocessing as mp\n"
        "def load(name):\n"
        "    import tiktoken; return tiktoken.get_encoding(name).n_vocab\n"
        "if __name__ == '__main__':\n"
        "    pool = mp.get_context('spawn').Pool(2)\n"
        "    print(pool.map(load, ['o200k_base', 'cl100k_base']), flush=True)\n"
        "    pool.terminate()\n"
    ),
}


def test_ten_processes_ended_every_way_leave_nothing(zipped: Path, tmp_path: Path) -> None:  # noqa: F811
    env = private_env(tmp_path, zipped)
    script = tmp_path / "load.py"
    for round_ in ("", "import"):  # five endings with no import of the package, then five with it
        for ending, tail in ENDINGS.items():
            script.write_text(LOAD + tail)
            process = subprocess.Popen(offline([sys.executable, str(script), round_]), env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
            assert process.stdout is not None
            assert process.stdout.readline() == "ready\n", process.communicate(timeout=60)
            if ending in ("SIGKILL", "SIGTERM"):
                # unshare runs the command as its child: signal the whole group the test started
                signal_ = signal.SIGKILL if ending == "SIGKILL" else signal.SIGTERM
                process.send_signal(signal_)
                run(["pkill", f"-{signal_.name[3:]}", "-P", str(process.pid)], check=False)
            out, err = process.communicate(timeout=120)
            assert "Traceback" not in err or ending == "SIGTERM", err
            if ending == "pool":
                assert "[200019, 100277]" in out.splitlines()  # spawned children run the script's top too
    home_and_tmp = sorted(str(p) for top in ("home", "tmp") for p in (tmp_path / top).rglob("*"))
    assert home_and_tmp == [] and copies_of_the_data(tmp_path) == []


def test_a_forked_child_is_served_as_its_parent_and_takes_nothing_from_it(zipped: Path, tmp_path: Path) -> None:  # noqa: F811
    code = (
        "import os, sys, tiktoken, tiktoken_encodings_offline as t\n"
        "tiktoken.get_encoding('cl100k_base')\n"
        "for how in ('return', 'os._exit'):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        assert tiktoken.get_encoding('o200k_base').encode('hello world') == [24912, 2375]\n"
        "        if how == 'os._exit': os._exit(0)\n"
        "        sys.exit(0)  # a normal exit: everything registered at exit runs\n"
        "    assert os.waitpid(pid, 0)[1] == 0\n"
        "print(tiktoken.get_encoding('p50k_base').n_vocab, tiktoken.get_encoding('gpt2').n_vocab)"
    )
    env = private_env(tmp_path, zipped)
    result = run(offline([sys.executable, "-W", "error", "-X", "dev", "-c", code]), env=env)
    assert result.stdout.split() == ["50281", "50257"]
    assert result.stderr == ""
    assert sorted((tmp_path / "home").rglob("*")) == sorted((tmp_path / "tmp").rglob("*")) == []


def test_no_warning_and_no_traceback_under_w_error(zipped: Path, tmp_path: Path) -> None:  # noqa: F811
    code = (
        "import tiktoken_encodings_offline as t, tiktoken\n"
        "t.verify(load=False); print(tiktoken.get_encoding('o200k_harmony').n_vocab)"
    )
    env = private_env(tmp_path, zipped)
    for args in (["-W", "error"], ["-X", "dev"], ["-W", "error::ResourceWarning", "-X", "tracemalloc"]):
        result = run(offline([sys.executable, *args, "-c", code]), env=env)
        assert (result.stdout, result.stderr) == ("201088\n", ""), args
