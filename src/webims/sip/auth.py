"""Authorization / WWW-Authenticate values (RFC 3261 §20.7, §20.44, §22.4;
RFC 8898 Bearer for SIP; TS 24.229 ``integrity-protected``; TS 33.203 Annex X
``authorization-entity``).

    credentials = ("Digest" LWS digest-response) / other-response
    challenge = ("Digest" LWS digest-cln *(COMMA digest-cln)) / other-challenge
    auth-param = auth-param-name EQUAL ( token / quoted-string )

Bearer credentials (RFC 8898) are ``Bearer <token68>``; the form of TS 24.371
Table A.3.2-1, ``Bearer access_token="<token>"``, is accepted as well.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import grammar as g
from .errors import ParseError

__all__ = [
    "AuthParams",
    "BearerCredentials",
    "Challenge",
    "Credentials",
    "DigestCredentials",
    "parse_challenge",
    "parse_credentials",
]

# token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")

# Parameters that are sent unquoted when we build a header ourselves.
_UNQUOTED = frozenset({"algorithm", "qop", "nc", "stale"})


@dataclass(eq=False, slots=True)
class AuthParams:
    """``name=value`` pairs of a Digest response or challenge, in wire order."""

    items: list[tuple[str, str, bool]] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        lname = name.lower()
        for n, v, _ in self.items:
            if n.lower() == lname:
                return v
        return None

    def set(self, name: str, value: str, *, quoted: bool | None = None) -> None:
        if quoted is None:
            quoted = name.lower() not in _UNQUOTED
        lname = name.lower()
        for i, (n, _, _) in enumerate(self.items):
            if n.lower() == lname:
                self.items[i] = (n, value, quoted)
                return
        self.items.append((name, value, quoted))

    def remove(self, name: str) -> None:
        lname = name.lower()
        self.items = [it for it in self.items if it[0].lower() != lname]

    def render(self) -> str:
        return ", ".join(f"{n}={g.quote(v) if q else v}" for n, v, q in self.items)


# One auth-param of the common shape: a token, then a token or a quoted-string
# without quoted-pairs, then a comma followed by more, or the end.
_AUTH_PARAM = re.compile(
    rf'([{g.TOKEN_CHARS}]+)[ \t]*=[ \t]*(?:"([^"\\\r\n]*)"|([{g.TOKEN_CHARS}]+))'
    r"[ \t]*(?:,[ \t]*(?=[^ \t])|\Z)"
)


def _parse_auth_params(text: str) -> AuthParams:
    """auth-param *(COMMA auth-param); whitespace around '=' and ',' allowed."""
    fast = _parse_common_auth_params(text)
    if fast is not None:
        return fast
    out = AuthParams()
    i = g.skip_ws(text, 0)
    n = len(text)
    seen: set[str] = set()
    while i < n:
        j = i
        while j < n and text[j] not in "= \t,":
            j += 1
        name = text[i:j]
        if not g.is_token(name):
            raise ParseError(f"invalid auth-param name {name!r}")
        j = g.skip_ws(text, j)
        if j >= n or text[j] != "=":
            raise ParseError(f"auth-param {name!r} needs a value")
        j = g.skip_ws(text, j + 1)
        if j < n and text[j] == '"':
            value, j = g.parse_quoted(text, j)
            quoted = True
        else:
            k = j
            while k < n and text[k] not in " \t,":
                k += 1
            value = text[j:k]
            if not g.is_token(value):
                raise ParseError(f"invalid value for auth-param {name!r}")
            quoted = False
            j = k
        if name.lower() in seen:
            raise ParseError(f"duplicate auth-param {name!r}")
        seen.add(name.lower())
        out.items.append((name, value, quoted))
        j = g.skip_ws(text, j)
        if j < n:
            if text[j] != ",":
                raise ParseError(f"expected ',' between auth-params in {text!r}")
            j = g.skip_ws(text, j + 1)
            if j >= n:
                raise ParseError("trailing ',' in auth-params")
        i = j
    return out


class Credentials:
    """Base of the values of Authorization / Proxy-Authorization."""

    scheme: str


@dataclass(eq=False, slots=True)
class DigestCredentials(Credentials):
    params: AuthParams
    scheme: str = "Digest"

    @property
    def username(self) -> str | None:
        return self.params.get("username")

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def nonce(self) -> str | None:
        return self.params.get("nonce")

    @property
    def uri(self) -> str | None:
        return self.params.get("uri")

    @property
    def response(self) -> str | None:
        return self.params.get("response")

    @property
    def algorithm(self) -> str | None:
        return self.params.get("algorithm")

    @property
    def cnonce(self) -> str | None:
        return self.params.get("cnonce")

    @property
    def opaque(self) -> str | None:
        return self.params.get("opaque")

    @property
    def qop(self) -> str | None:
        return self.params.get("qop")

    @property
    def nc(self) -> str | None:
        return self.params.get("nc")

    @property
    def integrity_protected(self) -> str | None:
        """TS 24.229 §7.2A.1: yes, no, tls-pending, tls-yes, ip-assoc-*, auth-done."""
        return self.params.get("integrity-protected")

    @property
    def authorization_entity(self) -> str | None:
        """The WAF identity of TS 24.371 Table A.3.2-2."""
        return self.params.get("authorization-entity")

    def __str__(self) -> str:
        return f"Digest {self.params.render()}"


@dataclass(eq=False, slots=True)
class BearerCredentials(Credentials):
    """RFC 8898 Bearer credentials; ``legacy_form`` marks ``access_token="..."``."""

    token: str
    legacy_form: bool = False
    scheme: str = "Bearer"

    def __str__(self) -> str:
        if self.legacy_form:
            return f"Bearer access_token={g.quote(self.token)}"
        return f"Bearer {self.token}"

    def __repr__(self) -> str:
        shown = self.token if len(self.token) <= 12 else self.token[:8] + "..."
        return f"BearerCredentials({shown!r})"


@dataclass(eq=False, slots=True)
class OtherCredentials(Credentials):
    scheme: str
    text: str

    def __str__(self) -> str:
        return f"{self.scheme} {self.text}" if self.text else self.scheme


@dataclass(eq=False, slots=True)
class Challenge:
    """One challenge of WWW-Authenticate / Proxy-Authenticate."""

    scheme: str
    params: AuthParams = field(default_factory=AuthParams)

    def get(self, name: str) -> str | None:
        return self.params.get(name)

    def __str__(self) -> str:
        rendered = self.params.render()
        return f"{self.scheme} {rendered}" if rendered else self.scheme


def _split_scheme(value: str) -> tuple[str, str]:
    value = value.strip()
    i = 0
    n = len(value)
    while i < n and value[i] not in " \t":
        i += 1
    scheme = value[:i]
    if not g.is_token(scheme):
        raise ParseError(f"invalid auth scheme {scheme!r}")
    return scheme, value[i:].strip()


def _parse_common_auth_params(text: str) -> AuthParams | None:
    """:func:`_parse_auth_params` for the common shape (see ``_AUTH_PARAM``), one
    match per parameter; None when anything is unusual (the full scan decides)."""
    items: list[tuple[str, str, bool]] = []
    seen: set[str] = set()
    i = g.skip_ws(text, 0)
    n = len(text)
    match = _AUTH_PARAM.match
    while i < n:
        m = match(text, i)
        if m is None:
            return None
        name, quoted, token = m.groups()
        lname = name.lower()
        if lname in seen:
            return None
        seen.add(lname)
        items.append((name, quoted, True) if token is None else (name, token, False))
        i = m.end()
    return AuthParams(items)


def parse_credentials(value: str) -> Credentials:
    scheme, rest = _split_scheme(value)
    lscheme = scheme.lower()
    if lscheme == "digest":
        if not rest:
            raise ParseError("Digest credentials without parameters")
        return DigestCredentials(params=_parse_auth_params(rest))
    if lscheme == "bearer":
        if _TOKEN68.fullmatch(rest):
            return BearerCredentials(token=rest)
        params = _parse_auth_params(rest) if rest else AuthParams()
        token = params.get("access_token")
        if not token or len(params.items) != 1:
            raise ParseError("Bearer credentials need a token")
        return BearerCredentials(token=token, legacy_form=True)
    return OtherCredentials(scheme=scheme, text=rest)


def parse_challenge(value: str) -> Challenge:
    scheme, rest = _split_scheme(value)
    return Challenge(scheme=scheme, params=_parse_auth_params(rest) if rest else AuthParams())
