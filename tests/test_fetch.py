"""Issue 3: fetching for the build, against a loopback mirror with injected faults."""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
import subprocess
import sys
import time
import types
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Fetch, build_env
from helpers import MANIFEST, ROOT, blob_members, build_wheel, clean_env, expected_blobs, fetch_module, offline, run
from mirror import Fault, ForwardProxy, Mirror
from tiktoken_encodings_offline_build import options, transport
from tiktoken_encodings_offline_build import tls as trust

O200K = MANIFEST.blobs_for(["o200k_base"])[0]
R50K = MANIFEST.blobs_for(["r50k_base"])[0]
SECRET = "s3cr3t-t0ken"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def gets(mirror: Mirror, blob: Any) -> list[Any]:
    return [s for s in mirror.seen if s.path == "/" + blob.path]


# --- Done when: the build through a mirror ---------------------------------------------------


def test_build_through_mirror_matches_local_build_and_rebuild_makes_no_request(
    mirror: Mirror, full_wheel: Path, tmp_path: Path
) -> None:
    env = build_env(
        None,
        TIKTOKEN_ENCODINGS_OFFLINE_MIRROR=mirror.url,
        TIKTOKEN_ENCODINGS_OFFLINE_CACHE_DIR=str(tmp_path / "cache"),
    )
    first, _ = build_wheel(tmp_path / "first", env)
    assert first is not None
    assert first.read_bytes() == full_wheel.read_bytes()
    assert sorted(s.path for s in mirror.seen) == sorted("/" + b.path for b in MANIFEST.blobs.values())
    # the cache holds the canonical names, never the mirror's
    assert {p.name for p in (tmp_path / "cache").iterdir()} == set(expected_blobs())

    mirror.reset_counts()
    second, _ = build_wheel(tmp_path / "second", env)
    assert second is not None and second.read_bytes() == full_wheel.read_bytes()
    assert mirror.seen == []


def test_build_fails_naming_the_file_a_mirror_corrupts(mirror: Mirror, tmp_path: Path) -> None:
    mirror.fault(O200K.path, Fault("corrupt", times=10))
    url = mirror.url.replace("://", f"://builder:{SECRET}@")
    env = build_env(None, TIKTOKEN_ENCODINGS_OFFLINE_MIRROR=url, TIKTOKEN_ENCODINGS_OFFLINE_RETRIES="0")
    wheel, result = build_wheel(tmp_path / "dist", env, check=False)
    output = result.stdout + result.stderr
    assert wheel is None
    assert f"{mirror.url}{O200K.path}: the downloaded bytes are not the published file" in output
    assert f"expected SHA-256 {O200K.sha256}" in output
    assert SECRET not in output and "builder:" not in output


def test_build_fails_when_the_mirror_wants_a_token_that_was_not_given(mirror: Mirror, tmp_path: Path) -> None:
    mirror.state.require_auth = f"Bearer {SECRET}"
    env = build_env(
        None, TIKTOKEN_ENCODINGS_OFFLINE_MIRROR=mirror.url, TIKTOKEN_ENCODINGS_OFFLINE_ENCODINGS="r50k_base"
    )
    wheel, result = build_wheel(tmp_path / "dist", env, check=False)
    output = result.stdout + result.stderr
    assert wheel is None
    assert f"{mirror.url}{R50K.path}: HTTP 401" in output
    assert "TIKTOKEN_ENCODINGS_OFFLINE_MIRROR_TOKEN" in output
    assert len(gets(mirror, R50K)) == 1  # a 401 is not retried
    assert SECRET not in output

    env["TIKTOKEN_ENCODINGS_OFFLINE_MIRROR_TOKEN"] = SECRET
    wheel, result = build_wheel(tmp_path / "dist", env)
    assert wheel is not None and blob_members(wheel) == expected_blobs(["r50k_base"])
    assert SECRET not in result.stdout + result.stderr


# --- Sources and the cache ---------------------------------------------------------------------


