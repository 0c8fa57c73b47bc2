"""Stateful proxy throughput: SIPp UAC -> webims proxy -> SIPp UAS, REGISTER over
UDP on loopback.  Target (issue 2): >= 5,000 transactions/s on one core with no
failed calls.

The proxy runs alone on CPU 0 and both SIPp instances share CPU 1.  Each offered
rate gets a fresh proxy and is held for --seconds.  The default of 40 s is longer
than a non-INVITE server transaction lives on UDP (Timer J, 32 s), so the figures
include the steady state: transactions ending as fast as they start, and the
memory they hold at that point.  The result is the highest rate with zero failed
calls (SIPp's count), with the proxy's CPU time per transaction and its RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCEN = ROOT / "conformance" / "sipp"
TICK = os.sysconf("SC_CLK_TCK")
PROXY_PORT, UAS_PORT = 25060, 25080


def pin(cpu: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu)]
    return []


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_rate(rate: int, seconds: float) -> tuple[bool, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    uas = subprocess.Popen(
        [
            *pin(1),
            "sipp",
            "-sf",
            str(SCEN / "uas_register.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            str(UAS_PORT),
            "-t",
            "u1",
            "-nostdin",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = ROOT / "bench" / "proxy_server.py"
    proxy = subprocess.Popen(
        [*pin(0), sys.executable, str(server), str(PROXY_PORT), str(UAS_PORT)],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proxy.stdout is not None
        proxy.stdout.readline()
        calls = int(rate * seconds)
        cmd = [
            *pin(1),
            "sipp", "-sf", str(SCEN / "uac_register.xml"), f"127.0.0.1:{PROXY_PORT}",
            "-i", "127.0.0.1", "-t", "u1", "-r", str(rate), "-m", str(calls),
            "-l", str(rate), "-nostdin", "-timeout", f"{int(seconds * 3 + 30)}s", "-timeout_error",
        ]  # fmt: skip
        cpu0 = cpu_seconds(proxy.pid)
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - start
        per_tx = (cpu_seconds(proxy.pid) - cpu0) / calls * 1e6
        rss = rss_mib(proxy.pid)
    finally:
        proxy.terminate()
        uas.terminate()
        proxy.wait()
        uas.wait()
    out = done.stdout + done.stderr
    ok = re.search(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", out)
    failed = re.search(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", out)
    retrans = re.search(r"REGISTER\s*-+>\s*\d+\s+(\d+)", out)
    n_ok = int(ok.group(1)) if ok else 0
    n_failed = int(failed.group(1)) if failed else -1
    good = done.returncode == 0 and n_ok == calls and n_failed == 0
    detail = (
        f"{n_ok / elapsed:8,.0f}/s completed, {per_tx:4.0f} us CPU/tx, RSS {rss:5.0f} MiB,"
        f" {n_ok} ok, {n_failed} failed, {retrans.group(1) if retrans else '?'} retransmissions"
    )
    return good, detail


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rates", default="3000,3500,4000,4500,5000")
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if shutil.which("sipp") is None:
        print("bench_proxy: SIPp (Debian sip-tester) is required", file=sys.stderr)
        return 2
    print(
        f"stateful proxy, SIPp -> proxy -> SIPp, REGISTER over UDP, {args.seconds:.0f} s per rate"
    )
    best = 0
    for rate in (int(r) for r in args.rates.split(",")):
        good, detail = run_rate(rate, args.seconds)
        print(f"  offered {rate:>6}/s: {'ok  ' if good else 'FAIL'} {detail}", flush=True)
        if not good:
            break
        best = rate
    print(f"sustained {best:,}/s with no failed call on one core (target 5,000/s)")
    if args.json:
        print(json.dumps({"sustained_rate": best}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
