"""PyInstaller: tiktoken imports every module of ``tiktoken_ext`` by listing it at run time."""

from PyInstaller.utils.hooks import collect_submodules  # type: ignore[import-untyped,import-not-found,unused-ignore]

hiddenimports = [*collect_submodules("tiktoken_ext"), "tiktoken_encodings_offline"]
