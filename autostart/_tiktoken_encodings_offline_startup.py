"""Start-up hook of tiktoken-encodings-offline: activate the package when tiktoken reads its files.

The one line of ``tiktoken_encodings_offline_autostart.pth`` (the distribution
tiktoken-encodings-offline-autostart, the base's ``[autostart]`` extra) imports this module at
start-up. It puts one finder first in ``sys.meta_path`` and does nothing else: it reads no file and
no environment variable, and imports no module that start-up has not imported already (not the
base package either, which may have been uninstalled while this was left).

The finder finds nothing itself. It answers None to every import after one set look-up, except the
first import of ``tiktoken.load`` (tiktoken reads every file through it: ``get_encoding``, the
encoding constructors, ``load_tiktoken_bpe``) and of ``openai_harmony``. For those it reads
``TIKTOKEN_ENCODINGS_OFFLINE_DISABLE`` (switched on: it leaves, nothing activates), asks the finders
after it for the module, lets the module load exactly as they found it, then calls
``tiktoken_encodings_offline.activate()`` (the same call the ``tiktoken_ext`` plugin makes). It
leaves ``sys.meta_path`` once both names are seen. It never raises: a failed activation is one
line on stderr, once per process, and tiktoken works as without the package.

This module must not import ``tiktoken_encodings_offline`` before that (importing the package
activates it), so it repeats the name of the switch that turns everything off.
"""

# No "from __future__ import annotations": that statement imports __future__, which plain
# start-up does not; the annotations that need it are strings instead.
import os
import sys
from _thread import allocate_lock  # built in, and imported by every start-up already

TYPE_CHECKING = False  # typing is not imported at start-up; this module must not import it either
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

DISABLE_ENV = "TIKTOKEN_ENCODINGS_OFFLINE_DISABLE"  # tiktoken_encodings_offline.DISABLE_ENV
# tiktoken.load and not tiktoken: activation imports tiktoken.load, which it must not do while
# tiktoken runs (another thread importing tiktoken.load then waits for tiktoken: a deadlock), nor
# within a lazy import of tiktoken (importlib.util.LazyLoader: a second tiktoken.load).
WATCHED = ("tiktoken.load", "openai_harmony")

# Python 3.9 to 3.11 still ask a meta-path finder that has find_module only; 3.12 skips it.
ASKS_FIND_MODULE = sys.version_info < (3, 12)
BASE_GONE = (
    "tiktoken-encodings-offline-autostart: nothing to activate: tiktoken-encodings-offline is not "
    "installed, tiktoken works as without it; fix: pip install tiktoken-encodings-offline, or "
    "pip uninstall tiktoken-encodings-offline-autostart"
)

_lock = allocate_lock()  # threads importing tiktoken and openai_harmony at once: one notice
_failed = False  # activation failed once: said once, not tried again (the tiktoken_ext plugin reads it)


def install() -> None:
    """Put the finder first in ``sys.meta_path``, once; activate at once what is imported already.

    Run by this module's import (Python imports a module once), before any thread of the program;
    late when ``site.addsitedir`` reads the .pth by hand after ``tiktoken.load`` is imported.
    """
    if any(isinstance(entry, TiktokenEncodingsOfflineFinder) for entry in sys.meta_path):
        return
    pending = {name for name in WATCHED if name not in sys.modules}
    if pending:
        sys.meta_path.insert(0, TiktokenEncodingsOfflineFinder(pending))
    if len(pending) < len(WATCHED) and not _disabled():
        _activate()  # read late (site.addsitedir by hand, a tool): what is imported already, now


def _disabled() -> bool:
    # The package's rule (tiktoken_encodings_offline._env_flag): unset, "", 0, false, no, off are off.
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def _activate() -> None:
    global _failed
    if _failed:  # the same damage again: one notice per process is enough
        return
    try:
        import tiktoken_encodings_offline

        tiktoken_encodings_offline.activate()
    except Exception as error:
        with _lock:
            said, _failed = _failed, True
        if said:  # another thread failed at the same moment and said it
            return
        if isinstance(error, ModuleNotFoundError) and error.name == "tiktoken_encodings_offline":
            message = BASE_GONE  # pip uninstall of the base leaves this distribution behind
        else:
            message = (
                "tiktoken-encodings-offline: not active, tiktoken works as without it "
                f"({type(error).__name__}: {error})"
            )
        try:  # noqa: SIM105 - contextlib is not imported at start-up
            sys.stderr.write(message + "\n")
        except Exception:  # noqa: S110 - stderr itself may be gone; never raise from here
            pass


