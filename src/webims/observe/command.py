"""``webims trace``: the last registrations recorded by the elements of a
deployment, as ladders (TS 24.371 Figure A.3.2-1 steps), or with ``--calls``
the last calls WICs made (:mod:`webims.observe.calls`), and their SIP and
Diameter messages as a capture file.

The elements write ``<data_dir>/trace`` every ``[trace] flush_interval``
(0.25 s), so a flow shows up that long after it ended.  Exit status: 0 when
a flow was shown or the capture written, 1 when the trace holds no
registration (no call, with ``--calls``), 2 for a configuration error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..config import ConfigError, load_settings
from .calls import find_calls
from .ladder import find_flows, render_plain, render_rich
from .pcap import write_pcap
from .record import read_trace
from .trace import trace_dir

__all__ = ["trace"]


def trace(
    *,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML configuration file.")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where state, keys and certificates live.")
    ] = None,
    last: Annotated[
        int, typer.Option("--last", "-n", min=1, help="How many registrations (or calls) to show.")
    ] = 1,
    calls: Annotated[
        bool, typer.Option("--calls", help="The last calls made by WICs instead of registrations.")
    ] = False,
    pcap: Annotated[
        Path | None,
        typer.Option("--pcap", help="Also write every recorded SIP and Diameter message (pcapng)."),
    ] = None,
    plain: Annotated[bool, typer.Option("--plain", help="Plain text, no colours.")] = False,
) -> None:
    """The last registration flows as ladders, steps numbered as in TS 24.371 A.3.2
    (with --calls: the last calls)."""
    try:
        settings = load_settings(config, data_dir=data_dir)
    except ConfigError as err:
        typer.echo(f"webims: configuration error: {err}", err=True)
        raise typer.Exit(2) from None
    directory = trace_dir(settings)
    records = read_trace(directory)
    if pcap is not None:
        try:
            count = write_pcap(pcap, records)
        except OSError as err:
            typer.echo(f"webims: cannot write {pcap}: {err}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"wrote {count} SIP and Diameter messages to {pcap}", err=True)
    flows = find_calls(records, last) if calls else find_flows(records, last)
    if not flows:
        off = "" if settings.trace.enabled else " ([trace] enabled = false)"
        what = "call" if calls else "registration"
        typer.echo(f"webims: no {what} in the trace at {directory}{off}", err=True)
        raise typer.Exit(0 if pcap is not None else 1)
    if plain or not sys.stdout.isatty():
        typer.echo("\n".join(render_plain(flow) for flow in flows), nl=False)
        return
    console = Console(highlight=False)
    for flow in flows:
        console.print(render_rich(flow))
