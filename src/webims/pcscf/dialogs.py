"""The dialogs of the UEs through the eP-CSCF, and the route set each was given
(TS 24.229 5.2.6.3.3 and 5.2.6.4.3: the P-CSCF keeps the Record-Route of a
dialog and holds the UE's later requests in it to that route).

A UE's request inside a dialog names the dialog by Call-ID, its own tag (From)
and the other side's (To).  The eP-CSCF learns a dialog:

* originating (``note_originating``), from a 1xx with a To tag or a 2xx to a
  dialog-forming request of the UE: the UE's route set is the response's
  Record-Route reversed (RFC 3261 §12.1.2);
* terminating (``note_terminating``), from the UE's own 1xx/2xx to a
  dialog-forming request the core sent it: the UE's route set is that
  request's Record-Route in order (§12.1.1).

Kept for each: the connection (flow) the UE is on and the Route values beyond
the eP-CSCF's own entries (which the proxy core consumes).  A request of a UE
in a dialog the eP-CSCF does not know on that connection is refused; one it
knows goes along the stored route, whatever Route the UE wrote.  A dialog
ends with a 2xx to a BYE, or with its connection or registration; a
connection keeps at most ``MAX_PER_FLOW`` dialogs (the oldest goes first), so
that a UE cannot grow the table without bound.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from ..sip.address import Address
from ..sip.errors import SipError
from ..sip.message import Request, Response
from ..sip.uri import URI
from ..transport.flow import Flow

__all__ = ["MAX_PER_FLOW", "DialogKey", "Dialogs", "UeDialog"]

#: Call-ID, the UE's tag, the other side's tag.
DialogKey = tuple[str, str, str]

MAX_PER_FLOW: Final = 64


@dataclass(frozen=True, slots=True)
class UeDialog:
    flow: Flow
    #: The Route values the UE's requests take beyond the eP-CSCF, in order.
    routes: tuple[str, ...]


def beyond_us(route_set: Sequence[Address], is_local: Callable[[URI], bool]) -> tuple[str, ...]:
    """A UE's route set without the eP-CSCF's own entries at its head (one, or two
    with the double Record-Route of RFC 5658)."""
    start = 0
    while start < len(route_set) and is_local(route_set[start].uri):
        start += 1
    return tuple(str(entry) for entry in route_set[start:])


class Dialogs:
    """The UEs' dialogs, by key and by connection."""

    def __init__(self) -> None:
        self._by_key: dict[DialogKey, UeDialog] = {}
        # Insertion-ordered: the first key of a flow is its oldest dialog.
        self._by_flow: dict[Flow, dict[DialogKey, None]] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, key: DialogKey) -> UeDialog | None:
        return self._by_key.get(key)

    def add(self, key: DialogKey, dialog: UeDialog) -> None:
        old = self._by_key.get(key)
        if old is not None and old.flow != dialog.flow:
            self.remove(key)
        keys = self._by_flow.setdefault(dialog.flow, {})
        if key not in keys and len(keys) >= MAX_PER_FLOW:
            self.remove(next(iter(keys)))
            keys = self._by_flow.setdefault(dialog.flow, {})
        keys[key] = None
        self._by_key[key] = dialog

    def remove(self, key: DialogKey) -> None:
        dialog = self._by_key.pop(key, None)
        if dialog is None:
            return
        keys = self._by_flow.get(dialog.flow)
        if keys is not None:
            keys.pop(key, None)
            if not keys:
                del self._by_flow[dialog.flow]

    def drop_flow(self, flow: Flow) -> None:
        for key in self._by_flow.pop(flow, {}):
            self._by_key.pop(key, None)

    def note_originating(
        self, flow: Flow, request: Request, response: Response, is_local: Callable[[URI], bool]
    ) -> None:
        """A response to the UE's dialog-forming ``request``, on its way to the UE."""
        try:
            ue_tag, remote_tag = request.from_tag, response.to_tag
            if not (101 <= response.status < 300) or not ue_tag or not remote_tag:
                return
            routes = beyond_us(list(reversed(response.record_routes)), is_local)
        except SipError:
            return  # an answer we cannot read makes no dialog: the UE's requests in it get 403
        self.add((request.call_id, ue_tag, remote_tag), UeDialog(flow, routes))

    def note_terminating(
        self, flow: Flow, request: Request, response: Response, routes: tuple[str, ...]
    ) -> None:
        """The UE's response to the dialog-forming ``request`` the core sent it;
        ``routes``: that request's Record-Route as the core sent it."""
        try:
            ue_tag, remote_tag = response.to_tag, request.from_tag
        except SipError:
            return
        if not (101 <= response.status < 300) or not ue_tag or not remote_tag:
            return
        self.add((request.call_id, ue_tag, remote_tag), UeDialog(flow, routes))
