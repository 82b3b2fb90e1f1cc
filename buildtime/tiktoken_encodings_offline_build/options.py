"""The build's options: read from the environment and the hook's pyproject.toml table, checked.

Each option has a key in the hook's table; its environment variable is ``ENV_PREFIX`` plus the
key in upper case with "_" for "-", and wins over the table. A bad value fails at once, naming
the variable (or key), the value and what is accepted.
"""

from __future__ import annotations

import math
import os
import sys
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

from .fetch import FetchSettings
from .transport import redact

ENV_PREFIX = "TIKTOKEN_ENCODINGS_OFFLINE_"
OPTION_KEYS = (
    "source-dir",
    "encodings",
    "cache-dir",
    "mirror",
    "no-network",
    "ca-bundle",
    "connect-timeout",
    "read-timeout",
    "total-timeout",
    "retries",
    "workers",
)
# Options that are gone, and what to do instead: a build that still sets one fails saying so.
REMOVED = {
    "startup-hook": (
        "the wheel never has a start-up file now; the start-up line is the companion distribution "
        'tiktoken-encodings-offline-autostart (pip install "tiktoken-encodings-offline[autostart]"). '
        "Fix: remove the setting"
    ),
}
HATCH_KEYS = {"path", "dependencies", "require-runtime-dependencies"}
SECRET_ENV = ENV_PREFIX + "MIRROR_TOKEN"  # from the environment only, never from a file


class OptionError(Exception):
    pass


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper().replace("-", "_")


def read_options(table: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """The options that are set, as key -> (value, where): the environment wins over the table."""
    for key, instead in REMOVED.items():
        if env_name(key) in environ or key in table:
            where = env_name(key) if env_name(key) in environ else f"pyproject.toml key {key!r}"
            raise OptionError(f"{where} is no longer an option: {instead}")
    unknown = sorted(set(table) - set(OPTION_KEYS) - HATCH_KEYS)
    if unknown:
        raise OptionError(f"unknown option(s) {unknown} in the build hook's table; valid: {list(OPTION_KEYS)}")
    options: dict[str, tuple[str, str]] = {}
    for key in OPTION_KEYS:
        if env_name(key) in environ:
            options[key] = (environ[env_name(key)].strip(), env_name(key))
        elif key in table:
            value = table[key]
            if isinstance(value, bool):
                value = "1" if value else "0"
            elif isinstance(value, (list, tuple)):
                value = ",".join(map(str, value))
            options[key] = (str(value).strip(), f"pyproject.toml key {key!r}")
    return options


def _flag(options: Mapping[str, tuple[str, str]], key: str) -> bool:
    value, where = options.get(key, ("", ""))
    if value.lower() in ("", "0", "false", "no", "off"):
        return False
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    raise OptionError(f"{where}={value!r}: expected 1/0, true/false, yes/no or on/off")


def _seconds(options: Mapping[str, tuple[str, str]], key: str, default: float) -> float:
    if key not in options:
        return default
    value, where = options[key]
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise OptionError(f"{where}={value!r}: expected a number of seconds greater than 0 (such as {default:g})")
    return number


def _count(options: Mapping[str, tuple[str, str]], key: str, default: int, least: int) -> int:
    if key not in options:
        return default
    value, where = options[key]
    if not value.strip().isdigit() or int(value) < least:
        raise OptionError(f"{where}={value!r}: expected a whole number of at least {least} (such as {default})")
    return int(value)


def _directory(options: Mapping[str, tuple[str, str]], key: str, log: Callable[[str], None]) -> Path | None:
    value, where = options.get(key, ("", ""))
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = path.resolve()
        log(
            f"{where} is relative; resolved against {Path.cwd()} to {path} (the build's working "
            f"directory: frontends use the project or an unpacked sdist; pass an absolute path)"
        )
    return path


def check_mirror(value: str, where: str) -> str:
    """The mirror URL, if it parses as an http(s) base URL; the message never shows its secrets."""
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise OptionError(f"{where} must be an http:// or https:// base URL")
    try:
        port = parts.port
    except ValueError:
        port = -1
    garbled = port == -1 or bool(parts.fragment) or "@" in parts.path + parts.query or not parts.hostname
    if garbled:
        raise OptionError(
            f"{where} cannot be read as scheme://[user:password@]host[:port]/path[?query] (the value is "
            f"not shown: it may hold a password). Fix: a reserved character (/ ? # @ : %) in the user "
            f"name or password must be percent-encoded (%2F %3F %23 %40 %3A %25)"
        )
    return value


def default_cache_dir() -> Path:
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "tiktoken-encodings-offline"


def fetch_settings(
    options: Mapping[str, tuple[str, str]],
    environ: Mapping[str, str],
    log: Callable[[str], None],
    use_cache: bool = True,
) -> FetchSettings:
    source_dir = _directory(options, "source-dir", log)
    if source_dir is not None and not source_dir.is_dir():
        value, where = options["source-dir"]
        raise OptionError(
            f"{where}={value} is not a folder ({source_dir}). "
            f"Fix: pass the absolute path of a folder holding the encoding files."
        )
    cache_dir: Path | None = None
    if use_cache:
        cache_dir = _directory(options, "cache-dir", log) if "cache-dir" in options else _home_cache(log)
    mirror = options.get("mirror", ("", ""))
    return FetchSettings(
        source_dir=source_dir,
        cache_dir=cache_dir,  # None turns the cache off ("" in the option)
        mirror=check_mirror(*mirror) if mirror[0] else None,
        token=environ.get(SECRET_ENV) or None,
        ca_bundle=options.get("ca-bundle", ("", ""))[0] or None,
        network=not _flag(options, "no-network"),
        connect_timeout=_seconds(options, "connect-timeout", 15.0),
        read_timeout=_seconds(options, "read-timeout", 60.0),
        total_timeout=_seconds(options, "total-timeout", 900.0),
        retries=_count(options, "retries", 4, least=0),
        workers=_count(options, "workers", 6, least=1),
        log=log,
    )


def _home_cache(log: Callable[[str], None]) -> Path | None:
    try:
        return default_cache_dir()
    except (RuntimeError, KeyError) as error:  # no home folder at all
        log(f"build cache skipped: no home folder to put it in ({error})")
        return None


def network_advice(settings: FetchSettings, environ: Mapping[str, str]) -> str:
    """What to check after a failed download: the settings that are set, else the plain route.

    A proxy may come from the system too (Windows' Internet Options, macOS' network settings):
    urllib's ProxyHandler uses what ``urllib.request.getproxies()`` finds there.
    """
    proxies = [name for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy") if environ.get(name)]
    system = urllib.request.getproxies()
    system_proxy = system.get("https") or system.get("http")
    checks = []
    if settings.mirror:
        checks.append("the mirror address (TIKTOKEN_ENCODINGS_OFFLINE_MIRROR)")
    if proxies:
        checks.append(f"the proxy ({proxies[0]})")
    elif system_proxy:
        checks.append(f"the proxy of the system's settings ({redact(system_proxy)}; NO_PROXY bypasses it)")
    if settings.ca_bundle or environ.get("SSL_CERT_FILE"):
        checks.append("the CA bundle (TIKTOKEN_ENCODINGS_OFFLINE_CA_BUNDLE / SSL_CERT_FILE)")
    if checks:
        return "check " + ", ".join(checks) + " against the errors above"
    return (
        "this host must reach https://openaipublic.blob.core.windows.net/ directly; if it cannot, set "
        "TIKTOKEN_ENCODINGS_OFFLINE_MIRROR, or HTTPS_PROXY for a proxy"
    )
