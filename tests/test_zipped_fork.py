"""A child forked while other threads of a zipped install hold the package's locks (issue D1):
a fork copies a lock held by a thread the child does not have, and each lock is made anew there."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from helpers import MANIFEST, clean_env, offline, run

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.name == "nt", reason="os.fork is POSIX only")]


@pytest.fixture
def zipped(full_wheel: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "teo.zip"
    shutil.copyfile(full_wheel, copy)
    return copy


def no_home_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "home").mkdir()
    return clean_env(HOME=str(tmp_path / "home"), TMPDIR=str(tmp_path / "home"))


# A thread of the parent holds the package's locks at times (archive reads, verify) while the main
# thread forks: each child loads a blob directly (not tiktoken's registry, which has a lock of its own).
FORK_WHILE_READING = """
import json, os, signal, sys, threading
sys.path.insert(0, {archive!r})
import tiktoken_encodings_offline
from tiktoken.load import load_tiktoken_bpe

def verify_for_good():
    while True:
        tiktoken_encodings_offline.verify(load=False)

def load_for_good():
    while True:
        load_tiktoken_bpe({busy_url!r}, {busy_sha256!r})

for target in (verify_for_good, load_for_good):
    threading.Thread(target=target, daemon=True).start()
exits = []
for _ in range(16):
    pid = os.fork()
    if pid == 0:
        signal.alarm(15)  # a child that waits for a lock for good is killed: exit -14
        os._exit(0 if len(load_tiktoken_bpe({url!r}, {sha256!r})) == 50256 else 3)
    exits.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
print(json.dumps(exits))
"""


def test_a_child_forked_while_threads_read_the_archive_reads_it_too(zipped: Path, tmp_path: Path) -> None:
    busy = MANIFEST.blobs_for(["cl100k_base"])[0]
    blob = MANIFEST.blobs_for(["r50k_base"])[0]
    code = FORK_WHILE_READING.format(archive=str(zipped), busy_url=busy.url, busy_sha256=busy.sha256, url=blob.url,
                                     sha256=blob.sha256)  # fmt: skip
    result = run(offline([sys.executable, "-c", code]), env=no_home_env(tmp_path), check=False, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == [0] * 16


# Every lock the child uses held by a thread of the parent at the fork, for good: deterministic.
FORK_WHILE_HELD = """
import os, signal, sys, threading
sys.path.insert(0, {archive!r})
import tiktoken_encodings_offline
from tiktoken_encodings_offline import _files, _runtime, _verify
from tiktoken.load import load_tiktoken_bpe

held = threading.Event()

def hold_for_good():
    for lock in (_files._archive_lock, _runtime._lock, _verify._blocker_lock):
        lock.acquire()
    held.set()
    threading.Event().wait()

threading.Thread(target=hold_for_good, daemon=True).start()
held.wait()
pid = os.fork()
if pid == 0:
    signal.alarm(30)
    tiktoken_encodings_offline.activate()  # install(): the runtime's lock
    ranks = load_tiktoken_bpe({url!r}, {sha256!r})  # an archive read
    verified = tiktoken_encodings_offline.verify()  # the network blocker's lock
    os._exit(0 if len(ranks) == 50256 and verified.ok else 3)
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_a_child_forked_while_a_thread_holds_every_lock_serves_and_verifies(zipped: Path, tmp_path: Path) -> None:
    blob = MANIFEST.blobs_for(["r50k_base"])[0]
    code = FORK_WHILE_HELD.format(archive=str(zipped), url=blob.url, sha256=blob.sha256)
    result = run(offline([sys.executable, "-c", code]), env=no_home_env(tmp_path), check=False, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == "0\n"  # -14: the child waited for a lock until its alarm
