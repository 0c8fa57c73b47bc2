"""Interoperability with baresip (Debian's baresip-core), a plain SIP phone, through
the whole system: ``webims up`` with the demo subscribers, baresip on UDP with the
eP-CSCF as its outbound proxy.

baresip's first REGISTER carries no credentials; the eP-CSCF's own 401 has it name
its private identity, the S-CSCF's 401 (``stale=true``, the eP-CSCF's nonce being
none of its own) has it answer with the HSS's H(A1) for user1 / user1-secret
(TS 24.229 5.2.2 and 5.4.1.2.1B, SIP Digest without TLS).  The HSS then shows
user1 registered, and an OPTIONS sent to the I-CSCF for user1's IMPU reaches baresip
by LIR, the S-CSCF's binding and the Path flow token of its UDP flow, and its 200
comes back.  baresip needs no audio device: only its ``account`` module is loaded.

baresip is a test dependency (.ci/run installs Debian's baresip-core): without it
this test fails rather than skips.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pcscf.gm_system import USER1, CoreSystem, core_system, send_options
from tests.wic.conftest import free_port

MODULES = Path("/usr/lib/baresip/modules")
REGISTERED_WITHIN = 20.0

pytestmark = pytest.mark.timeout(120)


@contextlib.contextmanager
def baresip(config_dir: Path, pcscf_port: int) -> Iterator[subprocess.Popen[str]]:
    """baresip with a configuration of its own in ``config_dir``, stopped at the end."""
    binary = shutil.which("baresip")
    if binary is None:
        pytest.fail("baresip is not installed (apt-get install baresip-core)", pytrace=False)
    config_dir.mkdir()
    (config_dir / "accounts").write_text(
        f"<{USER1.impu}>;auth_user={USER1.impi};auth_pass={USER1.password};"
        f'outbound="sip:127.0.0.1:{pcscf_port};transport=udp";regint=600\n'
    )
    (config_dir / "config").write_text(
        f"sip_listen\t\t127.0.0.1:{free_port()}\nmodule_path\t\t{MODULES}\nmodule\t\t\taccount.so\n"
    )
    proc = subprocess.Popen(
        [binary, "-f", str(config_dir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def output(proc: subprocess.Popen[str]) -> str:
    """What baresip printed (it has been stopped)."""
    assert proc.stdout is not None
    return proc.stdout.read()


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoreSystem]:
    with core_system(tmp_path_factory.mktemp("baresip-up")) as running_system:
        yield running_system


def test_baresip_registers_through_the_pcscf_and_is_reached(
    system: CoreSystem, tmp_path: Path
) -> None:
    assert system.state(USER1) != "registered"
    with baresip(tmp_path / "baresip", system.pcscf) as proc:
        deadline = time.monotonic() + REGISTERED_WITHIN
        state = system.state(USER1)
        while state != "registered" and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            state = system.state(USER1)
        running = proc.poll() is None
        answer = send_options(system.icscf, USER1.impu) if state == "registered" else None
    printed = output(proc)
    assert running, f"baresip exited:\n{printed}"
    assert state == "registered", f"user1 is {state} in the HSS; baresip printed:\n{printed}"
    assert answer is not None and answer.status == 200, f"{answer}\n{printed}"
    assert "baresip" in (answer.headers.get("User-Agent") or answer.headers.get("Server") or "")
