"""Which Mw peers an element trusts (TS 24.229 5.3.1.2, TS 33.203 Annex U).

Trust is by the address *and port* a request came from: in the embedded
deployment every element shares one IP address, so the address alone would
let any local process pass for an eP-CSCF.  The CSCFs send Mw requests from
their listening port (UDP from the listening socket, TCP with
``outgoing_from_listener``), so a peer's (address, port) names it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from ..transport.flow import Address, Flow

__all__ = ["TrustedPeers"]


class TrustedPeers:
    def __init__(self, peers: Iterable[Address]) -> None:
        self._peers = frozenset(peers)

    def __contains__(self, source: Hashable) -> bool:
        """Whether a request that came from ``source`` (a Flow) is from a trusted peer."""
        return isinstance(source, Flow) and source.remote in self._peers

    def __repr__(self) -> str:
        return f"TrustedPeers({sorted(self._peers)})"
