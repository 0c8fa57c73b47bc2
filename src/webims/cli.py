"""The ``webims`` command.

``up`` and ``run`` start elements; ``subscriber …`` provisions the HSS store
of the deployment that ``--config``/``--data-dir`` select, with the same
rules as the HSS's REST API (:mod:`webims.hss.provisioning`);
``subscriber deregister`` asks the running HSS, through that API, to send
the S-CSCF an RTR.  Errors are one line on stderr: exit 2 for a usage or
validation error, 1 for a refusal of the store (a subscriber that exists, an
identity that does not).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from . import __version__
from .config import ConfigError, Settings, load_settings
from .hss import open_store
from .hss.api import (
    DEREGISTRATION_REASONS,
    ApiKeyError,
    ApiRefusal,
    client_key,
    request_deregistration,
)
from .hss.model import InvalidSubscriber, Subscriber
from .hss.provisioning import NewSubscriber, SubscriberView, describe_errors, seed_demo
from .hss.store import StoreError, SubscriberExists, SubscriberNotFound, SubscriberStore
from .observe.command import trace as trace_command
from .transport.loop import install_event_loop_policy
from .up import ELEMENTS, RUNNABLE, UP_ELEMENTS, run_elements
from .wic.cli import bench_app, register
from .wic.token import TokenFlowError, fetch_token
from .wwsf.accounts import AccountError, AccountExists, AccountStore, InvalidAccount
from .wwsf.db import DATABASE_FILE, DatabaseError, open_database
from .wwsf.provisioning import seed_pool, seed_web_demo

app = typer.Typer(
    help="webims: WebRTC access to IMS (3GPP TS 24.371).",
    no_args_is_help=True,
    add_completion=False,
)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML configuration file.")]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Where state, keys and certificates live.")
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]


def _settings(config: Path | None, data_dir: Path | None) -> Settings:
    try:
        return load_settings(config, data_dir=data_dir)
    except ConfigError as err:
        typer.echo(f"webims: configuration error: {err}", err=True)
        raise typer.Exit(2) from None


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _run(names: list[str], settings: Settings, *, seed: bool = False) -> None:
    install_event_loop_policy()
    try:
        asyncio.run(run_elements(names, settings, typer.echo, seed=seed))
    except OSError as err:
        typer.echo(f"webims: cannot start: {err}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass


@app.command()
def up(config: ConfigOpt = None, data_dir: DataDirOpt = None, verbose: VerboseOpt = False) -> None:
    """Run every element in one process (the embedded deployment)."""
    _logging(verbose)
    settings = _settings(config, data_dir)
    _run(list(UP_ELEMENTS), settings, seed=True)


@app.command()
def run(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(ELEMENTS)}.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Run one element alone."""
    _logging(verbose)
    if name not in ELEMENTS:
        typer.echo(f"webims: unknown element {name!r}; one of {', '.join(ELEMENTS)}", err=True)
        raise typer.Exit(2)
    if name not in RUNNABLE:
        typer.echo(f"webims: the {name} element is not part of this version yet", err=True)
        raise typer.Exit(2)
    _run([name], _settings(config, data_dir))


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


# -- webims subscriber ---------------------------------------------------------------

subscriber_app = typer.Typer(
    help="Provision subscribers in the HSS store.", no_args_is_help=True, add_completion=False
)
app.add_typer(subscriber_app, name="subscriber")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
T = TypeVar("T")


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"webims: {message}", err=True)
    raise typer.Exit(code)


def _with_store(
    config: Path | None, data_dir: Path | None, action: Callable[[SubscriberStore], Awaitable[T]]
) -> T:
    """Run ``action`` on the deployment's subscriber store; store refusals
    become one-line errors."""
    settings = _settings(config, data_dir)
    try:
        store = open_store(settings.hss.store_location(settings.data_dir))
    except ValueError as err:
        _fail(f"configuration error: hss.store: {err}", 2)
    if settings.hss.store is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> T:
        async with store:
            return await action(store)

    try:
        return asyncio.run(run())
    except SubscriberExists as err:
        _fail(f"subscriber exists: {err}", 1)
    except SubscriberNotFound as err:
        _fail(f"not found: {err}", 1)
    except InvalidSubscriber as err:
        _fail(f"invalid subscriber: {err}", 2)
    except (StoreError, OSError) as err:
        _fail(f"subscriber store: {err}", 1)


