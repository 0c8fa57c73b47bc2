"""Free ports for the elements a test starts.

A port is drawn at random below the kernel's ephemeral range (where no
outgoing connection of another test can take it between our check and the
element's bind), checked free for both UDP and TCP (a SIP listener takes
both), and never handed out twice in one test process.
"""

from __future__ import annotations

import random
import socket

__all__ = ["free_port", "free_ports"]

_LOW, _HIGH = 20000, 32000
_given: set[int] = set()


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _free_for_both(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    high = min(_HIGH, _ephemeral_low() - 1)
    for _ in range(500):
        port = random.randint(_LOW, high)
        if port not in _given and _free_for_both(port):
            _given.add(port)
            return port
    raise OSError("no port free for both UDP and TCP")


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports, each free for both UDP and TCP."""
    return [free_port() for _ in range(n)]
