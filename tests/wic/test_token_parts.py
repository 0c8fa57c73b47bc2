"""The pieces of ``webims token`` that need no server: PKCE and the login form.

The whole flow against a running web element is tests/wic/test_token_cli.py.
"""

from __future__ import annotations

import base64
import hashlib
import re

from webims.wic.token import parse_login_form, pkce_pair


def test_pkce_pair_is_s256_of_a_fresh_verifier() -> None:
    pairs = [pkce_pair() for _ in range(20)]
    assert len({v for v, _ in pairs}) == 20
    for verifier, challenge in pairs:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43,128}", verifier)  # RFC 7636 §4.1
        digest = hashlib.sha256(verifier.encode()).digest()
        assert challenge == base64.urlsafe_b64encode(digest).decode().rstrip("=")


LOGIN_PAGE = """
<form method="post" action="/guest"><input type="hidden" name="csrf_token" value="c1">
  <button>Continue as guest</button></form>
<p class="error" role="alert">Wrong web user or password. <b>Try again</b></p>
<form method="post" action="/login" class="login">
  <input type="hidden" name="csrf_token" value="c1&amp;2">
  <input type="hidden" name="next" value="/authorize?a=1&amp;b=2">
  <label for="u">Web user</label><input id="u" name="username" type="text" value="">
  <input name="password" type="password"><br>
  <button type="submit">Log in</button>
</form>
"""


def test_the_login_form_is_the_one_with_a_password_field() -> None:
    form = parse_login_form(LOGIN_PAGE)
    assert form is not None
    assert form.action == "/login" and form.method == "post"
    assert form.user_field == "username" and form.password_field == "password"
    assert form.fields == {"csrf_token": "c1&2", "next": "/authorize?a=1&b=2"}
    assert form.error == "Wrong web user or password. Try again"


def test_a_page_without_a_password_field_has_no_login_form() -> None:
    assert parse_login_form('<form method="post"><input name="q"></form>') is None
    assert parse_login_form("<p>Not found</p>") is None
