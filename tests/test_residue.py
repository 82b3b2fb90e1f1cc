"""A test run leaves nothing in /tmp or ~/.cache: its processes keep the caches of tiktoken
(``data-gym-cache``), openai-harmony (``tiktoken-rs-cache``, in the temporary folder) and the
build (its download cache, in ``$XDG_CACHE_HOME``) in the
run's own folders, which go at the end of the run (``_private_caches`` in tests/conftest.py).

Checked where the processes write, not by watching /tmp: other work on the machine may make the
same folders there at any time.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

from helpers import ROOT, clean_env, offline, run

WHERE_IT_WRITES = f"""
import json, sys, tempfile
sys.path[:0] = [{str(ROOT / "src")!r}, {str(ROOT / "buildtime")!r}]
import tiktoken.load
from tiktoken_encodings_offline_build.options import default_cache_dir
tiktoken.load.read_file_cached(sys.argv[1])  # a local file: plain tiktoken keeps a copy in its default cache
print(json.dumps({{"tmp": tempfile.gettempdir(), "build cache": str(default_cache_dir())}}))
"""


def test_tiktoken_harmony_and_the_package_keep_their_caches_in_the_runs_own_folders(
    _private_caches: Path, tmp_path: Path
) -> None:
    blob = tmp_path / "blob.tiktoken"
    blob.write_bytes(b"aGVsbG8= 0\n")
    cache_key = hashlib.sha1(str(blob).encode()).hexdigest()  # unique to this test: no other process writes it
    for env in (clean_env(), None):  # the tests' environments, and one inherited as it is
        result = run(offline([sys.executable, "-c", WHERE_IT_WRITES, str(blob)]), env=env)
        places = json.loads(result.stdout)
        outside = {what: where for what, where in places.items() if not Path(where).is_relative_to(_private_caches)}
        assert outside == {}, f"a process of the tests writes its caches outside the run's own folders: {outside}"
        assert (Path(places["tmp"]) / "data-gym-cache" / cache_key).read_bytes() == blob.read_bytes()
    # openai-harmony's default is the temporary folder Rust's std::env::temp_dir() reads: TMPDIR
    assert Path(clean_env()["TMPDIR"]).is_relative_to(_private_caches)
    assert Path(tempfile.mkdtemp()).is_relative_to(_private_caches)  # this process's own temporary files
    assert Path(os.environ["PIP_CACHE_DIR"]).is_dir()  # pip's cache stays: venvs are not downloaded anew