async def _existing(store: SubscriberStore, name: str) -> Subscriber:
    sub = await store.get(name)
    if sub is None:
        raise SubscriberNotFound(f"no subscriber {name!r}")
    return sub


@subscriber_app.command("add")
def subscriber_add(
    *,
    web_user: Annotated[str, typer.Option("--web-user", help="Web user name (the key).")],
    password: Annotated[str, typer.Option("--password", help="The IMPI's password.")],
    impi: Annotated[str, typer.Option("--impi", help="Private identity, user@realm.")],
    impu: Annotated[list[str], typer.Option("--impu", help="Public identity (repeatable).")],
    barred_impu: Annotated[
        list[str] | None, typer.Option("--barred-impu", help="Barred public identity.")
    ] = None,
    allowed_waf: Annotated[
        list[str] | None, typer.Option("--allowed-waf", help="WAF identity allowed.")
    ] = None,
    allowed_wwsf: Annotated[
        list[str] | None, typer.Option("--allowed-wwsf", help="WWSF identity allowed.")
    ] = None,
    realm: Annotated[
        str | None, typer.Option("--realm", help="Digest realm (default: the IMPI's domain).")
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Add a subscriber: one IMPI and the IMPUs of its implicit registration set."""
    try:
        new = NewSubscriber(
            name=web_user,
            password=password,
            impi=impi,
            impus=impu,
            barred_impus=barred_impu or [],
            allowed_waf=allowed_waf or [],
            allowed_wwsf=allowed_wwsf or [],
            realm=realm,
        )
        subscriber = new.subscriber()
    except ValidationError as err:
        _fail(f"invalid subscriber: {describe_errors(err.errors())}", 2)
    except InvalidSubscriber as err:
        _fail(f"invalid subscriber: {err}", 2)
    impus = [p.impu for p in subscriber.publics if not p.barred]
    with _web_accounts(config, data_dir) as accounts:
        if accounts.get(web_user) is not None:
            _fail(f"subscriber exists: web user {web_user!r}", 1)
        _with_store(config, data_dir, lambda store: store.add(subscriber))
        try:
            # The web account: same password, argon2id-hashed, linked to the IMS side.
            accounts.add(web_user, password, impi, impus)
        except AccountError as err:
            _with_store(config, data_dir, lambda store: store.remove(web_user))
            _fail(f"web account refused, nothing added: {err}", 1)
    typer.echo(f"added {web_user} ({impi}: {', '.join(p.impu for p in subscriber.publics)})")


@subscriber_app.command("list")
def subscriber_list(
    as_json: JsonOpt = False, config: ConfigOpt = None, data_dir: DataDirOpt = None
) -> None:
    """List every subscriber."""

    async def everyone(store: SubscriberStore) -> list[Subscriber]:
        subs = [await store.get(name) for name in await store.names()]
        return [s for s in subs if s is not None]

    subs = _with_store(config, data_dir, everyone)
    if as_json:
        views = [SubscriberView.of(s).model_dump(mode="json") for s in subs]
        typer.echo(json.dumps(views, indent=2))
        return
    table = Table("name", "IMPI", "IMPUs", "allowed WAF", "S-CSCF")
    for sub in subs:
        table.add_row(
            sub.name,
            "\n".join(p.impi for p in sub.privates),
            "\n".join(_impu_line(p.impu, p.barred, p.state.name) for p in sub.publics),
            "\n".join(sub.allowed_waf),
            sub.assignment.server_name if sub.assignment else "",
        )
    _console().print(table)


def _console() -> Console:
    # A pipe gets whole lines rather than a table folded to 80 columns.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def _impu_line(impu: str, barred: bool, state: str) -> str:
    marks = [state.lower().replace("_", " ")]
    if barred:
        marks.insert(0, "barred")
    return f"{impu} ({', '.join(marks)})"


@subscriber_app.command("show")
def subscriber_show(
    name: Annotated[str, typer.Argument(help="Web user name.")],
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Show one subscriber (never its password or HA1)."""
    sub = _with_store(config, data_dir, lambda store: _existing(store, name))
    view = SubscriberView.of(sub)
    if as_json:
        typer.echo(json.dumps(view.model_dump(mode="json"), indent=2))
        return
    table = Table("", "", show_header=False)
    table.add_row("name", sub.name)
    for priv in sub.privates:
        table.add_row("IMPI", f"{priv.impi} (realm {priv.realm})")
    for pub in sub.publics:
        table.add_row("IMPU", _impu_line(pub.impu, pub.barred, pub.state.name))
    for kind, values in [
        ("allowed WAF", sub.allowed_waf),
        ("allowed WWSF", sub.allowed_wwsf),
        ("barred auth entity", sub.barred_auth_entities),
    ]:
        for value in values:
            table.add_row(kind, value)
    if sub.assignment:
        table.add_row("S-CSCF", f"{sub.assignment.server_name} ({sub.assignment.diameter_host})")
    _console().print(table)


@subscriber_app.command("remove")
def subscriber_remove(
    name: Annotated[str, typer.Argument(help="Web user name.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Remove a subscriber and all its identities, and its web account."""

    async def remove(store: SubscriberStore) -> Subscriber | None:
        try:
            return await store.remove(name)
        except SubscriberNotFound:
            return None

    removed = _with_store(config, data_dir, remove)
    with _web_accounts(config, data_dir) as accounts:
        web = accounts.get(name) is not None
        if web:
            accounts.remove(name)
    if removed is None and not web:
        _fail(f"not found: no subscriber {name!r}", 1)
    typer.echo(f"removed {name}")


@subscriber_app.command("deregister")
def subscriber_deregister(
    name: Annotated[str, typer.Argument(help="Web user name.")],
    reason: Annotated[
        str, typer.Option("--reason", help=f"One of {', '.join(DEREGISTRATION_REASONS)}.")
    ] = "permanent_termination",
    impu: Annotated[
        list[str] | None,
        typer.Option("--impu", help="Only this IMPU's implicit set (repeatable)."),
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Deregister a subscriber from the network: the running HSS sends the
    S-CSCF a Registration-Termination-Request (TS 29.228 6.1.3) through its API."""
    if reason not in DEREGISTRATION_REASONS:
        _fail(f"--reason must be one of {', '.join(DEREGISTRATION_REASONS)}", 2)
    settings = _settings(config, data_dir)
    hss = settings.hss
    if not hss.api_port:
        _fail("the HSS has no provisioning API (hss.api_port = 0)", 2)
    try:
        key = client_key(hss.api_key, settings.data_dir)
        request_deregistration(hss.host, hss.api_port, key, name, reason=reason, impus=impu)
    except (ApiKeyError, ApiRefusal) as err:
        _fail(str(err), 1)
    typer.echo(f"deregistered {name} ({reason}): RTR sent to its S-CSCF")


def _set_barred(impu: str, barred: bool, config: Path | None, data_dir: Path | None) -> None:
    sub = _with_store(config, data_dir, lambda store: store.set_barred(impu, barred))
    typer.echo(f"{'barred' if barred else 'unbarred'} {impu} (subscriber {sub.name})")


@subscriber_app.command("bar")
def subscriber_bar(
    impu: Annotated[str, typer.Argument(help="Public identity.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Bar a public identity (it can no longer register or originate alone)."""
    _set_barred(impu, True, config, data_dir)


@subscriber_app.command("unbar")
def subscriber_unbar(
    impu: Annotated[str, typer.Argument(help="Public identity.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Lift the barring of a public identity."""
    _set_barred(impu, False, config, data_dir)


@subscriber_app.command("link")
def subscriber_link(
    name: Annotated[str, typer.Argument(help="Subscriber name (the web user).")],
    password: Annotated[
        str | None,
        typer.Option("--password", help="Web password (required for a new web account)."),
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Link the web account NAME to the IMPI and unbarred IMPUs of the HSS
    subscriber NAME, making the account (with --password) if it is missing."""
    sub = _with_store(config, data_dir, lambda store: _existing(store, name))
    impi = sub.privates[0].impi
    impus = [p.impu for p in sub.publics if not p.barred]
    with _web_accounts(config, data_dir) as accounts:
        try:
            if accounts.get(name) is None:
                if password is None:
                    _fail(f"web user {name!r} does not exist yet: give it a --password", 2)
                accounts.add(name, password, impi, impus)
            else:
                accounts.link(name, impi, impus)
                if password is not None:
                    accounts.set_password(name, password)
        except InvalidAccount as err:
            _fail(f"invalid web account: {err}", 2)
        except AccountError as err:
            _fail(f"web account refused: {err}", 1)
    typer.echo(f"linked web user {name} to {impi}: {', '.join(impus)}")


@subscriber_app.command("seed-demo")
def subscriber_seed_demo(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    pool: Annotated[
        bool, typer.Option("--pool", help="Also the HSS subscribers of the WWSF's identity pool.")
    ] = False,
) -> None:
    """Provision the demo subscribers (user1, user2 of home1.net) that are missing,
    with their web accounts."""
    subscribers = _with_store(config, data_dir, seed_demo)
    with _web_accounts(config, data_dir) as accounts:
        try:
            web = dict(seed_web_demo(accounts))
        except AccountExists as err:
            _fail(f"web account: {err}", 1)
    for name, added in subscribers:
        typer.echo(f"{name}: {'added' if added or web.get(name) else 'already provisioned'}")
    if pool:
        settings = _settings(config, data_dir)
        web_settings = settings.web

        def seed(store: SubscriberStore) -> Awaitable[list[tuple[str, bool]]]:
            return seed_pool(store, web_settings.pool, web_settings.wwsf_identity)

        for name, added in _with_store(config, data_dir, seed):
            typer.echo(f"{name}: {'added' if added else 'already provisioned'}")


@contextlib.contextmanager
def _web_accounts(config: Path | None, data_dir: Path | None) -> Iterator[AccountStore]:
    """The WWSF's web accounts of the deployment."""
    settings = _settings(config, data_dir)
    try:
        db = open_database(settings.data_dir / DATABASE_FILE)
    except DatabaseError as err:
        _fail(f"web accounts: {err}", 1)
    with db:
        yield AccountStore(db)


# -- webims token --------------------------------------------------------------------


@app.command()
def token(
    *,
    user: Annotated[str, typer.Option("--user", help="Web user name.")],
    password: Annotated[
        str, typer.Option("--password", envvar="WEBIMS_PASSWORD", help="Web password.")
    ],
    url: Annotated[
        str | None, typer.Option("--url", help="The WWSF (default: [web] public_url).")
    ] = None,
    ca: Annotated[
        Path | None,
        typer.Option("--ca", help="CA certificate to trust (default: the data dir's dev CA)."),
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Log in as a WIC does (code + PKCE) and print the access token alone."""
    settings = _settings(config, data_dir)
    if ca is None:
        dev_ca = settings.data_dir / "pki" / "ca.pem"
        ca = dev_ca if dev_ca.exists() else None  # else the system's trust store
    try:
        body = fetch_token((url or settings.web.public_url).rstrip("/"), user, password, ca=ca)
    except TokenFlowError as err:
        _fail(str(err), 1)
    typer.echo(body["access_token"])


# -- webims register / webims bench (the Python WIC: webims.wic.cli) -----------------

app.command()(register)
app.add_typer(bench_app, name="bench")

# -- webims trace (webims.observe.command) ---------------------------------------------

app.command(name="trace")(trace_command)


def main() -> None:
    app()
