"""Find or download each blob the build needs, and hand back only verified files.

Sources, first hit wins, every byte checked against the manifest's SHA-256 before use:
1. the local source folder, in any of three layouts (upstream tree, flat, tiktoken cache); a
   file there that fails its hash is an error at once;
2. the build cache (tiktoken's SHA-1 names; a corrupted file there is discarded); the cache is
   an optimisation only: when it cannot be used, the fetch says why in one line and goes on;
3. a download from the mirror, or else from the upstream URL, all under one total deadline.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .cancel import SLICE, Stop
from .download import DownloadError, Policy, download
from .files import abandoned, new_part, sha256_file
from .manifest import Blob
from .transport import Opener, mirror_url


@dataclass(frozen=True)
class FetchSettings:
    source_dir: Path | None = None
    cache_dir: Path | None = None  # None: no build cache
    mirror: str | None = None  # replaces the upstream host; may hold user:password@ and a query
    token: str | None = None  # bearer token for the mirror
    ca_bundle: str | None = None  # extra CA certificates, on top of the system's
    network: bool = True
    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    total_timeout: float = 900.0
    retries: int = 4
    backoff: float = 0.5
    workers: int = 6
    log: Callable[[str], None] = field(default=print, repr=False)


class FetchError(Exception):
    """A blob could not be had; the message stands alone.

    ``kind``: "damaged" (a source-folder file fails its hash; the message holds the fix),
    "offline" (not found and the network is off), "disk" (this host's disk refused the download:
    full, read-only) or "download" (a download failed).
    """

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def fetch_all(blobs: Sequence[Blob], settings: FetchSettings, workdir: Path) -> dict[str, Path]:
    """A verified local file for every blob, by URL. Downloads land in the cache, else in workdir.

    The caller adds its own "Fix:" advice to a FetchError: the build's and prefetch's differ.
    """
    found: dict[str, Path] = {}
    looked: dict[str, list[str]] = {blob.url: [] for blob in blobs}
    cache_dir, cache_probed = None, False  # made only when a file is not in the source folder
    targets: dict[str, Path] = {}  # where each download goes: the cache, else the work folder
    problems: list[str] = []
    for blob in blobs:
        path, cache_writable = None, False
        try:
            if settings.source_dir is not None:
                path = _from_source(blob, settings.source_dir, settings.log, looked[blob.url])
        except FetchError as error:
            problems.append(str(error))
            continue
        if path is None and not cache_probed:
            cache_dir, cache_probed = usable_cache(settings.cache_dir, settings.log), True
        if path is None and cache_dir is not None:
            path, cache_writable = _from_cache(blob, cache_dir, settings.log, looked[blob.url])
        if path is not None:
            found[blob.url] = path
        targets[blob.url] = cache_dir if cache_dir is not None and cache_writable else workdir
    if problems:
        raise FetchError("\n\n".join(problems), "damaged")
    missing = [blob for blob in blobs if blob.url not in found]
    if not missing:
        return found
    if not settings.network:
        raise FetchError(
            "network access is turned off (TIKTOKEN_ENCODINGS_OFFLINE_NO_NETWORK) and these files "
            "were found nowhere:\n" + "\n".join(_describe_missing(blob, looked[blob.url]) for blob in missing),
            "offline",
        )
    for blob in missing:
        targets[blob.url].mkdir(parents=True, exist_ok=True)
        _remove_stale_parts(targets[blob.url], blob)
    downloaded, failures = _download_all(missing, settings, targets)
    found.update(downloaded)
    if failures:
        lines = [_describe_missing(blob, looked[blob.url]) + f"\n  {error}" for blob, error in failures]
        kind = "disk" if all(error.local for _, error in failures) else "download"
        raise FetchError("could not get every encoding file:\n" + "\n".join(sorted(lines)), kind)
    return found


def _download_all(
    missing: list[Blob], settings: FetchSettings, targets: Mapping[str, Path]
) -> tuple[dict[str, Path], list[tuple[Blob, DownloadError]]]:
    """Download in parallel; Ctrl-C, SIGTERM (as KeyboardInterrupt) or the deadline stop every thread."""
    stop = Stop(settings.total_timeout)
    opener = Opener(
        settings.mirror, settings.token, settings.ca_bundle, settings.connect_timeout, settings.read_timeout, stop
    )
    policy = Policy(settings.retries, settings.backoff, _serialized(settings.log))
    found: dict[str, Path] = {}
    failures: list[tuple[Blob, DownloadError]] = []
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=settings.workers)
    try:
        with _terminate_as_interrupt():
            futures = {
                pool.submit(download, blob, _url(blob, opener), opener, stop, policy, targets[blob.url]): blob
                for blob in missing
            }
            pending = set(futures)
            while pending:  # in slices: Windows' Python <= 3.13 cannot interrupt a lock wait for Ctrl-C
                _, pending = concurrent.futures.wait(pending, timeout=min(SLICE, max(0.05, stop.remaining())))
                if stop.remaining() <= 0:
                    stop.stop("deadline")  # ends blocked reads; each thread reports its own file
        for future, blob in futures.items():
            try:
                found[blob.url] = future.result()
            except DownloadError as error:
                failures.append((blob, error))
    except BaseException:
        stop.stop("cancelled")  # every socket shut down, every backoff woken: the threads end now
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return found, failures


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the fetch as Ctrl-C does (cleanly), where Python would otherwise just die."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _url(blob: Blob, opener: Opener) -> str:
    return mirror_url(blob.path, opener.mirror) if opener.mirror else blob.url


def _serialized(log: Callable[[str], None]) -> Callable[[str], None]:
    """One line at a time from the download threads."""
    lock = threading.Lock()

    def serialized(message: str) -> None:
        with lock:
            log(message)

    return serialized


def _describe_missing(blob: Blob, looked: list[str]) -> str:
    places = "".join(f"\n    {place}" for place in looked) or "\n    (no local source or cache)"
    return f"- {blob.path} (sha256 {blob.sha256}); looked in:{places}"


def source_candidates(blob: Blob, source_dir: Path) -> list[Path]:
    """Where a blob may sit in a source folder: upstream tree, flat names, tiktoken cache names."""
    return [source_dir / blob.path, source_dir / blob.file_name, source_dir / blob.cache_name]


def check_source_file(blob: Blob, candidate: Path) -> None:
    """Raise FetchError unless ``candidate`` holds exactly the published bytes of ``blob``."""
    actual = sha256_file(candidate)
    if actual != blob.sha256:
        raise FetchError(
            f"{candidate} is not the published {blob.path}:\n"
            f"  expected SHA-256 {blob.sha256} ({blob.size} bytes)\n"
            f"  found    SHA-256 {actual} ({candidate.stat().st_size} bytes)\n"
            f"Fix: replace it with the original file from {blob.url}, or remove it so it is fetched.",
            "damaged",
        )


def _from_source(blob: Blob, source_dir: Path, log: Callable[[str], None], looked: list[str]) -> Path | None:
    for candidate in source_candidates(blob, source_dir):
        if not candidate.is_file():
            looked.append(f"{candidate} (not there)")
            continue
        check_source_file(blob, candidate)
        log(f"{blob.path}: {blob.size / 1e6:.1f} MB from source folder {candidate}")
        return candidate
    return None


def _from_cache(blob: Blob, cache_dir: Path, log: Callable[[str], None], looked: list[str]) -> tuple[Path | None, bool]:
    """The verified cached file, or None; and whether a download may be renamed into its place."""
    cached = cache_dir / blob.cache_name
    try:
        if not cached.exists():
            looked.append(f"{cached} (build cache: not there)")
            return None, True
        if not cached.is_file():
            raise IsADirectoryError(0, "not a regular file")
        if sha256_file(cached) == blob.sha256:
            log(f"{blob.path}: {blob.size / 1e6:.1f} MB from build cache {cached}")
            return cached, True
        cached.unlink(missing_ok=True)  # another build may have discarded it at the same moment
        log(f"{blob.path}: discarded corrupted cached file {cached}")
        looked.append(f"{cached} (corrupted, discarded)")
        return None, True
    except OSError as error:  # another user's file, say: download into the work folder instead
        log(f"{blob.path}: build cache file {cached} skipped ({error.strerror or error})")
        looked.append(f"{cached} (build cache: unusable)")
        return None, False


def usable_cache(cache_dir: Path | None, log: Callable[[str], None]) -> Path | None:
    """The build cache if a file can be created in it; else None, said once in one line."""
    if cache_dir is None:
        return None
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        probe, probe_path = new_part(cache_dir, ".write-test-", ".tmp")
        probe.close()
        probe_path.unlink()
    except OSError as error:
        log(
            f"build cache skipped: {cache_dir} cannot be written ({error.strerror or error}); "
            f"downloading into the build's own work folder"
        )
        return None
    return cache_dir


def _remove_stale_parts(folder: Path, blob: Blob) -> None:
    """Remove the ``.part`` files a killed run left for this blob; a running download's are locked."""
    for part in folder.glob(f"{blob.cache_name}.*.part"):
        with contextlib.suppress(OSError):  # gone already, or not ours to remove
            if abandoned(part):
                part.unlink()
