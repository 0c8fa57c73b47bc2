"""The IMS identities a web user is mapped to, and the two callables the WWSF lends the WAF.

TS 24.371 Annex A.3.2 step 1: the web identity is mapped to the IMS subscriber identity
(private user identity, public user identities).  The WAF does not own that mapping: the
WWSF does (its web accounts, or the identity pool of TS 33.203 X.4).  The WAF is handed two
callables when it is built:

- ``CurrentUser``: the logged-in web user of a request (from the WWSF's session cookie),
  or ``None`` when nobody is logged in;
- ``ResolveIdentity``: a web user's IMS identities, or ``None`` when the user has none
  (then the WAF issues no token).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeAlias

from starlette.requests import Request

__all__ = ["CurrentUser", "ImsIdentity", "ResolveIdentity"]


@dataclass(frozen=True, slots=True)
class ImsIdentity:
    """The IMS identities one token carries: an IMPI and the IMPUs it may register."""

    #: Private user identity (IMPI), e.g. ``user1_private@home1.net``.
    impi: str
    #: Public user identities (IMPUs), e.g. ``("sip:user1_public1@home1.net",)``.
    impus: tuple[str, ...]
    #: True when the pair is lent from the WWSF's pool (TS 33.203 X.4), not subscribed.
    pool: bool = False


#: The logged-in web user of a request's session, or None.
CurrentUser: TypeAlias = Callable[[Request], Awaitable[str | None]]

#: A web user's IMS identities, or None when the user has none.
ResolveIdentity: TypeAlias = Callable[[str], Awaitable[ImsIdentity | None]]
