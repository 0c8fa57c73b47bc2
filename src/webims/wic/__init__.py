"""The WIC (WebRTC IMS Client), TS 24.371.

Two clients of the same web element:

- the browser app in ``static/`` that a person uses: ``index.html`` (served by
  the WWSF at ``/`` and at ``/callback``, the OAuth redirect URI) and its ES
  modules ``app.js`` (the page), ``oauth.js`` (code + PKCE S256, refresh with
  rotation) and ``sip.js`` (SIP over WSS with JsSIP and Bearer auth), which
  reference everything under ``/static/`` — the WWSF serves :data:`STATIC_DIR`
  there.  JsSIP comes from the npm registry, pinned by ``package-lock.json``,
  and is bundled by esbuild (``make wic``) into ``static/build/``, which is not
  committed;
- :mod:`webims.wic.token`, the same OAuth flow in Python for scripts
  (``webims token``);
- the Python WIC: :mod:`~webims.wic.registration` and
  :mod:`~webims.wic.regevent` (the REGISTER and SUBSCRIBE it sends, what it
  reads back, sans-I/O), :mod:`~webims.wic.client` (SIP over WSS, asyncio),
  :mod:`~webims.wic.login`, :mod:`~webims.wic.ladder`, and the commands
  ``webims register`` and ``webims bench register`` (:mod:`~webims.wic.cli`,
  :mod:`~webims.wic.bench`).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["INDEX_HTML", "STATIC_DIR"]

#: The browser app's files, served by the WWSF under ``/static/``.
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: The page served at ``/`` and ``/callback``.
INDEX_HTML = STATIC_DIR / "index.html"
