"""Property tests: whatever the bytes, the parser raises only SipError, and
what it accepts round-trips."""

from __future__ import annotations

import contextlib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from webims.sip import SipError, parse_message

VECTORS = sorted((Path(__file__).resolve().parents[2] / "conformance" / "sip").rglob("*.dat"))
SEEDS = [p.read_bytes() for p in VECTORS]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "insert", "delete", "dup"]))
        if op == "flip":
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(
                st.sampled_from([b"\r\n", b" ", b":", b";", b",", b"<", b'"', b"\x00"])
            )
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 20))]
        else:
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 40))]
    return bytes(data)


def exercise(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipError:
        return
    for name in ("vias", "cseq", "call_id", "from_", "to", "contacts", "routes", "authorization"):
        with contextlib.suppress(SipError):
            getattr(msg, name)
    wire = msg.serialize()
    assert parse_message(wire).serialize() == wire


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    exercise(data)


@settings(max_examples=1500, deadline=None)
@given(mutated())
def test_mutated_vectors(data: bytes) -> None:
    exercise(data)
