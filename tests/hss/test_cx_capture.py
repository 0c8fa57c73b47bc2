"""A real capture of Cx on loopback, decoded by Wireshark's dissector
(``tshark``): the commands, the AVPs, and not one malformed packet."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from webims.diameter.base import Identity
from webims.diameter.cx import CxClient
from webims.diameter.cxdefs import CX_APPLICATION_ID, VENDOR_3GPP, ServerAssignmentType
from webims.diameter.node import DiameterNode, NodeConfig

from .test_cx_wire import SCSCF, USER1_IMPI, USER1_IMPU, start_hss, stop_hss

DIAMETER_PORT = 3868


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        pytest.fail("tshark is not installed (.ci/run installs it with apt-get)")
    return path


def start_capture(pcap: Path, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [tshark(), "-i", "lo", "-f", f"tcp port {port}", "-w", str(pcap), "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "Capture started" in line:
            time.sleep(0.3)
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    pytest.fail(f"tshark did not start capturing: {proc.stderr.read()}")


def fields(pcap: Path, port: int, *names: str) -> list[list[str]]:
    out = subprocess.run(
        [tshark(), "-r", str(pcap), "-d", f"tcp.port=={port},diameter", "-Y", "diameter"]
        + ["-T", "fields", "-E", "separator=|", "-E", "occurrence=a"]
        + [arg for n in names for arg in ("-e", n)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [line.split("|") for line in out.splitlines() if line]


async def exchange(port: int) -> None:
    node = DiameterNode(
        Identity("scscf.home1.net", "home1.net", ((VENDOR_3GPP, CX_APPLICATION_ID),)),
        NodeConfig(reconnect_min=0.05),
    )
    node.add_peer("hss.home1.net", "127.0.0.1", port)
    await node.wait_open("hss.home1.net", 5)
    cx = CxClient(node, destination_realm="home1.net", destination_host="hss.home1.net")
    try:
        assert (await cx.uar(USER1_IMPI, USER1_IMPU, "home1.net")).result.code == 2001
        saa = await cx.sar([USER1_IMPU], SCSCF, ServerAssignmentType.REGISTRATION, impi=USER1_IMPI)
        assert saa.result.success
        assert (await cx.uar(USER1_IMPI, USER1_IMPU, "home1.net")).result.code == 2002
        assert (await cx.lir(USER1_IMPU)).result.success
        assert (await cx.mar(USER1_IMPI, USER1_IMPU, SCSCF)).result.success
        saa = await cx.sar(
            [USER1_IMPU], SCSCF, ServerAssignmentType.USER_DEREGISTRATION, impi=USER1_IMPI
        )
        assert saa.result.success
    finally:
        await node.stop()


def test_tshark_decodes_the_cx_exchange_without_malformed_packets(tmp_path: Path) -> None:
    port = DIAMETER_PORT if port_is_free(DIAMETER_PORT) else 0
    hss = start_hss(tmp_path, port or None)
    port = hss.diameter_port
    pcap = tmp_path / "cx.pcapng"
    capture = start_capture(pcap, port)
    try:
        asyncio.run(exchange(port))
        time.sleep(0.5)
    finally:
        capture.send_signal(signal.SIGINT)
        capture.wait(10)
        stop_hss(hss)

    rows = fields(
        pcap,
        port,
        "diameter.cmd.code",
        "diameter.flags.request",
        "diameter.applicationId",
        "diameter.Public-Identity",
        "diameter.Server-Name",
        "diameter.Vendor-Id",
        "diameter.Auth-Application-Id",
    )
    seen = [(r[0], r[1]) for r in rows]
    for cmd in ("257", "300", "301", "302", "303", "282"):
        assert (cmd, "1") in seen, f"no request {cmd} in {seen}"
        assert (cmd, "0") in seen, f"no answer {cmd} in {seen}"
    cx_rows = [r for r in rows if r[0] in ("300", "301", "302", "303")]
    assert all(r[2] == "16777216" for r in cx_rows)
    uar = next(r for r in rows if r[:2] == ["300", "1"])
    assert uar[3] == USER1_IMPU
    cer = next(r for r in rows if r[:2] == ["257", "1"])
    assert "10415" in cer[5].split(",") and "16777216" in cer[6].split(",")
    lia = next(r for r in rows if r[:2] == ["302", "0"])
    assert lia[4] == SCSCF

    # The answers carry what TS 29.229 puts in them, as Wireshark reads it.
    results = fields(
        pcap,
        port,
        "diameter.cmd.code",
        "diameter.flags.request",
        "diameter.Experimental-Result-Code",
        "diameter.Result-Code",
        "diameter.Server-Assignment-Type",
        "diameter.WebRTC-Authentication-Function-Name",
    )
    uaas = [r for r in results if r[:2] == ["300", "0"]]
    assert [r[2] for r in uaas] == ["2001", "2002"]
    saa = next(r for r in results if r[:2] == ["301", "0"])
    assert saa[3] == "2001" and saa[5] == "webrtc_authserver1@thirdparty.net"

    malformed = subprocess.run(
        [
            tshark(),
            *("-r", str(pcap), "-d", f"tcp.port=={port},diameter"),
            *("-Y", "_ws.malformed || _ws.expert.severity >= error"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert malformed.strip() == "", malformed
