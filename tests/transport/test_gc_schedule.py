"""The server GC schedule: automatic collection off, cycles still collected."""

from __future__ import annotations

import asyncio
import gc
import weakref

from webims.transport.loop import ServerGc


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


async def test_cycles_are_collected_on_schedule() -> None:
    sched = ServerGc(asyncio.get_running_loop(), freeze_every=0.05, full_every=0.2)
    sched.start()
    try:
        assert not gc.isenabled()
        a, b = Node(), Node()
        a.other, b.other = b, a
        ref = weakref.ref(a)
        del a, b
        assert ref() is not None  # only the collector can free a cycle
        for _ in range(40):
            await asyncio.sleep(0.05)
            if ref() is None:
                break
        assert ref() is None
    finally:
        sched.stop()
    assert gc.isenabled()


def test_proxy_transactions_leave_no_cycles() -> None:
    """Everything a proxied transaction allocates is freed by reference counting."""
    from tests.sip.test_proxy import ProxyNet, request

    net = ProxyNet()
    gc.collect()
    gc.disable()
    try:
        for _ in range(50):
            net.send(request())
            (ev,) = net.requests_at("uas1")
            net.answer("uas1", ev, 200)
        net.advance(40)
        assert len(net.proxy_layer) == 0
        gc.set_debug(gc.DEBUG_SAVEALL)
        found = gc.collect()
        leaked = [type(o).__name__ for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert found == 0, sorted(set(leaked))
