"""Issue 11 and issue 16 (item 2): real builds and prefetch runs meeting faults, as a user would.

Signals, bad options, unusable caches, full disks, damaged and planted files: each ends bounded,
with a clear message, nothing leaked, nothing overwritten and nothing left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from conftest import build_env
from helpers import MANIFEST, ROOT, blob_members, build_wheel, clean_env, copy_project, expected_blobs, run
from mirror import Fault, Mirror

PREFETCH = ROOT / "scripts" / "prefetch.py"
R50K = MANIFEST.blobs_for(["r50k_base"])[0]
SECRET = "s3cr3t-t0ken"
NETWORK_MODULES = ("urllib.request", "http.client", "import ssl", "import socket", "from socket", "from ssl")


def test_the_wheel_holds_no_network_code_and_the_sdist_holds_the_fetcher(full_wheel: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(full_wheel) as archive:
        code = {name: archive.read(name).decode() for name in archive.namelist() if name.endswith(".py")}
    assert code and not [name for name, text in code.items() if any(m in text for m in NETWORK_MODULES)]
    assert not [name for name in code if "buildtime" in name or "_build" in name.split("/")[0]]

    run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", str(tmp_path), str(ROOT)], env=clean_env())
    with tarfile.open(next(tmp_path.glob("*.tar.gz"))) as sdist:
        names = sdist.getnames()
    assert any(name.endswith("/buildtime/tiktoken_encodings_offline_build/transport.py") for name in names)


# --- Ctrl-C and SIGTERM ---------------------------------------------------------------------------


def _wait_for(condition: object, seconds: float) -> bool:
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("what", ["build", "prefetch"])
def test_a_signal_stops_every_download_within_two_seconds(
    what: str, signum: int, files_dir: Path, tmp_path: Path
) -> None:
    cache, work, folder = tmp_path / "cache", tmp_path / "tmp", tmp_path / "carried"
    work.mkdir()
    with Mirror(files_dir) as mirror:
        mirror.throttle(per_connection=200_000)  # the whole set would take half a minute
        env = build_env(None, TIKTOKEN_ENCODINGS_OFFLINE_MIRROR=mirror.url, TMPDIR=str(work))
        env["TIKTOKEN_ENCODINGS_OFFLINE_CACHE_DIR"] = str(cache)
        if what == "build":
            cmd = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation"]
            cmd += ["-w", str(work)]
        else:
            cmd = [sys.executable, str(PREFETCH), str(folder)]
        # A new session, signalled as a whole, as a terminal's Ctrl-C or a CI runner's stop does.
        process = subprocess.Popen(
            cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            assert _wait_for(lambda: mirror.bytes_served > 300_000, 60), "the downloads never started"
            sent = time.monotonic()
            os.killpg(process.pid, signum)
            process.wait(timeout=10)
            exited = time.monotonic() - sent
            assert _wait_for(lambda: mirror.state.in_flight == 0, 2.0), "a download is still running"
            served = mirror.bytes_served
            time.sleep(1.0)
            assert mirror.bytes_served == served  # nobody is downloading any more
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            output = process.communicate()[0].decode(errors="replace")
    assert exited < 2.0, output
    assert process.returncode != 0
    assert not list(cache.glob("*.part")), output  # what was half-downloaded is gone
    assert not list(work.glob(".data-*"))  # no staging folder either (pip's own are pip's affair)
    if what == "prefetch":
        assert "prefetch stopped: interrupted" in output and "Traceback" not in output
        assert not [p for p in folder.iterdir() if p.name.startswith(".prefetch-")]


@pytest.mark.parametrize("waiting", ["connect", "backoff"])
def test_ctrl_c_ends_a_wait_for_a_connection_or_a_retry_at_once(waiting: str, files_dir: Path, tmp_path: Path) -> None:
    with socket.socket() as black_hole, socket.socket() as queued, Mirror(files_dir) as mirror:
        # connect: a listener whose accept queue is full drops further SYNs, as a silent firewall does;
        # backoff: a mirror that says to come back in 100 s.
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(0)
        queued.connect(black_hole.getsockname())
        mirror.fault(R50K.path, Fault("status", status=503, retry_after="100"))
        url = f"http://127.0.0.1:{black_hole.getsockname()[1]}/" if waiting == "connect" else mirror.url
        env = clean_env(TIKTOKEN_ENCODINGS_OFFLINE_MIRROR=url, TIKTOKEN_ENCODINGS_OFFLINE_CONNECT_TIMEOUT="100")
        cmd = [sys.executable, str(PREFETCH), str(tmp_path / "out"), "--encodings", "r50k_base"]
        process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            time.sleep(2)  # well inside the wait
            sent = time.monotonic()
            process.send_signal(signal.SIGINT)
            process.wait(timeout=10)
            exited = time.monotonic() - sent
        finally:
            if process.poll() is None:
                process.kill()
            output = process.communicate()[0].decode(errors="replace")
        assert waiting == "connect" or [s.status for s in mirror.seen] == [503]
    assert exited < 2.0, output
    assert process.returncode == 130 and "prefetch stopped: interrupted" in output


# --- Options checked like the flags -------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "accepted"),
    [
        ("RETRIES", "-1", "a whole number of at least 0"),
        ("WORKERS", "0", "a whole number of at least 1"),
        ("CONNECT_TIMEOUT", "nan", "a number of seconds greater than 0"),
        ("READ_TIMEOUT", "inf", "a number of seconds greater than 0"),
        ("TOTAL_TIMEOUT", "0", "a number of seconds greater than 0"),
    ],
)
def test_an_out_of_range_option_fails_at_once_naming_it(
    variable: str, value: str, accepted: str, tmp_path: Path
) -> None:
    env = clean_env(**{f"TIKTOKEN_ENCODINGS_OFFLINE_{variable}": value})
    result = run([sys.executable, str(PREFETCH), str(tmp_path / "out")], env=env, check=False)
    assert result.returncode == 2
    assert f"TIKTOKEN_ENCODINGS_OFFLINE_{variable}={value!r}: expected {accepted}" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_an_out_of_range_pyproject_option_fails_the_build_naming_the_key(files_dir: Path, tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    pyproject = project / "pyproject.toml"
    table = "[tool.hatch.build.targets.wheel.hooks.custom]\n"
    pyproject.write_text(pyproject.read_text().replace(table, table + "workers = 0\n"))
    wheel, result = build_wheel(tmp_path / "dist", build_env(files_dir), project=project, check=False)
    assert wheel is None
    assert "pyproject.toml key 'workers'='0': expected a whole number of at least 1" in result.stdout + result.stderr


@pytest.mark.parametrize("password", ["pa#ss", "pa/ss", "pa?ss"])
def test_a_password_with_a_reserved_character_is_never_printed(password: str, tmp_path: Path) -> None:
    env = clean_env(TIKTOKEN_ENCODINGS_OFFLINE_MIRROR=f"https://builder:{password}@mirror.example/files/")
    result = run([sys.executable, str(PREFETCH), str(tmp_path)], env=env, check=False)
    assert result.returncode == 2
    assert "must be percent-encoded (%2F %3F %23 %40 %3A %25)" in result.stderr
    assert password not in result.stdout + result.stderr and "builder" not in result.stdout + result.stderr


# --- The build cache never fails a build ----------------------------------------------------------


def test_a_home_that_cannot_hold_a_cache_still_builds_saying_why_once(files_dir: Path, tmp_path: Path) -> None:
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    with Mirror(files_dir) as mirror:
        env = build_env(None, TIKTOKEN_ENCODINGS_OFFLINE_MIRROR=mirror.url, HOME=str(home))
        env["TIKTOKEN_ENCODINGS_OFFLINE_ENCODINGS"] = "r50k_base"
        del env["TIKTOKEN_ENCODINGS_OFFLINE_CACHE_DIR"]
        env.pop("XDG_CACHE_HOME", None)
        cmd = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-v"]
        result = run([*cmd, "-w", str(tmp_path / "dist")], env=env)
    output = result.stdout + result.stderr
    assert output.count("build cache skipped:") == 1
    assert (
        f"build cache skipped: {home}/.cache/tiktoken-encodings-offline cannot be written (Not a directory)" in output
    )
    assert blob_members(next((tmp_path / "dist").glob("*.whl"))) == expected_blobs(["r50k_base"])


def test_a_read_only_cache_folder_is_skipped_and_the_build_goes_on(files_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    with Mirror(files_dir) as mirror:
        env = build_env(
            None, TIKTOKEN_ENCODINGS_OFFLINE_MIRROR=mirror.url, TIKTOKEN_ENCODINGS_OFFLINE_ENCODINGS="r50k_base"
        )
        env["TIKTOKEN_ENCODINGS_OFFLINE_CACHE_DIR"] = str(cache)
        read_only = f'mount --bind "{cache}" "{cache}" && mount -o remount,ro,bind "{cache}" && exec "$@"'
        pip = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-v"]
        result = run(["unshare", "--mount", "sh", "-c", read_only, "ro", *pip, "-w", str(tmp_path / "dist")], env=env)
    output = result.stdout + result.stderr
    assert f"build cache skipped: {cache} cannot be written (Read-only file system)" in output
    assert blob_members(next((tmp_path / "dist").glob("*.whl"))) == expected_blobs(["r50k_base"])
    assert list(cache.iterdir()) == []


def test_concurrent_builds_sharing_one_damaged_cache_give_identical_wheels(files_dir: Path, tmp_path: Path) -> None:
    with Mirror(files_dir) as mirror:
        mirror.throttle(latency=0.2)
        env = build_env(None, TIKTOKEN_ENCODINGS_OFFLINE_MIRROR=mirror.url, TIKTOKEN_ENCODINGS_OFFLINE_ENCODINGS="gpt2")
        env["TIKTOKEN_ENCODINGS_OFFLINE_CACHE_DIR"] = str(tmp_path / "cache")
        cmd = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w"]
        (tmp_path / "cache").mkdir()
        for blob in MANIFEST.blobs_for(["gpt2"]):  # damaged: each build discards them, maybe all at once
            (tmp_path / "cache" / blob.cache_name).write_bytes(b"damaged")
        builds = [subprocess.Popen([*cmd, str(tmp_path / f"dist{n}")], env=env) for n in range(3)]
        assert [build.wait(timeout=300) for build in builds] == [0, 0, 0]
    wheels = [next((tmp_path / f"dist{n}").glob("*.whl")).read_bytes() for n in range(3)]
    assert wheels[0] == wheels[1] == wheels[2]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(expected_blobs(["gpt2"]))


@pytest.mark.parametrize(("size", "where"), [("512k", "download"), ("1m", "copy")])
def test_a_full_disk_reads_as_a_full_disk_naming_the_folder(
    size: str, where: str, files_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "small"  # a 512 KiB disk cannot hold r50k_base (835 KB); a 1 MiB one cannot hold two
    folder.mkdir()
    with Mirror(files_dir) as mirror:
        env = clean_env(TIKTOKEN_ENCODINGS_OFFLINE_MIRROR=mirror.url)
        script = f'mount -t tmpfs -o size={size} tmpfs "{folder}" && exec "$@"'
        cmd = ["unshare", "--mount", "sh", "-c", script, "full", sys.executable, str(PREFETCH), str(folder)]
        result = run([*cmd, "--encodings", "r50k_base"], env=env, check=False)
        assert len(mirror.seen) == 1  # a full disk is not a cut transfer: no retry
    assert result.returncode == 1
    written_in = f"{folder}/.prefetch-" if where == "download" else f"{folder}/encodings"
    assert f"cannot write in {written_in}" in result.stderr and "No space left on device" in result.stderr
    assert "check the mirror address" not in result.stderr and "Traceback" not in result.stderr


# --- Prefetch: damaged and planted files (issue 16, item 2) -------------------------------------


def test_prefetch_replaces_a_damaged_file_and_never_lists_it(files_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "carried"
    with Mirror(files_dir) as mirror:
        env = clean_env(TIKTOKEN_ENCODINGS_OFFLINE_MIRROR=mirror.url)
        run([sys.executable, str(PREFETCH), str(folder), "--encodings", "gpt2,r50k_base"], env=env)
        damaged = folder / R50K.path
        damaged.write_bytes(damaged.read_bytes()[:-5] + b"xxxxx")
        mirror.reset_counts()
        result = run([sys.executable, str(PREFETCH), str(folder), "--encodings", "gpt2,r50k_base"], env=env)
        assert [s.path for s in mirror.seen] == ["/" + R50K.path]
    assert f"{damaged}: damaged (SHA-256 " in result.stdout
    run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=folder)


def test_prefetch_fails_on_a_damaged_source_folder_file_with_its_own_fix(files_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(files_dir / "encodings", source / "encodings")
    (source / R50K.path).write_bytes(b"not the file")
    env = clean_env(TIKTOKEN_ENCODINGS_OFFLINE_SOURCE_DIR=str(source), TIKTOKEN_ENCODINGS_OFFLINE_NO_NETWORK="1")
    result = run(
        [sys.executable, str(PREFETCH), str(tmp_path / "out"), "--encodings", "r50k_base"], env=env, check=False
    )
    assert result.returncode == 1
    assert f"{source / R50K.path} is not the published {R50K.path}" in result.stderr
    assert "install the prebuilt wheel" not in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "SHA256SUMS").exists()


def test_symlinks_planted_in_the_prefetch_folder_overwrite_nothing(files_dir: Path, tmp_path: Path) -> None:
    folder, victim = tmp_path / "carried", tmp_path / "victim"
    victim.write_text("precious")
    (folder / "encodings").mkdir(parents=True)
    (folder / R50K.path).symlink_to(victim)
    (folder / "SHA256SUMS").symlink_to(victim)
    with Mirror(files_dir) as mirror:
        env = clean_env(TIKTOKEN_ENCODINGS_OFFLINE_MIRROR=mirror.url)
        run([sys.executable, str(PREFETCH), str(folder), "--encodings", "r50k_base"], env=env)
    assert victim.read_text() == "precious"
    assert not (folder / R50K.path).is_symlink() and not (folder / "SHA256SUMS").is_symlink()
    run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=folder)


def test_a_mirror_that_does_not_resolve_fails_once_and_the_fix_names_only_what_is_set(tmp_path: Path) -> None:
    env = build_env(None, TIKTOKEN_ENCODINGS_OFFLINE_MIRROR="http://no-such-mirror.invalid/")
    env["TIKTOKEN_ENCODINGS_OFFLINE_ENCODINGS"] = "r50k_base"
    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        env.pop(proxy, None)
    wheel, result = build_wheel(tmp_path / "dist", env, check=False)
    output = result.stdout + result.stderr
    assert wheel is None
    assert "the host name no-such-mirror.invalid did not resolve" in output and "attempts" not in output
    assert "Fix: check the mirror address (TIKTOKEN_ENCODINGS_OFFLINE_MIRROR)" in output
    assert "the proxy" not in output
