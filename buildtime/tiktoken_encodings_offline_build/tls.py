"""The build's TLS trust: the OS store when ``truststore`` is there, else the standard library's."""

from __future__ import annotations

import ssl
import sys
from pathlib import Path

MACOS_CA_FILE = "/etc/ssl/cert.pem"  # the system's CA bundle, for a python.org Python that has none


def default_context() -> ssl.SSLContext:
    """The OS trust store through ``truststore`` when it is importable (as pip does; never required).

    Else the standard library's default context; on macOS, a python.org Python has no CA store of
    its own until "Install Certificates.command" runs, so the system's bundle stands in for it.
    """
    try:
        import truststore  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        pass
    else:
        return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # type: ignore[no-any-return]
    context = ssl.create_default_context()
    no_store = ssl.get_default_verify_paths().cafile is None and not context.cert_store_stats()["x509_ca"]
    if sys.platform == "darwin" and no_store and Path(MACOS_CA_FILE).is_file():
        context.load_verify_locations(cafile=MACOS_CA_FILE)
    return context
