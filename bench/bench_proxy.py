"""Stateful proxy throughput: SIPp UAC -> webims proxy -> SIPp UAS, REGISTER over
UDP on loopback.  Target (issue 2): >= 5,000 transactions/s on one core with no
failed calls.

The proxy runs alone on CPU 0, both SIPp instances share CPU 1.  Each offered
rate is held for --seconds; the figure is the highest rate sustained with zero
failed calls (SIPp's own count), the completion rate measured at that load, and
the proxy's CPU time per transaction.
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


def pin(cpu: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu)]
    return []


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def run_rate(rate: int, seconds: float, proxy_port: int) -> tuple[bool, float, str]:
    calls = int(rate * seconds)
    cmd = [
        *pin(1),
        "sipp", "-sf", str(SCEN / "uac_register.xml"), f"127.0.0.1:{proxy_port}",
        "-i", "127.0.0.1", "-t", "u1", "-r", str(rate), "-m", str(calls),
        "-l", str(max(rate, 1000)), "-nostdin",
        "-timeout", f"{int(seconds * 4 + 20)}s", "-timeout_error",
    ]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    out = proc.stdout + proc.stderr
    ok = re.search(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", out)
    failed = re.search(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", out)
    n_ok = int(ok.group(1)) if ok else 0
    n_failed = int(failed.group(1)) if failed else -1
    good = proc.returncode == 0 and n_ok == calls and n_failed == 0
    return good, n_ok / elapsed, f"{n_ok} ok, {n_failed} failed in {elapsed:.1f}s"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rates", default="3000,4000,5000,5500,6000,7000")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if shutil.which("sipp") is None:
        print("bench_proxy: SIPp (Debian sip-tester) is required", file=sys.stderr)
        return 2
    proxy_port, uas_port = 25060, 25080
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
            str(uas_port),
            "-t",
            "u1",
            "-nostdin",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = ROOT / "bench" / "proxy_server.py"
    proxy = subprocess.Popen(
        [*pin(0), sys.executable, str(server), str(proxy_port), str(uas_port)],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert proxy.stdout is not None
    proxy.stdout.readline()
    best, best_measured, best_cpu = 0, 0.0, 0.0
    print("stateful proxy, SIPp UAC -> proxy -> SIPp UAS, REGISTER over UDP")
    try:
        for rate in (int(r) for r in args.rates.split(",")):
            cpu0 = cpu_seconds(proxy.pid)
            good, measured, detail = run_rate(rate, args.seconds, proxy_port)
            per_tx = (cpu_seconds(proxy.pid) - cpu0) / max(1, int(rate * args.seconds)) * 1e6
            verdict = "ok  " if good else "FAIL"
            print(
                f"  offered {rate:>6}/s: {verdict} {measured:>8,.0f}/s completed,"
                f" {per_tx:5.0f} us CPU/tx ({detail})",
                flush=True,
            )
            if not good:
                break
            best, best_measured, best_cpu = rate, measured, per_tx
            time.sleep(2)
    finally:
        proxy.terminate()
        proxy.wait()
        uas.terminate()
        uas.wait()
    print(
        f"sustained {best:,}/s with no failed call on one core"
        f" ({best_measured:,.0f}/s measured, {best_cpu:.0f} us CPU per transaction;"
        " target 5,000/s)"
    )
    if args.json:
        print(json.dumps({"sustained_rate": best, "measured_rate": round(best_measured)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
