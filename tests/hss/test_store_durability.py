"""A write the store acknowledged survives the process being SIGKILLed.

A child process (store_writer.py) adds and registers subscribers in a loop,
printing each write once its method returned; the test kills it with
SIGKILL in the middle of the stream, reopens the store and finds every
acknowledged write, and every other subscriber either whole or absent.
SQLite runs with synchronous=NORMAL (the default, which this is the claim
for) and FULL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from webims.hss import open_store
from webims.hss.model import RegistrationState

from .store_writer import assignment, subscriber

WRITER = Path(__file__).with_name("store_writer.py")
#: Acknowledgements to read before the kill, and the most time to wait for them.
ACKS = 357
PATIENCE = 20.0


@pytest.fixture(params=["sqlite-normal", "sqlite-full", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite-normal":
        return f"sqlite://{tmp_path}/hss.sqlite3"
    if request.param == "sqlite-full":
        return f"sqlite://{tmp_path}/hss.sqlite3?synchronous=FULL"
    dsn: str = request.getfixturevalue("postgres_dsn")
    return dsn


async def _run_and_kill(url: str) -> tuple[set[int], set[int]]:
    """Run the writer, SIGKILL it mid-stream; the added and registered ids
    it acknowledged."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WRITER),
        url,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert child.stdout is not None
    added: set[int] = set()
    registered: set[int] = set()

    def acknowledge(line: bytes) -> None:
        what, _, i = line.decode().partition(" ")
        (added if what == "add" else registered).add(int(i))

    deadline = time.monotonic() + PATIENCE
    try:
        while len(added) + len(registered) < ACKS:
            line = await asyncio.wait_for(child.stdout.readline(), deadline - time.monotonic())
            assert line, f"the writer stopped by itself (exit {await child.wait()})"
            acknowledge(line)
        assert child.returncode is None, "killed mid-stream, not after the end"
    finally:
        child.send_signal(signal.SIGKILL)
        code = await child.wait()
    # What it printed before dying was acknowledged too.
    for line in (await child.stdout.read()).splitlines():
        acknowledge(line)
    assert code == -signal.SIGKILL
    return added, registered


@pytest.mark.timeout(60)
async def test_acknowledged_writes_survive_sigkill(url: str) -> None:
    added, registered = await _run_and_kill(url)
    assert len(added) >= ACKS // 2
    assert registered <= added
    async with open_store(url) as store:
        names = set(await store.names())
        assert {f"w{i}" for i in added} <= names
        for name in names:
            i = int(name[1:])
            found = await store.get(name)
            assert found is not None
            if found.assignment is None:
                assert i not in registered, f"registration of {name} was acknowledged, then lost"
                assert found == subscriber(i)
            else:
                pub = replace(subscriber(i).publics[0], state=RegistrationState.REGISTERED)
                assert found == replace(subscriber(i), publics=(pub,), assignment=assignment(i)), (
                    "half a registration"
                )
        # The store takes writes again.
        await store.add(subscriber(-1))
        assert await store.by_impu("sip:w-1@home1.net") == subscriber(-1)
