"""Cost of the message trace per message: the hook on the element's path
(``sip_in`` of a parsed REGISTER, ``sip_out``, ``diameter_out``) and the
batched write that follows (packing, masking, one write per batch), against
the budget of the target (1,000 registrations/s on 2 cores).  A registration
of ``webims up`` (REGISTER through three CSCFs, UAR, SAR, 200 OK back, the reg
event SUBSCRIBE and NOTIFY with their answers) is 14 SIP and Cx messages, each
recorded once (by its sender, when both ends are in one process), plus the 3
OAuth exchanges of its login; elements in separate processes record a message
at both ends (26 records).

    .venv/bin/python bench/bench_trace.py
"""

from __future__ import annotations

import asyncio
import base64
import random
import tempfile
import time
from pathlib import Path

from webims.config import TraceSettings
from webims.observe.trace import TraceRecorder
from webims.sip import parse_message
from webims.transport.flow import Flow

N = 200_000
REGISTER = (
    b"REGISTER sip:home1.net SIP/2.0\r\n"
    b"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKnashds7\r\n"
    b"Max-Forwards: 70\r\nFrom: <sip:user1_public1@home1.net>;tag=4fa3\r\n"
    b"To: <sip:user1_public1@home1.net>\r\nCall-ID: apb03a0s09dkjdfglkj49111\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b'Contact: <sip:a8d2@df7jal23ls0d.invalid;transport=ws>;+sip.instance="<urn:uuid:0>";'
    b"reg-id=1\r\nSupported: path, outbound, gruu\r\n"
    b"Authorization: Bearer "
    + base64.urlsafe_b64encode(random.Random(1).randbytes(450)).rstrip(b"=")
    + b"\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n"
)
#: The same REGISTER as the eP-CSCF forwards it: no Bearer token (most requests).
FORWARDED = REGISTER.replace(b"Bearer", b"Digest")
#: A 200 (OK) to it: about half of the messages are responses.
OK = (
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK1\r\n"
    + REGISTER[REGISTER.index(b"From:") : REGISTER.index(b"Authorization")]
    + b"Service-Route: <sip:orig@scscf.home1.net:5080;transport=tcp;lr>\r\n"
    b"P-Associated-URI: <sip:user1_public1@home1.net>\r\nContent-Length: 0\r\n\r\n"
)
FLOW = Flow("wss", ("127.0.0.1", 7443), ("127.0.0.1", 50000), 1)
CX = bytes(8) + (16777216).to_bytes(4, "big") + bytes(300)


def per_call(fn: object, n: int = N // 5, repeat: int = 5) -> float:
    """Microseconds per call, the best of ``repeat`` runs (other load only adds)."""
    assert callable(fn)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


async def measure() -> None:
    """Inside a running loop, as in an element (the flush timer is armed once
    per batch; here it never fires: the write is timed by hand)."""
    msg = parse_message(REGISTER)
    with tempfile.TemporaryDirectory() as tmp:
        # A ring larger than N: every record stays for the write measured below.
        rec = TraceRecorder(Path(tmp), "eP-CSCF", TraceSettings(ring=N * 4, flush_interval=60))
        addresses = (("127.0.0.1", 41000), ("127.0.0.1", 3868))
        empty = per_call(lambda: None)
        hook_in = per_call(lambda: rec.sip_in(msg, FLOW)) - empty
        hook_out = per_call(lambda: rec.sip_out(REGISTER, FLOW)) - empty
        hook_cx = per_call(lambda: rec.diameter_out(CX, addresses)) - empty
        rec.close()
        # The write, in batches of what 0.25 s at the target brings (7,500
        # records): half responses, one message in 30 with a Bearer token.
        rec = TraceRecorder(Path(tmp), "eP-CSCF", TraceSettings(ring=8192, flush_interval=60))
        batch, best = 7_500, float("inf")
        for _ in range(8):
            for k in range(batch):
                rec.sip_out(REGISTER if k % 30 == 0 else FORWARDED if k % 2 else OK, FLOW)
            start = time.perf_counter()
            rec.flush()
            best = min(best, time.perf_counter() - start)
        write = best / batch * 1e6
        rec.close()
    off: TraceRecorder | None = None
    guard = per_call(lambda: off is not None and off.sip_out(REGISTER, FLOW)) - empty
    print(f"hook sip_in (parsed REGISTER, {len(REGISTER)} B)  {hook_in:6.3f} us")
    print(f"hook sip_out                           {hook_out:6.3f} us")
    print(f"hook diameter_out                      {hook_cx:6.3f} us")
    print(f"tracing off (the hook's None test)     {guard:6.3f} us")
    print(
        f"batched write, per record              {write:6.3f} us  "
        "(masking, packing, one write per batch)"
    )
    total = (hook_in + hook_out) / 2 + write
    print(f"per message, hook + write              {total:6.3f} us")
    for where, records in (("webims up, one process", 14), ("one process per element", 26)):
        share = 1_000 * records * total / 1e6
        print(
            f"  {where:24}: {records} records per registration, {records * total:5.0f} us; "
            f"at 1,000 registrations/s {share * 100:.1f} % of one core"
        )


def main() -> None:
    asyncio.run(measure())


if __name__ == "__main__":
    main()
