"""Interoperability with baresip (Debian's baresip-core), a plain SIP phone, through
the whole system: ``webims up`` with the demo subscribers, baresip on UDP with the
eP-CSCF as its outbound proxy.

baresip's first REGISTER carries no credentials; the eP-CSCF's own 401 has it name
its private identity, the S-CSCF's 401 (``stale=true``, the eP-CSCF's nonce being
none of its own) has it answer with the HSS's H(A1) for user1 / user1-secret
(TS 24.229 5.2.2 and 5.4.1.2.1B, SIP Digest without TLS).  The HSS then shows
user1 registered, and an OPTIONS sent to the I-CSCF for user1's IMPU reaches baresip
by LIR, the S-CSCF's binding and the Path flow token of its UDP flow, and its 200
comes back.  baresip needs no audio device: a sine wave is its microphone.

A call from baresip to a raw TCP phone (user2) through the core: baresip's ACK and
BYE follow the route set of the INVITE's Record-Route, whose entry on baresip's side
is the eP-CSCF's Gm-side address (RFC 5658 double Record-Route): baresip cannot
resolve ``pcscf.home1.net``.  baresip is driven through its ``ctrl_tcp`` module.

baresip is a test dependency (.ci/run installs Debian's baresip-core): without it
these tests fail rather than skip.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pcscf.gm_system import USER1, USER2, CoreSystem, Phone, core_system, send_options
from tests.ports import free_port
from webims.sip import Request, make_response

MODULES = Path("/usr/lib/baresip/modules")
REGISTERED_WITHIN = 20.0
SDP_ANSWER = (
    b"v=0\r\no=callee 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)

pytestmark = pytest.mark.timeout(120)


def sip_listen_port() -> int:
    """A port free with the next one too: baresip listens on UDP and TCP there and
    on TLS one port above."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as tls:
            try:
                tls.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise OSError("no two consecutive free ports")


@contextlib.contextmanager
def baresip(config_dir: Path, pcscf_port: int, extra: str = "") -> Iterator[subprocess.Popen[str]]:
    """baresip as user1 with a configuration of its own in ``config_dir`` (``extra``
    lines added to it), stopped at the end."""
    binary = shutil.which("baresip")
    if binary is None:
        pytest.fail("baresip is not installed (apt-get install baresip-core)", pytrace=False)
    config_dir.mkdir()
    (config_dir / "accounts").write_text(
        f"<{USER1.impu}>;auth_user={USER1.impi};auth_pass={USER1.password};"
        f'outbound="sip:127.0.0.1:{pcscf_port};transport=udp";regint=600\n'
    )
    (config_dir / "config").write_text(
        f"sip_listen\t127.0.0.1:{sip_listen_port()}\nmodule_path\t{MODULES}\nmodule\taccount.so\n"
        + extra
    )
    proc = subprocess.Popen(
        [binary, "-f", str(config_dir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def output(proc: subprocess.Popen[str]) -> str:
    """What baresip printed (it has been stopped)."""
    assert proc.stdout is not None
    return proc.stdout.read()


def wait_registered(system: CoreSystem, proc: subprocess.Popen[str]) -> str:
    """user1's state in the HSS once registered, or when baresip gave up or exited."""
    deadline = time.monotonic() + REGISTERED_WITHIN
    state = system.state(USER1)
    while state != "registered" and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        state = system.state(USER1)
    return state


def command(port: int, name: str, params: str = "") -> None:
    """One command to baresip's ``ctrl_tcp`` module (a JSON netstring)."""
    body = json.dumps({"command": name, "params": params, "token": name}).encode()
    with socket.create_connection(("127.0.0.1", port), 5) as ctrl:
        ctrl.sendall(str(len(body)).encode() + b":" + body + b",")


def next_request(phone: Phone) -> Request:
    """The next request the phone gets, unanswered."""
    while True:
        msg = phone.receive()
        if isinstance(msg, Request):
            return msg


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoreSystem]:
    with core_system(tmp_path_factory.mktemp("baresip-up")) as running_system:
        yield running_system


def test_baresip_registers_through_the_pcscf_and_is_reached(
    system: CoreSystem, tmp_path: Path
) -> None:
    assert system.state(USER1) != "registered"
    with baresip(tmp_path / "baresip", system.pcscf) as proc:
        state = wait_registered(system, proc)
        running = proc.poll() is None
        answer = send_options(system.icscf, USER1.impu) if state == "registered" else None
    printed = output(proc)
    assert running, f"baresip exited:\n{printed}"
    assert state == "registered", f"user1 is {state} in the HSS; baresip printed:\n{printed}"
    assert answer is not None and answer.status == 200, f"{answer}\n{printed}"
    assert "baresip" in (answer.headers.get("User-Agent") or answer.headers.get("Server") or "")


def test_baresip_call_follows_the_double_record_route(system: CoreSystem, tmp_path: Path) -> None:
    callee = Phone(system.pcscf, USER2, "tcp")
    ctrl = free_port()
    extra = (
        "module\tmenu.so\nmodule\tctrl_tcp.so\nmodule\tg711.so\nmodule\tausine.so\n"
        f"ctrl_tcp_listen\t127.0.0.1:{ctrl}\naudio_source\tausine,440\n"
    )
    try:
        assert callee.register()[1].status == 200
        with baresip(tmp_path / "baresip", system.pcscf, extra) as proc:
            try:
                assert wait_registered(system, proc) == "registered"
                command(ctrl, "dial", USER2.impu)
                invite = next_request(callee)
                assert invite.method == "INVITE"
                assert invite.headers.get_all("P-Asserted-Identity") == [f"<{USER1.impu}>"]
                gm_side = invite.record_routes[-1].sip_uri
                assert (gm_side.host, gm_side.port) == ("127.0.0.1", system.pcscf)
                assert "transport" not in gm_side.params  # baresip's UDP
                record_route = [("Record-Route", v) for v in invite.headers.get_all("Record-Route")]
                ok = make_response(
                    invite,
                    200,
                    to_tag="callee",
                    extra=[*record_route, ("Contact", f"<{callee.contact}>")],
                    body=SDP_ANSWER,
                    content_type="application/sdp",
                )
                callee.send(ok.serialize())
                ack = next_request(callee)
                assert ack.method == "ACK" and ack.call_id == invite.call_id
                assert ack.routes == [] and ack.uri_text == callee.contact

                command(ctrl, "hangup")
                bye = next_request(callee)
                assert bye.method == "BYE" and bye.call_id == invite.call_id
                callee.send(make_response(bye, 200).serialize())
            except BaseException:
                proc.send_signal(signal.SIGTERM)
                print(output(proc)[-8000:])
                raise
    finally:
        with contextlib.suppress(Exception):
            callee.register(expires=0)
        callee.close()
