"""The co-located WWSF + WAF as a running element (``webims run wwsf``,
``webims run waf`` and ``webims up`` start the same one).

On start: the WWSF database (``<data_dir>/wwsf.sqlite3``) is opened and
migrated, the session key loaded (made on first start), the TLS
certificate taken from ``[web] tls_cert``/``tls_key`` or else from the dev
CA (:mod:`webims.devca`), the WAF built and mounted, and uvicorn serves the
app on ``[web] host``:``port`` inside the running loop.  With ``seed``
(``webims up``), the demo web accounts (not in production: their passwords
are public) and the pool's HSS subscriptions are provisioned first, those
that are missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..config import Settings
from ..devca import ensure_dev_ca, server_ssl_context
from ..hss import open_store
from ..observe.trace import TraceRecorder, open_recorder
from ..transport.http import HttpServer
from ..waf.element import Waf
from ..waf.identity import CurrentUser, ResolveIdentity
from .accounts import AccountStore
from .app import WafFactory, WafLike, create_web_app
from .db import DATABASE_FILE, WwsfDatabase, open_database
from .provisioning import seed_pool, seed_web_demo
from .sessions import load_session_key

__all__ = ["WebElement", "default_waf_factory", "token_ttl"]


def token_ttl(settings: Settings) -> float:
    """The WAF's access-token lifetime."""
    return float(settings.waf.access_token_ttl)


def default_waf_factory(settings: Settings) -> WafFactory:
    """The WAF of :mod:`webims.waf`, over ``settings`` and its data directory."""

    def build(current_user: CurrentUser, resolve_identity: ResolveIdentity) -> WafLike:
        return Waf(settings, settings.data_dir, current_user, resolve_identity)

    return build


class WebElement:
    """A started web element; :meth:`close` stops it."""

    title = "WWSF"

    def __init__(
        self,
        settings: Settings,
        *,
        seed: bool = False,
        say: Callable[[str], None] = print,
        waf_factory: WafFactory | None = None,
    ) -> None:
        self.settings = settings
        self.seed = seed
        self.say = say
        self.waf_factory = waf_factory if waf_factory is not None else default_waf_factory(settings)
        self.db: WwsfDatabase | None = None
        self.server: HttpServer | None = None
        self.waf: WafLike | None = None
        self._task: asyncio.Task[None] | None = None
        self.tracer: TraceRecorder | None = None

    async def start(self) -> None:
        settings, web = self.settings, self.settings.web
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.db = open_database(settings.data_dir / DATABASE_FILE)
            if self.seed:
                await self._seed()
            cert, key = web.tls_cert, web.tls_key
            if cert is None or key is None:
                ca = ensure_dev_ca(settings.data_dir)
                cert, key = ca.server_cert, ca.server_key
            app = create_web_app(
                settings,
                self.db,
                session_key=load_session_key(settings.data_dir / "wwsf"),
                waf_factory=self.waf_factory,
                token_ttl=token_ttl(settings),
            )
            self.waf = app.state.wwsf.waf
            self.tracer = open_recorder(settings, "WWSF/WAF")
            app.state.wwsf.tracer = self.tracer
            if isinstance(self.waf, Waf):
                self.waf.tracer = self.tracer
            self.server = HttpServer(app, web.host, web.port, server_ssl_context(cert, key))
            self._task = await self.server.start_serving()
        except BaseException:
            await self.close()
            raise

    async def _seed(self) -> None:
        assert self.db is not None
        if self.settings.web.production:
            self.say("web      production: no demo web accounts")
        else:
            added = [n for n, new in seed_web_demo(AccountStore(self.db)) if new]
            if added:
                self.say(f"seeded   web accounts: {', '.join(added)}")
        web = self.settings.web
        if web.pool:
            store = open_store(self.settings.hss.store_location(self.settings.data_dir))
            async with store:
                pooled = [
                    n for n, new in await seed_pool(store, web.pool, web.wwsf_identity) if new
                ]
            if pooled:
                self.say(f"seeded   identity pool: {', '.join(pooled)}")

    def describe(self) -> list[str]:
        if self.server is None:
            return []
        demo = self.seed and not self.settings.web.production
        hint = "; log in as user1 / user1-secret" if demo else ""
        lines = [f"{self.server.url}/  (WWSF + WAF{hint})"]
        if self.settings.web.public_url.rstrip("/") != self.server.url:
            lines.append(f"public URL {self.settings.web.public_url}")
        if self.settings.web.tls_cert is None:
            lines.append(
                f"dev CA {self.settings.data_dir / 'pki' / 'ca.pem'}  (trust it for https://)"
            )
        return lines

    async def close(self) -> None:
        if self.server is not None and self._task is not None:
            await self.server.stop(self._task)
            self._task = None
        waf = self.waf
        self.waf = None
        if waf is not None:
            await waf.close()
        if self.db is not None:
            self.db.close()
            self.db = None
        if self.tracer is not None:
            self.tracer.close()
            self.tracer = None
