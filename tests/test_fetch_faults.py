"""Issue 11 and issue 16 (items 6-8): the fetcher against hostile mirrors, proxies and folders.

Each test asserts on what the loopback servers received and on what is left on disk.
"""

from __future__ import annotations

import base64
import errno
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import threading
import time
import types
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import Fetch
from helpers import MANIFEST
from mirror import Fault, ForwardProxy, Mirror, Seen
from tiktoken_encodings_offline_build import cancel, files, transport

O200K = MANIFEST.blobs_for(["o200k_base"])[0]
R50K = MANIFEST.blobs_for(["r50k_base"])[0]
SECRET = "s3cr3t-t0ken"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def gets(mirror: Mirror, blob: Any) -> list[Seen]:
    return [s for s in mirror.seen if s.path.split("?")[0].endswith("/" + blob.path)]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- Issue 16, items 6-8: resume and size guards ----------------------------------------------


def test_resume_without_a_validator_fetches_the_whole_file_again(mirror: Mirror, fetch: Fetch) -> None:
    mirror.state.validators = False
    mirror.fault(O200K.path, Fault("truncate", fraction=0.5))
    found = fetch([O200K], mirror=mirror.url)
    assert sha256(found[O200K.url]) == O200K.sha256
    first, second = gets(mirror, O200K)
    assert first.status == 200 and first.sent == int(O200K.size * 0.5)
    assert "range" not in second.headers and "if-range" not in second.headers
    assert second.status == 200 and second.sent == O200K.size


def test_a_206_with_another_range_restarts_the_transfer_cleanly(mirror: Mirror, fetch: Fetch) -> None:
    mirror.fault(O200K.path, Fault("truncate", fraction=0.5))
    mirror.fault(O200K.path, Fault("wrong-range"))
    found = fetch([O200K], mirror=mirror.url)
    assert sha256(found[O200K.url]) == O200K.sha256
    statuses = [s.status for s in gets(mirror, O200K)]
    assert statuses == [200, 206, 200]
    restart = gets(mirror, O200K)[2]
    assert "range" not in restart.headers
    assert leftovers(fetch.cache) == [O200K.cache_name]


def test_an_announced_oversized_body_fails_before_any_byte_is_written(mirror: Mirror, fetch: Fetch) -> None:
    mirror.fault(R50K.path, Fault("oversize", extra=1000))
    message = fetch.error([R50K], mirror=mirror.url)
    assert f"the server announces {R50K.size + 1000} bytes; the file has {R50K.size}" in message
    assert len(gets(mirror, R50K)) == 1  # not retried
    assert leftovers(fetch.cache) == []


def test_an_unannounced_oversized_body_stops_at_the_manifest_size(mirror: Mirror, fetch: Fetch) -> None:
    extra = 200 * 1024 * 1024  # far more than the socket buffers can hold
    mirror.fault(R50K.path, Fault("oversize-unannounced", extra=extra))
    message = fetch.error([R50K], mirror=mirror.url)
    assert f"the server sent more than the {R50K.size} bytes of the file" in message
    assert leftovers(fetch.cache) == []
    time.sleep(0.5)
    sent = gets(mirror, R50K)[0].sent
    assert sent < R50K.size + 16 * 1024 * 1024  # the client hung up; it did not drain the body


# --- Redirects, proxies and secrets ------------------------------------------------------------


