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
TARGETS = ("sip_message", "stream_framer")


def run_one(name: str, seconds: int) -> int:
    corpus = Path(tempfile.mkdtemp(prefix=f"webims-fuzz-{name}-"))
    for i, dat in enumerate(sorted((ROOT / "conformance" / "sip").rglob("*.dat"))):
        data = dat.read_bytes()
        (corpus / f"seed{i}").write_bytes(bytes([7]) + data if name == "stream_framer" else data)
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
