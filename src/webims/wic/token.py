"""``webims token``: the OAuth 2.0 flow a WIC runs, from a script.

Step 1 of TS 24.371 Annex A.3.2 without a browser: the authorisation code
grant with PKCE S256 (RFC 6749 §4.1, RFC 7636) through the WWSF's real login
form, over HTTPS, with one cookie jar standing in for the browser::

    GET  /api/config                      -> authorize_url, token_url, redirect_uri …
    GET  authorize_url?…&code_challenge   -> 302 /login?next=<authorize URL>
    GET  /login?next=…                    -> the form, with its hidden CSRF token
    POST /login (user, password, CSRF)    -> 30x back to the authorize URL, session cookie
    GET  authorize_url?…                  -> 302 redirect_uri?code=…&state=…
                                             (read from Location, never followed)
    POST token_url (code, code_verifier)  -> {"access_token": …, "impi", "impu", …}

Every way this can go wrong raises :class:`TokenFlowError` with a sentence a
person can act on (wrong password, user without IMS identity, untrusted
certificate, …); :func:`fetch_token` returns the token endpoint's JSON.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import ssl
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx

__all__ = ["LoginForm", "TokenFlowError", "fetch_token", "parse_login_form", "pkce_pair"]

_REDIRECTS = {301, 302, 303, 307, 308}
_MAX_HOPS = 6


class TokenFlowError(Exception):
    """The flow stopped; the message says where and why."""


def pkce_pair() -> tuple[str, str]:
    """A fresh ``(code_verifier, S256 code_challenge)`` (RFC 7636 §4.1-4.2)."""
    verifier = secrets.token_urlsafe(32)  # 43 characters from the unreserved set
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class LoginForm:
    """The login form as a browser sees it: where it posts and its fields."""

    action: str
    method: str
    fields: dict[str, str]
    user_field: str | None
    password_field: str | None
    error: str


class _FormParser(HTMLParser):
    """Collects the first form that has a password input, and any text of an
    element whose class names it an error (the WWSF's message on a refusal)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[LoginForm] = []
        self._form: LoginForm | None = None
        self._error_tag: str | None = None  # the element holding an error message
        self._error_depth = 0
        self._errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if self._error_tag is None:
            classes = a.get("class", "").split()
            if "error" in classes or "errors" in classes or a.get("role") == "alert":
                self._error_tag, self._error_depth = tag, 1
        elif tag == self._error_tag:
            self._error_depth += 1
        if tag == "form":
            self._form = LoginForm(
                a.get("action", ""), a.get("method", "get").lower(), {}, None, None, ""
            )
        elif tag == "input" and self._form is not None and a.get("name"):
            name, kind = a["name"], a.get("type", "text").lower()
            if kind == "password":
                self._form.password_field = self._form.password_field or name
            elif kind in {"text", "email"} and self._form.user_field is None:
                self._form.user_field = name
            elif kind in {"hidden", "text", "email"}:
                self._form.fields[name] = a.get("value", "")
            elif kind == "submit" and a.get("value"):
                self._form.fields.setdefault(name, a["value"])

    def handle_endtag(self, tag: str) -> None:
        if tag == self._error_tag:
            self._error_depth -= 1
            if self._error_depth == 0:
                self._error_tag = None
        if tag == "form" and self._form is not None:
            self.forms.append(self._form)
            self._form = None

    def handle_data(self, data: str) -> None:
        if self._error_tag is not None and data.strip():
            self._errors.append(data.strip())

    @property
    def error(self) -> str:
        return " ".join(self._errors)


def parse_login_form(html: str) -> LoginForm | None:
    """The login form of a page (the first form with a password input)."""
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    for form in parser.forms:
        if form.password_field is not None:
            form.error = parser.error
            return form
    return None


def _page_error(html: str) -> str:
    parser = _FormParser()
    parser.feed(html)
    return parser.error


def _oauth_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict) and "error" in body:
        desc = body.get("error_description")
        return f"{body['error']}: {desc}" if desc else str(body["error"])
    return f"HTTP {response.status_code}"


def _location(response: httpx.Response) -> str:
    return urljoin(str(response.url), str(response.headers.get("location", "")))


def _same_endpoint(url: str, endpoint: str) -> bool:
    a, b = urlsplit(url), urlsplit(endpoint)
    return (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)


