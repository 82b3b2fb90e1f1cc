"""PyInstaller run-time hook: a frozen app reads no .pth file, so install the start-up hook here."""

import _tiktoken_encodings_offline_startup

_tiktoken_encodings_offline_startup.install()
