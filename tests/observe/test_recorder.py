"""The recorder: what a hook keeps, what reaches the file, what never does,
and the bounds (ring, rotation, directory cap)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from webims.config import Settings, TraceSettings, load_settings
from webims.diameter.base import Identity
from webims.diameter.cx import avp, cx_answer, cx_request
from webims.diameter.cxdefs import CX_APPLICATION_ID, VENDOR_3GPP, CxCommand, CxResult
from webims.observe.record import read_trace, trace_files
from webims.observe.redact import redact_diameter, redact_sip
from webims.observe.trace import TraceRecorder, flush_directory, open_recorder
from webims.sip import parse_message
from webims.transport.flow import Flow

from .flows import TOKEN, FakeHttpRequest, register

WSS = Flow("wss", ("127.0.0.1", 7443), ("127.0.0.1", 50000), 1)
TCP = Flow("tcp", ("127.0.0.1", 5060), ("127.0.0.1", 5070), 2)
REGISTER = register(
    "c1@x", "sip:user1_public1@home1.net", f"Authorization: Bearer {TOKEN}\r\n", "WSS a.invalid"
)


def test_sip_in_and_out_keep_the_bytes_the_addresses_and_the_element(tmp_path: Path) -> None:
    rec = TraceRecorder(tmp_path, "eP-CSCF", TraceSettings())
    msg = parse_message(REGISTER.replace(TOKEN.encode(), b"abc"))
    msg.headers.set("Max-Forwards", "69")  # changed after parsing: the wire bytes stay
    rec.sip_in(msg, WSS)
    rec.sip_out(b"SIP/2.0 200 OK\r\n\r\n", TCP)
    assert not trace_files(tmp_path)  # nothing written until a flush
    rec.close()
    got = read_trace(tmp_path)
    assert [(r.element, r.pid, r.direction, r.protocol, r.transport) for r in got] == [
        ("eP-CSCF", os.getpid(), "in", "sip", "wss"),
        ("eP-CSCF", os.getpid(), "out", "sip", "tcp"),
    ]
    assert got[0].src == WSS.remote and got[0].dst == WSS.local
    assert got[1].src == TCP.local and got[1].dst == TCP.remote
    assert b"Max-Forwards: 70" in got[0].payload
    assert got[1].payload == b"SIP/2.0 200 OK\r\n\r\n"
    assert rec.path.name == f"ep-cscf-{os.getpid()}.trc"
    assert rec.path.stat().st_mode & 0o777 == 0o600  # identities, addresses: owner only


def test_flush_directory_writes_what_every_recorder_of_the_process_holds(
    tmp_path: Path,
) -> None:
    """The WWSF's /trace page reads the ladder right after a call: what the other
    elements of its process hold must be on disk by then, not 0.25 s later."""
    config = TraceSettings(flush_interval=60)
    p, s = TraceRecorder(tmp_path, "eP-CSCF", config), TraceRecorder(tmp_path, "S-CSCF", config)
    other = TraceRecorder(tmp_path / "elsewhere", "HSS", config)
    p.sip_out(b"BYE", WSS)
    s.sip_out(b"SIP/2.0 200 OK", TCP)
    other.sip_out(b"x", TCP)
    assert not trace_files(tmp_path)
    flush_directory(tmp_path)
    assert sorted(r.element for r in read_trace(tmp_path)) == ["S-CSCF", "eP-CSCF"]
    assert not trace_files(tmp_path / "elsewhere")
    for rec in (p, s, other):
        rec.close()


def test_the_trace_directory_is_the_owners_only(tmp_path: Path) -> None:
    rec = TraceRecorder(tmp_path / "trace", "HSS")
    rec.sip_out(b"x", TCP)
    rec.close()
    assert (tmp_path / "trace").stat().st_mode & 0o777 == 0o700


def test_the_bearer_token_never_reaches_the_file(tmp_path: Path) -> None:
    rec = TraceRecorder(tmp_path, "eP-CSCF")
    rec.sip_in(parse_message(REGISTER), WSS)
    quoted = REGISTER.replace(
        b"Bearer " + TOKEN.encode(), f'Bearer access_token="{TOKEN}"'.encode()
    )
    rec.sip_in(parse_message(quoted), WSS)
    rec.close()
    raw = rec.path.read_bytes()
    assert TOKEN.encode() not in raw and TOKEN[-20:].encode() not in raw
    for r in read_trace(tmp_path):
        auth = parse_message(r.payload).headers.get("Authorization") or ""  # still SIP
        assert auth.startswith(("Bearer REDACTED***", 'Bearer access_token="REDACTED***'))
    assert redact_sip(b"OPTIONS sip:x SIP/2.0\r\n\r\n") == b"OPTIONS sip:x SIP/2.0\r\n\r\n"
    assert redact_sip(b"Authorization: bearer abc.def-ghi\r\n") == (
        b"Authorization: bearer REDACTED***\r\n"
    )


def test_digest_ha1_of_a_maa_is_masked(tmp_path: Path) -> None:
    me = Identity("scscf.home1.net", "home1.net", ((VENDOR_3GPP, CX_APPLICATION_ID),))
    req = cx_request(
        me,
        CxCommand.MULTIMEDIA_AUTH,
        session_id="s;1;2",
        destination_realm="home1.net",
        destination_host=None,
        avps=[],
    )
    ha1 = "0123456789abcdef0123456789abcdef"
    item = avp(612, [avp(635, [avp(121, ha1.encode(), vendor=0)])])
    ans = bytes(cx_answer(me, req, CxResult.base(2001), [item]).as_bytes())
    assert ha1.encode() in ans
    masked = redact_diameter(ans)
    assert len(masked) == len(ans) and ha1.encode() not in masked and b"REDACTED" in masked
    assert redact_diameter(bytes(req.as_bytes())) == bytes(req.as_bytes())


def test_base_protocol_messages_are_not_traced(tmp_path: Path) -> None:
    rec = TraceRecorder(tmp_path, "HSS")
    local, remote = ("127.0.0.1", 3868), ("127.0.0.1", 40000)
    cer = bytes(20)  # Application-Id 0: CER, DWR, DPR
    cx = bytes(8) + CX_APPLICATION_ID.to_bytes(4, "big") + bytes(8)
    rec.diameter_in(cer, (local, remote))
    rec.diameter_in(cx, (local, remote))
    rec.diameter_out(cx, (local, remote))
    rec.diameter_out(cx, None)  # a connection without addresses: nothing
    rec.close()
    got = read_trace(tmp_path)
    assert [(r.direction, r.src, r.dst) for r in got] == [
        ("in", remote, local),
        ("out", local, remote),
    ]


def test_http_summary_has_no_secret(tmp_path: Path) -> None:
    rec = TraceRecorder(tmp_path, "WWSF/WAF")
    rec.http(FakeHttpRequest("POST", "/token"), 200, "user1", ["sip:user1_public1@home1.net"])
    rec.http(FakeHttpRequest("POST", "/login"), 401, "user1")
    rec.close()
    a, b = read_trace(tmp_path)
    assert a.protocol == "http" and a.transport == "https"
    assert b'"summary":"POST /token 200 (access token for user1)"' in a.payload
    assert b"sip:user1_public1@home1.net" in a.payload
    assert b'"summary":"POST /login 401 (login refused for user1)"' in b.payload


def test_the_ring_is_bounded_between_writes(tmp_path: Path) -> None:
    rec = TraceRecorder(tmp_path, "S-CSCF", TraceSettings(ring=16))
    for n in range(40):
        rec.sip_out(f"MESSAGE {n}".encode(), TCP)
    rec.flush()
    got = read_trace(tmp_path)
    assert [r.payload for r in got] == [f"MESSAGE {n}".encode() for n in range(24, 40)]
    assert rec.overflows == 1 and rec.written == 16


async def test_batches_are_written_by_the_loop_timer(tmp_path: Path) -> None:
    rec = TraceRecorder(tmp_path, "I-CSCF", TraceSettings(flush_interval=0.05))
    for n in range(3):
        rec.sip_out(f"M{n}".encode(), TCP)
    assert not rec.path.exists()
    await asyncio.sleep(0.2)
    assert [r.payload for r in read_trace(tmp_path)] == [b"M0", b"M1", b"M2"]
    rec.sip_out(b"M3", TCP)
    await asyncio.sleep(0.2)
    assert len(read_trace(tmp_path)) == 4
    rec.close()
    rec.sip_out(b"after close", TCP)
    rec.flush()
    assert len(read_trace(tmp_path)) == 4


def test_files_rotate_at_file_bytes_and_the_directory_stays_under_max_bytes(tmp_path: Path) -> None:
    # Old files of dead processes, oldest first.
    for n in range(3):
        old = tmp_path / f"s-cscf-{900000 + n}.trc"
        old.write_bytes(b"WIMSTRC1" + bytes(400_000))
        os.utime(old, (time.time() - 100 + n, time.time() - 100 + n))
    config = TraceSettings(file_bytes=64 << 10, max_bytes=1 << 20)
    rec = TraceRecorder(tmp_path, "S-CSCF", config)
    payload = b"x" * 1000
    for _ in range(3):
        for _ in range(50):
            rec.sip_out(payload, TCP)
        rec.flush()
    rec.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert f"s-cscf-{os.getpid()}.1.trc" in names and f"s-cscf-{os.getpid()}.trc" in names
    assert "s-cscf-900000.trc" not in names  # the oldest went first
    total = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert total <= config.max_bytes
    assert rec.path.stat().st_size <= config.file_bytes
    # Both generations read back, in order, whole records only.
    got = [r for r in read_trace(tmp_path) if r.element == "S-CSCF"]
    assert 64 < len(got) <= 150 and all(r.payload == payload for r in got)


def test_a_record_cut_short_ends_the_file(tmp_path: Path) -> None:
    rec = TraceRecorder(tmp_path, "HSS")
    rec.sip_out(b"one", TCP)
    rec.sip_out(b"two", TCP)
    rec.close()
    data = rec.path.read_bytes()
    rec.path.write_bytes(data[:-2])
    assert [r.payload for r in read_trace(tmp_path)] == [b"one"]


def test_config_section_turns_it_off(tmp_path: Path) -> None:
    on = load_settings(None, data_dir=tmp_path)
    assert on.trace.enabled and on.trace.max_bytes == 64 << 20
    recorder = open_recorder(on, "eP-CSCF")
    assert recorder is not None and recorder.directory == tmp_path / "trace"
    config = tmp_path / "c.toml"
    config.write_text("[trace]\nenabled = false\n")
    off = load_settings(config, data_dir=tmp_path)
    assert open_recorder(off, "eP-CSCF") is None
    assert isinstance(off, Settings)
