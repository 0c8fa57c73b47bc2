"""The ``webims`` command."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from . import __version__
from .config import ConfigError, Settings, load_settings
from .transport.loop import install_event_loop_policy
from .up import ELEMENTS, SIP_ELEMENTS, run_elements

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


def _run(names: list[str], settings: Settings) -> None:
    install_event_loop_policy()
    try:
        asyncio.run(run_elements(names, settings, typer.echo))
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
    _run(list(SIP_ELEMENTS), settings)


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
    if name not in SIP_ELEMENTS:
        typer.echo(f"webims: the {name} element is not part of this version yet", err=True)
        raise typer.Exit(2)
    _run([name], _settings(config, data_dir))


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    app()
