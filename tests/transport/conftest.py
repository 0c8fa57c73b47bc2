"""Fixtures for the transport tests: real sockets on 127.0.0.1, both event loops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

import pytest

from webims.sip.message import Request, Response
from webims.transport import Flow, TransportConfig, TransportLayer

from .certs import Pki, make_pki

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run every transport test on asyncio's loop and on uvloop (the default in use)."""
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    if uvloop is not None:
        factories["uvloop"] = uvloop.new_event_loop
    return factories


class Inbox:
    """Records what the transport layer delivers, and lets a test wait for it."""

    def __init__(self) -> None:
        self.messages: list[tuple[Request | Response, Flow]] = []
        self.closed: list[Flow] = []
        self._event = asyncio.Event()

    def on_message(self, msg: Request | Response, flow: Flow) -> None:
        self.messages.append((msg, flow))
        self._event.set()

    def on_flow_closed(self, flow: Flow) -> None:
        self.closed.append(flow)
        self._event.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._event.clear()
                await self._event.wait()

    async def messages_n(
        self, n: int, timeout: float = 5.0
    ) -> list[tuple[Request | Response, Flow]]:
        await self.wait_for(lambda: len(self.messages) >= n, timeout)
        return self.messages[:n]

    async def closed_n(self, n: int, timeout: float = 5.0) -> list[Flow]:
        await self.wait_for(lambda: len(self.closed) >= n, timeout)
        return self.closed[:n]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(Path(tmp_path_factory.mktemp("pki")))


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def config() -> TransportConfig:
    return TransportConfig(flow_key=b"k" * 32, handshake_timeout=2.0, connect_timeout=2.0)


@pytest.fixture
async def layer(inbox: Inbox, config: TransportConfig) -> AsyncIterator[TransportLayer]:
    tl = TransportLayer(inbox.on_message, config=config, on_flow_closed=inbox.on_flow_closed)
    await tl.start()
    yield tl
    await tl.close()
