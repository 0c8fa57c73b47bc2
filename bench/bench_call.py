"""Calls per second through the whole core, as ``webims up`` runs it.

Starts ``webims up`` in its own process, on free ports, in a temporary data
directory, provisions 2 x PAIRS bench subscribers (``webims.wic.bench``) and
registers each over its own WSS connection with a token the deployment's WAF
signs (``mint_logins``).  Then each caller calls its callee in a loop for
DURATION seconds: INVITE (with an SDP offer) -> 200 OK -> ACK -> BYE -> 200 OK.
The INVITE crosses the caller's eP-CSCF, the S-CSCF (originating), the I-CSCF
(LIR to the HSS), the S-CSCF (terminating) and the callee's eP-CSCF; the callee
answers at once.  No media: this measures the signalling.

    python bench/bench_call.py [--pairs 10] [--duration 10] [--json]

Prints calls per second, failures, the call set-up time (INVITE sent to 200 OK
received) p50/p99, the CPU time the server process spent per call, and the
eP-CSCF's dialog count afterwards (every call's dialogs must be gone:
``webims_pcscf_dialogs`` on /metrics).  There is no target for calls yet; the
figures are for comparing changes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench_register import cpu_seconds, free_port, webims_up, write_config

from webims.config import load_settings
from webims.sip import Request, Response, make_response, new_tag
from webims.sip.uac import ack_for_2xx, new_call_id, new_request
from webims.wic.bench import mint_logins, percentile, provision_bench_subscribers
from webims.wic.client import WicClient, client_ssl_context
from webims.wic.registration import answer_request

OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def callee_answer(request: Request) -> Response | None:
    """A UA that takes every call at once: 200 with Record-Route copied (RFC 3261
    §12.1.1) and an answer; 200 to BYE; the WIC's usual answers otherwise."""
    if request.method == "INVITE":
        rr = [("Record-Route", v) for v in request.headers.get_all("Record-Route")]
        contact = [("Contact", "<sip:callee@callee.invalid;transport=ws>")]
        return make_response(
            request,
            200,
            to_tag=new_tag(),
            extra=rr + contact,
            body=OFFER,
            content_type="application/sdp",
        )
    if request.method == "BYE":
        return make_response(request, 200)
    return answer_request(request)


async def one_call(caller: WicClient, callee_impu: str) -> float:
    """INVITE, ACK, BYE; the set-up time in seconds.  Raises on a failure."""
    ua = caller.ua
    call_id = new_call_id(ua.host)
    tag = new_tag()
    invite = new_request(
        "INVITE",
        callee_impu,
        from_=f"<{ua.impu}>;tag={tag}",
        to=f"<{callee_impu}>",
        call_id=call_id,
        cseq=1,
        via=ua.via(),
        contact=f"<{ua.contact_uri};ob>",
        extra=[("Authorization", f"Bearer {caller.token}")],
        body=OFFER,
        content_type="application/sdp",
    )
    started = time.perf_counter()
    answer = await caller.request(invite)
    setup = time.perf_counter() - started
    if answer.status != 200 or not answer.to_tag:
        raise RuntimeError(f"INVITE: {answer.status} {answer.reason}")
    await caller.send(ack_for_2xx(invite, answer, via=ua.via()))
    # The BYE of the dialog (RFC 3261 §12.2.1.1): the remote target, the route set.
    bye = new_request(
        "BYE",
        answer.contacts[0].uri,
        from_=f"<{ua.impu}>;tag={tag}",
        to=f"<{callee_impu}>;tag={answer.to_tag}",
        call_id=call_id,
        cseq=2,
        via=ua.via(),
        route=[str(r) for r in reversed(answer.record_routes)],
    )
    done = await caller.request(bye)
    if done.status != 200:
        raise RuntimeError(f"BYE: {done.status} {done.reason}")
    return setup


def metric(url: str, name: str) -> float | None:
    with urllib.request.urlopen(url, timeout=5) as response:  # our own loopback
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


async def run(config: Path, pairs: int, duration: float, server_pid: int) -> dict[str, Any]:
    settings = load_settings(config)
    print(f"provisioning {2 * pairs} subscribers...", file=sys.stderr)
    subs = await provision_bench_subscribers(settings, 2 * pairs, "call", web_accounts=False)
    logins = mint_logins(settings, subs)
    ssl_context = client_ssl_context(settings.data_dir / "pki" / "ca.pem")
    url = f"wss://127.0.0.1:{settings.pcscf.wss_port}/"
    clients = []
    for n, (sub, login) in enumerate(zip(subs, logins, strict=True)):
        answer = callee_answer if n % 2 else answer_request
        client = WicClient(
            url, sub.impu, login.access_token, ssl_context=ssl_context, answer=answer
        )
        await client.connect()
        outcome = await client.register()
        if not outcome.ok:
            raise SystemExit(f"{sub.impu} did not register: {outcome}")
        clients.append(client)
    callers = [(clients[2 * i], subs[2 * i + 1].impu) for i in range(pairs)]
    for caller, callee in callers:  # warm-up: one call each, not counted
        await one_call(caller, callee)
    setups: list[float] = []
    failures: dict[str, int] = {}
    cpu0 = cpu_seconds(server_pid)
    started = time.perf_counter()
    deadline = started + duration

    async def loop(caller: WicClient, callee: str) -> None:
        while time.perf_counter() < deadline:
            try:
                setups.append(await one_call(caller, callee))
            except Exception as err:  # counted; the load goes on
                failures[str(err)] = failures.get(str(err), 0) + 1

    await asyncio.gather(*(loop(c, callee) for c, callee in callers))
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(server_pid) - cpu0
    await asyncio.sleep(0.5)
    metrics_url = f"http://127.0.0.1:{settings.metrics.port}/metrics"
    dialogs = metric(metrics_url, "webims_pcscf_dialogs")
    for client in clients:
        await client.deregister()
        await client.close()
    setups.sort()
    ok = len(setups)
    return {
        "pairs": pairs,
        "rate": ok / elapsed,
        "ok": ok,
        "failed": sum(failures.values()),
        "failures": failures,
        "setup_p50_ms": percentile(setups, 50) * 1000,
        "setup_p99_ms": percentile(setups, 99) * 1000,
        "server_cpu_ms_per_call": cpu * 1000 / ok if ok else None,
        "pcscf_dialogs_after": dialogs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--json", action="store_true", help="End with one JSON line.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="webims-bench-call-") as tmp:
        config = write_config(Path(tmp), extra=f"[metrics]\nport = {free_port()}\n")
        with webims_up(config) as server:
            result = asyncio.run(run(config, args.pairs, args.duration, server.pid))
    print(f"calls       {result['ok']} in {args.duration:g} s, {result['rate']:.1f}/s")
    print(f"failed      {result['failed']} {result['failures'] or ''}")
    print(f"set-up      p50 {result['setup_p50_ms']:.1f} ms, p99 {result['setup_p99_ms']:.1f} ms")
    cpu = result["server_cpu_ms_per_call"]
    print(f"server CPU  {cpu:.2f} ms per call (INVITE, ACK, BYE through every element)")
    print(
        f"dialogs     {result['pcscf_dialogs_after']} held by the eP-CSCF afterwards (0 expected)"
    )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
