"""name-addr / addr-spec values: From, To, Contact, Route, Record-Route, Path,
Service-Route, P-Asserted-Identity, P-Preferred-Identity, P-Associated-URI...

    name-addr = [ display-name ] LAQUOT addr-spec RAQUOT
    display-name = *(token LWS)/ quoted-string
    contact-param = (name-addr / addr-spec) *(SEMI contact-params)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import grammar as g
from .errors import ParseError
from .params import Params
from .uri import FAST_SIP_PATTERN, URI, SipURI, fast_sip_uri, parse_host, parse_uri

__all__ = ["Address", "address_tag", "parse_address", "parse_address_list"]


@dataclass(eq=False, slots=True)
class Address:
    """A URI with an optional display name and header parameters (``tag``, ``expires``...)."""

    uri: URI
    display_name: str | None = None
    params: Params = field(default_factory=Params)
    #: True when the wire form used ``<...>`` (always rendered with them anyway).
    angle: bool = True

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @property
    def sip_uri(self) -> SipURI:
        """The URI as a SIP URI, or :class:`ParseError` for other schemes."""
        if not isinstance(self.uri, SipURI):
            raise ParseError(f"expected a SIP URI, got {self.uri}")
        return self.uri

    def __str__(self) -> str:
        out = f"<{self.uri}>"
        if self.display_name is not None:
            name = self.display_name
            out = (f"{name} " if name and g.is_token(name) else f"{g.quote(name)} ") + out
        return out + self.params.render()

    def __repr__(self) -> str:
        return f"Address({str(self)!r})"


# ``<sip:...>`` around a URI of the common shape (see uri.FAST_SIP_PATTERN):
# the usual Route, Path, Contact, From and To.  The first '>' closes it.
_FAST_ANGLE = re.compile(r"<(sips?):" + FAST_SIP_PATTERN + ">")


def parse_address(text: str, *, allow_params: bool = True) -> Address:
    """Parse one name-addr or addr-spec followed by ``;params``."""
    text = text.strip()
    if not text:
        raise ParseError("empty address")
    if text[0] == "<":
        fast = _fast_address(text, allow_params)
        if fast is not None:
            return fast
    display: str | None = None
    i = 0
    if text[0] == '"':
        display, i = g.parse_quoted(text, 0)
        i = g.skip_ws(text, i)
        if i >= len(text) or text[i] != "<":
            raise ParseError("quoted display name must be followed by <uri>")
    lt = text.find("<", i)
    if lt >= 0:
        if display is None:
            name = text[:lt].strip()
            if name:
                # display-name = *(token LWS): each word must be a token.
                if any(not g.is_token(w) for w in name.split()):
                    raise ParseError(f"invalid display name {name!r}")
                display = " ".join(name.split())
        gt = text.find(">", lt)
        if gt < 0:
            raise ParseError("missing '>' in address")
        uri = parse_uri(text[lt + 1 : gt])
        rest = text[gt + 1 :].lstrip()
        angle = True
    else:
        # addr-spec: the URI ends at the first ';' (header parameters follow) and
        # may not contain whitespace.
        semi = text.find(";")
        uri_text = text if semi < 0 else text[:semi]
        uri_text = uri_text.rstrip()
        # §20: a URI with a comma, question mark or semicolon needs <...>.
        if not uri_text or any(c in uri_text for c in " \t,?"):
            raise ParseError(f"invalid addr-spec {text!r}")
        uri = parse_uri(uri_text)
        rest = "" if semi < 0 else text[semi:]
        angle = False
    return Address(uri, display, _address_params(rest, allow_params), angle)


def fast_address(value: str) -> Address | None:
    """``parse_address(value)`` when ``value`` is ``<sip:...>`` of the common
    shape (raising what parse_address raises); None for any other form."""
    text = value.strip()
    return _fast_address(text, True) if text[:1] == "<" else None


def _fast_address(text: str, allow_params: bool) -> Address | None:
    m = _FAST_ANGLE.match(text)
    if m is None:
        return None
    uri = fast_sip_uri(*m.groups())
    if uri is None:
        return None  # port out of range: the general parser says so
    return Address(uri, None, _address_params(text[m.end() :], allow_params), True)


def _address_params(rest: str, allow_params: bool) -> Params:
    """The header parameters in what follows the URI (or its '>')."""
    if not rest:
        return Params()
    if rest[0] != ";":
        rest = rest.lstrip()
        if not rest:
            return Params()
    if rest[0] != ";" or not allow_params:
        raise ParseError(f"unexpected text after address: {rest!r}")
    return Params.parse(rest[1:])


def parse_address_list(value: str) -> list[Address]:
    return [parse_address(part) for part in g.split_list(value)]


# The common shape of a From or To value: an optional token or quoted display
# name, a plain SIP URI in <...>, and simple parameters.  It lets a proxy
# check the syntax and read the tag without building the objects; anything
# else goes through parse_address.
_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_SIMPLE_NAME_ADDR = re.compile(
    rf'(?:"(?:[^"\\\r\n]|\\[^\r\n])*" *|{_TOKEN}(?: +{_TOKEN})* *)?'
    r"<sips?:(?:[A-Za-z0-9\-_.!~*'()&=+$,]+@)?"
    r"([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?"
    r"(?:;[A-Za-z0-9\-_.!~*'()\[\]/:&+$]+(?:=[A-Za-z0-9\-_.!~*'()\[\]/:&+$]+)?)*>"
    rf"((?: *; *{_TOKEN}(?: *= *[A-Za-z0-9\-.!%*_+`'~:\[\]]+)?)*)",
    re.IGNORECASE,
)
_TAG = re.compile(r";\s*tag\s*=\s*([^;\s]+)", re.IGNORECASE)
_TAG_NAME = re.compile(r";\s*tag\b", re.IGNORECASE)


def address_tag(value: str) -> str | None:
    """The ``tag`` of a From/To value, checking its syntax as parse_address does.

    Raises :class:`ParseError` on bad syntax.
    """
    text = value.strip()
    m = _SIMPLE_NAME_ADDR.fullmatch(text)
    if m is None:
        return parse_address(text).tag
    host, port, params = m.groups()
    parse_host(host)
    if port is not None and int(port) > 65535:
        raise ParseError(f"invalid port in {text!r}")
    if not params:
        return None
    if len(_TAG_NAME.findall(params)) != 1:
        return parse_address(text).tag  # none, a flag, or several: the full parser decides
    t = _TAG.search(params)
    return t.group(1) if t else None
