"""A ``webims up`` configuration for a test: every listener on a free port, the
data in a directory of the test's own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.ports import free_port

__all__ = ["UpConfig", "up_config"]


@dataclass(frozen=True)
class UpConfig:
    path: Path
    #: web, pcscf (Mw), ws, wss, icscf, scscf, diameter, api.
    ports: dict[str, int]


def up_config(data: Path, *, extra: str = "", pcscf: str = "") -> UpConfig:
    """Write ``data/webims.toml`` for a whole system on free ports (``extra``
    appended: sections the test sets besides; ``pcscf``: lines of ``[pcscf]``)."""
    names = ("web", "pcscf", "ws", "wss", "icscf", "scscf", "diameter", "api")
    p = {name: free_port() for name in names}
    path = data / "webims.toml"
    path.write_text(
        f'data_dir = "{data}"\n'
        f'[web]\nport = {p["web"]}\npublic_url = "https://127.0.0.1:{p["web"]}"\n'
        f'pcscf_url = "wss://127.0.0.1:{p["wss"]}/"\n'
        f"[pcscf]\nsip_port = {p['pcscf']}\nws_port = {p['ws']}\nwss_port = {p['wss']}\n{pcscf}"
        f"[icscf]\nsip_port = {p['icscf']}\n[scscf]\nsip_port = {p['scscf']}\n"
        f"[hss]\ndiameter_port = {p['diameter']}\napi_port = {p['api']}\n" + extra
    )
    return UpConfig(path, p)
