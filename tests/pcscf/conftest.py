"""The eP-CSCF's tests: the real WAF over HTTP (the fixtures of ``tests.waf``), and the
eP-CSCF itself as ``webims run pcscf`` starts it, in front of a stand-in core
(``harness.FakeCore``) and reached by WICs over WSS and WS."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.ports import free_port
from tests.waf.conftest import WafSite, site, waf_site_factory
from webims.config import load_settings
from webims.devca import ensure_dev_ca
from webims.pcscf.element import make
from webims.pcscf.token import Mode, TokenValidator

from .harness import Deployment, FakeCore

__all__ = ["StartPcscf", "pcscf", "site", "start_pcscf", "waf_site_factory"]

StartPcscf = Callable[..., Awaitable[Deployment]]


@pytest.fixture
async def start_pcscf(tmp_path: Path) -> AsyncIterator[StartPcscf]:
    running: list[Deployment] = []

    async def start(
        waf: WafSite,
        *,
        mode: Mode = "local",
        core: dict[str, Any] | None = None,
        validator: TokenValidator | None = None,
        **pcscf: Any,
    ) -> Deployment:
        fake = FakeCore(free_port(), **(core or {}))
        await fake.start()
        ports: list[int] = []
        while len(ports) < 3:
            if (port := free_port()) not in ports and port != fake.port:
                ports.append(port)
        sip_port, ws_port, wss_port = ports
        data_dir = tmp_path / f"pcscf{len(running)}"
        settings = load_settings(
            None,
            data_dir=data_dir,
            pcscf={
                "sip_port": sip_port,
                "ws_port": ws_port,
                "wss_port": wss_port,
                "icscf_uri": f"sip:127.0.0.1:{fake.port};transport=tcp;lr",
                "waf_issuer": waf.base,
                **pcscf,
            },
        )
        secret = waf.waf.resource_server_secrets["pcscf"] if mode == "introspect" else ""
        validator = validator or TokenValidator(
            waf.base, "home1.net", clock=waf.clock, mode=mode, client_secret=secret
        )
        cscf = make(settings, validator=validator)
        await cscf.start()
        ca = ssl.create_default_context(cafile=str(ensure_dev_ca(data_dir).ca_cert))
        deployment = Deployment(cscf, fake, ca, wss_port, ws_port, sip_port)
        running.append(deployment)
        return deployment

    yield start
    for d in running:
        await d.cscf.close()
        await d.core.close()


@pytest.fixture
async def pcscf(site: WafSite, start_pcscf: StartPcscf) -> Deployment:
    return await start_pcscf(site)
