"""PyInstaller run-time hook: a frozen app reads no .pth file, so import the package before the app runs.

The import activates it for the whole process (direct ``tiktoken.load`` calls included), whether or
not tiktoken-encodings-offline-autostart was installed where the app was built.
"""

import tiktoken_encodings_offline  # noqa: F401 - importing it activates it
