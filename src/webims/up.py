"""``webims up`` and ``webims run``: the elements, started on their listeners.

The HSS is a Diameter node with the Cx server and the provisioning API
(:mod:`webims.hss.element`); ``webims up`` starts it first and, when its
store holds no subscriber yet, provisions the demo subscribers of DESIGN.md.
The web element (:mod:`webims.wwsf.element`) is the WWSF and the WAF on one
HTTPS origin; ``webims up`` seeds its demo web accounts and identity pool.
Each SIP element is a :class:`~webims.transport.endpoint.SipEndpoint` with a
:class:`~webims.sip.proxy.ProxyCore` over it.  At this stage of the project
the CSCFs run the plain proxy application (:class:`~webims.sip.proxy.LooseRouter`):
they answer OPTIONS addressed to them and route everything else by Route and
Request-URI.  Their IMS procedures (TS 24.229, TS 24.371) plug into the same
core as they are built.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .config import ElementSettings, PcscfSettings, Settings
from .devca import ensure_dev_ca, server_ssl_context
from .hss.element import HssElement, options_from_settings
from .hss.provisioning import seed_demo
from .sip.proxy import LooseRouter, ProxyCore
from .sip.transaction import TimerConfig
from .transport.endpoint import EndpointConfig, SipEndpoint
from .transport.layer import ListenSpec
from .transport.loop import ServerGc
from .wwsf.element import WebElement

__all__ = ["ELEMENTS", "RUNNABLE", "SIP_ELEMENTS", "UP_ELEMENTS", "run_elements"]

#: Elements of DESIGN.md, and the ones this version can run.
ELEMENTS = ("hss", "waf", "wwsf", "pcscf", "icscf", "scscf", "agw")
SIP_ELEMENTS = ("pcscf", "icscf", "scscf")
#: "waf" and "wwsf" both name the co-located web element (one HTTPS origin).
WEB_ELEMENTS = ("waf", "wwsf")
RUNNABLE = ("hss", *WEB_ELEMENTS, *SIP_ELEMENTS)
#: What ``webims up`` starts, in order.
UP_ELEMENTS = ("hss", "wwsf", *SIP_ELEMENTS)

_TITLES = {"pcscf": "eP-CSCF", "icscf": "I-CSCF", "scscf": "S-CSCF"}


class Element(Protocol):
    @property
    def title(self) -> str: ...

    def describe(self) -> list[str]: ...

    async def close(self) -> None: ...


@dataclass
class Running:
    """A SIP element: its endpoint and the core over it."""

    name: str
    endpoint: SipEndpoint

    @property
    def title(self) -> str:
        return _TITLES[self.name]

    def describe(self) -> list[str]:
        lines = []
        for lst in self.endpoint.listeners:
            host, port = lst.local
            shown = f"[{host}]" if ":" in host else host
            if lst.transport in ("ws", "wss"):
                lines.append(f"{lst.transport}://{shown}:{port}/  (subprotocol sip)")
            else:
                lines.append(f"sip:{shown}:{port};transport={lst.transport}")
        return lines

    async def close(self) -> None:
        await self.endpoint.close()


def _listen_specs(name: str, section: ElementSettings, settings: Settings) -> list[ListenSpec]:
    host = settings.sip.host
    specs: list[ListenSpec] = []
    if section.sip_port:
        specs += [
            ListenSpec("udp", host, section.sip_port),
            ListenSpec("tcp", host, section.sip_port),
        ]
    if isinstance(section, PcscfSettings):
        if section.ws_port:
            specs.append(ListenSpec("ws", host, section.ws_port))
        if section.wss_port:
            cert, key = section.tls_cert, section.tls_key
            if cert is None or key is None:
                ca = ensure_dev_ca(settings.data_dir)
                cert, key = ca.server_cert, ca.server_key
            specs.append(ListenSpec("wss", host, section.wss_port, server_ssl_context(cert, key)))
    return specs


async def start_hss(settings: Settings, *, seed: bool, say: Callable[[str], None]) -> HssElement:
    hss = HssElement(options_from_settings(settings))
    if (
        hss.options.store == settings.hss.store_location(settings.data_dir)
        and not settings.hss.store
    ):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    await hss.start()
    if seed and not await hss.raw_store.names():
        added = await seed_demo(hss.raw_store)
        names = ", ".join(f"{n} (password {n}-secret)" for n, new in added if new)
        say(f"seeded   demo subscribers: {names}")
    return hss


async def start_element(
    name: str, settings: Settings, *, seed: bool = False, say: Callable[[str], None] = print
) -> Element:
    if name == "hss":
        return await start_hss(settings, seed=seed, say=say)
    if name in WEB_ELEMENTS:
        web = WebElement(settings, seed=seed, say=say)
        await web.start()
        return web
    section: ElementSettings = getattr(settings, name)
    sip = settings.sip
    config = EndpointConfig(
        timers=TimerConfig(T1=sip.t1, T2=sip.t2, T4=sip.t4),
        aliases=tuple(section.aliases),
    )
    endpoint = SipEndpoint(lambda ep: ProxyCore(ep.layer, LooseRouter(ep), ep), config)
    await endpoint.start(_listen_specs(name, section, settings))
    return Running(name, endpoint)


async def run_elements(
    names: list[str],
    settings: Settings,
    say: Callable[[str], None] = print,
    *,
    seed: bool = False,
) -> None:
    """Start ``names``, print their endpoints, run until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    running: list[Element] = []
    gc_schedule = ServerGc(loop)
    try:
        for name in names:
            running.append(await start_element(name, settings, seed=seed, say=say))
        for r in running:
            say(f"{r.title:8} " + "\n         ".join(r.describe()))
        pcscf = settings.pcscf
        if "pcscf" in names and pcscf.wss_port and pcscf.tls_cert is None:
            say(f"dev CA   {settings.data_dir / 'pki' / 'ca.pem'}  (trust it for wss://)")
        say("ready; Ctrl-C stops")
        sys.stdout.flush()
        gc_schedule.start()
        await stop.wait()
    finally:
        gc_schedule.stop()
        for r in reversed(running):
            await r.close()
        say("stopped")