def test_local_folder_wins_then_cache_then_mirror(mirror: Mirror, fetch: Fetch, layouts: dict[str, Path]) -> None:
    fetch([R50K], mirror=mirror.url, source_dir=layouts["flat"])
    assert mirror.seen == []
    assert not fetch.cache.exists()  # every file in the source folder: no build cache is made
    fetch([O200K], mirror=mirror.url)
    assert len(gets(mirror, O200K)) == 1
    found = fetch([O200K], mirror=mirror.url)
    assert len(gets(mirror, O200K)) == 1  # served by the cache
    assert found[O200K.url] == fetch.cache / O200K.cache_name
    assert any("from build cache" in line for line in fetch.logs)


def test_corrupted_cache_file_is_discarded_and_fetched_again(mirror: Mirror, fetch: Fetch) -> None:
    fetch.cache.mkdir()
    (fetch.cache / R50K.cache_name).write_bytes(b"not the file")
    found = fetch([R50K], mirror=mirror.url)
    assert sha256(found[R50K.url]) == R50K.sha256
    assert len(gets(mirror, R50K)) == 1
    assert any("discarded corrupted cached file" in line for line in fetch.logs)


def test_no_cache_downloads_into_the_work_folder(mirror: Mirror, fetch: Fetch) -> None:
    found = fetch([R50K], mirror=mirror.url, cache_dir=None)
    assert found[R50K.url].parent == fetch.tmp_path / "work"
    assert not fetch.cache.exists()


def test_no_network_fails_at_once_listing_places(mirror: Mirror, fetch: Fetch) -> None:
    message = fetch.error([R50K], mirror=mirror.url, network=False)
    assert "network access is turned off" in message
    assert f"{fetch.cache / R50K.cache_name} (build cache: not there)" in message
    assert mirror.seen == []


# --- HTTP faults ---------------------------------------------------------------------------------


def test_404_fails_without_retrying(mirror: Mirror, fetch: Fetch) -> None:
    mirror.fault(R50K.path, Fault("status", status=404))
    message = fetch.error([R50K], mirror=mirror.url)
    assert f"{R50K.path} (sha256 {R50K.sha256})" in message
    assert f"{mirror.url}{R50K.path}: HTTP 404" in message
    assert len(gets(mirror, R50K)) == 1
    assert not list(fetch.cache.glob("*.part"))  # nothing half-written is left


def test_500_then_success_is_retried(mirror: Mirror, fetch: Fetch) -> None:
    mirror.fault(R50K.path, Fault("status", status=500, times=2))
    found = fetch([R50K], mirror=mirror.url)
    assert sha256(found[R50K.url]) == R50K.sha256
    assert [s.status for s in gets(mirror, R50K)] == [500, 500, 200]


def test_429_waits_as_long_as_retry_after_says(mirror: Mirror, fetch: Fetch) -> None:
    mirror.fault(R50K.path, Fault("status", status=429, retry_after="1"))
    started = time.monotonic()
    found = fetch([R50K], mirror=mirror.url)
    assert time.monotonic() - started >= 1.0
    assert sha256(found[R50K.url]) == R50K.sha256
    assert [s.status for s in gets(mirror, R50K)] == [429, 200]


def test_retries_are_bounded(mirror: Mirror, fetch: Fetch) -> None:
    mirror.fault(R50K.path, Fault("status", status=503, times=100))
    message = fetch.error([R50K], mirror=mirror.url, retries=2)
    assert "gave up after 3 attempts, each: HTTP 503" in message
    assert len(gets(mirror, R50K)) == 3

    mirror.reset_counts()
    message = fetch.error([R50K], mirror=mirror.url, retries=0)
    assert f"{mirror.url}{R50K.path}: HTTP 503 Service Unavailable (retries turned off)" in message
    assert len(gets(mirror, R50K)) == 1


def test_connect_timeout_on_a_host_that_never_answers(fetch: Fetch) -> None:
    # A listener with a full accept queue: the kernel drops further SYNs, as a silent firewall does.
    with socket.socket() as black_hole, socket.socket() as queued:
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(0)
        queued.connect(black_hole.getsockname())
        port = black_hole.getsockname()[1]
        started = time.monotonic()
        message = fetch.error(
            [R50K], mirror=f"http://127.0.0.1:{port}/", connect_timeout=0.5, read_timeout=60, retries=1
        )
        elapsed = time.monotonic() - started
    assert "gave up after 2 attempts, each: cannot connect: timed out" in message
    assert 1.0 <= elapsed < 10  # two connect timeouts, not the read timeout


