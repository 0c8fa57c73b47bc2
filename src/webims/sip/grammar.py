"""RFC 3261 §25 grammar, as regular expressions and small scanners.

Each expression quotes the ABNF it implements.  The scanners here work on
header *values* that have already been unfolded (line folding replaced by a
single space) and stripped of leading and trailing whitespace.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .errors import ParseError

# alphanum = ALPHA / DIGIT
# mark = "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")"
# unreserved = alphanum / mark
_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"
# escaped = "%" HEXDIG HEXDIG
_ESCAPED = r"%[0-9A-Fa-f]{2}"

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" )
TOKEN_CHARS = r"A-Za-z0-9\-.!%*_+`'~"
TOKEN = re.compile(rf"[{TOKEN_CHARS}]+")

# Method = INVITEm / ACKm / ... / extension-method;  extension-method = token
METHOD = TOKEN

# user = 1*( unreserved / escaped / user-unreserved )
# user-unreserved = "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
USER = re.compile(rf"(?:[{_UNRESERVED}&=+$,;?/]|{_ESCAPED})+")
# password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
PASSWORD = re.compile(rf"(?:[{_UNRESERVED}&=+$,]|{_ESCAPED})*")

# hostname = *( domainlabel "." ) toplabel [ "." ]
# domainlabel = alphanum / alphanum *( alphanum / "-" ) alphanum
# toplabel = ALPHA / ALPHA *( alphanum / "-" ) alphanum
HOSTNAME = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)*"
    r"[A-Za-z](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.?"
)
# IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT
IPV4 = re.compile(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})")
# port = 1*DIGIT
PORT = re.compile(r"[0-9]+")

# paramchar = param-unreserved / unreserved / escaped
# param-unreserved = "[" / "]" / "/" / ":" / "&" / "+" / "$"
PARAMCHARS = re.compile(rf"(?:[{_UNRESERVED}\[\]/:&+$]|{_ESCAPED})+")
# hname = 1*( hnv-unreserved / unreserved / escaped ); hvalue = *( ... )
# hnv-unreserved = "[" / "]" / "/" / "?" / ":" / "+" / "$"
HNAME = re.compile(rf"(?:[{_UNRESERVED}\[\]/?:+$]|{_ESCAPED})+")
HVALUE = re.compile(rf"(?:[{_UNRESERVED}\[\]/?:+$]|{_ESCAPED})*")

# scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")

# SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT
SIP_VERSION = re.compile(r"[Ss][Ii][Pp]/([0-9]+)\.([0-9]+)")

# LWS = [*WSP CRLF] 1*WSP ; linear whitespace (already unfolded to WSP here)
_WSP = " \t"

_UNESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def is_token(text: str) -> bool:
    return TOKEN.fullmatch(text) is not None


def is_digits(text: str) -> bool:
    """``1*DIGIT``: ASCII digits only (``str.isdigit`` also takes "²" or "٣",
    which ``int`` then refuses)."""
    return text.isascii() and text.isdigit()


def unescape(text: str) -> str:
    """Decode %HH escapes (RFC 3261 §19.1.2) into characters (UTF-8 aware)."""
    if "%" not in text:
        return text
    raw = _UNESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw


def parse_quoted(text: str, start: int) -> tuple[str, int]:
    """Scan a quoted-string that starts at ``text[start] == '"'``.

    quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
    quoted-pair = "\\" (%x00-09 / %x0B-0C / %x0E-7F)

    Returns the unescaped contents and the index just after the closing quote.
    """
    # Most quoted-strings (nonces, +sip.instance, tokens) have no quoted-pair:
    # the next DQUOTE closes them.
    close = text.find('"', start + 1)
    if close > 0:
        contents = text[start + 1 : close]
        if "\\" not in contents and "\r" not in contents and "\n" not in contents:
            return contents, close + 1
    i = start + 1
    out: list[str] = []
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\":
            if i + 1 >= n:
                break
            nxt = text[i + 1]
            if nxt in "\r\n":
                raise ParseError("invalid quoted-pair")
            out.append(nxt)
            i += 2
            continue
        if c in "\r\n":
            raise ParseError("line break inside quoted-string")
        out.append(c)
        i += 1
    raise ParseError("unterminated quoted-string")


def quote(text: str) -> str:
    """Render ``text`` as a quoted-string, escaping ``"`` and ``\\``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value into its elements.

    Commas inside quoted strings and inside ``<...>`` do not split.  Empty
    elements (``a,,b``) are dropped, as RFC 7230-style list rules allow.
    """
    if "," not in value:
        v = value.strip()
        return [v] if v else []
    parts: list[str] = []
    start = 0
    i = 0
    n = len(value)
    angle = False
    while i < n:
        c = value[i]
        if c == '"':
            _, i = parse_quoted(value, i)
            continue
        if c == "<":
            angle = True
        elif c == ">":
            angle = False
        elif c == "," and not angle:
            part = value[start:i].strip()
            if part:
                parts.append(part)
            start = i + 1
        i += 1
    if angle:
        raise ParseError("unbalanced '<' in header value")
    part = value[start:].strip()
    if part:
        parts.append(part)
    return parts


def iter_params(text: str, sep: str = ";") -> Iterator[tuple[str, str | None, bool]]:
    """Yield ``(name, value, quoted)`` for ``*( SEMI generic-param )``.

    generic-param = token [ EQUAL gen-value ]
    gen-value = token / host / quoted-string

    ``text`` starts right after the first separator (or is empty).
    Whitespace around ``;`` and ``=`` is allowed (SEMI and EQUAL are SWS-padded).
    """
    i = 0
    n = len(text)
    while i < n:
        while i < n and text[i] in _WSP:
            i += 1
        j = i
        while j < n and text[j] not in "=" + sep + _WSP:
            j += 1
        name = text[i:j]
        if not name or TOKEN.fullmatch(name) is None:
            raise ParseError(f"invalid parameter name {name!r}")
        while j < n and text[j] in _WSP:
            j += 1
        value: str | None = None
        quoted = False
        if j < n and text[j] == "=":
            j += 1
            while j < n and text[j] in _WSP:
                j += 1
            if j < n and text[j] == '"':
                value, j = parse_quoted(text, j)
                quoted = True
            else:
                k = j
                while k < n and text[k] not in sep + _WSP:
                    k += 1
                value = text[j:k]
                if not value:
                    raise ParseError(f"empty value for parameter {name!r}")
                j = k
            while j < n and text[j] in _WSP:
                j += 1
        if j < n:
            if text[j] != sep:
                raise ParseError(f"unexpected {text[j]!r} after parameter {name!r}")
            j += 1
            if j >= n or not text[j:].strip():
                raise ParseError("empty parameter after separator")
        yield name, value, quoted
        i = j


def skip_ws(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in _WSP:
        i += 1
    return i
