"""``webims trace`` as a user runs it (a separate process over a recorded
deployment) and its capture file read by tshark."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from webims.observe.pcap import write_pcap
from webims.observe.record import read_trace

from .flows import TOKEN, Deployment

WEBIMS = [sys.executable, "-m", "webims"]


def recorded(data_dir: Path, *users: str) -> None:
    dep = Deployment(data_dir / "trace")
    for n, user in enumerate(users, start=1):
        dep.register(n, user)
    dep.close()


def trace(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WEBIMS, "trace", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def tshark(pcap: Path, *fields: str, decode_as: tuple[str, ...] = ()) -> list[str]:
    """The ``fields`` of each packet, tab-separated (``decode_as``: ``tcp.port==N,sip``)."""
    exe = shutil.which("tshark")
    if exe is None:
        pytest.fail("tshark is not installed (.ci/run installs Debian's tshark)", pytrace=False)
    options = [a for d in decode_as for a in ("-d", d)]
    out = subprocess.run(
        [exe, "-r", str(pcap), *options, "-T", "fields", *(a for f in fields for a in ("-e", f))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return [line for line in out.stdout.splitlines() if line.strip()]


def test_webims_trace_plain_shows_steps_1_to_8(tmp_path: Path) -> None:
    recorded(tmp_path, "user2", "user1")
    out = trace(tmp_path, "--plain")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("REGISTER sip:user1_public1@home1.net")
    assert "user2" not in text
    steps = [int(line[:3]) for line in text.splitlines() if line[:3].strip().isdigit()]
    assert steps == [1, 1, 1, 2, 3, 4, 5, 5, 5, 5, 6, 6, 7, 7, 8]
    assert "\x1b[" not in text

    two = trace(tmp_path, "--plain", "--last", "2").stdout
    assert two.index("sip:user2_public1") < two.index("sip:user1_public1")


def test_webims_trace_without_a_trace_says_so(tmp_path: Path) -> None:
    out = trace(tmp_path, "--plain")
    assert out.returncode == 1
    assert "no registration in the trace" in out.stderr and out.stdout == ""


def test_pcap_decodes_sip_register_and_cx_uar_sar_in_tshark(tmp_path: Path) -> None:
    recorded(tmp_path, "user1")
    pcap = tmp_path / "flow.pcapng"
    out = trace(tmp_path, "--plain", "--pcap", str(pcap))
    assert out.returncode == 0, out.stderr
    assert "wrote 11 SIP and Diameter messages" in out.stderr
    rows = tshark(
        pcap,
        "frame.comment",
        "sip.Method",
        "sip.Status-Code",
        "diameter.cmd.code",
        "diameter.flags.request",
        "tcp.dstport",
        "udp.dstport",
    )
    methods = [r.split("\t") for r in rows]
    registers = [r for r in methods if r[1] == "REGISTER"]
    # The WIC's (on the WSS port, as plain SIP), the eP-CSCF's and the I-CSCF's.
    assert [r[5] for r in registers] == ["7443", "5070", "5080"]
    assert "SIP over WSS (RFC 7118)" in registers[0][0]
    assert "eP-CSCF -> I-CSCF" in registers[1][0]
    cx = [(r[3], r[4]) for r in methods if r[3]]
    assert cx == [("300", "1"), ("300", "0"), ("301", "1"), ("301", "0")]
    assert [r[2] for r in methods if r[2]] == ["200", "200", "200"]
    assert TOKEN.encode() not in pcap.read_bytes()


def test_pcap_of_udp_and_ipv6(tmp_path: Path) -> None:
    from webims.observe.trace import TraceRecorder
    from webims.transport.flow import Flow

    rec = TraceRecorder(tmp_path, "I-CSCF")
    options = (
        b"OPTIONS sip:icscf.home1.net SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:5999;branch=z9hG4bK1\r\n"
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\n"
        b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    rec.sip_out(options, Flow("udp", ("::1", 5070), ("::1", 5060)))
    rec.sip_out(options, Flow("udp", ("127.0.0.1", 5070), ("127.0.0.1", 5060)))
    rec.close()
    pcap = tmp_path / "o.pcapng"
    assert write_pcap(pcap, read_trace(tmp_path)) == 2
    rows = tshark(pcap, "ipv6.dst", "ip.dst", "udp.dstport", "sip.Method")
    assert rows == ["::1\t\t5060\tOPTIONS", "\t127.0.0.1\t5060\tOPTIONS"]
