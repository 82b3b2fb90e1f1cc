"""tiktoken plugin of tiktoken-encodings-offline: it activates the package and adds no encoding.

tiktoken imports every module of its ``tiktoken_ext`` namespace before it builds its first
encoding, so installing the wheel is enough. An exception here would break every tiktoken
encoding, so any failure degrades to plain tiktoken plus one line on stderr (not a warning,
which ``-W error`` would turn into an exception). Keep this file parseable by Python 3.9.
"""

ENCODING_CONSTRUCTORS = {}  # type: ignore[var-annotated]


def _activate() -> None:
    try:
        import tiktoken_encodings_offline

        tiktoken_encodings_offline.activate()
    except Exception as error:
        try:
            import sys

            startup = sys.modules.get("_tiktoken_encodings_offline_startup")
            if getattr(startup, "_failed", False):  # the start-up hook has said this already
                return
            sys.stderr.write(
                "tiktoken-encodings-offline: not active, tiktoken works as without it "
                f"({type(error).__name__}: {error})\n"
            )
        except Exception:  # noqa: S110 - stderr itself may be gone; never raise from here
            pass


_activate()
