"""PyInstaller: the vendored files, the record, and the modules the package imports lazily."""

from PyInstaller.utils.hooks import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
    collect_data_files,
    collect_submodules,
)

datas = collect_data_files("tiktoken_encodings_offline")
hiddenimports = [
    *collect_submodules("tiktoken_encodings_offline", filter=lambda name: "._pyinstaller" not in name),
    "tiktoken_ext.tiktoken_encodings_offline",
]
