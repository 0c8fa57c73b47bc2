"""URIs: SIP and SIPS (RFC 3261 §19.1, IPv6 references per RFC 5118), tel
(RFC 3966), and any other absolute URI kept as text.

``parse_uri`` returns a :class:`SipURI`, :class:`TelURI` or :class:`AbsoluteURI`.
Escaped octets are kept as written (``user`` is the wire form); the
``*_unescaped`` accessors and :meth:`SipURI.equivalent` decode them, as the
comparison rules of §19.1.4 require.
"""

from __future__ import annotations

import ipaddress
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from . import grammar as g
from .errors import ParseError
from .params import Params

__all__ = ["URI", "AbsoluteURI", "SipURI", "TelURI", "parse_host", "parse_uri"]


def parse_host(text: str) -> str:
    """Validate a host (hostname / IPv4address / IPv6reference) and return it.

    IPv6 references keep their brackets; the address inside must be valid.
    """
    if text in _HOST_CACHE:
        return text
    if not text:
        raise ParseError("empty host")
    _validate_host(text)
    if len(_HOST_CACHE) < _HOST_CACHE_MAX:
        _HOST_CACHE[text] = None
    return text


# Hosts already validated (a proxy sees the same few over and over).
_HOST_CACHE: dict[str, None] = {}
_HOST_CACHE_MAX = 8192


def _validate_host(text: str) -> str:
    if text[0] == "[":
        if text[-1] != "]":
            raise ParseError(f"unterminated IPv6 reference {text!r}")
        _ipv6(text[1:-1])
        return text
    m = g.IPV4.fullmatch(text)
    if m is not None:
        if any(int(octet) > 255 for octet in m.groups()):
            raise ParseError(f"invalid IPv4 address {text!r}")
        return text
    if g.HOSTNAME.fullmatch(text) is None:
        raise ParseError(f"invalid host {text!r}")
    return text


def _ipv6(text: str) -> ipaddress.IPv6Address:
    """An IPv6 address; tolerates the ``:::`` form that the RFC 3261 ABNF
    (from RFC 2373) lets through before an IPv4 tail (RFC 5118 §4.10)."""
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        _, sep, tail = text.partition(":::")
        if sep and "." in tail and ":" not in tail:
            try:
                return ipaddress.IPv6Address(text.replace(":::", "::"))
            except ValueError:
                pass
        raise ParseError(f"invalid IPv6 reference [{text}]") from None


def split_hostport(text: str) -> tuple[str, int | None]:
    """hostport = host [ ":" port ]"""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ParseError(f"unterminated IPv6 reference in {text!r}")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ParseError(f"garbage after IPv6 reference in {text!r}")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_ = text.partition(":")
        port_text = port_text_ if colon else None
    port: int | None = None
    if port_text is not None:
        if g.PORT.fullmatch(port_text) is None or int(port_text) > 65535:
            raise ParseError(f"invalid port in {text!r}")
        port = int(port_text)
    return parse_host(host), port


class URI(ABC):
    """Base of every URI kind; ``str(uri)`` is its wire form."""

    __slots__ = ()

    scheme: str

    @abstractmethod
    def __str__(self) -> str:
        """The URI as written on the wire."""


