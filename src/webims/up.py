"""``webims up`` and ``webims run``: the elements, started on their listeners.

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

from .config import ElementSettings, PcscfSettings, Settings
from .devca import ensure_dev_ca, server_ssl_context
from .sip.proxy import LooseRouter, ProxyCore
from .sip.transaction import TimerConfig
from .transport.endpoint import EndpointConfig, SipEndpoint
from .transport.layer import ListenSpec
from .transport.loop import ServerGc

__all__ = ["ELEMENTS", "SIP_ELEMENTS", "run_elements"]

#: Elements of DESIGN.md, and the ones this version can run.
ELEMENTS = ("hss", "waf", "wwsf", "pcscf", "icscf", "scscf", "agw")
SIP_ELEMENTS = ("pcscf", "icscf", "scscf")

_TITLES = {"pcscf": "eP-CSCF", "icscf": "I-CSCF", "scscf": "S-CSCF"}


@dataclass
class Running:
    name: str
    endpoint: SipEndpoint


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


async def start_element(name: str, settings: Settings) -> Running:
    section: ElementSettings = getattr(settings, name)
    sip = settings.sip
    config = EndpointConfig(
        timers=TimerConfig(T1=sip.t1, T2=sip.t2, T4=sip.t4),
        aliases=tuple(section.aliases),
    )
    endpoint = SipEndpoint(lambda ep: ProxyCore(ep.layer, LooseRouter(ep), ep), config)
    await endpoint.start(_listen_specs(name, section, settings))
    return Running(name, endpoint)


def describe(running: Running) -> list[str]:
    lines = []
    for lst in running.endpoint.listeners:
        host, port = lst.local
        shown = f"[{host}]" if ":" in host else host
        if lst.transport in ("ws", "wss"):
            lines.append(f"{lst.transport}://{shown}:{port}/  (subprotocol sip)")
        else:
            lines.append(f"sip:{shown}:{port};transport={lst.transport}")
    return lines


async def run_elements(
    names: list[str], settings: Settings, say: Callable[[str], None] = print
) -> None:
    """Start ``names``, print their endpoints, run until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    running: list[Running] = []
    gc_schedule = ServerGc(loop)
    try:
        for name in names:
            running.append(await start_element(name, settings))
        for r in running:
            say(f"{_TITLES[r.name]:8} " + "\n         ".join(describe(r)))
        pcscf = settings.pcscf
        if any(r.name == "pcscf" for r in running) and pcscf.wss_port and pcscf.tls_cert is None:
            say(f"dev CA   {settings.data_dir / 'pki' / 'ca.pem'}  (trust it for wss://)")
        say("ready; Ctrl-C stops")
        sys.stdout.flush()
        gc_schedule.start()
        await stop.wait()
    finally:
        gc_schedule.stop()
        for r in reversed(running):
            await r.endpoint.close()
        say("stopped")
