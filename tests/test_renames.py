"""Issue 28, item 5: every rename of the build is retried while Windows refuses it (simulated).

Windows refuses a rename (WinError 5 "Access is denied", WinError 32 "being used by another
process"; both a PermissionError) while another process has the file, or a file in the folder,
open: an antivirus scan of the new wheel, an indexer in an editable install's folder. Here
os.replace is made to refuse as Windows would; what is left on disk and the message are checked.
"""

from __future__ import annotations

import importlib.util
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hatchling.bridge.app import Application

from helpers import ROOT
from tiktoken_encodings_offline_build import files


def _hatch_build() -> Any:
    """hatch_build.py, loaded from the checkout as hatchling loads it (it is no importable module)."""
    spec = importlib.util.spec_from_file_location("hatch_build", ROOT / "hatch_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hatch_build = _hatch_build()


class Refusing:
    """os.replace refusing ``times`` renames whose source or destination is ``name``, as Windows does."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str, times: int) -> None:
        self.name, self.times, self.refused = name, times, 0
        for function in ("replace", "rename"):  # Path.replace and Path.rename alike
            monkeypatch.setattr(os, function, self.refusing(getattr(os, function)))

    def refusing(self, real: Any) -> Any:
        def rename(src: Any, dst: Any) -> None:
            if self.name in (Path(src).name, Path(dst).name) and self.refused < self.times:
                self.refused += 1
                raise PermissionError(13, "The process cannot access the file because it is being used by "
                                      "another process", str(src), 32, str(dst))  # fmt: skip
            real(src, dst)

        return rename


def folder(path: Path, text: str) -> Path:
    path.mkdir()
    (path / "vendored.tsv").write_text(text)
    return path


def test_a_rename_refused_a_few_times_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source, destination = tmp_path / "new", tmp_path / "final"
    source.write_text("new")
    refusing = Refusing(monkeypatch, "final", 3)
    files.rename(source, destination)
    assert refusing.refused == 3 and destination.read_text() == "new" and not source.exists()


def test_an_editable_installs_folder_in_use_is_retried_then_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = folder(tmp_path / "data", "old")
    new = folder(tmp_path / "staged", "new")
    refusing = Refusing(monkeypatch, "data", 3)  # the move aside, then the move into place
    hatch_build._replace_dir(new, target)
    assert refusing.refused == 3
    assert (target / "vendored.tsv").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_an_editable_installs_folder_that_cannot_be_replaced_is_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = folder(tmp_path / "data", "old")
    new = folder(tmp_path / "staged", "new")

    def refusing_the_new_folder(real: Any) -> Any:
        def rename(src: Any, dst: Any) -> None:
            if Path(src) == new:  # moving the old folder aside works; the new one is refused for good
                raise PermissionError(13, "Access is denied", str(src), 5, str(dst))
            real(src, dst)

        return rename

    for function in ("replace", "rename"):  # Path.replace and Path.rename alike
        monkeypatch.setattr(os, function, refusing_the_new_folder(getattr(os, function)))
    with pytest.raises(files.InUse) as caught:
        hatch_build._replace_dir(new, target)
    message = f"{caught.value.filename}: {caught.value.strerror}"  # what the build hook prints
    assert message.startswith(f"{target}: cannot replace it: Access is denied; another process has it open")
    assert "free space" not in message
    assert (target / "vendored.tsv").read_text() == "old"  # the previous files, back in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "staged"]  # nothing moved aside is left


def test_a_new_wheel_held_open_is_retried_then_finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("demo/module.py", "x = 1\n")
    refusing = Refusing(monkeypatch, wheel.name, 3)  # a scanner opens the new wheel for a moment
    hatch_build.add_folders_and_store_code(wheel)
    assert refusing.refused == 3
    with zipfile.ZipFile(wheel) as archive:
        assert archive.namelist() == ["demo/", "demo/module.py"]
    assert [p.name for p in tmp_path.iterdir()] == [wheel.name]


def test_a_new_wheel_held_open_for_good_fails_in_one_line_leaving_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("demo/module.py", "x = 1\n")
    refusing = Refusing(monkeypatch, wheel.name, 1000)
    hook = hatch_build.OfflineEncodingsBuildHook(str(ROOT), {}, None, None, str(tmp_path), "wheel", Application())  # type: ignore[arg-type]
    with pytest.raises(SystemExit) as exited:
        hook.finalize("standard", {}, str(wheel))
    assert exited.value.code == 1 and 2 <= refusing.refused <= 20  # retried for about a second
    out, err = capsys.readouterr()
    lines = (out + err).strip().splitlines()
    assert lines == [
        f"tiktoken-encodings-offline: cannot finish the wheel: {wheel}: cannot replace it: The process cannot "
        f"access the file because it is being used by another process; another process has it open (on Windows: "
        f"a parallel build, an antivirus scan), or this user may not replace it. Fix: build again once that "
        f"process is done with it, or check who owns the file"
    ]
    assert list(tmp_path.iterdir()) == []  # neither the wheel without folder entries nor the temporary copy
