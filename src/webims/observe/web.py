"""The WWSF's ``/trace`` page: the last registration of the logged-in user's
own IMS identities, and their last call, as the ladders of ``webims trace``
(and ``webims trace --calls``) in ``<pre>`` elements.

Who sees it: a logged-in web user, and only flows whose REGISTER names one of
the IMPUs the WWSF maps that user to, and calls from or to one of them — a
trace holds other users' identities and addresses.  Anyone else is sent to the
login page.  Not served in production (``[web] production = true``: 404): it is a
development aid, and reading the trace directory is work an operator's tools
should do.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from .calls import find_calls
from .ladder import find_flows, render_plain
from .record import read_trace
from .trace import flush_directory, trace_dir

if TYPE_CHECKING:
    from ..wwsf.app import Wwsf

__all__ = ["trace_endpoint"]


def trace_endpoint(wwsf: Wwsf) -> Callable[[Request], Awaitable[Response]]:
    """The handler of ``GET /trace`` over ``wwsf``'s sessions and identities."""

    async def trace_page(request: Request) -> Response:
        settings = wwsf.settings
        if settings.web.production:
            return wwsf.error(request, 404, "Not found", "No trace page in production.")
        session = wwsf.session_of(request)
        if session is None or session.user is None:
            return RedirectResponse("/login?next=" + quote("/trace", safe=""), status_code=303)
        identity = await wwsf.resolve_identity(session.user)
        impus = identity.impus if identity is not None else ()
        directory = trace_dir(settings)
        flush_directory(directory)  # every element of this process (webims up)
        records = await asyncio.to_thread(read_trace, directory)
        flows = await asyncio.to_thread(find_flows, records, 1, impus)
        calls = await asyncio.to_thread(find_calls, records, 1, impus)
        shown = html.escape(", ".join(impus) or "no IMS identity")
        if flows:
            body = f"<pre class=ladder>{html.escape(render_plain(flows[-1]))}</pre>"
        else:
            body = f"<p>No registration of {shown} in the trace yet.</p>"
        body += f"<h2>Last call of {html.escape(session.user)}</h2>"
        if calls:
            body += f"<pre class=ladder>{html.escape(render_plain(calls[-1]))}</pre>"
        else:
            body += f"<p>No call from or to {shown} in the trace yet.</p>"
        page = (
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            "<title>Trace — webims</title>"
            '<link rel=stylesheet href="/wwsf/static/wwsf.css"></head><body><main>'
            f"<h2>Last registration of {html.escape(session.user)}</h2>"
            "<p>TS 24.371 Figure A.3.2-1, as recorded by the elements "
            "(steps 1–8; <code>webims trace</code> shows the same).</p>"
            f"{body}<p><a href=/>Back to the start page</a></p></main></body></html>"
        )
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    return trace_page
