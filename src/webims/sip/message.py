"""SIP requests and responses (RFC 3261 §7), parsed from and serialised to bytes.

:func:`parse_message` does only what every element needs before it can decide
anything: the start line, the header fields (unfolded, names checked, values
kept raw), and the body as delimited by Content-Length.  Typed header values
(``msg.vias``, ``msg.cseq``, ``msg.contacts`` ...) are parsed when first read
and cached until the header they come from changes: a proxy that adds its Via
and pops a Route keeps the parsed From, To, Contact... of the request, and so
does the copy it makes per branch.  A message that has not been changed
serialises to exactly the bytes it was parsed from.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from . import grammar as g
from .address import Address, address_tag, fast_address, parse_address, parse_address_list
from .auth import Challenge, Credentials, parse_challenge, parse_credentials
from .errors import BodyTooLarge, MessageTooLarge, ParseError
from .headers import _KEY_CACHE, Headers, header_key
from .params import Params
from .uri import URI, parse_uri
from .via import Via, parse_via, parse_via_list

__all__ = [
    "DEFAULT_LIMITS",
    "CSeq",
    "Limits",
    "Message",
    "Request",
    "Response",
    "parse_message",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Limits:
    """Security limits for parsing; each breach raises the matching error."""

    #: Whole message, start line + headers + body (513 beyond).
    max_message_size: int = 65_535
    #: The header section alone (513 beyond).
    max_header_size: int = 32_768
    #: One header line after unfolding (513 beyond).
    max_line_length: int = 8_192
    #: Number of header fields (513 beyond).
    max_headers: int = 256
    #: Body size announced by Content-Length (413 beyond).
    max_body_size: int = 65_535


DEFAULT_LIMITS = Limits()


class CSeq(NamedTuple):
    """CSeq = 1*DIGIT LWS Method"""

    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


# The usual CSeq: what the checks below take, and nothing else.
_SIMPLE_CSEQ = re.compile(r"([0-9]{1,9}) ([A-Za-z]+)")


def parse_cseq(value: str) -> CSeq:
    m = _SIMPLE_CSEQ.fullmatch(value)
    if m is not None:
        return CSeq(int(m.group(1)), m.group(2))
    parts = value.split()
    if len(parts) != 2 or not g.is_digits(parts[0]) or not g.is_token(parts[1]):
        raise ParseError(f"invalid CSeq {value!r}")
    seq = int(parts[0])
    if seq >= 2**32:
        raise ParseError("CSeq number exceeds 32 bits")
    return CSeq(seq, parts[1])


def _parse_int(value: str, what: str, maximum: int = 2**32 - 1) -> int:
    v = value.strip()
    if not v.isdigit() or not v.isascii():
        raise ParseError(f"invalid {what} {value!r}")
    n = int(v)
    if n > maximum:
        raise ParseError(f"{what} out of range: {value!r}")
    return n


def _parse_tokens(values: list[str]) -> list[str]:
    for v in values:
        if not g.is_token(v):
            raise ParseError(f"invalid option tag {v!r}")
    return values


class Message(ABC):
    """What requests and responses share: headers, body and typed accessors."""

    __slots__ = ("_cache", "_wire", "_wire_version", "body", "headers", "version")

    def __init__(self, headers: Headers, body: bytes = b"", version: str = "SIP/2.0") -> None:
        self.headers = headers
        self.body = body
        self.version = version
        #: Parsed values: slot -> (stamp of the header parsed, value); see _cached.
        self._cache: dict[str, tuple[int, Any]] = {}
        self._wire: bytes | None = None
        self._wire_version = -1

    # -- typed access ------------------------------------------------------
    # The hot accessors look their cache entry up themselves (the first
    # lines of _cached, inlined); the others go through _cached.

    def _cached(self, key: str, build: Callable[[], T], slot: str | None = None) -> T:
        """The value ``build`` parses from the header with lookup key ``key``,
        parsed again only when that header has changed since (``slot`` names
        the cache entry when one header gives several values)."""
        slot = slot or key
        stamp = self.headers.changed.get(key, 0)  # Headers.stamp(key), inlined
        entry = self._cache.get(slot)
        if entry is not None and entry[0] == stamp:
            return entry[1]  # type: ignore[no-any-return]
        value = build()
        self._cache[slot] = (stamp, value)
        return value

    def _store(self, slot: str, key: str, value: T) -> T:
        """Cache ``value``, parsed from the header ``key`` as it is now."""
        self._cache[slot] = (self.headers.changed.get(key, 0), value)
        return value

    def _single(self, name: str, key: str | None = None) -> str:
        values = self.headers._lookup().get(key or header_key(name))
        if not values:
            raise ParseError(f"missing {name} header")
        if len(values) > 1:
            raise ParseError(f"more than one {name} header")
        return values[0]

    @property
    def call_id(self) -> str:
        entry = self._cache.get("call-id")
        if entry is not None and entry[0] == self.headers.changed.get("call-id", 0):
            return entry[1]  # type: ignore[no-any-return]
        value = self._single("Call-ID", "call-id")
        # callid = word [ "@" word ]; words are non-empty, no whitespace.
        if not value or " " in value or "\t" in value:
            raise ParseError(f"invalid Call-ID {value!r}")
        return self._store("call-id", "call-id", value)

    @property
    def cseq(self) -> CSeq:
        entry = self._cache.get("cseq")
        if entry is not None and entry[0] == self.headers.changed.get("cseq", 0):
            return entry[1]  # type: ignore[no-any-return]
        return self._store("cseq", "cseq", parse_cseq(self._single("CSeq", "cseq")))

    @property
    def from_(self) -> Address:
        entry = self._cache.get("from")
        if entry is not None and entry[0] == self.headers.changed.get("from", 0):
            return entry[1]  # type: ignore[no-any-return]
        return self._store("from", "from", parse_address(self._single("From", "from")))

    @property
    def to(self) -> Address:
        entry = self._cache.get("to")
        if entry is not None and entry[0] == self.headers.changed.get("to", 0):
            return entry[1]  # type: ignore[no-any-return]
        return self._store("to", "to", parse_address(self._single("To", "to")))

    @property
    def from_tag(self) -> str | None:
        """The From tag; checks the From syntax without building the Address."""
        return self._tag("from", "From", "from-tag")

    @property
    def to_tag(self) -> str | None:
        """The To tag; checks the To syntax without building the Address."""
        return self._tag("to", "To", "to-tag")

    def _tag(self, key: str, name: str, slot: str) -> str | None:
        stamp = self.headers.changed.get(key, 0)
        cache = self._cache
        entry = cache.get(key)
        if entry is not None and entry[0] == stamp:
            return entry[1].params.get("tag")  # type: ignore[no-any-return]
        entry = cache.get(slot)
        if entry is not None and entry[0] == stamp:
            return entry[1]  # type: ignore[no-any-return]
        value = self._single(name, key)
        address = fast_address(value)
        if address is not None:
            # As cheap as address_tag for the usual form, and the Address is
            # what the next reader of From or To wants.
            cache[key] = (stamp, address)
            return address.params.get("tag")
        tag = address_tag(value)
        cache[slot] = (stamp, tag)
        return tag

    @property
    def vias(self) -> list[Via]:
        entry = self._cache.get("via")
        if entry is not None and entry[0] == self.headers.changed.get("via", 0):
            return entry[1]  # type: ignore[no-any-return]
        return self._store("via", "via", parse_via_list_all(self.headers._lookup().get("via", ())))

    @property
    def top_via(self) -> Via:
        entry = self._cache.get("top-via")
        if entry is not None and entry[0] == self.headers.changed.get("via", 0):
            return entry[1]  # type: ignore[no-any-return]
        values = self.headers._lookup().get("via")
        if values is None:
            raise ParseError("missing Via header")
        first = values[0]
        if "," in first:
            parts = g.split_list(first)
            if not parts:
                raise ParseError("empty Via header")
            first = parts[0]
        else:  # g.split_list, inlined
            first = first.strip()
            if not first:
                raise ParseError("empty Via header")
        return self._store("top-via", "via", parse_via(first))

    def replace_top_via(self, via: Via) -> None:
        """Rewrite the top Via (e.g. to add ``received``), keeping it parsed."""
        self.headers.replace_first_value("Via", str(via))
        self._store("top-via", "via", via)

    @property
    def max_forwards(self) -> int | None:
        entry = self._cache.get("max-forwards")
        if entry is not None and entry[0] == self.headers.changed.get("max-forwards", 0):
            return entry[1]  # type: ignore[no-any-return]
        values = self.headers._lookup().get("max-forwards")
        if values is None:
            value = None
        elif len(values) > 1:
            raise ParseError("more than one Max-Forwards header")
        else:
            value = _parse_int(values[0], "Max-Forwards", 255)
        return self._store("max-forwards", "max-forwards", value)

    @property
    def contact_star(self) -> bool:
        """True for ``Contact: *`` (REGISTER removing every binding)."""
        values = self.headers._lookup().get("contact")
        return values is not None and len(values) == 1 and values[0].strip() == "*"

    @property
    def contacts(self) -> list[Address]:
        entry = self._cache.get("contact")
        if entry is not None and entry[0] == self.headers.changed.get("contact", 0):
            return entry[1]  # type: ignore[no-any-return]
        out: list[Address] = []
        if not self.contact_star:
            for v in self.headers._lookup().get("contact", ()):
                if v.strip() == "*":
                    raise ParseError("Contact '*' mixed with other contacts")
                out.extend(parse_address_list(v))
        return self._store("contact", "contact", out)

    def _address_list(self, name: str, key: str | None = None) -> list[Address]:
        key = key or header_key(name)
        entry = self._cache.get(key)
        if entry is not None and entry[0] == self.headers.changed.get(key, 0):
            return entry[1]  # type: ignore[no-any-return]
        out = [a for v in self.headers._lookup().get(key, ()) for a in parse_address_list(v)]
        return self._store(key, key, out)

    @property
    def routes(self) -> list[Address]:
        return self._address_list("Route", "route")

    @property
    def record_routes(self) -> list[Address]:
        return self._address_list("Record-Route", "record-route")

    @property
    def paths(self) -> list[Address]:
        return self._address_list("Path", "path")

    @property
    def service_routes(self) -> list[Address]:
        return self._address_list("Service-Route", "service-route")

    @property
    def p_asserted_identity(self) -> list[Address]:
        return self._address_list("P-Asserted-Identity", "p-asserted-identity")

    @property
    def p_preferred_identity(self) -> list[Address]:
        return self._address_list("P-Preferred-Identity", "p-preferred-identity")

    @property
    def p_associated_uri(self) -> list[Address]:
        return self._address_list("P-Associated-URI", "p-associated-uri")

    @property
    def p_visited_network_id(self) -> list[str]:
        """P-Visited-Network-ID values (token or quoted-string), parameters dropped."""

        def build() -> list[str]:
            out = []
            for item in self.headers.values("P-Visited-Network-ID"):
                if item.startswith('"'):
                    text, end = g.parse_quoted(item, 0)
                    rest = item[end:].strip()
                else:
                    text, _, rest = item.partition(";")
                    text = text.strip()
                    rest = ";" + rest if rest else ""
                    if not g.is_token(text):
                        raise ParseError(f"invalid P-Visited-Network-ID {item!r}")
                if rest and not rest.startswith(";"):
                    raise ParseError(f"invalid P-Visited-Network-ID {item!r}")
                if rest:
                    Params.parse(rest[1:])
                out.append(text)
            return out

        return self._cached("p-visited-network-id", build)

    @property
    def p_charging_vector(self) -> Params | None:
        """P-Charging-Vector as parameters (``icid-value``, ``orig-ioi`` ...)."""

        def build() -> Params | None:
            value = self.headers.get("P-Charging-Vector")
            if value is None:
                return None
            params = Params.parse(value.strip())
            if params.get("icid-value") is None:
                raise ParseError("P-Charging-Vector without icid-value")
            return params

        return self._cached("p-charging-vector", build)

    @property
    def expires(self) -> int | None:
        def build() -> int | None:
            value = self.headers.get("Expires")
            return None if value is None else _parse_int(value, "Expires")

        return self._cached("expires", build)

    @property
    def min_expires(self) -> int | None:
        value = self.headers.get("Min-Expires")
        return None if value is None else _parse_int(value, "Min-Expires")

    @property
    def content_length(self) -> int | None:
        def build() -> int | None:
            values = self.headers.get_all("Content-Length")
            if not values:
                return None
            numbers = {_parse_int(v, "Content-Length") for v in values}
            if len(numbers) != 1:
                raise ParseError("conflicting Content-Length headers")
            return numbers.pop()

        return self._cached("content-length", build)

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        return None if value is None else value.split(";", 1)[0].strip().lower()

    def option_tags(self, name: str) -> list[str]:
        """Require / Proxy-Require / Supported / Unsupported as lower-case tags."""
        key = header_key(name)
        return self._option_tags(key, "tags:" + key)

    def _option_tags(self, key: str, slot: str) -> list[str]:
        entry = self._cache.get(slot)
        if entry is not None and entry[0] == self.headers.changed.get(key, 0):
            return entry[1]  # type: ignore[no-any-return]
        tags: list[str] = []
        for value in self.headers._lookup().get(key, ()):
            tags.extend(g.split_list(value))
        return self._store(slot, key, [t.lower() for t in _parse_tokens(tags)])

    @property
    def require(self) -> list[str]:
        return self._option_tags("require", "tags:require")

    @property
    def proxy_require(self) -> list[str]:
        return self._option_tags("proxy-require", "tags:proxy-require")

    @property
    def supported(self) -> list[str]:
        return self._option_tags("supported", "tags:supported")

    def _credentials(self, name: str) -> list[Credentials]:
        return self._cached(
            header_key(name), lambda: [parse_credentials(v) for v in self.headers.get_all(name)]
        )

    @property
    def authorization(self) -> list[Credentials]:
        return self._credentials("Authorization")

    @property
    def proxy_authorization(self) -> list[Credentials]:
        return self._credentials("Proxy-Authorization")

    def _challenges(self, name: str) -> list[Challenge]:
        return self._cached(
            header_key(name), lambda: [parse_challenge(v) for v in self.headers.get_all(name)]
        )

    @property
    def www_authenticate(self) -> list[Challenge]:
        return self._challenges("WWW-Authenticate")

    @property
    def proxy_authenticate(self) -> list[Challenge]:
        return self._challenges("Proxy-Authenticate")

    # -- wire --------------------------------------------------------------
    @abstractmethod
    def start_line(self) -> str:
        """The Request-Line or Status-Line, without CRLF."""

    def set_body(self, body: bytes, content_type: str | None = None) -> None:
        """Replace the body and keep Content-Length (and Content-Type) in step."""
        self.body = body
        self.headers.set("Content-Length", str(len(body)))
        if content_type is not None:
            self.headers.set("Content-Type", content_type)
        elif not body:
            self.headers.remove("Content-Type")

    def serialize(self) -> bytes:
        """The message on the wire.  Unchanged parsed messages keep their bytes."""
        if self._wire is not None and self._wire_version == self.headers.version:
            return self._wire
        length = str(len(self.body))
        if self.headers._first("content-length") != length:
            self.headers.set("Content-Length", length)
        head = self.start_line() + "\r\n" + self.headers.render() + "\r\n\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body

    __bytes__ = serialize


class Request(Message):
    """Request-Line = Method SP Request-URI SP SIP-Version CRLF"""

    __slots__ = ("_uri", "method", "uri_text")

    def __init__(
        self,
        method: str,
        uri: URI | str,
        headers: Headers | None = None,
        body: bytes = b"",
        version: str = "SIP/2.0",
    ) -> None:
        super().__init__(headers if headers is not None else Headers(), body, version)
        self.method = method
        if isinstance(uri, str):
            self.uri_text = uri
            self._uri: URI | None = None
        else:
            self.uri_text = str(uri)
            self._uri = uri

    @property
    def uri(self) -> URI:
        """The Request-URI, parsed on first use."""
        if self._uri is None:
            self._uri = parse_uri(self.uri_text)
        return self._uri

    @uri.setter
    def uri(self, value: URI) -> None:
        self._uri = value
        self.uri_text = str(value)
        self._wire = None

    def skeleton(self) -> Request:
        """The request line alone, with no headers and no body.

        What a finished transaction keeps of its request while it waits out
        its last timer (the matching key is kept apart).
        """
        return Request(self.method, self.uri_text, Headers(), b"", self.version)

    def copy(self) -> Request:
        """A copy to change and send on (a proxy's copy per target, §16.6 step 1).

        The header list is copied; the parsed Request-URI and header values
        are shared, as they are replaced, never changed in place, by the code
        that forwards.
        """
        new = Request(self.method, self.uri_text, self.headers.copy(), self.body, self.version)
        new._uri = self._uri
        # The copied headers keep their change stamps, so what was parsed
        # stays valid in the copy until the copy changes that header.
        new._cache = dict(self._cache)
        return new

    def start_line(self) -> str:
        return f"{self.method} {self.uri_text} {self.version}"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri_text}>"


class Response(Message):
    """Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF"""

    __slots__ = ("reason", "status")

    def __init__(
        self,
        status: int,
        reason: str = "",
        headers: Headers | None = None,
        body: bytes = b"",
        version: str = "SIP/2.0",
    ) -> None:
        super().__init__(headers if headers is not None else Headers(), body, version)
        if not 100 <= status <= 699:
            raise ValueError(f"status {status} out of range")
        self.status = status
        self.reason = reason

    @property
    def is_provisional(self) -> bool:
        return self.status < 200

    @property
    def is_final(self) -> bool:
        return self.status >= 200

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


def parse_via_list_all(values: Iterable[str]) -> list[Via]:
    out: list[Via] = []
    for v in values:
        out.extend(parse_via_list(v))
    return out


def _too_large(what: str) -> MessageTooLarge:
    return MessageTooLarge(f"{what} exceeds the configured limit")


# Methods known to be tokens (the others are checked).
_METHODS = frozenset(
    {"ACK", "BYE", "CANCEL", "INFO", "INVITE", "MESSAGE", "NOTIFY", "OPTIONS", "PRACK"}
    | {"PUBLISH", "REFER", "REGISTER", "SUBSCRIBE", "UPDATE"}
)

# A header line continued on the next one (LWS folding).
_FOLD = re.compile("\r\n[ \t]")


def parse_message(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Request | Response:
    """Parse one SIP message from ``data`` (a datagram or a framed stream message).

    Leading CRLFs are skipped (RFC 3261 §7.5).  The body is the bytes after the
    header section, cut to Content-Length when that is present; a datagram
    shorter than its Content-Length is an error (§18.3).
    """
    if len(data) > limits.max_message_size:
        raise _too_large("message size")
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        raise ParseError("no empty line after the header section")
    if end - start > limits.max_header_size:
        raise _too_large("header section")
    raw = data[start:end]
    try:
        head = raw.decode("utf-8")
    except UnicodeDecodeError:
        head = raw.decode("utf-8", "surrogateescape")
    lines = head.split("\r\n")
    crlfs = len(lines) - 1
    if head.count("\r") != crlfs or head.count("\n") != crlfs:
        raise ParseError("bare CR or LF in the header section")
    first = lines[0]
    max_line = limits.max_line_length
    if len(head) > max_line and max(map(len, lines)) > max_line:
        raise _too_large("header line")

    fields: list[tuple[str, str, str, str | None]] = []
    append = fields.append
    cached_key = _KEY_CACHE.get
    folded = _FOLD.search(head) is not None
    content_length: str | None = None
    for line in lines[1:]:
        if folded and line[:1] in (" ", "\t"):
            # LWS folding: the line continues the previous field.
            if not fields:
                raise ParseError("continuation line before the first header")
            key, name, value, rawline = fields[-1]
            value = (value + " " + line.strip(" \t")).strip(" \t")
            if len(value) > max_line:
                raise _too_large("header line")
            fields[-1] = (key, name, value, f"{rawline}\r\n{line}")
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ParseError(f"header line without a colon: {line[:40]!r}")
        known = cached_key(name)
        if known is None:
            name = name.rstrip(" \t")
            known = header_key(name)
        value = value.strip(" \t")
        append((known, name, value, line))
        if known == "content-length" and not folded:
            if content_length is not None and content_length != value:
                raise ParseError("conflicting Content-Length headers")
            content_length = value
    if len(fields) > limits.max_headers:
        raise _too_large("header count")
    if folded:
        # Content-Length is read once every field is complete (it may be folded).
        for key, _, value, _ in fields:
            if key == "content-length":
                if content_length is not None and content_length != value:
                    raise ParseError("conflicting Content-Length headers")
                content_length = value

    body = data[end + 4 :]
    if content_length is not None:
        n = 0 if content_length == "0" else _parse_int(content_length, "Content-Length")
        if n > limits.max_body_size:
            raise BodyTooLarge(f"Content-Length {n} exceeds {limits.max_body_size}")
        if n > len(body):
            raise ParseError(f"Content-Length {n} but only {len(body)} body bytes")
        if n < len(body):
            body = body[:n]
    elif len(body) > limits.max_body_size:
        raise BodyTooLarge("body exceeds the configured limit")

    headers = Headers(fields)
    msg: Request | Response
    if first.startswith("SIP/"):
        parts = first.split(" ", 2)
        if len(parts) < 2:
            raise ParseError(f"invalid status line {first!r}")
        version, code = parts[0], parts[1]
        if version != "SIP/2.0" and g.SIP_VERSION.fullmatch(version) is None:
            raise ParseError(f"invalid SIP version {version!r}")
        if len(code) != 3 or not code.isdigit() or not code.isascii() or code[0] not in "123456":
            raise ParseError(f"invalid status code {code!r}")
        msg = Response(int(code), parts[2] if len(parts) == 3 else "", headers, body, version)
    else:
        parts = first.split(" ")
        if len(parts) != 3 or not all(parts):
            raise ParseError(f"invalid request line {first!r}")
        method, uri_text, version = parts
        if method not in _METHODS and g.METHOD.fullmatch(method) is None:
            raise ParseError(f"invalid method {method!r}")
        if version != "SIP/2.0" and g.SIP_VERSION.fullmatch(version) is None:
            raise ParseError(f"invalid SIP version {version!r}")
        if g.SCHEME.match(uri_text) is None or ":" not in uri_text:
            raise ParseError(f"invalid Request-URI {uri_text!r}")
        msg = Request(method, uri_text, headers, body, version)
    if start == 0 and (content_length is None or end + 4 + len(body) == len(data)):
        msg._wire = data
        msg._wire_version = headers.version
    return msg