def test_mirror_that_corrupts_a_file_fails_and_leaves_no_file(mirror: Mirror, fetch: Fetch) -> None:
    mirror.fault(R50K.path, Fault("corrupt"))
    message = fetch.error([R50K], mirror=mirror.url)
    assert "the downloaded bytes are not the published file" in message
    assert not fetch.cache.exists() or list(fetch.cache.iterdir()) == []


@pytest.mark.parametrize("kind", ["truncate", "cut"])
def test_interrupted_transfer_resumes_with_a_guarded_range(kind: str, mirror: Mirror, fetch: Fetch) -> None:
    mirror.fault(O200K.path, Fault(kind, fraction=0.5))
    found = fetch([O200K], mirror=mirror.url)
    assert sha256(found[O200K.url]) == O200K.sha256
    first, second = gets(mirror, O200K)
    assert "range" not in first.headers
    assert second.headers["if-range"].startswith('"')  # the ETag of the first answer
    assert second.status == 206
    kept = int(second.headers["range"].removeprefix("bytes=").rstrip("-"))
    if kind == "truncate":  # a clean close delivers all that was sent; a reset may drop the last bytes
        assert kept == int(O200K.size * 0.5)
    assert 0 < kept <= int(O200K.size * 0.5)
    assert second.sent == O200K.size - kept  # only the missing range was fetched again


