"""The browser WIC and the reg event (SPEC §2.6, §9.4 statement 14): Debian's
headless Chromium logged in as user1 against ``webims up``, registered through
eP-CSCF, I-CSCF and S-CSCF, subscribed to its reg event; then the operator
deregisters user1 through the HSS's provisioning API.

* ``server_change``: the HSS sends RTR SERVER_CHANGE, the S-CSCF NOTIFYs
  ``deactivated``, the eP-CSCF relays it over the WIC's WebSocket, and the
  page registers afresh by itself (a new token first, as the one held is near
  its end), subscribes again, and the HSS has user1 registered again;
* ``permanent_termination``: the S-CSCF NOTIFYs ``rejected``; the page shows
  "deregistered by the network (rejected)" and sends no REGISTER any more,
  and the HSS keeps user1 not registered.

The page's registration states and every SIP message on its WebSocket come
back from tests/wic/browser_login.mjs (modes "hold" and "regevent").
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import TOKEN_TTL, USER1, WebSystem
from .test_browser import ARTIFACTS, browser_command, browser_result, hss_view, system_ports

IMPU = USER1["impu"][0]


def deregister(system: WebSystem, name: str, reason: str) -> httpx.Response:
    """``POST /subscribers/{name}/deregister`` at the running HSS."""
    api = system_ports(system)["hss"]["api_port"]
    key = (system.data_dir / "hss-api-key").read_text().strip()
    return httpx.post(
        f"http://127.0.0.1:{api}/subscribers/{name}/deregister",
        json={"reason": reason},
        headers={"X-API-Key": key},
        timeout=10,
    )


def impu_state(system: WebSystem) -> str:
    view = hss_view(system, "user1")
    (public,) = [p for p in view["publics"] if p["impu"] == IMPU]
    state: str = public["state"]
    return state


def run_deregistered(
    system: WebSystem,
    screenshot: Path,
    network_deregisters: Callable[[], None],
    expected: str,
    after: Callable[[], None],
) -> dict[str, Any]:
    """The browser registered and held; ``network_deregisters`` runs; the
    page must then reach ``expected`` ("registered" again, or "deregistered");
    ``after`` runs while it is held there; then the page logs out."""
    command = browser_command(system.url, screenshot, modes="registered,hold,regevent")
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stderr is not None
    errors: list[str] = []

    def wait_for(mark: str) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith(mark):
                return
            errors.append(line)
        out, _ = proc.communicate(timeout=30)
        pytest.fail(f"the browser never wrote {mark!r}:\n{''.join(errors)}\n{out}")

    def say(line: str) -> None:
        assert proc.stdin is not None
        proc.stdin.write(line + "\n")
        proc.stdin.flush()

    try:
        wait_for("hold: registered")
        network_deregisters()
        say(expected)
        wait_for(f"hold: after {expected}")
        after()
        say("go")
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return browser_result(proc.returncode, out, "".join(errors) + err)


def messages(page: dict[str, Any], dir: str, start: str) -> list[dict[str, Any]]:
    return [m for m in page["sip"] if m["dir"] == dir and m["start"].startswith(start)]


def index_of(page: dict[str, Any], message: dict[str, Any]) -> int:
    return next(i for i, m in enumerate(page["sip"]) if m is message)


def first_subscription(page: dict[str, Any]) -> None:
    """SPEC §2.6 / §9.5 16: the WIC's SUBSCRIBE after its initial registration
    and the S-CSCF's answer, in the browser's own frames."""
    subscribe = messages(page, "sent", "SUBSCRIBE ")[0]
    assert subscribe["start"] == f"SUBSCRIBE {IMPU} SIP/2.0"
    assert IMPU in subscribe["to"] and IMPU in subscribe["from"]
    assert subscribe["event"] == "reg"
    assert subscribe["accept"] == "application/reginfo+xml"
    assert subscribe["expires"] == "600000"
    assert subscribe["cseq"].endswith(" SUBSCRIBE")
    after = page["sip"][index_of(page, subscribe) :]
    ok = [
        m for m in after if m["start"].startswith("SIP/2.0 200") and m["cseq"] == subscribe["cseq"]
    ]
    assert ok, "the SUBSCRIBE was not accepted"
    notify = next(m for m in after if m["start"].startswith("NOTIFY "))
    assert notify["dir"] == "received" and notify["event"] == "reg"
    assert notify["subscriptionState"].startswith("active")
    assert 'version="0"' in notify["body"] and 'state="full"' in notify["body"]


@pytest.mark.timeout(180)
def test_s9_4_14_a_wic_deactivated_by_the_network_registers_afresh_by_itself(
    web_system: WebSystem,
) -> None:
    screenshot = ARTIFACTS / "wic-regevent-deactivated.png"
    seen: dict[str, Any] = {}

    def server_change() -> None:
        assert impu_state(web_system) == "registered"
        seen["answer"] = deregister(web_system, "user1", "server_change")

    def registered_again() -> None:
        deadline = time.monotonic() + 10
        while (state := impu_state(web_system)) != "registered" and time.monotonic() < deadline:
            time.sleep(0.2)
        seen["hss"] = state

    page = run_deregistered(web_system, screenshot, server_change, "registered", registered_again)

    answer = seen["answer"]
    assert answer.status_code == 202, answer.text
    (public,) = [p for p in answer.json()["publics"] if p["impu"] == IMPU]
    assert public["state"] == "not_registered"
    first_subscription(page)

    # The page: deregistered by the network, registering afresh, registered.
    states = [(s["state"], s["text"]) for s in page["regevent"]["states"]]
    dropped = states.index(("deregistered", "deregistered by the network (deactivated)"))
    assert ("registering", "registering") in states[dropped:]
    assert states[-1] == ("registered", "registered"), states
    assert "after the network's deregistration" in page["regevent"]["regDetail"]
    # The HSS has user1 registered again (SAR REGISTRATION of the new REGISTER).
    assert seen["hss"] == "registered"

    # On the wire: the S-CSCF's NOTIFY (relayed by the eP-CSCF) ending the
    # subscription, then a new REGISTER, its 200, and a new SUBSCRIBE.
    (final,) = [
        m
        for m in messages(page, "received", "NOTIFY ")
        if (m["subscriptionState"] or "").startswith("terminated")
        and 'event="deactivated"' in m["body"]
    ]
    assert final["subscriptionState"] == "terminated;reason=deactivated"
    later = page["sip"][index_of(page, final) + 1 :]
    register = next(m for m in later if m["start"].startswith("REGISTER "))
    assert register["dir"] == "sent" and register["start"] == "REGISTER sip:home1.net SIP/2.0"
    # With a token issued after the NOTIFY: the one held was near its expiry
    # (TOKEN_TTL), so the page refreshed it first (iat has whole seconds).
    assert register["tokenIat"] * 1000 >= final["at"] - 1000, (register, final)
    ok = next(m for m in later if m["cseq"] == register["cseq"] and m["start"].startswith("SIP/"))
    assert ok["start"].startswith("SIP/2.0 200"), ok
    resubscribe = [m for m in later if m["start"] == f"SUBSCRIBE {IMPU} SIP/2.0"]
    assert resubscribe and resubscribe[0]["expires"] == "600000"
    assert any(m["start"].startswith("NOTIFY ") for m in later[later.index(resubscribe[0]) :])

    # Logout: the subscription ends (Expires: 0) before the unregistration.
    unsubscribe = [m for m in messages(page, "sent", "SUBSCRIBE ") if m["expires"] == "0"]
    assert unsubscribe, "no SUBSCRIBE with Expires: 0 at the logout"
    last_register = messages(page, "sent", "REGISTER ")[-1]
    assert index_of(page, unsubscribe[-1]) < index_of(page, last_register)
    assert last_register["expires"] == "0"
    assert page["afterLogout"]["storage"] == {}
    print(f"screenshot: {screenshot}")


@pytest.mark.timeout(180)
def test_s9_4_14_a_wic_rejected_by_the_network_does_not_register_again(
    web_system: WebSystem,
) -> None:
    screenshot = ARTIFACTS / "wic-regevent-rejected.png"
    seen: dict[str, Any] = {}

    def permanent_termination() -> None:
        assert impu_state(web_system) == "registered"
        seen["answer"] = deregister(web_system, "user1", "permanent_termination")

    def stays_deregistered() -> None:
        # Long enough for the page's next token refresh (at 80% of
        # TOKEN_TTL), which must not bring a REGISTER either.
        states = []
        deadline = time.monotonic() + TOKEN_TTL
        while time.monotonic() < deadline:
            states.append(impu_state(web_system))
            time.sleep(0.5)
        seen["hss"] = states

    page = run_deregistered(
        web_system, screenshot, permanent_termination, "deregistered", stays_deregistered
    )

    answer = seen["answer"]
    assert answer.status_code == 202, answer.text
    first_subscription(page)
    assert set(seen["hss"]) == {"not_registered"}, seen["hss"]

    # The page shows it, and stays so.
    assert page["regevent"]["regText"] == "deregistered by the network (rejected)"
    assert page["regevent"]["regDetail"] == "not registering again"
    later = [s["state"] for s in page["regevent"]["statesLater"]]
    assert later[-1] == "deregistered" and later.count("registered") == 0, later
    assert page["regevent"]["refreshesLater"] > page["regevent"]["refreshes"]

    # On the wire: the NOTIFY with rejected, then no REGISTER and no SUBSCRIBE
    # at all (not even at the logout: there is no registration to end).
    (final,) = [m for m in messages(page, "received", "NOTIFY ") if 'event="rejected"' in m["body"]]
    assert final["subscriptionState"] == "terminated;reason=rejected"
    sent_later = [m for m in page["sip"][index_of(page, final) + 1 :] if m["dir"] == "sent"]
    assert [m["start"] for m in sent_later if not m["start"].startswith("SIP/")] == []
    assert impu_state(web_system) == "not_registered"
    assert page["afterLogout"]["storage"] == {}
    print(f"screenshot: {screenshot}")
