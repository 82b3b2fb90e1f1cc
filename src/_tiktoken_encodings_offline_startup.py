"""Start-up hook of tiktoken-encodings-offline: activate the package when tiktoken is imported.

Python starts it in one of two ways:

- Python up to 3.14: the one line of ``tiktoken_encodings_offline.pth`` imports no module and reads
  no switch. It puts a trigger first in ``sys.meta_path``: a lambda that answers every import with
  None after one set look-up, except ``tiktoken`` and ``openai_harmony``: for those it imports this
  module and calls ``take_over()``. If tiktoken is imported already (site read the file late), the
  line calls the trigger at once.
- Python 3.15 on: the ``tiktoken_encodings_offline.start`` file (PEP 829) calls ``install()`` here,
  and Python then skips the ``.pth`` import line.

Either way this module reads ``TIKTOKEN_ENCODINGS_OFFLINE_DISABLE`` then: switched on, it removes
every trigger and nothing activates. Otherwise it puts its finder (``TiktokenEncodingsOfflineFinder``)
in ``sys.meta_path`` once, in place of the triggers. It answers every import with None after one set
look-up, except the first import of ``tiktoken`` and of ``openai_harmony``: it lets that module load
exactly as it would without the finder, then calls ``tiktoken_encodings_offline.activate()`` (the
same call the ``tiktoken_ext`` plugin makes), and leaves ``sys.meta_path`` once both are seen.

This module must not import ``tiktoken_encodings_offline`` before that (importing the package
activates it), so it repeats the name of the switch that turns everything off.
"""

# No "from __future__ import annotations": that statement imports __future__, which plain
# start-up does not; the annotations that need it are strings instead.
import os
import sys

TYPE_CHECKING = False  # typing is not imported at start-up; this module must not import it either
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

DISABLE_ENV = "TIKTOKEN_ENCODINGS_OFFLINE_DISABLE"  # tiktoken_encodings_offline.DISABLE_ENV
WATCHED = ("tiktoken", "openai_harmony")  # also in the .pth line
MODULE = "_tiktoken_encodings_offline_startup"  # this module, as the .pth line names it

_failed = False  # activation failed once: said once, not tried again


def install() -> None:
    """Put the finder first in ``sys.meta_path`` in place of the .pth line's triggers, unless switched off."""
    finder = None if _disabled() else _the_finder()
    _replace_triggers(None)
    if finder is not None and not _listed(finder):
        sys.meta_path.insert(0, finder)


def take_over(
    fullname: str, path: "Sequence[str] | None" = None, target: "ModuleType | None" = None
) -> "ModuleSpec | None":
    """Called by the .pth line's trigger at an import of a watched name: this module's finder answers.

    The line also calls it at once when tiktoken is imported already (the spec then goes unused).
    """
    finder = None if _disabled() else _the_finder()
    _replace_triggers(finder)
    if finder is None:
        # The trigger that called is gone from the list Python is going down for this import, so
        # Python would skip the entry after it: the others are asked here instead.
        return _spec_from_the_others(fullname)
    return finder.find_spec(fullname, path, target)


def _is_trigger(entry: object) -> bool:
    # The .pth line's trigger is a lambda, so it has no class name to tell it by; it is the callable
    # whose code holds this module's name among its constants. Each read of the .pth adds one, and
    # site reads a venv's site-packages twice (site.venv() and site.main() both add it).
    consts = getattr(getattr(entry, "__code__", None), "co_consts", None)
    return isinstance(consts, tuple) and MODULE in consts


def _replace_triggers(finder: "TiktokenEncodingsOfflineFinder | None") -> None:
    """The first trigger's place goes to ``finder`` (if not listed yet); every other trigger leaves."""
    places = [i for i, entry in enumerate(sys.meta_path) if _is_trigger(entry)]
    if finder is not None and not _listed(finder):
        # In the trigger's place, not removed: Python goes on down this very list for the import
        # under way, and the order other import hooks set stays as it was.
        if places:
            sys.meta_path[places.pop(0)] = finder
        else:
            sys.meta_path.insert(0, finder)
    for i in reversed(places):
        del sys.meta_path[i]


