"""Registrations per second through the whole system, as ``webims up`` runs it.

Starts ``webims up`` in its own process, on free ports, in a temporary data
directory (its own dev CA, WAF keys, HSS store), then runs ``webims bench
register --json`` against it in another process: each registration is a new
WSS connection, a REGISTER with a valid Bearer token, and the 200 OK that
comes back after the I-CSCF's UAR and the S-CSCF's SAR (see
``webims.wic.bench`` for the subscribers and tokens used).

    python bench/bench_register.py [--clients 20] [--duration 10] [--json]
                                   [--profile server.prof] [--separate] [--tls-resume]

Prints the figures against the targets (issue 5): >= 1,000 registrations/s,
0 failures, p99 <= 50 ms, and the CPU time the server process spent per
registration while under load (``/proc/<pid>/stat``): all elements share
that one process, so 1000 / that figure bounds its rate on one core.  With
``--profile FILE`` cProfile runs in the server from the bench's first
progress line to its end (SIGUSR1/SIGUSR2), and the functions it spent most
time in are printed.  With ``--separate`` each element runs in its own
``webims run`` process (HSS, web element, I-CSCF, S-CSCF, eP-CSCF) and the
CPU time per registration is also given per element; ``--profile`` then
profiles the eP-CSCF.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parent.parent / "src"
TARGET_RATE = 1000.0
TARGET_P99_MS = 50.0
#: The elements of ``webims up``, each in its own ``webims run`` process.
SEPARATE = ("hss", "wwsf", "icscf", "scscf", "pcscf")


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
        f"[hss]\ndiameter_port = {dia}\napi_port = {api}\n"
        # No metrics endpoint: two benches at once would both want port 9464.
        + ("" if "[metrics]" in extra else "[metrics]\nport = 0\n")
        + extra
    )
    return config


def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        PYTHONPATH=f"{SRC}{os.pathsep}{path}" if path else str(SRC),
    )


def _profiled_server(out: Path, argv: list[str]) -> None:
    """``webims ARGV`` with cProfile switched on by SIGUSR1 and off (and
    written to ``out``) by SIGUSR2: the profile of the load alone, without the
    start or the logins."""
    import cProfile

    from webims.cli import main as webims_main

    profiler = cProfile.Profile()

    def start(*_: object) -> None:
        profiler.enable()

    def stop(*_: object) -> None:
        profiler.disable()
        profiler.dump_stats(str(out))

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    sys.argv = ["webims", *argv]
    webims_main()


def _started(command: list[str], nofile: int | None, what: str) -> subprocess.Popen[str]:
    """``command`` (``webims what``) in its own process, once it has printed
    its ``ready`` line; RLIMIT_NOFILE raised towards ``nofile``."""

    def limits() -> None:
        import resource

        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(nofile or hard, hard), hard))

    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
        preexec_fn=limits if nofile is not None else None,  # noqa: PLW1509 - setrlimit only
    )
    assert proc.stdout is not None
    printed: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        printed.append(line)
        if line.startswith("ready"):
            return proc
    _stop(proc)
    raise SystemExit(f"webims {what} did not start:\n" + "".join(printed))


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL if it has not ended within 30 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def _webims(profile: Path | None) -> list[str]:
    """How to run ``webims``: as itself, or under cProfile (``--profiled-server``)."""
    if profile is None:
        return [sys.executable, "-m", "webims"]
    return [sys.executable, __file__, "--profiled-server", str(profile), "--"]


@contextlib.contextmanager
def webims_up(
    config: Path, *, profile: Path | None = None, nofile: int | None = None
) -> Iterator[subprocess.Popen[str]]:
    """``webims up --config`` until the block ends (SIGTERM), started and ready."""
    proc = _started([*_webims(profile), "up", "--config", str(config)], nofile, "up")
    try:
        yield proc
    finally:
        _stop(proc)


@contextlib.contextmanager
def separate_elements(
    config: Path, nofile: int = 4096, profile: Path | None = None
) -> Iterator[dict[str, int]]:
    """``webims run NAME`` for each element, one process each (started in
    this order); yields their pids by name, the eP-CSCF first.  With
    ``profile`` the eP-CSCF (the busiest) runs under cProfile, as
    :func:`webims_up` runs the whole server."""
    procs: list[subprocess.Popen[str]] = []
    try:
        for name in SEPARATE:
            command = _webims(profile if name == "pcscf" else None)
            procs.append(
                _started([*command, "run", name, "--config", str(config)], nofile, f"run {name}")
            )
        pids = {name: proc.pid for name, proc in zip(SEPARATE, procs, strict=True)}
        yield {"pcscf": pids["pcscf"]} | pids
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            _stop(proc)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class LoadWindow:
    """The servers' CPU time and the successes counted between the bench's
    first progress line and its end."""

    #: The server processes by name (the first one is profiled).
    servers: dict[str, int]
    profile: bool
    cpu0: dict[str, float] = field(default_factory=dict)
    cpu1: dict[str, float] = field(default_factory=dict)
    ok0: int = 0
    ok1: int = 0
    started: bool = False

    def tick(self, line: str) -> None:
        if " ok " not in line:
            return
        ok = int(line.split(" ok ", 1)[1].split(maxsplit=1)[0])
        if not self.started:
            self.started = True
            self.cpu0, self.ok0 = self._cpu(), ok
            if self.profile:
                os.kill(next(iter(self.servers.values())), signal.SIGUSR1)
        self.cpu1, self.ok1 = self._cpu(), ok

    def _cpu(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.servers.items()}

    def end(self) -> None:
        if self.started and self.profile:
            os.kill(next(iter(self.servers.values())), signal.SIGUSR2)
            time.sleep(1.0)

    def cpu_ms_per_registration(self, name: str | None = None) -> float:
        """Of one server, or of all together."""
        done = self.ok1 - self.ok0
        names = [name] if name else list(self.servers)
        spent = sum(self.cpu1.get(n, 0.0) - self.cpu0.get(n, 0.0) for n in names)
        return spent * 1000 / done if done > 0 else float("nan")


def run_bench(
    config: Path,
    clients: int,
    duration: float,
    window: LoadWindow | None = None,
    *,
    tls_resume: bool = False,
) -> dict[str, Any]:
    """``webims bench register --json`` in its own process; its JSON line.
    Its progress (stderr) is echoed and fed to ``window``."""
    proc = subprocess.Popen(
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
            *(["--tls-resume"] if tls_resume else []),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert proc.stderr is not None and proc.stdout is not None
    for line in proc.stderr:
        sys.stderr.write(line)
        if window is not None:
            window.tick(line)
    out = proc.stdout.read()
    proc.wait(timeout=60)
    if window is not None:
        window.end()
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"webims bench register failed ({proc.returncode}):\n{out}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _layer(filename: str, function: str) -> str:
    """The package a profiled function belongs to: ``webims.sip``, ``ssl`` …"""
    if "/webims/" in filename:
        parts = filename.split("/webims/", 1)[1].split("/")
        return "webims." + (parts[0] if len(parts) > 1 else parts[0].removesuffix(".py"))
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    if filename == "~":  # a builtin: name it by what it is
        if "_ssl." in function or "SSL" in function:
            return "ssl (OpenSSL)"
        return "builtins"
    return "stdlib " + Path(filename).name.removesuffix(".py")


def print_profile(path: Path, top: int = 30) -> None:
    """Time spent in each package (own time of its functions), then the
    functions with the most own time."""
    stats = pstats.Stats(str(path))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    layers: dict[str, float] = {}
    for (filename, _, function), (_, _, tottime, _, _) in raw.items():
        layer = _layer(filename, function)
        layers[layer] = layers.get(layer, 0.0) + tottime
    print(f"own time by package, {total:.2f} s profiled:")
    for layer, spent in sorted(layers.items(), key=lambda kv: -kv[1])[:20]:
        print(f"  {spent / total:6.1%}  {layer}")
    stats.sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--json", action="store_true", help="End with one JSON line.")
    parser.add_argument(
        "--tls-resume",
        action="store_true",
        help="Resume TLS sessions on reconnection, as browsers do (default: full handshakes).",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="Profile the server (with --separate: the eP-CSCF) under load into FILE.",
    )
    parser.add_argument(
        "--separate",
        action="store_true",
        help="Each element in its own `webims run` process instead of one `webims up`.",
    )
    if len(sys.argv) > 2 and sys.argv[1] == "--profiled-server":
        _profiled_server(Path(sys.argv[2]), sys.argv[4:])
        return
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="webims-bench-") as tmp:
        config = write_config(Path(tmp))
        if args.separate:
            with separate_elements(config, profile=args.profile) as pids:
                window = LoadWindow(pids, args.profile is not None)
                result = run_bench(
                    config, args.clients, args.duration, window, tls_resume=args.tls_resume
                )
        else:
            with webims_up(config, profile=args.profile) as server:
                window = LoadWindow({"up": server.pid}, args.profile is not None)
                result = run_bench(
                    config, args.clients, args.duration, window, tls_resume=args.tls_resume
                )
    result["server_cpu_ms_per_registration"] = round(window.cpu_ms_per_registration(), 3)
    if args.separate:
        result["cpu_ms_per_registration_by_element"] = {
            name: round(window.cpu_ms_per_registration(name), 3) for name in SEPARATE
        }
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
    how = "one `webims run` process per element" if args.separate else "one `webims up` process"
    print(f"({result['clients']} clients, {result['duration_s']} s, {how})")
    per = window.cpu_ms_per_registration()
    where = "the elements' processes" if args.separate else "the `webims up` process"
    print(
        f"server:   {per:.2f} ms of CPU per registration in {where}"
        f" (at most {1000 / per:,.0f} registrations/s per core they get)"
    )
    if args.separate:
        print(
            "          by element: "
            + ", ".join(
                f"{n} {v:.2f} ms" for n, v in result["cpu_ms_per_registration_by_element"].items()
            )
        )
    client = result.get("client_cpu_ms")
    if client:
        # The client (TLS, WebSocket and SIP of every WIC) runs on the same cores.
        print(
            f"client:   {client:.2f} ms of CPU per registration in the bench process"
            f" (same machine: {os.cpu_count()} cores for {per + client:.2f} ms in all)"
        )
    if result.get("errors"):
        print("errors:   " + ", ".join(f"{k}: {v}" for k, v in result["errors"].items()))
    if args.profile is not None:
        print_profile(args.profile)
    if args.json:
        print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
