"""Threads released at once on a fresh process's first loads: every id right, nothing on stderr.

Run with the interpreter under test (the standard library and tiktoken only):

    python probe_threads.py reference MANIFEST > expected.json   # plain tiktoken, one thread
    python probe_threads.py run expected.json [--processes 20] [--threads 32] [--where] [--free-threaded]

``run`` starts ``--processes`` fresh processes (two at a time) of ``--threads`` threads each. In
each, the threads wait at a barrier, then at once make the process's first ``get_encoding`` of
several encodings, ``encoding_for_model`` calls, direct ``load_tiktoken_bpe(url, expected_hash)``
calls (after ``import tiktoken_encodings_offline``, as the README says), and calls of the
package's API (``encodings()``, ``verify(load=False)``, and ``where()`` with ``--where``). Each
result must equal plain tiktoken's (``reference``), no thread may raise, and stderr must stay
empty. With ``--free-threaded`` the GIL must still be off when the threads are done. Prints one
line; exits 1 naming what was wrong. The process's environment is passed on: ``PYTHONPATH`` names
a zipped install.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MIXED_TEXT = (  # probe_encodings.py's
    "Hello, world! The quick brown fox jumps over the lazy dog.\n"
    "中文分词测试：你好，世界。 한국어 문장도 넣어 봅니다. 🙂🚀👩‍💻\n"
    "def add(a, b):\n\treturn a + b  # code\n"
    "    \n\n\n   trailing spaces   \t\t"
    "<|endoftext|><|fim_prefix|>x<|fim_suffix|>"
)
MODELS = ["gpt-4o", "gpt-4", "gpt-3.5-turbo", "text-davinci-003"]
WORKER_TIMEOUT = 300  # seconds for one process


def ranks_digest(ranks: dict[bytes, int]) -> str:
    digest = hashlib.sha256()
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        digest.update(len(token).to_bytes(4, "little") + token + rank.to_bytes(4, "little"))
    return f"{len(ranks)} ranks, sha256 {digest.hexdigest()}"


def task_list(expected: dict[str, dict[str, object]], where: bool) -> list[tuple[str, str]]:
    """What the threads do, one task each in turn: every kind of first load, and the package's API."""
    tasks = [("encoding", name) for name in expected["encodings"]]
    tasks += [("model", model) for model in expected["models"]]
    tasks += [("load", url) for url in expected["loads"]]
    tasks += [("api", "encodings"), ("api", "verify")] + ([("api", "where")] if where else [])
    return tasks


def perform(kind: str, what: str, loads: dict[str, str]) -> object:
    import tiktoken

    if kind == "encoding":
        return tiktoken.get_encoding(what).encode(MIXED_TEXT, allowed_special="all")
    if kind == "model":
        encoding = tiktoken.encoding_for_model(what)
        return [encoding.name, encoding.encode("hello world")]
    import tiktoken_encodings_offline as package

    if kind == "load":
        from tiktoken.load import load_tiktoken_bpe

        return ranks_digest(load_tiktoken_bpe(what, loads[what]))
    if what == "encodings":
        return package.encodings()
    if what == "verify":
        result = package.verify(load=False)
        return "ok" if result.ok else f"not ok: {result}"
    folder = package.where()
    return "a folder with the record" if os.path.isfile(os.path.join(folder, "vendored.tsv")) else folder


def worker(threads: int, expected_path: str, where: bool) -> int:
    expected = json.loads(Path(expected_path).read_text(encoding="utf-8"))
    tasks = task_list(expected, where)
    barrier = threading.Barrier(threads)
    results: list[object] = [None] * threads

    def run(index: int) -> None:
        kind, what = tasks[index % len(tasks)]
        barrier.wait(timeout=60)
        try:
            results[index] = [kind, what, perform(kind, what, expected["hashes"])]
        except BaseException as error:  # every failure is reported, by thread
            results[index] = [kind, what, f"raised {type(error).__name__}: {error}"]

    pool = [threading.Thread(target=run, args=(index,)) for index in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    json.dump({"results": results, "gil": gil}, sys.stdout)
    return 0


def check(output: str, expected: dict[str, dict[str, object]]) -> list[str]:
    """What one worker's output says that differs from plain tiktoken's, by thread."""
    api = {"verify": "ok", "encodings": sorted(expected["carried"]), "where": "a folder with the record"}
    wrong = []
    for index, (kind, what, got) in enumerate(json.loads(output)["results"]):
        if kind == "api":
            want: object = api[what]
            got = sorted(got) if what == "encodings" and isinstance(got, list) else got
        else:
            want = expected[{"encoding": "encodings", "model": "models", "load": "loads"}[kind]][what]
        if got != want:
            wrong.append(f"thread {index} {kind} {what}: {str(got)[:300]}")
    return wrong


def run_processes(expected_path: str, processes: int, threads: int, where: bool, free_threaded: bool) -> int:
    expected = json.loads(Path(expected_path).read_text(encoding="utf-8"))
    command = [sys.executable, __file__, "worker", expected_path, "--threads", str(threads)]
    command += ["--where"] if where else []

    def one(_: int) -> list[str]:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=WORKER_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            return [f"no answer in {WORKER_TIMEOUT} s"]
        problems = [f"stderr: {done.stderr.strip()[-600:]}"] if done.stderr else []
        if done.returncode != 0:
            return [*problems, f"exit {done.returncode}"]
        problems += check(done.stdout, expected)
        if free_threaded and json.loads(done.stdout)["gil"]:
            problems.append("the GIL was on once the threads were done")
        return problems

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(one, range(processes)))
    bad = [(number, problems) for number, problems in enumerate(outcomes) if problems]
    gil = "GIL off" if free_threaded else "GIL not checked"
    print(f"{processes - len(bad)} of {processes} processes of {threads} threads right ({gil})")
    for number, problems in bad[:5]:
        print(f"process {number}: " + "; ".join(problems[:4]), file=sys.stderr)
    return 1 if bad else 0


def reference(manifest_path: str) -> int:
    """Plain tiktoken, one call at a time: what every thread must get."""
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    manifest = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
    carried = list(manifest["encodings"])
    hashes = {blob["url"]: blob["sha256"] for blob in manifest["blobs"] if blob["url"].endswith(".tiktoken")}
    expected = {
        "encodings": {n: tiktoken.get_encoding(n).encode(MIXED_TEXT, allowed_special="all") for n in carried},
        "models": {
            m: [tiktoken.encoding_for_model(m).name, tiktoken.encoding_for_model(m).encode("hello world")]
            for m in MODELS
        },
        "loads": {url: ranks_digest(load_tiktoken_bpe(url, sha256)) for url, sha256 in hashes.items()},
        "hashes": hashes,
        "carried": carried,
    }
    json.dump(expected, sys.stdout)
    return 0


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("reference", "run", "worker"))
    parser.add_argument("file", help="reference: the manifest; run, worker: the expected results")
    parser.add_argument("--processes", type=int, default=20)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--where", action="store_true", help="threads call where() too (installed: a folder)")
    parser.add_argument("--free-threaded", action="store_true", help="the GIL must be off after the threads")
    args = parser.parse_args(argv)
    if args.mode == "reference":
        return reference(args.file)
    if args.mode == "worker":
        return worker(args.threads, args.file, args.where)
    return run_processes(args.file, args.processes, args.threads, args.where, args.free_threaded)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
