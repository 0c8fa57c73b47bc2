"""``webims up`` as a user runs it: a separate process, real sockets, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import websockets

from tests.system import up_config
from webims.sip import Response, parse_message


def options(target: str, via: str, branch: str) -> bytes:
    return (
        f"OPTIONS {target} SIP/2.0\r\nVia: SIP/2.0/{via};branch={branch}\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:probe@example.com>;tag=p1\r\n"
        f"To: <{target}>\r\nCall-ID: {branch}@probe\r\nCSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def test_webims_up_serves_sip_and_stops_cleanly(tmp_path: Path) -> None:
    made = up_config(tmp_path)
    config = made.path
    i_port, ws_port, wss_port, web_port = (made.ports[n] for n in ("icscf", "ws", "wss", "web"))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "webims",
            "up",
            "--config",
            str(config),
            "--data-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        printed = []
        while True:
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
            assert line, "".join(printed)
            printed.append(line)
            if line.startswith("ready"):
                break
        text = "".join(printed)
        assert f"sip:127.0.0.1:{i_port};transport=udp" in text
        assert f"wss://127.0.0.1:{wss_port}/" in text
        assert f"https://127.0.0.1:{web_port}/  (WWSF + WAF" in text
        assert (tmp_path / "pki" / "ca.pem").exists()

        # UDP: the I-CSCF answers an OPTIONS addressed to it.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.bind(("127.0.0.1", 0))
            me = s.getsockname()[1]
            target = f"sip:127.0.0.1:{i_port}"
            s.sendto(options(target, f"UDP 127.0.0.1:{me}", "z9hG4bKcli1"), ("127.0.0.1", i_port))
            resp = parse_message(s.recv(65535))
            assert isinstance(resp, Response) and resp.status == 200
            assert "OPTIONS" in (resp.headers.get("Allow") or "")

        # WS with the sip subprotocol: the eP-CSCF answers too.
        async with websockets.connect(f"ws://127.0.0.1:{ws_port}/", subprotocols=["sip"]) as ws:
            target = f"sip:127.0.0.1:{ws_port};transport=ws"
            await ws.send(options(target, "WS df7jal23ls0d.invalid", "z9hG4bKcli2").decode())
            answer = parse_message(str(await asyncio.wait_for(ws.recv(), 5)).encode())
            assert isinstance(answer, Response) and answer.status == 200

        # WSS with the development CA: a standard TLS client trusts its chain.
        ctx = ssl.create_default_context(cafile=str(tmp_path / "pki" / "ca.pem"))
        async with websockets.connect(
            f"wss://127.0.0.1:{wss_port}/", subprotocols=["sip"], ssl=ctx
        ) as wss:
            assert wss.subprotocol == "sip"
            target = f"sip:127.0.0.1:{wss_port};transport=wss"
            await wss.send(options(target, "WSS df7jal23ls0d.invalid", "z9hG4bKcli3").decode())
            answer = parse_message(str(await asyncio.wait_for(wss.recv(), 5)).encode())
            assert isinstance(answer, Response) and answer.status == 200
            assert answer.top_via.received == "127.0.0.1"  # §18.2.1 / RFC 7118 §5.2
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.to_thread(proc.communicate, timeout=15)
    assert proc.returncode == 0, out
    assert "stopped" in out


def test_unknown_element_is_a_clear_error() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "webims", "run", "nonsense"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2 and "unknown element" in out.stderr


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[pcscf]\nsip_port = 99999\n")
    out = subprocess.run(
        [sys.executable, "-m", "webims", "up", "--config", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2 and "configuration error" in out.stderr