@dataclass(eq=False, slots=True)
class SipURI(URI):
    """sip: or sips: URI.

    SIP-URI = "sip:" [ userinfo ] hostport uri-parameters [ headers ]
    """

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = field(default_factory=Params)
    headers: str | None = None
    scheme: str = "sip"

    @property
    def secure(self) -> bool:
        return self.scheme == "sips"

    @property
    def user_unescaped(self) -> str | None:
        return None if self.user is None else g.unescape(self.user)

    @property
    def transport(self) -> str | None:
        t = self.params.get("transport")
        return t.lower() if t else None

    @property
    def lr(self) -> bool:
        return "lr" in self.params

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def host_bare(self) -> str:
        """The host without IPv6 brackets, lower-cased (for sockets and lookups)."""
        h = self.host[1:-1] if self.host.startswith("[") else self.host
        return h.lower()

    def copy(self) -> SipURI:
        return SipURI(
            host=self.host,
            user=self.user,
            password=self.password,
            port=self.port,
            params=self.params.copy(),
            headers=self.headers,
            scheme=self.scheme,
        )

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts += [":", self.password]
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts += [":", str(self.port)]
        if self.params:
            parts.append(self.params.render())
        if self.headers is not None:
            parts += ["?", self.headers]
        return "".join(parts)

    def __repr__(self) -> str:
        return f"SipURI({str(self)!r})"

    def equivalent(self, other: URI) -> bool:
        """URI comparison per RFC 3261 §19.1.4."""
        if not isinstance(other, SipURI) or self.scheme != other.scheme:
            return False
        if self.user_unescaped != other.user_unescaped:
            return False
        if self.password != other.password:
            return False
        if _canonical_host(self.host) != _canonical_host(other.host) or self.port != other.port:
            return False
        mine = {n.lower(): v for n, v in self.params.items()}
        theirs = {n.lower(): v for n, v in other.params.items()}
        # user, ttl, method, maddr and transport must match when either has them.
        for special in ("user", "ttl", "method", "maddr", "transport"):
            a, b = mine.get(special), theirs.get(special)
            if (special in mine or special in theirs) and (
                a is None or b is None or a.lower() != b.lower()
            ):
                return False
        # Any other parameter present in both must match.
        for name in mine.keys() & theirs.keys():
            a, b = mine[name], theirs[name]
            if (a or "").lower() != (b or "").lower():
                return False
        return _canon_headers(self.headers) == _canon_headers(other.headers)


def _canonical_host(host: str) -> str:
    if host.startswith("["):
        return "[" + _ipv6(host[1:-1]).compressed + "]"
    return host.lower().rstrip(".")


def _canon_headers(headers: str | None) -> set[tuple[str, str]]:
    if not headers:
        return set()
    out = set()
    for item in headers.split("&"):
        name, _, value = item.partition("=")
        out.add((g.unescape(name).lower(), g.unescape(value)))
    return out


@dataclass(eq=False, slots=True)
class TelURI(URI):
    """tel: URI (RFC 3966): a global (+...) or local number with parameters."""

    number: str
    params: Params = field(default_factory=Params)
    scheme: str = "tel"

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    @property
    def digits(self) -> str:
        """The number without visual separators (``-``, ``.``, ``(``, ``)``)."""
        return "".join(c for c in self.number if c not in "-.()")

    def __str__(self) -> str:
        return f"tel:{self.number}{self.params.render()}"

    def __repr__(self) -> str:
        return f"TelURI({str(self)!r})"