def test_stalled_response_times_out_and_resumes(mirror: Mirror, fetch: Fetch) -> None:
    mirror.fault(O200K.path, Fault("stall", fraction=0.25, seconds=5))
    started = time.monotonic()
    found = fetch([O200K], mirror=mirror.url, read_timeout=0.5)
    assert time.monotonic() - started < 4
    assert sha256(found[O200K.url]) == O200K.sha256
    resumed = gets(mirror, O200K)[1]
    kept = int(resumed.headers["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < kept <= int(O200K.size * 0.25)  # a read cut by the timeout keeps what it had before it
    assert resumed.sent == O200K.size - kept


def test_server_answering_200_to_a_range_starts_over_cleanly(mirror: Mirror, fetch: Fetch) -> None:
    mirror.fault(O200K.path, Fault("truncate", fraction=0.5))
    mirror.fault(O200K.path, Fault("ignore-range"))
    found = fetch([O200K], mirror=mirror.url)
    assert sha256(found[O200K.url]) == O200K.sha256
    assert [s.status for s in gets(mirror, O200K)] == [200, 200]


def test_blobs_are_fetched_concurrently(mirror: Mirror, fetch: Fetch) -> None:
    mirror.throttle(latency=0.3)
    fetch(list(MANIFEST.blobs.values()), mirror=mirror.url)
    assert mirror.state.max_in_flight == len(MANIFEST.blobs)
    lines = [line for line in fetch.logs if f"from {mirror.url}" in line]
    assert len(lines) == 6 and all(" MB from " in line and line.endswith(" s") for line in lines)


# --- Credentials ----------------------------------------------------------------------------------


def test_credentials_in_the_mirror_url_become_basic_auth(mirror: Mirror, fetch: Fetch) -> None:
    mirror.state.require_auth = "Basic " + base64.b64encode(f"builder:{SECRET}".encode()).decode()
    url = mirror.url.replace("://", f"://builder:{SECRET}@")
    found = fetch([R50K], mirror=url)
    assert sha256(found[R50K.url]) == R50K.sha256
    assert not any(SECRET in line or "builder" in line for line in fetch.logs)


def test_bearer_token_and_netrc(mirror: Mirror, fetch: Fetch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror.state.require_auth = f"Bearer {SECRET}"
    fetch([R50K], mirror=mirror.url, token=SECRET)

    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login ci password {SECRET}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    mirror.state.require_auth = "Basic " + base64.b64encode(f"ci:{SECRET}".encode()).decode()
    found = fetch([O200K], mirror=mirror.url)
    assert sha256(found[O200K.url]) == O200K.sha256


def test_credentials_never_follow_a_redirect_to_another_host(files_dir: Path, fetch: Fetch) -> None:
    with Mirror(files_dir) as storage, Mirror(files_dir) as front:
        front.state.require_auth = f"Bearer {SECRET}"
        front.fault(R50K.path, Fault("redirect", location=storage.url))
        found = fetch([R50K], mirror=front.url, token=SECRET)
        assert sha256(found[R50K.url]) == R50K.sha256
        assert [s.status for s in front.seen] == [302]
        assert front.seen[0].headers["authorization"] == f"Bearer {SECRET}"
        assert len(storage.seen) == 1 and "authorization" not in storage.seen[0].headers


def test_windows_reads_netrc_under_its_windows_name(
    mirror: Mirror, fetch: Fetch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 24, item 14: %USERPROFILE%\\_netrc when there is no .netrc, as curl and git read it."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "_netrc").write_text(f"machine 127.0.0.1 login ci password {SECRET}\n")
    monkeypatch.setattr(transport, "sys", types.SimpleNamespace(platform="win32"))  # the transport's view
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: home))  # %USERPROFILE% there
    monkeypatch.delenv("NETRC", raising=False)
    mirror.state.require_auth = "Basic " + base64.b64encode(f"ci:{SECRET}".encode()).decode()
    found = fetch([R50K], mirror=mirror.url)
    assert sha256(found[R50K.url]) == R50K.sha256


# --- Proxies and TLS ------------------------------------------------------------------------------


def test_a_proxy_of_the_system_settings_is_used_and_named_in_the_advice(
    mirror: Mirror, fetch: Fetch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 24, item 14: Windows' Internet Options or macOS' network settings, no variable set."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "")
    with ForwardProxy() as proxy:
        shown = proxy.url.replace("://", "://ci:pr0xy-secret@")
        monkeypatch.setattr(urllib.request, "getproxies", lambda: {"http": shown, "https": shown})
        fetch([R50K], mirror=mirror.url)
        assert proxy.seen == [("GET", f"{mirror.url}{R50K.path}")]  # urllib's ProxyHandler used it
    advice = options.network_advice(fetch_module.FetchSettings(), {})
    assert f"the proxy of the system's settings ({proxy.url.rstrip('/')}" in advice
    assert "pr0xy-secret" not in advice and "directly" not in advice
    monkeypatch.setattr(urllib.request, "getproxies", dict)
    assert "must reach https://openaipublic.blob.core.windows.net/ directly" in options.network_advice(
        fetch_module.FetchSettings(), {}
    )


def test_http_proxy_is_used_and_no_proxy_bypasses_it(
    mirror: Mirror, fetch: Fetch, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "")
        monkeypatch.delenv("no_proxy", raising=False)
        fetch([R50K], mirror=mirror.url)
        assert proxy.seen == [("GET", f"{mirror.url}{R50K.path}")]

        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        fetch([O200K], mirror=mirror.url)
        assert len(proxy.seen) == 1 and len(gets(mirror, O200K)) == 1


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A private CA (a corporate one, say) and a certificate it signed for 127.0.0.1."""
    folder = tmp_path_factory.mktemp("tls")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Test Corporate CA",
            "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
            "-out", "server.csr")  # fmt: skip
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem")  # fmt: skip
    return {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}


@pytest.fixture
def https_mirror(files_dir: Path, tls: dict[str, Path]) -> Iterator[Mirror]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls["cert"], tls["key"])
    with Mirror(files_dir, context=context) as served:
        yield served


def test_tls_needs_the_corporate_ca(https_mirror: Mirror, fetch: Fetch, tls: dict[str, Path]) -> None:
    message = fetch.error([R50K], mirror=https_mirror.url)
    assert "TLS failure" in message and "TIKTOKEN_ENCODINGS_OFFLINE_CA_BUNDLE" in message
    found = fetch([R50K], mirror=https_mirror.url, ca_bundle=str(tls["ca"]))
    assert sha256(found[R50K.url]) == R50K.sha256


def test_ssl_cert_file_is_honoured(
    https_mirror: Mirror, fetch: Fetch, tls: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls["ca"]))
    found = fetch([R50K], mirror=https_mirror.url)
    assert sha256(found[R50K.url]) == R50K.sha256


def os_trust_store(store: Path, used: list[str]) -> types.ModuleType:
    """A stand-in for truststore: its SSLContext trusts what the "OS store" (a file here) holds."""
    module = types.ModuleType("truststore")

    class SSLContext(ssl.SSLContext):
        def __init__(self, protocol: int) -> None:
            used.append("truststore")
            self.load_verify_locations(cafile=str(store))

    module.SSLContext = SSLContext  # type: ignore[attr-defined]
    return module


def as_on_a_python_org_mac(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """macOS, and a Python whose OpenSSL finds no CA file or folder (none is installed)."""
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setitem(sys.modules, "truststore", None)  # not installed: import fails
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-cert.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "no-certs"))


def test_the_os_trust_store_is_used_through_truststore_when_importable(
    https_mirror: Mirror, fetch: Fetch, tls: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 24, item 9: the corporate CA is in the OS store only; the standard library alone works too."""
    monkeypatch.setitem(sys.modules, "truststore", None)
    assert "CERTIFICATE_VERIFY_FAILED" in fetch.error([R50K], mirror=https_mirror.url)
    used: list[str] = []
    monkeypatch.setitem(sys.modules, "truststore", os_trust_store(tls["ca"], used))
    found = fetch([R50K], mirror=https_mirror.url)
    assert sha256(found[R50K.url]) == R50K.sha256 and used == ["truststore"]


def test_macos_without_a_ca_store_uses_the_system_bundle(
    https_mirror: Mirror, fetch: Fetch, tls: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    as_on_a_python_org_mac(monkeypatch, tmp_path)
    monkeypatch.setattr(trust, "MACOS_CA_FILE", str(tls["ca"]))  # /etc/ssl/cert.pem there
    found = fetch([R50K], mirror=https_mirror.url)
    assert sha256(found[R50K.url]) == R50K.sha256


def test_macos_verify_failure_names_install_certificates(
    https_mirror: Mirror, fetch: Fetch, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    as_on_a_python_org_mac(monkeypatch, tmp_path)
    monkeypatch.setattr(trust, "MACOS_CA_FILE", str(tmp_path / "no-system-bundle.pem"))
    message = fetch.error([R50K], mirror=https_mirror.url)
    assert "CERTIFICATE_VERIFY_FAILED" in message and '"Install Certificates.command"' in message
    assert "TIKTOKEN_ENCODINGS_OFFLINE_CA_BUNDLE" in message


def test_https_through_a_connect_proxy(
    https_mirror: Mirror, fetch: Fetch, tls: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "")
        found = fetch([R50K], mirror=https_mirror.url, ca_bundle=str(tls["ca"]))
        assert sha256(found[R50K.url]) == R50K.sha256
        assert proxy.seen == [("CONNECT", https_mirror.url.removeprefix("https://").rstrip("/"))]


def test_sdist_on_a_host_that_cannot_fetch_says_to_install_the_prebuilt_wheel(tmp_path: Path) -> None:
    run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", str(tmp_path), str(ROOT)], env=clean_env())
    sdist = next(tmp_path.glob("*.tar.gz"))
    env = build_env(None, TIKTOKEN_ENCODINGS_OFFLINE_RETRIES="0")
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--target", str(tmp_path / "t")]
    result = run(offline([*cmd, str(sdist)]), env=env, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken: " in output
    assert "install the prebuilt wheel from your private index instead" in output
    assert not (tmp_path / "t").exists() or not list((tmp_path / "t").iterdir())


def test_mirror_throttles_to_the_bandwidth_it_is_given(mirror: Mirror, fetch: Fetch) -> None:
    mirror.throttle(bandwidth=4e6, latency=0.05)
    started = time.monotonic()
    fetch([R50K], mirror=mirror.url)
    elapsed = time.monotonic() - started
    assert elapsed >= 0.05 + R50K.size / 4e6 * 0.95
    assert mirror.bytes_served == R50K.size
