"""``webims up`` and ``webims run``: the elements, started on their listeners.

The HSS is a Diameter node with the Cx server and the provisioning API
(:mod:`webims.hss.element`); ``webims up`` starts it first and, when its
store holds no subscriber yet, provisions the demo subscribers of DESIGN.md.
The web element (:mod:`webims.wwsf.element`) is the WWSF and the WAF on one
HTTPS origin; ``webims up`` seeds its demo web accounts and identity pool.
Each CSCF is a :class:`~webims.ims.element.Cscf`: a SIP endpoint with the
proxy core and the element's procedures over it (``webims.<name>.element``),
and a Cx client for the I-CSCF and the S-CSCF.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import signal
import sys
from collections.abc import Callable
from typing import Protocol

from .config import Settings
from .hss.element import HssElement, options_from_settings
from .hss.provisioning import seed_demo
from .ims.element import Cscf
from .observe.metrics import start_metrics
from .observe.trace import open_recorder
from .transport.loop import ServerGc, pin_mmap_threshold
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


class Element(Protocol):
    @property
    def title(self) -> str: ...

    def describe(self) -> list[str]: ...

    async def close(self) -> None: ...


async def start_hss(settings: Settings, *, seed: bool, say: Callable[[str], None]) -> HssElement:
    hss = HssElement(options_from_settings(settings))
    hss.node.tracer = open_recorder(settings, "HSS")
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
    module = importlib.import_module(f"webims.{name}.element")
    cscf: Cscf = module.make(settings)
    await cscf.start()
    return cscf


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
    pin_mmap_threshold()  # idle TLS connections: see its docstring
    try:
        for name in names:
            running.append(await start_element(name, settings, seed=seed, say=say))
        try:
            metrics = await start_metrics(settings, running)
        except OSError as err:  # the elements run on; only /metrics is missing
            say(f"metrics  not served: {err}")
        else:
            if metrics is not None:
                running.append(metrics)
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
