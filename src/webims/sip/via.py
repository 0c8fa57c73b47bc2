"""The Via header (RFC 3261 §20.42, §18.2.1; RFC 3581 rport).

via-parm = sent-protocol LWS sent-by *( SEMI via-params )
sent-protocol = protocol-name SLASH protocol-version SLASH transport
sent-by = host [ COLON port ]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import grammar as g
from .errors import ParseError
from .params import Params
from .uri import parse_host, split_hostport

__all__ = ["MAGIC_COOKIE", "Via", "parse_via", "parse_via_list"]

#: Branches of RFC 3261 elements start with this (§8.1.1.7).
MAGIC_COOKIE = "z9hG4bK"


@dataclass(eq=False, slots=True)
class Via:
    transport: str
    host: str
    port: int | None = None
    params: Params = field(default_factory=Params)
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        value = self.params.get("rport")
        return int(value) if value and g.is_digits(value) else None

    @property
    def wants_rport(self) -> bool:
        return "rport" in self.params

    @property
    def rfc3261_branch(self) -> bool:
        b = self.branch
        return b is not None and b.startswith(MAGIC_COOKIE)

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    @property
    def host_bare(self) -> str:
        return (self.host[1:-1] if self.host.startswith("[") else self.host).lower()

    @property
    def reliable(self) -> bool:
        return self.transport.upper() != "UDP"

    def __str__(self) -> str:
        hostport = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"{self.protocol}/{self.transport} {hostport}{self.params.render()}"

    def __repr__(self) -> str:
        return f"Via({str(self)!r})"


# The common shape of a Via value; anything else takes the general path.
_FAST_VIA = re.compile(
    r"SIP/2\.0/([A-Za-z]+) ([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?"
    r"((?:;[A-Za-z0-9.\-!%*_+`'~]+(?:=[A-Za-z0-9.\-!%*_+`'~:\[\]]+)?)*)"
)


def parse_via(text: str) -> Via:
    m = _FAST_VIA.fullmatch(text)
    if m is None:
        return _parse_via_general(text)
    transport, host, port_text, params_text = m.groups()
    port = int(port_text) if port_text else None
    if port is not None and port > 65535:
        raise ParseError(f"invalid port in Via {text!r}")
    params = Params.from_matched(params_text)
    return _checked(Via(transport.upper(), parse_host(host), port, params))


_NEED_VALUE = frozenset({"branch", "received", "maddr", "ttl"})


def _checked(via: Via) -> Via:
    for name, value, _ in via.params._items:
        lname = name.lower()
        if value is None:
            if lname in _NEED_VALUE:
                raise ParseError(f"Via parameter {name} needs a value")
        elif lname == "rport" and (not g.is_digits(value) or int(value) > 65535):
            raise ParseError(f"invalid rport {value!r}")
    return via


def _parse_via_general(text: str) -> Via:
    parts = text.split("/", 2)
    if len(parts) != 3:
        raise ParseError(f"invalid sent-protocol in Via {text!r}")
    name, version = parts[0].strip(), parts[1].strip()
    rest = parts[2].lstrip()
    i = 0
    n = len(rest)
    while i < n and rest[i] not in " \t":
        i += 1
    transport = rest[:i]
    if not g.is_token(name) or not g.is_token(version) or not g.is_token(transport):
        raise ParseError(f"invalid sent-protocol in Via {text!r}")
    rest = rest[i:].lstrip()
    semi = rest.find(";")
    sent_by = (rest if semi < 0 else rest[:semi]).strip()
    # LWS is allowed around the COLON of sent-by.
    if ":" in sent_by and not sent_by.startswith("["):
        h, _, p = sent_by.partition(":")
        sent_by = h.strip() + ":" + p.strip()
    if not sent_by or any(c in sent_by for c in " \t"):
        raise ParseError(f"invalid sent-by in Via {text!r}")
    host, port = split_hostport(sent_by)
    params = Params.parse(rest[semi + 1 :]) if semi >= 0 else Params()
    if semi >= 0 and not rest[semi + 1 :].strip():
        raise ParseError("empty Via parameter")
    return _checked(
        Via(
            transport=transport.upper(),
            host=host,
            port=port,
            params=params,
            protocol=f"{name.upper()}/{version}",
        )
    )


def parse_via_list(value: str) -> list[Via]:
    return [parse_via(part) for part in g.split_list(value)]
