"""Run the fuzz targets with atheris (coverage-guided), each for a bounded time.

    python fuzz/run.py                  # every target, WEBIMS_FUZZ_SECONDS each (default 20)
    python fuzz/run.py sip_message      # one target

The seed corpus is the conformance vectors.  A crash prints the input and
exits non-zero; crash files land in fuzz/crashes/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGETS = ("sip_message", "stream_framer", "diameter_stream")


def diameter_seeds() -> list[bytes]:
    """A few well-formed Cx and base messages to start from."""
    from diameter.message.commands.capabilities_exchange import CapabilitiesExchangeRequest
    from diameter.message.commands.server_assignment import ServerAssignmentRequest
    from diameter.message.commands.user_authorization import UserAuthorizationRequest

    uar = UserAuthorizationRequest()
    uar.header.application_id = 16777216
    uar.session_id = "icscf;1"
    uar.origin_host = b"icscf.home1.net"
    uar.origin_realm = b"home1.net"
    uar.user_name = "user1_private@home1.net"
    uar.public_identity = "sip:user1_public1@home1.net"
    sar = ServerAssignmentRequest()
    sar.header.application_id = 16777216
    sar.session_id = "scscf;2"
    sar.origin_host = b"scscf.home1.net"
    sar.origin_realm = b"home1.net"
    sar.public_identity = "sip:user1_public1@home1.net"
    sar.server_name = "sip:scscf.home1.net"
    sar.server_assignment_type = 1
    cer = CapabilitiesExchangeRequest()
    cer.origin_host = b"icscf.home1.net"
    cer.origin_realm = b"home1.net"
    cer.host_ip_address = "127.0.0.1"
    cer.vendor_id = 10415
    cer.product_name = "webims"
    return [bytes(m.as_bytes()) for m in (uar, sar, cer)]


def run_one(name: str, seconds: int) -> int:
    corpus = Path(tempfile.mkdtemp(prefix=f"webims-fuzz-{name}-"))
    if name == "diameter_stream":
        for i, data in enumerate(diameter_seeds()):
            (corpus / f"seed{i}").write_bytes(data)
    else:
        for i, dat in enumerate(sorted((ROOT / "conformance" / "sip").rglob("*.dat"))):
            data = dat.read_bytes()
            prefix = bytes([7]) if name == "stream_framer" else b""
            (corpus / f"seed{i}").write_bytes(prefix + data)
    crashes = HERE / "crashes"
    crashes.mkdir(exist_ok=True)
    cmd = [
        sys.executable,
        str(HERE / "harness.py"),
        name,
        f"-max_total_time={seconds}",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
        f"-artifact_prefix={crashes}/{name}-",
        str(corpus),
    ]
    print(f"fuzz: {name} for {seconds}s", flush=True)
    log = corpus.parent / f"{corpus.name}.log"
    with log.open("wb") as out:
        code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT)
    lines = log.read_text(errors="replace").splitlines()
    runs = next((ln for ln in reversed(lines) if ln.startswith("Done ")), "")
    if code != 0:
        print("\n".join(lines[-80:]))
    print(f"fuzz: {name}: {runs or 'no summary'} (exit {code}; log {log})", flush=True)
    return code


def main() -> int:
    seconds = int(os.environ.get("WEBIMS_FUZZ_SECONDS", "20"))
    names = sys.argv[1:] or list(TARGETS)
    failed = [n for n in names if run_one(n, seconds) != 0]
    if failed:
        print(f"fuzz: FAILED {', '.join(failed)}")
        return 1
    print(f"fuzz: {len(names)} targets ran {seconds}s each without a crash")
    return 0


if __name__ == "__main__":
    sys.exit(main())
