"""A plain SIP phone (SIPp, Debian's sip-tester) registers at the S-CSCF with
SIP Digest: its own RFC 2617 implementation answers our challenge, the HSS's
H(A1) for user1 / user1-secret verifies it (TS 24.229 5.4.1.2.1B)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.ports import free_port
from webims.diameter.cxdefs import ServerAssignmentType

from .conftest import USER1_IMPI, USER1_IMPU, Deployment

pytestmark = pytest.mark.sipp

SCENARIO = Path(__file__).with_name("sipp") / "uac_digest_register.xml"


@pytest.mark.parametrize("transport", ["t1", "u1"])
async def test_sipp_phone_registers_with_digest(deployment: Deployment, transport: str) -> None:
    dep = deployment
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        "sipp",
        f"127.0.0.1:{dep.port}",
        "-sf",
        str(SCENARIO),
        "-t",
        transport,
        "-m",
        "1",
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-nostdin",
        "-timeout",
        "20s",
        "-timeout_error",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 40)
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
    registration = await dep.scscf.scscf.store.get(USER1_IMPU)
    assert registration is not None and registration.impi == USER1_IMPI
    scheme = "tcp" if transport == "t1" else "udp"
    assert [c.uri.lower() for c in registration.contacts] == [
        f"sip:user1@127.0.0.1:{port};transport={scheme}"
    ]
    assert dep.spy.mars == [(USER1_IMPI, USER1_IMPU)]
    assert dep.spy.kinds() == [ServerAssignmentType.REGISTRATION]
