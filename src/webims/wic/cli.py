"""``webims register`` and ``webims bench register``: the Python WIC from the
command line (DESIGN.md, the external contract).

``register`` logs in on the WWSF (code + PKCE, as ``webims token``), opens
WSS to the eP-CSCF and registers the token's first IMPU; it prints the
outcome (status, registered IMPUs, Service-Route, granted expiry) and the
ladder of the exchange, and exits 0 on 200 OK, 1 when the registration is
refused or the network fails, 2 for a usage or configuration error.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from ..config import ConfigError, Settings, load_settings
from ..observe.ladder import NO_FINAL, LadderFlow, load_flows, render_plain
from ..observe.trace import trace_dir
from ..sip import Request
from ..transport.loop import install_event_loop_policy
from .bench import (
    Tick,
    fetch_logins,
    mint_logins,
    provision_bench_subscribers,
    run_register_bench,
    summary_lines,
)
from .client import WicClient, WicError, client_ssl_context
from .ladder import WireLog
from .login import default_ca, web_login
from .registration import RegisterOutcome
from .token import TokenFlowError

__all__ = ["bench_app", "register"]

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML configuration file.")]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Where state, keys and certificates live.")
]
UrlOpt = Annotated[
    str | None,
    typer.Option("--url", help="The eP-CSCF's WebSocket URI (default: web.pcscf_url)."),
]
CaOpt = Annotated[
    Path | None,
    typer.Option("--ca", help="CA certificate to trust (default: the data dir's dev CA)."),
]


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"webims: {message}", err=True)
    raise typer.Exit(code)


def _settings(config: Path | None, data_dir: Path | None) -> Settings:
    try:
        return load_settings(config, data_dir=data_dir)
    except ConfigError as err:
        _fail(f"configuration error: {err}", 2)


async def _core_ladder(settings: Settings, impu: str, call_id: str, registers: int) -> list[str]:
    """The deployment's ladder of our ``registers`` REGISTER flows (Call-ID
    ``call_id``) across the elements (steps numbered as in TS 24.371 Figure
    A.3.2-1), from its message trace once the elements wrote it out (every
    ``[trace] flush_interval``); nothing when this deployment records no
    trace here."""
    if not settings.trace.enabled:
        return []
    directory = trace_dir(settings)
    deadline = time.monotonic() + 2 * settings.trace.flush_interval + 1.0
    flows: list[LadderFlow] = []
    while time.monotonic() < deadline:
        await asyncio.sleep(settings.trace.flush_interval / 2)
        if not directory.is_dir():
            continue
        recent = load_flows(directory, last=registers + 8, impus=[impu])
        flows = [f for f in recent if f"Call-ID {call_id}," in f.title][-registers:]
        if len(flows) >= registers and flows[-1].outcome != NO_FINAL:
            break
    return [line for flow in flows for line in render_plain(flow).splitlines()]


def _print_outcome(outcome: RegisterOutcome, impu: str) -> None:
    typer.echo(f"{outcome.status} {outcome.reason}  ({impu})")
    if outcome.ok:
        for n, uri in enumerate(outcome.associated_uris):
            typer.echo(f"  IMPU           {uri}{'  (default)' if n == 0 else ''}")
        for route in outcome.service_route:
            typer.echo(f"  Service-Route  {route}")
        if outcome.expires is not None:
            typer.echo(f"  expires        {outcome.expires} s")
        if outcome.pub_gruu:
            typer.echo(f"  pub-gruu       {outcome.pub_gruu}")
    for challenge in outcome.www_authenticate:
        typer.echo(f"  WWW-Authenticate: {challenge}")


async def _subscribe(wic: WicClient) -> None:
    """The reg event subscription of 24.229 5.1.1.3 and its first NOTIFY, printed."""
    answer = await wic.subscribe_reg_event()
    typer.echo(f"  reg event      SUBSCRIBE: {answer.status} {answer.reason}", nl=False)
    typer.echo(f" (Expires {answer.expires})" if answer.expires is not None else "")
    if answer.status >= 300:
        return
    try:
        notify = await wic.next_reg_notification()
    except TimeoutError:
        typer.echo("  reg event      no NOTIFY within 5 s")
        return
    regs = ", ".join(f"{aor} {state}" for aor, state in notify.registrations)
    typer.echo(
        f"  reg event      NOTIFY version {notify.version} ({notify.state}),"
        f" {notify.subscription_state}: {regs}"
    )


async def _register(
    settings: Settings,
    user: str,
    password: str,
    *,
    url: str,
    ca: Path | None,
    expires: int,
    hold: float,
    deregister: bool,
    subscribe: bool,
    wire: WireLog,
) -> tuple[RegisterOutcome, list[str]]:
    """Log in, register (hold, deregister); the outcome and the core's ladder."""
    base_url = settings.web.public_url
    login = await web_login(base_url, user, password, ca)

    async def renew() -> str:
        return (await web_login(base_url, user, password, ca)).access_token

    wic = WicClient(
        url,
        login.impus[0],
        login.access_token,
        ssl_context=client_ssl_context(ca) if url.startswith("wss:") else None,
        renew_token=renew,
        on_message=wire,
    )
    await wic.connect()
    try:
        outcome = await wic.register(expires)
        if outcome.ok:
            _print_outcome(outcome, login.impus[0])
        if outcome.ok and subscribe:
            await _subscribe(wic)
        if outcome.ok and hold > 0:
            wic.keep_registered()
            await asyncio.sleep(hold)
        if outcome.ok and deregister:
            await wic.deregister()
    finally:
        await wic.close()
    registers = sum(
        1
        for direction, message, _ in wire.entries
        if direction == "out" and isinstance(message, Request) and message.method == "REGISTER"
    )
    return outcome, await _core_ladder(settings, login.impus[0], wic.ua.call_id, registers)