def test_proxy_credentials_never_reach_the_host_a_redirect_names(
    files_dir: Path, fetch: Fetch, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Mirror(files_dir) as front, Mirror(files_dir, host="localhost") as storage, ForwardProxy() as proxy:
        front.fault(R50K.path, Fault("redirect", location=storage.url))
        monkeypatch.setenv("HTTP_PROXY", proxy.url.replace("://", f"://proxyuser:{SECRET}@"))
        monkeypatch.setenv("NO_PROXY", "localhost")
        monkeypatch.delenv("no_proxy", raising=False)
        found = fetch([R50K], mirror=front.url)
        assert sha256(found[R50K.url]) == R50K.sha256
        assert proxy.seen == [("GET", f"{front.url}{R50K.path}")]  # the first hop went through the proxy
        assert front.seen[0].headers["proxy-authorization"].startswith("Basic ")  # relayed by the test proxy
        (direct,) = storage.seen
        assert "proxy-authorization" not in direct.headers and "authorization" not in direct.headers
        assert not any(SECRET in line for line in fetch.logs)


def test_a_redirect_to_anything_but_http_is_refused(mirror: Mirror, fetch: Fetch) -> None:
    with socket.socket() as ftp:
        ftp.bind(("127.0.0.1", 0))
        ftp.listen(1)
        ftp.setblocking(False)
        mirror.fault(
            R50K.path, Fault("redirect", location=f"ftp://anonymous:{SECRET}@127.0.0.1:{ftp.getsockname()[1]}")
        )
        message = fetch.error([R50K], mirror=mirror.url)
        with pytest.raises(BlockingIOError):
            ftp.accept()  # nobody connected
    assert "only http:// and https:// redirects are followed" in message
    assert SECRET not in message and "anonymous" not in message
    assert len(gets(mirror, R50K)) == 1  # not retried
    assert leftovers(fetch.cache) == []


def test_a_mirror_url_with_a_query_keeps_it_and_never_shows_it(files_dir: Path, fetch: Fetch, tmp_path: Path) -> None:
    root = tmp_path / "container"
    (root / "mirror" / "encodings").mkdir(parents=True)
    shutil.copyfile(files_dir / R50K.path, root / "mirror" / R50K.path)
    with Mirror(root) as blob_store:
        sas = f"sv=2024-01-01&sp=r&sig={SECRET}"
        found = fetch([R50K], mirror=f"{blob_store.url}mirror?{sas}")
        assert sha256(found[R50K.url]) == R50K.sha256
        assert [s.path for s in blob_store.seen] == [f"/mirror/{R50K.path}?{sas}"]

        blob_store.fault(f"mirror/{O200K.path}", Fault("status", status=404))
        message = fetch.error([O200K], mirror=f"{blob_store.url}mirror/?{sas}")
        assert f"{blob_store.url}mirror/{O200K.path}?<query hidden>: HTTP 404" in message
        assert SECRET not in message and not any(SECRET in line for line in fetch.logs)


# --- Bounded waits --------------------------------------------------------------------------------


@pytest.mark.parametrize("every", [0.05, 3.0], ids=["drip", "a-byte-just-inside-the-read-timeout"])
def test_a_dripping_mirror_fails_at_the_total_deadline(every: float, mirror: Mirror, fetch: Fetch) -> None:
    mirror.fault(R50K.path, Fault("drip", seconds=every))
    started = time.monotonic()
    message = fetch.error([R50K], mirror=mirror.url, total_timeout=1.5, read_timeout=5)
    elapsed = time.monotonic() - started
    assert 1.4 <= elapsed < 2.5
    assert "passed its total deadline" in message and f"of {R50K.size} bytes of {R50K.path}" in message
    assert "TIKTOKEN_ENCODINGS_OFFLINE_TOTAL_TIMEOUT (pyproject key total-timeout)" in message
    received = int(message.split("deadline with ")[1].split(" of ")[0])
    sent = gets(mirror, R50K)[0].sent
    assert 1 <= received <= sent and (every > 1 or received >= 5)
    assert leftovers(fetch.cache) == []
    time.sleep(max(0.5, every))
    assert gets(mirror, R50K)[0].sent <= sent + 1  # the connection is gone


def test_a_stalled_read_ends_within_a_slice_where_shutting_the_socket_wakes_nothing(
    mirror: Mirror, fetch: Fetch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 28, item 7: Winsock documents only closesocket as failing another thread's blocking
    call, so shutdown() may not wake a read there. With the shutdown taken away, each read's own
    slices still end a stalled download at the deadline, long before its read timeout."""
    monkeypatch.setattr(cancel, "_shut", lambda sock: None)
    mirror.fault(R50K.path, Fault("stall", fraction=0.25, seconds=6))
    started = time.monotonic()
    message = fetch.error([R50K], mirror=mirror.url, total_timeout=1.0, read_timeout=30, retries=0)
    assert time.monotonic() - started < 1.8
    assert "passed its total deadline" in message and f"{int(R50K.size * 0.25)} of {R50K.size} bytes" in message
    assert leftovers(fetch.cache) == []


def test_a_host_name_that_does_not_resolve_is_not_retried(fetch: Fetch) -> None:
    started = time.monotonic()
    message = fetch.error([R50K], mirror="http://no-such-mirror.invalid/", retries=3, backoff=1.0)
    assert "the host name no-such-mirror.invalid did not resolve" in message
    assert "attempts" not in message and "retrying" not in " ".join(fetch.logs)
    assert time.monotonic() - started < 5


# --- The build cache: an optimisation, never a cause of failure --------------------------------


def test_an_unusable_cache_is_skipped_in_one_line(mirror: Mirror, fetch: Fetch, tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    found = fetch([R50K], mirror=mirror.url, cache_dir=not_a_folder / "cache")
    assert sha256(found[R50K.url]) == R50K.sha256
    assert found[R50K.url].parent == fetch.tmp_path / "work"
    skipped = [line for line in fetch.logs if "build cache skipped" in line]
    assert skipped == [f"build cache skipped: {not_a_folder / 'cache'} cannot be written (Not a directory); "
                       f"downloading into the build's own work folder"]  # fmt: skip


def test_a_cache_entry_that_cannot_be_replaced_sends_the_download_to_the_work_folder(
    mirror: Mirror, fetch: Fetch
) -> None:
    (fetch.cache / R50K.cache_name).mkdir(parents=True)  # not a file: nothing can be renamed over it
    found = fetch([R50K], mirror=mirror.url)
    assert found[R50K.url].parent == fetch.tmp_path / "work" and sha256(found[R50K.url]) == R50K.sha256
    assert [line for line in fetch.logs if "skipped" in line] == [
        f"{R50K.path}: build cache file {fetch.cache / R50K.cache_name} skipped (not a regular file)"
    ]
    assert leftovers(fetch.cache) == [R50K.cache_name]  # the folder, untouched; no .part left


def test_symlinks_planted_in_the_cache_overwrite_nothing(mirror: Mirror, fetch: Fetch, tmp_path: Path) -> None:
    victim, elsewhere = tmp_path / "victim", tmp_path / "created-through-a-link"
    victim.write_text("precious")
    fetch.cache.mkdir()
    (fetch.cache / R50K.cache_name).symlink_to(victim)  # looks like a corrupted cache file
    (fetch.cache / O200K.cache_name).symlink_to(elsewhere)  # dangling: looks like no cache file
    found = fetch([R50K, O200K], mirror=mirror.url)
    assert victim.read_text() == "precious" and not elsewhere.exists()
    for blob in (R50K, O200K):
        assert found[blob.url] == fetch.cache / blob.cache_name
        assert not found[blob.url].is_symlink() and sha256(found[blob.url]) == blob.sha256


def test_part_files_left_by_killed_builds_are_removed_and_running_ones_kept(mirror: Mirror, fetch: Fetch) -> None:
    fetch.cache.mkdir()

    def part(name: str, age: float) -> Path:
        path = fetch.cache / f"{R50K.cache_name}.{name}.part"
        path.write_bytes(b"half a file")
        os.utime(path, (time.time() - age, time.time() - age))
        return path

    part("killed-an-hour-ago", 3600)
    part("killed-minutes-ago", 300)
    just_created = part("created-a-moment-ago", 0)  # its lock may not be taken yet
    running = part("running-for-an-hour", 3600)
    with open(running, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # as the running download holds it
        fetch([R50K], mirror=mirror.url)
    assert leftovers(fetch.cache) == sorted([R50K.cache_name, just_created.name, running.name])


def test_a_running_download_holds_its_part_file_locked(mirror: Mirror, fetch: Fetch) -> None:
    mirror.throttle(per_connection=400_000)  # about two seconds for the file
    downloading = threading.Thread(target=fetch, args=([R50K],), kwargs={"mirror": mirror.url})
    downloading.start()
    try:
        ends = time.monotonic() + 10
        while not list(fetch.cache.glob("*.part")) and time.monotonic() < ends:
            time.sleep(0.02)
        time.sleep(0.2)  # the lock is taken just after the file is created
        (part,) = fetch.cache.glob("*.part")
        with open(part, "rb") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # what the next build tries
    finally:
        downloading.join(timeout=30)
    assert leftovers(fetch.cache) == [R50K.cache_name]


def test_basic_auth_password_with_reserved_characters_is_decoded(mirror: Mirror, fetch: Fetch) -> None:
    password = "p@ss/w#rd?"
    mirror.state.require_auth = "Basic " + base64.b64encode(f"builder:{password}".encode()).decode()
    encoded = "p%40ss%2Fw%23rd%3F"
    found = fetch([R50K], mirror=mirror.url.replace("://", f"://builder:{encoded}@"))
    assert sha256(found[R50K.url]) == R50K.sha256
    assert not any(encoded in line or "builder" in line for line in fetch.logs)


# --- Issue 24: Windows, simulated; the .part guard --------------------------------------------


def refuse_replace(
    monkeypatch: pytest.MonkeyPatch, target: Path, times: int, meanwhile: Callable[[], Any]
) -> list[str]:
    """os.replace as on Windows while another process has ``target`` open: PermissionError (WinError 5)."""
    real, refused = os.replace, []

    def windows_replace(src: Any, dst: Any) -> None:
        if Path(dst) == target and len(refused) < times:
            refused.append(str(dst))
            meanwhile()
            raise PermissionError(13, "Access is denied", str(src), 5, str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", windows_replace)
    return refused


def test_a_rename_refused_for_a_moment_is_retried(
    mirror: Mirror, fetch: Fetch, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = refuse_replace(monkeypatch, fetch.cache / R50K.cache_name, 3, lambda: None)  # an antivirus scan
    found = fetch([R50K], mirror=mirror.url)
    assert len(refused) == 3 and sha256(found[R50K.url]) == R50K.sha256
    assert leftovers(fetch.cache) == [R50K.cache_name]


def test_a_rename_refused_onto_the_right_file_keeps_that_file(
    mirror: Mirror, fetch: Fetch, files_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = fetch.cache / R50K.cache_name
    # A parallel build renamed the same file there first and keeps it open: every rename is refused.
    refuse_replace(monkeypatch, target, 1000, lambda: shutil.copyfile(files_dir / R50K.path, target))
    found = fetch([R50K], mirror=mirror.url)
    assert found[R50K.url] == target and sha256(target) == R50K.sha256
    assert leftovers(fetch.cache) == [R50K.cache_name]


def test_a_rename_refused_for_good_names_the_file_in_use_not_the_disk(
    mirror: Mirror, fetch: Fetch, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = fetch.cache / R50K.cache_name
    refused = refuse_replace(monkeypatch, target, 1000, lambda: None)
    started = time.monotonic()
    error = fetch.error([R50K], mirror=mirror.url)
    assert time.monotonic() - started < 5 and 2 <= len(refused) <= 20  # retried, briefly
    assert f"{target}: cannot replace it: Access is denied; another process has it open" in error
    assert "free space" not in error and "Fix: build again once that process is done with it" in error
    assert leftovers(fetch.cache) == []  # no .part left


def test_a_staged_file_held_open_is_named_in_use_and_one_with_the_same_bytes_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    destination = tmp_path / "derived.tsv"
    refuse_replace(monkeypatch, destination, 1000, lambda: None)
    with pytest.raises(files.InUse) as caught:  # the build's message then names the file, not the disk
        files.write_file(destination, b"rows\n")
    assert caught.value.filename == str(destination) and "another process has it open" in str(caught.value)
    assert leftovers(tmp_path) == []
    destination.write_bytes(b"rows\n")  # the same bytes, put there by whoever holds it open
    files.write_file(destination, b"rows\n")
    assert leftovers(tmp_path) == ["derived.tsv"]


def windows_refusing_port(monkeypatch: pytest.MonkeyPatch) -> int:
    """A port nobody listens on, and select as on Windows: a failed connect is exceptional only."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port: int = closed.getsockname()[1]  # nobody listens there once it is closed
    real_select = transport.select.select

    def windows_select(read: Any, write: Any, exceptional: Any, timeout: float) -> Any:
        readable, writable, failed = real_select(read, write, exceptional, timeout)
        return readable, [], [*failed, *writable]  # Windows: a failed connect is exceptional, never writable

    monkeypatch.setattr(transport, "select", types.SimpleNamespace(select=windows_select))
    return port


def test_a_refused_connect_windows_reports_as_an_exception_fails_at_once(
    fetch: Fetch, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = windows_refusing_port(monkeypatch)
    started = time.monotonic()
    error = fetch.error([R50K], mirror=f"http://127.0.0.1:{port}/", retries=0, connect_timeout=3.0)
    assert time.monotonic() - started < 1.5
    assert "Connection refused" in error and "timed out" not in error


def test_a_winsock_error_code_is_named_not_an_unknown_error(fetch: Fetch, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 28, item 8: Windows' SO_ERROR gives Winsock's codes (10061 for a refused connect), which
    its os.strerror calls "Unknown error"."""
    port = windows_refusing_port(monkeypatch)
    real_getsockopt = socket.socket.getsockopt

    def winsock_getsockopt(sock: socket.socket, level: int, option: int, *rest: Any) -> Any:
        value = real_getsockopt(sock, level, option, *rest)
        if (level, option) == (socket.SOL_SOCKET, socket.SO_ERROR) and value == errno.ECONNREFUSED:
            return 10061  # WSAECONNREFUSED
        return value

    monkeypatch.setattr(socket.socket, "getsockopt", winsock_getsockopt)
    error = fetch.error([R50K], mirror=f"http://127.0.0.1:{port}/", retries=0, connect_timeout=3.0)
    assert "Connection refused (Winsock error 10061)" in error and "Unknown error" not in error
    assert transport.error_text(errno.ECONNREFUSED) == os.strerror(errno.ECONNREFUSED)  # this system's own


def test_ctrl_c_takes_effect_at_once_where_it_cannot_wake_the_wait(mirror: Mirror, fetch: Fetch) -> None:
    """Windows' Python <= 3.13 cannot interrupt a lock wait: here the signal goes to another thread,
    so the main thread's wait is not woken either; only the fetch's short slices notice it."""
    mirror.throttle(per_connection=100_000)  # about eight seconds for the file
    sent: list[float] = []

    def ctrl_c_elsewhere() -> None:
        time.sleep(0.5)
        sent.append(time.monotonic())
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    threading.Thread(target=ctrl_c_elsewhere).start()
    with pytest.raises(KeyboardInterrupt):
        fetch([R50K], mirror=mirror.url)
    assert time.monotonic() - sent[0] < 1.0
    assert leftovers(fetch.cache) == []


def test_part_files_get_fresh_random_names_so_a_planted_link_is_never_followed(
    mirror: Mirror, fetch: Fetch, tmp_path: Path
) -> None:
    mirror.throttle(per_connection=500_000)  # about two seconds for the file: its .part can be seen

    def part_names_while_downloading() -> set[str]:
        downloading = threading.Thread(target=fetch, args=([R50K],), kwargs={"mirror": mirror.url})
        downloading.start()
        names: set[str] = set()
        while downloading.is_alive():
            names.update(p.name for p in fetch.cache.glob("*.part"))
            time.sleep(0.01)
        downloading.join()
        return names

    (first,) = part_names_while_downloading()
    (fetch.cache / R50K.cache_name).unlink()
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (fetch.cache / first).symlink_to(victim)  # planted where the last run wrote
    seen = part_names_while_downloading()
    assert victim.read_text() == "precious"
    assert len(seen - {first}) == 1  # a fresh name
    found = fetch.cache / R50K.cache_name
    assert not found.is_symlink() and sha256(found) == R50K.sha256
