"""Registrations per second through the whole system, as ``webims up`` runs it.

Starts ``webims up`` in its own process, on free ports, in a temporary data
directory (its own dev CA, WAF keys, HSS store), then runs ``webims bench
register --json`` against it in another process: each registration is a new
WSS connection, a REGISTER with a valid Bearer token, and the 200 OK that
comes back after the I-CSCF's UAR and the S-CSCF's SAR (see
``webims.wic.bench`` for the subscribers and tokens used).

    python bench/bench_register.py [--clients 20] [--duration 10] [--json]
                                   [--profile server.prof]

Prints the figures against the targets (issue 5): >= 1,000 registrations/s,
0 failures, p99 <= 50 ms.  With ``--profile`` the server runs under cProfile
and the functions it spent most time in are printed after it stops.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pstats
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parent.parent / "src"
TARGET_RATE = 1000.0
TARGET_P99_MS = 50.0


def free_port() -> int:
    """A port free for both UDP and TCP (SIP listeners take both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = int(u.getsockname()[1])
        with socket.socket() as t:
            try:
                t.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise OSError("no port free for both UDP and TCP")


def write_config(data: Path, *, token_ttl: int = 3600, extra: str = "") -> Path:
    """A configuration of every element on free ports, its data in ``data``."""
    web, p_sip, ws, wss, i_sip, s_sip, dia, api = (free_port() for _ in range(8))
    config = data / "webims.toml"
    config.write_text(
        f'data_dir = "{data}"\n'
        f'[web]\nport = {web}\npublic_url = "https://127.0.0.1:{web}"\n'
        f'pcscf_url = "wss://127.0.0.1:{wss}/"\n'
        f"[waf]\naccess_token_ttl = {token_ttl}\n"
        f"[pcscf]\nsip_port = {p_sip}\nws_port = {ws}\nwss_port = {wss}\n"
        f"[icscf]\nsip_port = {i_sip}\n[scscf]\nsip_port = {s_sip}\n"
        f"[hss]\ndiameter_port = {dia}\napi_port = {api}\n" + extra
    )
    return config


def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        PYTHONPATH=f"{SRC}{os.pathsep}{path}" if path else str(SRC),
    )


@contextlib.contextmanager
def webims_up(
    config: Path, *, profile: Path | None = None, nofile: int | None = None
) -> Iterator[subprocess.Popen[str]]:
    """``webims up --config`` until the block ends (SIGTERM), started and ready."""
    prefix = [sys.executable]
    if profile is not None:
        prefix += ["-m", "cProfile", "-o", str(profile)]
    else:
        prefix += []

    def limits() -> None:
        if nofile is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = subprocess.Popen(
        [*prefix, "-m", "webims", "up", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
        preexec_fn=limits if nofile is not None else None,  # noqa: PLW1509 - setrlimit only
    )
    printed: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            printed.append(line)
            if line.startswith("ready"):
                break
        if not printed or not printed[-1].startswith("ready"):
            raise SystemExit("webims up did not start:\n" + "".join(printed))
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def run_bench(config: Path, clients: int, duration: float) -> dict[str, Any]:
    """``webims bench register --json`` in its own process; its JSON line."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "webims",
            "bench",
            "register",
            "--config",
            str(config),
            "--clients",
            str(clients),
            "--duration",
            str(duration),
            "--json",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
        check=False,
        timeout=duration + 600,
    )
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise SystemExit(f"webims bench register failed ({out.returncode}):\n{out.stdout}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def print_profile(path: Path, top: int = 30) -> None:
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--json", action="store_true", help="End with one JSON line.")
    parser.add_argument("--profile", type=Path, help="Run the server under cProfile into FILE.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="webims-bench-") as tmp:
        config = write_config(Path(tmp))
        with webims_up(config, profile=args.profile):
            result = run_bench(config, args.clients, args.duration)
    ok = result["failed"] == 0
    print(
        f"register: {result['rate']:.1f} registrations/s (target >= {TARGET_RATE:,.0f})"
        f" {'ok' if result['rate'] >= TARGET_RATE else 'BELOW TARGET'}"
    )
    print(
        f"failures: {result['failed']} of {result['ok'] + result['failed']} (target 0)"
        f" {'ok' if ok else 'FAILURES'}"
    )
    print(
        f"latency:  p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms"
        f" (target p99 <= {TARGET_P99_MS:.0f} ms)"
        f" {'ok' if result['p99_ms'] <= TARGET_P99_MS else 'ABOVE TARGET'}"
    )
    print(f"({result['clients']} clients, {result['duration_s']} s, one `webims up` process)")
    if result.get("errors"):
        print("errors:   " + ", ".join(f"{k}: {v}" for k, v in result["errors"].items()))
    if args.profile is not None:
        print_profile(args.profile)
    if args.json:
        print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
