"""The names and addresses of one deployment's CSCFs, from its settings.

Every CSCF needs to know the others: the eP-CSCF sends REGISTER to an
I-CSCF, the I-CSCF trusts eP-CSCFs and selects S-CSCFs, the S-CSCF trusts
I-CSCFs and eP-CSCFs.  Each of these is configurable; unset, it is the
element of the same deployment, named by its first alias (``icscf.home1.net``)
and reached on ``[sip] host`` at its SIP port.  Mw runs over TCP (a REGISTER
with Path and Digest, or an INVITE with a browser's SDP, is over the 1,300
bytes RFC 3261 §18.1.1 allows on UDP).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ElementSettings, Settings
from ..sip.grammar import is_digits
from ..transport.flow import Address, normalize_host

__all__ = ["Topology", "parse_hostport"]


def parse_hostport(text: str, hosts: dict[str, str] | None = None) -> Address:
    """``"127.0.0.1:5060"`` / ``"[::1]:5060"`` / ``"icscf.home1.net:5070"`` -> (ip, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = text.rpartition(":")
    if not host or not is_digits(port):
        raise ValueError(f"{text!r}: expected host:port")
    host = (hosts or {}).get(host, host)
    return normalize_host(host), int(port)


def _name(section: ElementSettings, fallback: str) -> str:
    return section.aliases[0] if section.aliases else fallback


@dataclass(frozen=True)
class Topology:
    domain: str
    #: Static name -> IP map every SIP element resolves next hops with.
    hosts: dict[str, str]
    pcscf_host: str
    pcscf_port: int
    icscf_uri: str
    scscf_server_name: str
    #: (ip, port) of the peers the I-CSCF takes REGISTER from.
    icscf_trusted: frozenset[Address]
    #: (ip, port) of the peers whose ``auth-done`` the S-CSCF trusts.
    scscf_trusted: frozenset[Address]
    #: S-CSCF URI -> capabilities, for the I-CSCF's selection (None: all).
    scscfs: dict[str, tuple[int, ...] | None]

    @classmethod
    def from_settings(cls, settings: Settings) -> Topology:
        ip = settings.sip.host
        pc, ic, sc = settings.pcscf, settings.icscf, settings.scscf
        pcscf_host = _name(pc, "pcscf." + settings.sip.domain)
        icscf_host = _name(ic, "icscf." + settings.sip.domain)
        scscf_host = _name(sc, "scscf." + settings.sip.domain)
        hosts: dict[str, str] = {}
        for section in (pc, ic, sc):
            for alias in section.aliases:
                hosts[alias] = ip
        icscf_uri = pc.icscf_uri or f"sip:{icscf_host}:{ic.sip_port};transport=tcp;lr"
        server_name = sc.server_name or f"sip:{scscf_host}:{sc.sip_port};transport=tcp"
        mine = normalize_host(ip) if ip not in ("0.0.0.0", "::") else "127.0.0.1"
        icscf_trusted = (
            frozenset(parse_hostport(p, hosts) for p in ic.trusted_peers)
            if ic.trusted_peers is not None
            else frozenset({(mine, pc.sip_port)})
        )
        scscf_trusted = (
            frozenset(parse_hostport(p, hosts) for p in sc.trusted_peers)
            if sc.trusted_peers is not None
            else frozenset({(mine, ic.sip_port), (mine, pc.sip_port)})
        )
        scscfs: dict[str, tuple[int, ...] | None] = (
            {uri: tuple(caps) for uri, caps in ic.scscfs.items()}
            if ic.scscfs is not None
            else {server_name: None}
        )
        return cls(
            domain=settings.sip.domain,
            hosts=hosts,
            pcscf_host=pcscf_host,
            pcscf_port=pc.sip_port,
            icscf_uri=icscf_uri,
            scscf_server_name=server_name,
            icscf_trusted=icscf_trusted,
            scscf_trusted=scscf_trusted,
            scscfs=scscfs,
        )
