"""Parse and serialise a typical 12-header REGISTER.

Targets (issue 2): parse >= 40,000/s and parse + serialise >= 20,000/s on one
core.  "Serialise" here means after a change (a Via added, Max-Forwards
decremented), as a proxy forwards it, so the cached wire bytes cannot be reused.
"""

from __future__ import annotations

import argparse
import json
import time

from webims.sip import parse_message

REGISTER = (
    b"REGISTER sip:home1.net SIP/2.0\r\n"
    b"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:user1_public1@home1.net>\r\n"
    b"From: <sip:user1_public1@home1.net>;tag=4fa3\r\n"
    b"Call-ID: apb03a0s09dkjdfglkj49111\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Contact: <sip:x7rq@df7jal23ls0d.invalid;transport=ws>"
    b';+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";reg-id=1;expires=600\r\n'
    b"Supported: path, outbound, gruu\r\n"
    b"Authorization: Bearer "
    b"eyJhbGciOiJFUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJ1c2VyMSJ9.c2lnbmF0dXJl\r\n"
    b"User-Agent: webims-bench/1.0\r\n"
    b"Expires: 600\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def rate(fn: object, seconds: float) -> float:
    f = fn  # type: ignore[assignment]
    n = 0
    batch = 1000
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            f()  # type: ignore[operator]
        n += batch
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def parse_only() -> None:
    parse_message(REGISTER)


def parse_and_read_core() -> None:
    m = parse_message(REGISTER)
    _ = (m.top_via.branch, m.cseq, m.call_id, m.from_.tag, m.to.tag, m.max_forwards)


def parse_and_serialise() -> None:
    m = parse_message(REGISTER)
    m.headers.add_first("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1234567890")
    m.headers.set("Max-Forwards", str((m.max_forwards or 70) - 1))
    m.serialize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = {
        "parse_per_s": rate(parse_only, args.seconds),
        "parse_read_core_headers_per_s": rate(parse_and_read_core, args.seconds),
        "parse_modify_serialise_per_s": rate(parse_and_serialise, args.seconds),
    }
    print(f"12-header REGISTER, {len(REGISTER)} bytes, one core")
    print(f"  parse                          {results['parse_per_s']:>10,.0f}/s  (target 40,000/s)")
    print(f"  parse + read core headers      {results['parse_read_core_headers_per_s']:>10,.0f}/s")
    print(
        f"  parse + modify + serialise     {results['parse_modify_serialise_per_s']:>10,.0f}/s"
        "  (target 20,000/s)"
    )
    if args.json:
        print(json.dumps({k: round(v) for k, v in results.items()}))


if __name__ == "__main__":
    main()