def _tls(ca: Path | None) -> ssl.SSLContext:
    if ca is None:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=str(ca))
    except (OSError, ssl.SSLError) as err:
        raise TokenFlowError(f"cannot read the CA certificate {ca}: {err}") from None


def _login(client: httpx.Client, page: httpx.Response, user: str, password: str) -> httpx.Response:
    """Fill in and send the login form of ``page``; the WWSF's answer."""
    form = parse_login_form(page.text)
    if form is None or form.user_field is None or form.password_field is None:
        raise TokenFlowError(f"{page.url}: no login form with a user and a password field")
    data = dict(form.fields)
    data[form.user_field] = user
    data[form.password_field] = password
    action = urljoin(str(page.url), form.action or str(page.url))
    if form.method != "post":
        raise TokenFlowError(f"{page.url}: the login form does not POST")
    answer = client.post(action, data=data)
    if answer.status_code in _REDIRECTS:
        return answer
    why = _page_error(answer.text) or f"HTTP {answer.status_code}"
    if answer.status_code == 429:
        raise TokenFlowError(f"login refused for now (too many failures): {why}")
    raise TokenFlowError(f"login refused: {why}")


def _authorization_code(
    client: httpx.Client,
    config: dict[str, Any],
    *,
    user: str,
    password: str,
    challenge: str,
    state: str,
) -> str:
    """Walk /authorize -> /login -> /authorize to the redirect carrying the code."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": config["client_id"],
            "redirect_uri": config["redirect_uri"],
            "scope": config["scope"],
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    url = f"{config['authorize_url']}?{query}"
    logged_in = False
    for _ in range(_MAX_HOPS):
        response = client.get(url)
        if response.status_code not in _REDIRECTS:
            if not logged_in and parse_login_form(response.text) is not None:
                response = _login(client, response, user, password)
                logged_in = True
                url = _location(response)
                continue
            if response.status_code >= 400:
                raise TokenFlowError(f"{urlsplit(url).path}: {_oauth_error(response)}")
            raise TokenFlowError(f"{urlsplit(url).path}: unexpected HTTP {response.status_code}")
        target = _location(response)
        if _same_endpoint(target, config["redirect_uri"]):
            params = parse_qs(urlsplit(target).query)
            if params.get("state") != [state]:
                raise TokenFlowError("the authorisation response's state does not match")
            if "error" in params:
                desc = params.get("error_description", [""])[0]
                error = params["error"][0]
                raise TokenFlowError(
                    f"authorisation refused: {error}" + (f": {desc}" if desc else "")
                )
            if "code" not in params:
                raise TokenFlowError("the authorisation response carries no code")
            return params["code"][0]
        url = target
    raise TokenFlowError(f"too many redirects without reaching {config['redirect_uri']}")


def fetch_token(
    base_url: str, user: str, password: str, *, ca: Path | None = None, timeout: float = 10.0
) -> dict[str, Any]:
    """Run the whole flow against the WWSF at ``base_url``; the token response."""
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    try:
        with httpx.Client(
            base_url=base_url, verify=_tls(ca), timeout=timeout, follow_redirects=False
        ) as client:
            answer = client.get("/api/config")
            if answer.status_code != 200:
                raise TokenFlowError(f"/api/config: HTTP {answer.status_code}")
            config = {
                "client_id": "wic",
                "scope": "ims:register ims:call",
                **answer.json(),
            }
            for key in ("authorize_url", "token_url", "redirect_uri"):
                config[key] = urljoin(base_url + "/", config[key])
            code = _authorization_code(
                client, config, user=user, password=password, challenge=challenge, state=state
            )
            response = client.post(
                config["token_url"],
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": config["redirect_uri"],
                    "client_id": config["client_id"],
                    "code_verifier": verifier,
                },
            )
    except httpx.ConnectError as err:
        raise TokenFlowError(f"cannot connect to {base_url}: {err}") from None
    except httpx.HTTPError as err:
        raise TokenFlowError(f"{base_url}: {err}") from None
    except ValueError as err:  # JSON of /api/config
        raise TokenFlowError(f"{base_url}/api/config: not JSON ({err})") from None
    if response.status_code != 200:
        raise TokenFlowError(f"token endpoint: {_oauth_error(response)}")
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        raise TokenFlowError("token endpoint: the answer is not JSON") from None
    if not isinstance(body.get("access_token"), str):
        raise TokenFlowError("token endpoint: no access_token in the answer")
    return body
