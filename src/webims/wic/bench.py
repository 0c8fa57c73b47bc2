"""``webims bench register``: registrations per second through the whole core.

One registration is what a WIC does when it (re)connects: a new WSS
connection (TCP + TLS + WebSocket upgrade with ``sip``), a REGISTER carrying
a valid Bearer token, and its 200 OK, which the S-CSCF only sends after the
I-CSCF's UAR and its own SAR (SPEC §7 steps 3–7).  Latency is measured from
the start of the connection to the 200 OK; the connection is then closed in
the background (not counted), and the client starts over on a new one.  One
registration is made before the clock starts (the eP-CSCF fetches the WAF's
JWKS when it sees its first token).

The clients are :class:`~webims.wic.loadgen.LoadClient`, the WIC reduced to
this one exchange: the bench runs on the machine it measures, and every
millisecond of CPU it spends is one the server does not get.  Each
connection is a full TLS handshake unless ``tls_resume`` (``--tls-resume``)
is asked for; the result says which (``BenchResult.tls_resume``).

Subscribers: each client registers its own subscriber, ``bench0001`` … of
the home domain, provisioned as ``webims subscriber add`` does (HSS
subscriber + WWSF web account).  One token per subscriber is fetched before
the clock starts, through the WWSF's real login (that costs an argon2 hash
per login, which is not what is being measured).  Every registration of a
client reuses its token and its ``+sip.instance``/``reg-id``, so it replaces
the binding of the previous connection (RFC 5626 §6: a WIC reconnecting),
and the registrar holds one binding per client, whatever the duration; the
instance is derived from the IMPU and the client's number, so a later run
replaces the bindings of an earlier one too.
Sharing one subscriber among all clients was not chosen: parallel
REGISTERs of one IMPU with one token would contend for the same
registration at the S-CSCF and the HSS, which is not the load a population
of WICs makes.

With ``--mint-tokens`` the tokens are signed by the bench with the WAF's key
from the deployment's data directory, exactly as the WAF would, and no web
account is made: for thousands of subscribers, whose logins would take
longer than the load (:func:`mint_logins`).

The bench subscribers' web passwords are random, kept in
``<data_dir>/bench/subscribers.json`` (mode 0600) so a later run logs in
without re-hashing; a subscriber that exists without a known password gets a
new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import ssl
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

from ..config import Settings
from ..hss import open_store
from ..hss.provisioning import NewSubscriber
from ..hss.store import SubscriberExists
from ..sip import parse_challenge
from ..sip.errors import ParseError
from ..waf.element import WafConfig
from ..waf.identity import ImsIdentity
from ..waf.keys import KeyRing
from ..waf.tokens import AccessTokenGenerator, Grantee, TokenProfile
from ..wwsf.accounts import AccountStore
from ..wwsf.db import DATABASE_FILE, open_database
from .client import WicError
from .loadgen import LoadClient, WsTarget
from .login import WebLogin, web_login
from .registration import RegisterOutcome, UaInstance, read_outcome

__all__ = [
    "BenchResult",
    "BenchSubscriber",
    "LatencyWindow",
    "Tick",
    "fetch_logins",
    "mint_logins",
    "percentile",
    "provision_bench_subscribers",
    "run_register_bench",
    "summary_lines",
]

SECRETS_FILE = Path("bench") / "subscribers.json"
#: Namespace of the bench clients' +sip.instance UUIDs (RFC 4122 §4.3 name-based).
_BENCH_INSTANCES = uuid.UUID("6f1c7f1e-3b0a-5d2e-9a57-4b2f0d3c8e11")


@dataclass(frozen=True)
class BenchSubscriber:
    name: str
    password: str
    impi: str
    impu: str


def bench_identity(n: int, domain: str, prefix: str = "bench") -> tuple[str, str, str]:
    """``(name, IMPI, IMPU)`` of the n-th bench subscriber."""
    name = f"{prefix}{n:04d}"
    return name, f"{name}_private@{domain}", f"sip:{name}_public1@{domain}"


def _load_secrets(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _save_secrets(path: Path, secrets_: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(secrets_, f, indent=1)


#: Progress of a long preparation: (done, total).
Steps = Callable[[int, int], None]


async def provision_bench_subscribers(
    settings: Settings,
    count: int,
    prefix: str = "bench",
    *,
    web_accounts: bool = True,
    progress: Steps | None = None,
) -> list[BenchSubscriber]:
    """The bench subscribers 1..count, provisioned where missing in the HSS
    store of ``settings``' deployment and (``web_accounts``) in the WWSF's
    web accounts, as ``webims subscriber add`` does.  ``progress`` is told of
    each web account made (an argon2 hash each: the slow part)."""
    domain = settings.sip.domain
    waf = settings.waf.authorization_entity
    secrets_path = settings.data_dir / SECRETS_FILE
    known = _load_secrets(secrets_path)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    out: list[BenchSubscriber] = []
    store = open_store(settings.hss.store_location(settings.data_dir))
    async with store:
        for n in range(1, count + 1):
            name, impi, impu = bench_identity(n, domain, prefix)
            password = known.get(name) or secrets.token_urlsafe(18)
            if await store.get(name) is None:
                new = NewSubscriber(
                    name=name, password=password, impi=impi, impus=[impu], allowed_waf=[waf]
                )
                with contextlib.suppress(SubscriberExists):
                    await store.add(new.subscriber())
            out.append(BenchSubscriber(name, password, impi, impu))
    if web_accounts:
        with open_database(settings.data_dir / DATABASE_FILE) as db:
            accounts = AccountStore(db)
            for done, sub in enumerate(out, 1):
                # (sqlite3 objects stay on their thread: the hashing blocks here.)
                if accounts.get(sub.name) is None:
                    accounts.add(sub.name, sub.password, sub.impi, [sub.impu])
                elif sub.name not in known:
                    accounts.set_password(sub.name, sub.password)
                known[sub.name] = sub.password
                if progress is not None:
                    progress(done, len(out))
        _save_secrets(secrets_path, known)
    return out


def mint_logins(settings: Settings, subscribers: Sequence[BenchSubscriber]) -> list[WebLogin]:
    """Tokens as the deployment's WAF issues them, signed with its current key
    (``<data_dir>/waf``), without a login each: for loads of thousands of
    WICs, whose logins (an argon2 hash each) would take longer than the load."""
    config = WafConfig.from_settings(settings)
    keys = KeyRing(
        settings.data_dir / "waf",
        rotation=config.key_rotation_days * 86400.0,
        token_ttl=config.access_token_ttl,
        clock=time.time,
    )
    profile = TokenProfile(
        issuer=config.issuer,
        audience=config.audience,
        wwsf=config.wwsf_identity,
        authorization_entity=config.authorization_entity,
        ttl=config.access_token_ttl,
    )
    generator = AccessTokenGenerator(profile, keys, time.time)
    client = _WicClientId()
    return [
        WebLogin(
            generator.make_access_token(
                client,
                "authorization_code",
                Grantee(sub.name, ImsIdentity(sub.impi, (sub.impu,))),
                "ims:register ims:call",
            ),
            sub.impi,
            (sub.impu,),
            config.access_token_ttl,
        )
        for sub in subscribers
    ]


class _WicClientId:
    """The OAuth client the tokens are issued to (the WIC's ``client_id``)."""

    @staticmethod
    def get_client_id() -> str:
        return "wic"


async def fetch_logins(
    base_url: str,
    subscribers: Sequence[BenchSubscriber],
    ca: Path | None,
    parallel: int = 4,
    progress: Steps | None = None,
) -> list[WebLogin]:
    """One token per subscriber, through the WWSF's login (before the clock
    starts); ``progress`` is told of each."""
    gate = asyncio.Semaphore(parallel)
    done = 0

    async def one(sub: BenchSubscriber) -> WebLogin:
        nonlocal done
        async with gate:
            login = await web_login(base_url, sub.name, sub.password, ca)
        done += 1
        if progress is not None:
            progress(done, len(subscribers))
        return login

    return list(await asyncio.gather(*(one(s) for s in subscribers)))


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile ``p`` (0–100) of sorted values; 0 when empty."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), int(-(-p * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


@dataclass
class LatencyWindow:
    """Latencies (ms) of successful registrations, all of them and the last second's."""

    all: list[float] = field(default_factory=list)
    recent: list[float] = field(default_factory=list)

    def add(self, ms: float) -> None:
        self.all.append(ms)
        self.recent.append(ms)

    def take_recent(self) -> list[float]:
        out, self.recent = sorted(self.recent), []
        return out


@dataclass
class BenchResult:
    rate: float
    ok: int
    failed: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    clients: int
    duration_s: float
    errors: dict[str, int]
    #: CPU time of this (client) process per successful registration: when it
    #: nears 1000 / rate, the bench, not the server, is the limit.
    client_cpu_ms: float = 0.0
    #: The clients offered TLS session resumption (``--tls-resume``): the
    #: figures are then not those of full handshakes.
    tls_resume: bool = False
    #: Connections whose TLS handshake resumed a session (0 without ``tls_resume``).
    tls_resumed: int = 0

    def as_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def _failure(outcome: RegisterOutcome) -> str:
    """``401 Unauthorized (invalid_token: expired)``: the status and what the
    RFC 8898 challenge says, to tell failures apart."""
    why = ""
    for value in outcome.www_authenticate:
        try:
            challenge = parse_challenge(value)
        except ParseError:
            continue
        error = challenge.get("error")
        if error:
            desc = challenge.get("error_description")
            why = f" ({error}: {desc})" if desc else f" ({error})"
    return f"{outcome.status} {outcome.reason}{why}"


async def _warm_up(client: LoadClient) -> None:
    """One registration before the clock starts: the eP-CSCF fetches the WAF's
    JWKS on the first token it sees, which is not the steady state measured."""
    try:
        response = await client.register()
    finally:
        await client.drain(client.timeout)
    if not 200 <= response.status < 300:
        outcome = read_outcome(response, client.ua, client.expires)
        raise WicError(f"warm-up registration refused: {_failure(outcome)}")


class Tick(NamedTuple):
    """Progress, once a second: totals so far, rate and latencies of the last second."""

    elapsed: float
    ok: int
    failed: int
    rate: float
    p50_ms: float
    p99_ms: float


Progress = Callable[[Tick], None]


async def run_register_bench(
    url: str,
    logins: Sequence[WebLogin],
    *,
    clients: int,
    duration: float,
    ssl_context: ssl.SSLContext | None,
    expires: int = 3600,
    progress: Progress | None = None,
    timeout: float = 10.0,
    tls_resume: bool = False,
) -> BenchResult:
    """``clients`` loops, each registering over a new connection until
    ``duration`` ends (:class:`~webims.wic.loadgen.LoadClient`).  With
    ``tls_resume`` a client's new connection offers the TLS session of its
    previous one (abbreviated handshakes, as a browser reconnecting); by
    default each one is a full handshake."""
    if not logins:
        raise ValueError("no subscriber to register")
    latencies = LatencyWindow()
    errors: Counter[str] = Counter()
    counts = {"ok": 0, "failed": 0}
    target = WsTarget.parse(url)

    def client(n: int) -> LoadClient:
        # One UA instance per client, kept across its connections and across
        # runs (its +sip.instance is derived from the IMPU and the client's
        # number): a later run replaces the bindings of an earlier one rather
        # than adding flows until the S-CSCF's limit per UE answers 403.
        login = logins[n % len(logins)]
        impu = login.impus[0]
        instance = uuid.uuid5(_BENCH_INSTANCES, f"{impu}#{n}")
        return LoadClient(
            target,
            impu,
            login.access_token,
            ua=UaInstance(impu, instance=f"urn:uuid:{instance}"),
            ssl_context=ssl_context,
            expires=expires,
            timeout=timeout,
            tls_resume=tls_resume,
        )

    wics = [client(n) for n in range(clients)]
    # The first client's warm-up binding is replaced by its next registration.
    await _warm_up(wics[0])
    start = time.perf_counter()
    cpu_start = time.process_time()
    deadline = start + duration

    async def one_client(wic: LoadClient) -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                response = await wic.register()
            except WicError as err:
                counts["failed"] += 1
                errors[type(err).__name__] += 1
                continue
            if 200 <= response.status < 300:
                counts["ok"] += 1
                latencies.add((time.perf_counter() - t0) * 1000)
            else:
                counts["failed"] += 1
                errors[_failure(read_outcome(response, wic.ua, expires))] += 1

    async def report() -> None:
        last_ok, last_t = 0, start
        while True:
            await asyncio.sleep(1.0)
            now = time.perf_counter()
            recent = latencies.take_recent()
            rate = (counts["ok"] - last_ok) / (now - last_t)
            last_ok, last_t = counts["ok"], now
            if progress is not None:
                progress(
                    Tick(
                        now - start,
                        counts["ok"],
                        counts["failed"],
                        rate,
                        percentile(recent, 50),
                        percentile(recent, 99),
                    )
                )

    reporter = asyncio.create_task(report())
    try:
        await asyncio.gather(*(one_client(wic) for wic in wics))
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    await asyncio.gather(*(wic.drain(5.0) for wic in wics))
    done = sorted(latencies.all)
    return BenchResult(
        rate=round(counts["ok"] / elapsed, 1),
        ok=counts["ok"],
        failed=counts["failed"],
        p50_ms=round(percentile(done, 50), 2),
        p99_ms=round(percentile(done, 99), 2),
        mean_ms=round(sum(done) / len(done), 2) if done else 0.0,
        max_ms=round(done[-1], 2) if done else 0.0,
        clients=clients,
        duration_s=round(elapsed, 2),
        errors=dict(errors),
        client_cpu_ms=round(cpu * 1000 / counts["ok"], 3) if counts["ok"] else 0.0,
        tls_resume=tls_resume,
        tls_resumed=sum(wic.resumed for wic in wics),
    )


def summary_lines(result: BenchResult) -> list[str]:
    """The figures, for a person."""
    lines = [
        f"registrations/s {result.rate:.1f}  ok {result.ok}  failed {result.failed}"
        f"  ({result.clients} clients, {result.duration_s:.1f} s)",
        f"latency ms       p50 {result.p50_ms:.2f}  p99 {result.p99_ms:.2f}"
        f"  mean {result.mean_ms:.2f}  max {result.max_ms:.2f}",
        f"bench client     {result.client_cpu_ms:.2f} ms of CPU per registration"
        + (
            f"  ({result.tls_resumed} TLS sessions resumed)"
            if result.tls_resume
            else "  (full TLS handshakes)"
        ),
    ]
    if result.errors:
        lines.append(
            "failures         " + ", ".join(f"{k}: {v}" for k, v in sorted(result.errors.items()))
        )
    return lines