def _the_finder() -> "TiktokenEncodingsOfflineFinder | None":
    """The finder in sys.meta_path, or a new one for the names not imported yet (None if none)."""
    for entry in sys.meta_path:
        if isinstance(entry, TiktokenEncodingsOfflineFinder):
            return entry
    if any(name in sys.modules for name in WATCHED):
        _activate()  # installed late (by hand, or by a tool): what is imported already, now
    pending = {name for name in WATCHED if name not in sys.modules}
    return TiktokenEncodingsOfflineFinder(pending) if pending else None


def _listed(finder: "TiktokenEncodingsOfflineFinder") -> bool:
    return any(entry is finder for entry in sys.meta_path)


def _disabled() -> bool:
    # The package's rule (tiktoken_encodings_offline._env_flag): unset, "", 0, false, no, off are off.
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def _spec_from_the_others(fullname: str) -> "ModuleSpec | None":
    """What the finders in sys.meta_path find for ``fullname`` (an error they raise, it raises)."""
    from importlib.util import find_spec

    return find_spec(fullname)


def _activate() -> None:
    global _failed
    if _failed:  # the same damage again: one notice per process is enough
        return
    try:
        import tiktoken_encodings_offline

        tiktoken_encodings_offline.activate()
    except Exception as error:
        _failed = True
        try:  # noqa: SIM105 - contextlib is not imported at start-up
            sys.stderr.write(
                "tiktoken-encodings-offline: not active, tiktoken works as without it "
                f"({type(error).__name__}: {error})\n"
            )
        except Exception:  # noqa: S110 - stderr itself may be gone; never raise from here
            pass


class TiktokenEncodingsOfflineFinder:
    """A meta-path finder that finds nothing itself: it only notices the first import of a name."""

    def __init__(self, names: "set[str]") -> None:
        self._pending = names
        self._looking_up: set[str] = set()

    def find_spec(
        self, fullname: str, path: "Sequence[str] | None" = None, target: "ModuleType | None" = None
    ) -> "ModuleSpec | None":
        if fullname not in self._pending or fullname in self._looking_up:
            return None
        # The look-up below asks every finder again, this one included: it must answer None then.
        # The name stays watched until its module has run: importlib.util.find_spec("tiktoken"),
        # a check many libraries make before importing, runs no module and must not use it up.
        self._looking_up.add(fullname)
        try:
            spec = _spec_from_the_others(fullname)
        finally:
            self._looking_up.discard(fullname)
        if spec is None or not hasattr(spec.loader, "exec_module"):
            return None  # not installed, or a loader this cannot follow: as if this finder were not here
        spec.loader = ActivateAfterLoading(spec.loader, self)  # type: ignore[assignment]
        return spec

    def loaded(self, name: str) -> None:
        self._pending.discard(name)

    def leave_if_done(self) -> None:
        if not self._pending:
            try:  # noqa: SIM105 - contextlib is not imported at start-up
                sys.meta_path.remove(self)
            except ValueError:
                pass


class ActivateAfterLoading:
    """The module's own loader, and ``activate()`` once the module has run."""

    def __init__(self, loader: object, finder: "TiktokenEncodingsOfflineFinder") -> None:
        self._loader = loader
        self._finder = finder

    def __getattr__(self, name: str) -> object:
        return getattr(self._loader, name)

    def create_module(self, spec: "ModuleSpec") -> "ModuleType | None":
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: "ModuleType") -> None:
        # The module runs with its own loader in place, as if this class were not here.
        module.__loader__ = self._loader  # type: ignore[assignment]
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader  # type: ignore[assignment]
        self._loader.exec_module(module)  # type: ignore[attr-defined]
        self._finder.loaded(module.__name__)
        _activate()
        self._finder.leave_if_done()
