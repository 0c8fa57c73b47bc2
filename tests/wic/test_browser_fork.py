"""Calls to an IMPU registered from two browsers, and calls that cannot be
completed, with JsSIP as published in headless Chromium (SPEC.md §9.6 item 20,
§9.7, §9.9 items 35–36; RFC 3261 §16.7 forking and CANCEL; RFC 5626 §5.3).

tests/wic/browser_fork.mjs registers user1 in page A and user2 in pages B1
and B2, inside a loopback-only network namespace with ``webims up``:

* the S-CSCF forks A's call to both of user2's contacts; B2 answers, B1 gets
  a CANCEL and answers it 487; the call is confirmed at A;
* A cancels while both ring: both get a CANCEL, A gets 487;
* an IMPU no subscriber has: 404;
* once B1's and B2's WebSockets are gone, a call to user2 gets 480 (the
  eP-CSCF's 430 stays inside the core), and so does the next one.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.netns import Enter

from .conftest import WebSystem, need_tool
from .test_browser_call import token

DRIVER = Path(__file__).with_name("browser_fork.mjs")


def test_forked_cancelled_and_failed_calls_between_browsers(
    netns_system: tuple[WebSystem, Enter],
) -> None:
    system, enter = netns_system
    tokens = [token(system, enter, user) for user in ("user1", "user2", "user2")]
    server = f"wss://127.0.0.1:{system.wss_port}/"
    proc = subprocess.run(
        enter([need_tool("node"), str(DRIVER), server, *tokens]),
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    assert proc.stdout.strip(), f"the driver said nothing (exit {proc.returncode}):\n{proc.stderr}"
    report: dict[str, Any] = json.loads(proc.stdout)
    print(json.dumps(report, indent=1))
    assert proc.returncode == 0 and "error" not in report, f"{report.get('error')}\n{proc.stderr}"
    seen = report["scenarios"]

    def events(scenario: str, page: str) -> list[str]:
        got: list[str] = seen[scenario][page]["events"]
        return got

    def lines(scenario: str, page: str) -> list[str]:
        got: list[str] = seen[scenario][page]["lines"]
        assert not [line for line in got if line.startswith("pageerror")]
        return got

    # Forking: both ring, the first 2xx wins, the other branch is cancelled.
    assert "confirmed" in events("fork", "A")
    assert "confirmed" in events("fork", "B2")
    assert events("fork", "B1")[0] == "incoming"
    assert events("fork", "B1")[-1] == "failed:Canceled:"
    assert "<- CANCEL" in " ".join(lines("fork", "B1"))
    assert "-> SIP/2.0 487 Request Terminated" in lines("fork", "B1")
    assert [line for line in lines("fork", "A") if line.startswith("<- SIP/2.0 2")] == [
        "<- SIP/2.0 200 OK"
    ]

    # The caller's CANCEL reaches both ringing browsers.
    assert events("cancel", "A")[-1].startswith("failed:Canceled")
    assert "<- SIP/2.0 487 Request Terminated" in lines("cancel", "A")
    for page in ("B1", "B2"):
        assert events("cancel", page)[-1] == "failed:Canceled:", page
        assert "-> SIP/2.0 487 Request Terminated" in lines("cancel", page), page

    assert events("unknown", "A")[-1] == "failed:Not Found:404"

    # The callee's browsers are gone: 480, never the eP-CSCF's 430.
    for scenario in ("offline", "offline again"):
        assert events(scenario, "A")[-1] == "failed:Unavailable:480", scenario
        assert not [line for line in lines(scenario, "A") if " 430 " in line]
