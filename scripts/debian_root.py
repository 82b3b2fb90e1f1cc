"""Minimal Debian roots, each holding real Debian interpreters, and running commands inside them.

A root is ``debootstrap --variant=minbase`` of one suite plus the listed packages. Roots are cached
outside the clone (``TIKTOKEN_ENCODINGS_OFFLINE_MATRIX_CACHE``, default
``/var/cache/tiktoken-encodings-offline/roots``) and rebuilt when missing or stale: the stamp
records the suite, mirror, package list and the hash of the code that builds it, and a root older than
``MAX_AGE_DAYS`` is rebuilt too (sid moves). A root that cannot be built is an error, never a skip.

Every command runs under ``unshare -m`` (``-n`` too when offline), so the ``/proc`` and bind mounts
it needs end with it. Needs root, ``debootstrap``, ``unshare`` and ``chroot``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CACHE_ENV = "TIKTOKEN_ENCODINGS_OFFLINE_MATRIX_CACHE"
DEFAULT_CACHE = Path("/var/cache/tiktoken-encodings-offline/roots")
MIRROR = "http://deb.debian.org/debian"
MAX_AGE_DAYS = 30
BUILD_TIMEOUT = 1200  # seconds for one debootstrap
STAMP = "tiktoken-encodings-offline-root.json"
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ROOT_CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"


class RootError(Exception):
    pass


@dataclass(frozen=True)
class RootSpec:
    suite: str
    packages: tuple[str, ...]
    # A Debian source package of CPython (python3.13) built free-threaded into the root, and the
    # root's own folder name then (a root of its own: the build is slow and needs a compiler).
    free_threaded_source: str = ""

    @property
    def name(self) -> str:
        return f"{self.suite}-{self.free_threaded_source}t" if self.free_threaded_source else self.suite

    def stamp(self) -> dict[str, object]:
        code = inspect.getsource(ensure_root) + inspect.getsource(build_free_threaded) + FREE_THREADED_BUILD
        recipe = hashlib.sha256(code.encode()).hexdigest()
        stamp: dict[str, object] = {"suite": self.suite, "mirror": MIRROR, "packages": sorted(self.packages)}
        if self.free_threaded_source:
            stamp["free_threaded_source"] = self.free_threaded_source
        return stamp | {"recipe": recipe}


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def root_path(spec: RootSpec) -> Path:
    return cache_dir() / spec.name


def is_fresh(spec: RootSpec) -> bool:
    stamp = root_path(spec) / STAMP
    try:
        recorded = json.loads(stamp.read_text(encoding="utf-8"))
        age_days = (time.time() - stamp.stat().st_mtime) / 86400
    except (OSError, ValueError):
        return False
    return bool(recorded == spec.stamp() and age_days < MAX_AGE_DAYS)


def check_tools() -> None:
    if os.geteuid() != 0:
        raise RootError("the Debian roots need root (debootstrap, chroot and unshare -m); run as root")
    missing = [tool for tool in ("debootstrap", "unshare", "chroot", "mount") if shutil.which(tool) is None]
    if missing:
        raise RootError(f"{', '.join(missing)} not found. Fix: apt-get update && apt-get install -y debootstrap")


def ensure_root(spec: RootSpec, log: Path) -> Path:
    """The cached root for ``spec``, built first if missing or stale; RootError names the cause."""
    target = root_path(spec)
    if is_fresh(spec):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    for leftover in target.parent.glob(f".{spec.name}-*"):  # from an interrupted run
        shutil.rmtree(leftover, ignore_errors=True)
    building = target.with_name(f".{spec.name}-building-{os.getpid()}")
    cmd = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(spec.packages)}",
        spec.suite,
        str(building),
        MIRROR,
    ]
    with open(log, "w", encoding="utf-8") as out:
        try:
            result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            shutil.rmtree(building, ignore_errors=True)
            raise RootError(f"debootstrap {spec.suite} took over {BUILD_TIMEOUT} s; its log: {log}") from None
    if result.returncode != 0:
        inner_log = building / "debootstrap" / "debootstrap.log"
        kept = log.with_suffix(".debootstrap.log")
        if inner_log.is_file():
            shutil.copyfile(inner_log, kept)
        shutil.rmtree(building, ignore_errors=True)
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-4:]
        if kept.is_file():  # dpkg names the missing dependency there
            lines += [line for line in kept.read_text(errors="replace").splitlines(True) if "depends on" in line][-2:]
        raise RootError(
            f"cannot build the {spec.suite} root (debootstrap exit {result.returncode}) with "
            f"{', '.join(spec.packages)}. The end of its logs ({log}, {kept}):\n{''.join(lines)}"
            f"Fix: check that {MIRROR} is reachable and that {spec.suite} still ships these packages."
        )
    if spec.free_threaded_source:
        build_free_threaded(building, spec, log)
    (building / STAMP).write_text(json.dumps(spec.stamp(), indent=1) + "\n", encoding="utf-8")
    old = target.with_name(f".{spec.name}-old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    building.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


# Run in the new root, with network: Debian's source package of CPython, its upstream (orig)
# tarball configured free-threaded, built and installed under /usr/local (python3.Xt, pip with it).
# Nothing the interpreter does not need: no PGO, no LTO, no test modules; the sources are removed.
FREE_THREADED_BUILD = """
echo "deb-src $MIRROR $SUITE main" > /etc/apt/sources.list.d/deb-src.list
# debootstrap does not check a Release file's Valid-Until; a mirror's copy of sid may be past it
apt-get -q -o Acquire::Check-Valid-Until=false update
rm -rf /build && mkdir /build && cd /build
apt-get source --download-only -q "$SOURCE"
tar xf "$(ls "$SOURCE"_*.orig.tar.* | grep -v '[.]asc$')"
cd Python-*/
./configure -q --prefix=/usr/local --disable-gil --with-ensurepip=install --disable-test-modules
make -s -j"$JOBS"
make -s install
cd / && rm -rf /build /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
"""
FREE_THREADED_JOBS = 2  # CI's machine has two cores
FREE_THREADED_TIMEOUT = 3600  # seconds for the download and the build, under load


def build_free_threaded(root: Path, spec: RootSpec, log: Path) -> None:
    """Build ``spec.free_threaded_source`` free-threaded into the fresh root; RootError names the cause."""
    prepare_network(root)
    source = spec.free_threaded_source
    env = {"MIRROR": MIRROR, "SUITE": spec.suite, "SOURCE": source, "JOBS": str(FREE_THREADED_JOBS)}
    started = time.monotonic()
    result = run_in_root(root, ["sh", "-exc", FREE_THREADED_BUILD], network=True, env=env,
                         timeout=FREE_THREADED_TIMEOUT)  # fmt: skip
    took = time.monotonic() - started
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"{result.stdout}\n{result.stderr}\n[exit {result.returncode} after {took:.0f} s]\n")
    if result.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        lines = result.stderr.strip().splitlines()[-6:]
        raise RootError(
            f"cannot build free-threaded {spec.free_threaded_source} from {spec.suite}'s source package (exit "
            f"{result.returncode}); the end of its log ({log}):\n" + "\n".join(lines) + "\n"
            f"Fix: check that {MIRROR} is reachable and that {spec.suite} still has the source package "
            f"{spec.free_threaded_source}."
        )


def host_ca_bundle() -> Path:
    for name in ("PIP_CERT", "SSL_CERT_FILE"):
        if os.environ.get(name) and Path(os.environ[name]).is_file():
            return Path(os.environ[name])
    return Path("/etc/ssl/certs/ca-certificates.crt")


def prepare_network(root: Path) -> None:
    """pip in the root trusts only the root's CA bundle and resolver: give it the host's."""
    bundle = root / ROOT_CA_BUNDLE
    bundle.parent.mkdir(parents=True, exist_ok=True)
    bundle.unlink(missing_ok=True)
    shutil.copyfile(host_ca_bundle(), bundle)
    resolv = root / "etc" / "resolv.conf"
    resolv.unlink(missing_ok=True)  # may be a dangling symlink in a fresh root
    shutil.copyfile("/etc/resolv.conf", resolv)


def root_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {
        "PATH": ROOT_PATH,
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "PIP_CERT": "/" + ROOT_CA_BUNDLE,
        "SSL_CERT_FILE": "/" + ROOT_CA_BUNDLE,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "PIP_DEFAULT_TIMEOUT": "60",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update({name: value for name, value in os.environ.items() if name.lower() in ("http_proxy", "https_proxy")})
    env.update(extra)
    return env


# Mounts made inside the new mount namespace only: they end with the command.
_ENTER = """set -e
R=$1; RO=$2; shift 2
if [ "$RO" = ro ]; then mount --bind "$R" "$R"; fi
mount -t proc proc "$R/proc"
mount --bind /dev "$R/dev"
mount -t tmpfs tmpfs "$R/tmp"
if [ "$RO" = ro ]; then mount -o remount,bind,ro "$R"; fi
exec chroot "$R" "$@"
"""


def run_in_root(
    root: Path,
    argv: Sequence[str],
    *,
    network: bool,
    env: Mapping[str, str] | None = None,
    read_only: bool = False,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    """``argv`` inside ``root``: its own mount namespace, no network unless asked, a fresh /tmp."""
    namespaces = ["unshare", "--mount", "--propagation", "private"] + ([] if network else ["--net"])
    env_args = ["/usr/bin/env", "-i", *(f"{k}={v}" for k, v in root_env(env or {}).items())]
    cmd = [*namespaces, "sh", "-c", _ENTER, "enter", str(root), "ro" if read_only else "rw", *env_args, *argv]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        output = (error.stdout or b"").decode("utf-8", "replace") if isinstance(error.stdout, bytes) else ""
        return subprocess.CompletedProcess(cmd, 124, output, f"timed out after {timeout:.0f} s")


def main(argv: Sequence[str]) -> int:
    """Build one root by hand: ``debian_root.py SUITE PACKAGE...``."""
    if len(argv) < 2:
        print("usage: debian_root.py SUITE PACKAGE...", file=sys.stderr)
        return 2
    spec = RootSpec(argv[0], tuple(argv[1:]))
    try:
        check_tools()
        cache_dir().mkdir(parents=True, exist_ok=True)
        print(ensure_root(spec, cache_dir() / f"{spec.suite}.log"))
    except RootError as error:
        print(f"debian_root: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