def register(
    *,
    user: Annotated[str, typer.Option("--user", help="Web user name.")],
    password: Annotated[
        str, typer.Option("--password", envvar="WEBIMS_PASSWORD", help="Web password.")
    ],
    expires: Annotated[
        int, typer.Option("--expires", min=0, help="Registration lifetime asked for (s).")
    ] = 3600,
    hold: Annotated[
        float,
        typer.Option("--hold", min=0, help="Stay registered this long (s), refreshing in time."),
    ] = 0.0,
    deregister: Annotated[
        bool, typer.Option("--deregister", help="Deregister (Expires: 0) before leaving.")
    ] = False,
    subscribe: Annotated[
        bool,
        typer.Option("--subscribe", help="Subscribe to the reg event once registered."),
    ] = False,
    url: UrlOpt = None,
    ca: CaOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Log in, get a token and REGISTER over WSS as a WIC does; prints the outcome."""
    settings = _settings(config, data_dir)
    ws_url = url or settings.web.pcscf_url
    wire = WireLog()
    install_event_loop_policy()
    try:
        outcome, core = asyncio.run(
            _register(
                settings,
                user,
                password,
                url=ws_url,
                ca=ca or default_ca(settings),
                expires=expires,
                hold=hold,
                deregister=deregister,
                subscribe=subscribe,
                wire=wire,
            )
        )
    except TokenFlowError as err:
        _fail(f"login: {err}", 1)
    except WicError as err:
        for line in wire.ladder():
            typer.echo(line)
        _fail(str(err), 1)
    if not outcome.ok:
        _print_outcome(outcome, user)
    typer.echo("")
    for line in wire.ladder():
        typer.echo(line)
    if core:
        typer.echo("")
        for line in core:
            typer.echo(line)
    if not outcome.ok:
        _fail(f"registration refused: {outcome.status} {outcome.reason}", 1)


# -- webims bench ----------------------------------------------------------------------

bench_app = typer.Typer(help="Load generators.", no_args_is_help=True, add_completion=False)


@bench_app.command("register")
def bench_register(
    *,
    clients: Annotated[int, typer.Option("--clients", min=1, help="Clients in parallel.")] = 20,
    duration: Annotated[float, typer.Option("--duration", min=0.1, help="Seconds of load.")] = 10.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="End with one JSON line of the figures.")
    ] = False,
    users: Annotated[
        int | None,
        typer.Option("--users", min=1, help="Bench subscribers (default: one per client)."),
    ] = None,
    expires: Annotated[int, typer.Option("--expires", min=1)] = 3600,
    mint_tokens: Annotated[
        bool,
        typer.Option(
            "--mint-tokens",
            help="Sign the tokens with the WAF's key in the data dir instead of logging in.",
        ),
    ] = False,
    tls_resume: Annotated[
        bool,
        typer.Option(
            "--tls-resume",
            help="Offer the TLS session of a client's previous connection, as browsers"
            " do (off: every connection is a full handshake).",
        ),
    ] = False,
    url: UrlOpt = None,
    ca: CaOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Registrations per second: each one a new WSS connection, a REGISTER with
    a valid token and its 200 OK (through UAR and SAR)."""
    settings = _settings(config, data_dir)
    ws_url = url or settings.web.pcscf_url
    trust = ca or default_ca(settings)

    def progress(tick: Tick) -> None:
        print(
            f"{tick.elapsed:5.1f}s  ok {tick.ok:7d}  failed {tick.failed:5d}"
            f"  {tick.rate:7.1f}/s  p50 {tick.p50_ms:6.2f} ms  p99 {tick.p99_ms:6.2f} ms",
            file=sys.stderr,
            flush=True,
        )

    def steps(what: str) -> Callable[[int, int], None]:
        """Progress of a preparation step, at most once a second, and at its end."""
        last = time.monotonic()

        def step(done: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if done == total or now - last >= 1.0:
                last = now
                print(f"  {what} {done}/{total}", file=sys.stderr, flush=True)

        return step

    async def run() -> None:
        count = users or clients
        print(f"provisioning {count} bench subscribers …", file=sys.stderr, flush=True)
        subs = await provision_bench_subscribers(
            settings, count, web_accounts=not mint_tokens, progress=steps("web accounts")
        )
        if mint_tokens:
            logins = mint_logins(settings, subs)
        else:
            print(f"logging in {count} subscribers …", file=sys.stderr, flush=True)
            logins = await fetch_logins(
                settings.web.public_url, subs, trust, progress=steps("logged in")
            )
        result = await run_register_bench(
            ws_url,
            logins,
            clients=clients,
            duration=duration,
            expires=expires,
            ssl_context=client_ssl_context(trust) if ws_url.startswith("wss:") else None,
            progress=progress,
            tls_resume=tls_resume,
        )
        for line in summary_lines(result):
            typer.echo(line)
        if as_json:
            typer.echo(result.as_json())
        if result.ok == 0:
            _fail("no registration succeeded", 1)

    install_event_loop_policy()
    try:
        asyncio.run(run())
    except TokenFlowError as err:
        _fail(f"login of a bench subscriber: {err}", 1)
    except WicError as err:
        _fail(str(err), 1)
    except OSError as err:
        _fail(f"bench: {err}", 1)