class TiktokenEncodingsOfflineFinder:
    """A meta-path finder that finds nothing itself: it only notices the first import of a name.

    For the time a watched module loads, it is also that module's loader: it runs the loader the
    finders after it found, then activates. (One class, not a loader class too: making a class at
    every start-up costs about 0.12 M instructions.)
    """

    def __init__(self, names: "set[str]") -> None:
        self._pending = names
        # The names this finder is asking the finders after it about: one of them may ask it again.
        # Python holds its import lock over every find_spec call, so only this thread is asking.
        self._asking: set[str] = set()
        self._loaders: dict[str, object] = {}  # watched name -> the loader the finders after this one found

    def find_spec(
        self, fullname: str, path: "Sequence[str] | None" = None, target: "ModuleType | None" = None
    ) -> "ModuleSpec | None":
        if not self._asking and sys.meta_path[0] is not self:
            self._first_again()
        if fullname not in self._pending or fullname in self._asking:
            return None
        if _disabled():  # read at the first watched import: nothing activates in this process
            self._pending.clear()
        self._asking.add(fullname)
        try:
            spec = self._spec_from_the_finders_after_this_one(fullname, path, target)
        finally:
            self._asking.discard(fullname)
        if not self._pending:
            # Leave now. Python goes down this very list for the import under way and would skip the
            # entry after this one: the spec they found is the answer.
            self.leave()
            return spec
        if spec is None or not hasattr(spec.loader, "exec_module"):
            return None  # not installed, or a loader this cannot follow: as if this finder were not here
        self._loaders[fullname] = spec.loader
        spec.loader = self  # type: ignore[assignment]
        return spec

    def _first_again(self) -> None:
        """Back in front of a hook put before this finder since start-up (typeguard's, pytest's).

        Such a hook resolves its names through PathFinder itself and never asks the finders after it,
        so this finder would not see ``tiktoken.load``; in front, it asks that hook as it asks every
        finder after it. Python goes down this very list for the import under way: removing this entry
        shifts the later ones back by one and inserting it first shifts them on by one, so the entry
        Python asks next is the one it would have asked.
        """
        try:
            sys.meta_path.remove(self)
        except ValueError:  # removed by another thread meanwhile
            return
        sys.meta_path.insert(0, self)

    def _spec_from_the_finders_after_this_one(
        self, fullname: str, path: "Sequence[str] | None", target: "ModuleType | None"
    ) -> "ModuleSpec | None":
        """What the import would find without this finder: the first spec of the finders after it."""
        finders = list(sys.meta_path)
        places = [i for i, entry in enumerate(finders) if entry is self]
        # Called by a hook in front that asks every finder itself: those after this one, if it is listed.
        for finder in finders[places[0] + 1 :] if places else finders:
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is not None:
                spec = find_spec(fullname, path, target)
            elif ASKS_FIND_MODULE and hasattr(finder, "find_module"):  # a finder of before Python 3.4
                spec = _spec_from_find_module(finder, fullname, path)
            else:
                continue  # as Python does
            if spec is not None:
                return spec  # type: ignore[no-any-return]
        return None

    def create_module(self, spec: "ModuleSpec") -> "ModuleType | None":
        create = getattr(self._loaders[spec.name], "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: "ModuleType") -> None:
        # The module runs with its own loader in place, as if this finder had not been its loader.
        loader = self._loaders[module.__name__]
        module.__loader__ = loader  # type: ignore[assignment]
        if module.__spec__ is not None:
            module.__spec__.loader = loader  # type: ignore[assignment]
        loader.exec_module(module)  # type: ignore[attr-defined]
        if module.__name__ == "tiktoken.load":  # Python binds it on tiktoken just after; activation reads it there
            setattr(sys.modules["tiktoken"], "load", module)  # noqa: B010 - the name is the module's
        _activate()
        self.loaded(module.__name__)

    def loaded(self, name: str) -> None:
        self._pending.discard(name)
        if not self._pending:
            self.leave()

    def leave(self) -> None:
        try:  # noqa: SIM105 - contextlib is not imported at start-up
            sys.meta_path.remove(self)
        except ValueError:  # gone already: another thread saw the last name too
            pass


def _spec_from_find_module(finder: object, fullname: str, path: "Sequence[str] | None") -> "ModuleSpec | None":
    """What Python 3.9 to 3.11 make of a finder with find_module only (importlib's _find_spec_legacy)."""
    loader = finder.find_module(fullname, path)  # type: ignore[attr-defined]
    if loader is None:
        return None
    from importlib.util import spec_from_loader

    return spec_from_loader(fullname, loader)


install()
