"""Which of the two distributions are installed: the package, and its start-up line (the companion)."""

from __future__ import annotations

BASE = "tiktoken-encodings-offline"
COMPANION = "tiktoken-encodings-offline-autostart"  # pip install "tiktoken-encodings-offline[autostart]"


def distributions(problems: list[str]) -> dict[str, str | None]:
    """The version of the package's distribution and of its start-up companion (None: not installed).
    The companion requires the package at exactly its version (a local label such as +coh aside)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in (BASE, COMPANION):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    base, companion = found[BASE], found[COMPANION]
    if companion is not None and (base or "").split("+")[0] != companion:
        problems.append(
            f"{COMPANION} {companion} requires {BASE} {companion}, but "
            f"{f'{base} is installed' if base else 'it is not installed'}; fix: pip install "
            f'"{BASE}[autostart]=={base.split("+")[0] if base else companion}"'
        )
    return found


def startup_hook_kind(started: bool) -> tuple[str, str]:
    """Whether the start-up line ran in this process (``started``: its module was imported before
    anything else could), and what then needs an import: (kind, line)."""
    companion = f'{COMPANION} (pip install "{BASE}[autostart]")'
    if started:
        kind, what = "active", "active: the first import of tiktoken.load or openai_harmony activates, no import needed"
    elif distributions([])[COMPANION] is not None:
        import sys

        why = (
            "Python started without site (-S, or a ._pth file without `import site`: Windows' embeddable zip)"
            if sys.flags.no_site
            else "it is not in a site-packages folder of this interpreter"
        )
        kind, what = (
            "not read",
            f"{companion} is installed but its line did not run: {why}; get_encoding and "
            "`import tiktoken_encodings_offline` activate",
        )
    else:
        kind, what = (
            "none",
            (
                f"none, {companion} is not installed: get_encoding and `import tiktoken_encodings_offline` activate; "
                "a direct tiktoken.load call and openai_harmony need that import first"
            ),
        )
    return kind, f"start-up line: {what}"
