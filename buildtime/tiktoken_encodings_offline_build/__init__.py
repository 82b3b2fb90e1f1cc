"""Build-time code of tiktoken-encodings-offline: never in the wheel, carried by the sdist.

``hatch_build.py`` and ``scripts/prefetch.py`` put the ``buildtime`` folder on ``sys.path`` and
import this package; it uses the standard library only (build isolation gives hatchling alone).

- ``manifest``: the manifest model and the record writer (the runtime has its own reader);
- ``options``: the build's options, from the environment and pyproject.toml, checked;
- ``fetch``: where each blob comes from (source folder, build cache, download) and its checks;
- ``download``: one file's transfer: retries, resume, size bound, deadline;
- ``transport``: the HTTP opener: proxies, TLS, redirect and credential policy, stoppable connects;
- ``cancel``: one fetch's ``Stop`` (Ctrl-C, SIGTERM, the deadline) and the reads that obey it;
- ``tls``: the trust store (truststore when importable; macOS' system bundle when Python has none);
- ``files``: exclusive writes, and the one rename of build time (retried while Windows refuses it).
"""