@dataclass(eq=False, slots=True)
class AbsoluteURI(URI):
    """Any other absolute URI (``mailto:``, ``urn:``, ``http:`` ...), kept as text."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"

    def __repr__(self) -> str:
        return f"AbsoluteURI({str(self)!r})"


_TEL_GLOBAL_CHARS = frozenset("0123456789-.()")
_TEL_LOCAL_CHARS = frozenset("0123456789ABCDEFabcdef*#-.()")


def _parse_tel(rest: str) -> TelURI:
    number, semi, params_text = rest.partition(";")
    params = Params.parse(params_text) if semi else Params()
    if number.startswith("+"):
        body = number[1:]
        if not body or not set(body) <= _TEL_GLOBAL_CHARS or not any(c.isdigit() for c in body):
            raise ParseError(f"invalid global number in tel URI {rest!r}")
    else:
        if not number or not set(number) <= _TEL_LOCAL_CHARS:
            raise ParseError(f"invalid local number in tel URI {rest!r}")
        if "phone-context" not in params:
            raise ParseError("a local tel number needs phone-context")
    return TelURI(number=number, params=params)


# The common shape of a SIP URI after its scheme: a plain user part,
# host[:port], and simple parameters (four groups); everything it does not
# match goes through the general parser.  None of its characters is one of
# _NOT_IN_URI.  address.py puts it between <sip: and >.
FAST_SIP_PATTERN = (
    r"(?:([A-Za-z0-9\-_.!~*'()&=+$,]+)@)?"
    r"([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])"
    r"(?::([0-9]{1,5}))?"
    r"((?:;[A-Za-z0-9\-_.!~*'()\[\]/:&+$]+(?:=[A-Za-z0-9\-_.!~*'()\[\]/:&+$]+)?)*)"
)
_FAST_SIP = re.compile(FAST_SIP_PATTERN)


def fast_sip_uri(
    scheme: str, user: str | None, host: str, port_text: str | None, params_text: str
) -> SipURI | None:
    """The URI of a :data:`FAST_SIP_PATTERN` match, or None when its port is
    out of range (the general parser then gives the error)."""
    port = None
    if port_text:
        port = int(port_text)
        if port > 65535:
            return None
    params = Params.from_matched(params_text) if params_text else Params()
    return SipURI(parse_host(host), user, None, port, params, None, scheme)


def _parse_sip(scheme: str, rest: str) -> SipURI:
    m = _FAST_SIP.fullmatch(rest)
    if m is not None:
        uri = fast_sip_uri(scheme, *m.groups())
        if uri is not None:
            return uri
        raise ParseError(f"invalid port in {rest!r}")
    return _parse_sip_general(scheme, rest)


def _parse_sip_general(scheme: str, rest: str) -> SipURI:
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user_part, colon, pw = userinfo.partition(":")
        if g.USER.fullmatch(user_part) is None:
            raise ParseError(f"invalid user part {user_part!r}")
        user = user_part
        if colon:
            if g.PASSWORD.fullmatch(pw) is None:
                raise ParseError("invalid password in SIP URI")
            password = pw
    # hostport ends at the first ';' (parameters) or '?' (headers).
    end = len(rest)
    for sep in ";?":
        k = rest.find(sep)
        if 0 <= k < end:
            end = k
    host, port = split_hostport(rest[:end])
    rest = rest[end:]
    headers: str | None = None
    qmark = rest.find("?")
    if qmark >= 0:
        headers = rest[qmark + 1 :]
        rest = rest[:qmark]
        for item in headers.split("&"):
            hname, eq, hvalue = item.partition("=")
            if not eq or g.HNAME.fullmatch(hname) is None or g.HVALUE.fullmatch(hvalue) is None:
                raise ParseError(f"invalid URI header {item!r}")
    params = Params()
    if rest:
        # rest starts with ';'
        items = []
        for piece in rest[1:].split(";"):
            name, eq, value = piece.partition("=")
            if g.PARAMCHARS.fullmatch(name) is None or (
                eq and g.PARAMCHARS.fullmatch(value) is None
            ):
                raise ParseError(f"invalid URI parameter {piece!r}")
            items.append((name, value if eq else None, False))
        params = Params(items)
    return SipURI(
        host=host,
        user=user,
        password=password,
        port=port,
        params=params,
        headers=headers,
        scheme=scheme,
    )


# Characters a SIP or tel URI never contains unescaped (RFC 3261 §25.1).
_NOT_IN_URI = re.compile(r'[ \t\r\n<>"]')


def parse_uri(text: str) -> URI:
    """Parse any absolute URI.  Raises :class:`ParseError` on bad syntax."""
    if text[:4] == "sip:":
        # The common case first: what _FAST_SIP matches passes the checks below.
        m = _FAST_SIP.fullmatch(text, 4)
        if m is not None:
            uri = fast_sip_uri("sip", *m.groups())
            if uri is not None:
                return uri
    scheme, colon, rest = text.partition(":")
    if not colon or g.SCHEME.fullmatch(scheme) is None:
        raise ParseError(f"not an absolute URI: {text!r}")
    lscheme = scheme.lower()
    if lscheme in ("sip", "sips", "tel") and _NOT_IN_URI.search(text) is not None:
        raise ParseError(f"invalid character in URI {text!r}")
    if lscheme in ("sip", "sips"):
        return _parse_sip(lscheme, rest)
    if lscheme == "tel":
        return _parse_tel(rest)
    if not rest or any(c in rest for c in " \t\r\n<>"):
        raise ParseError(f"invalid URI {text!r}")
    return AbsoluteURI(scheme=lscheme, rest=rest)
