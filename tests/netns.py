"""A loopback-only network namespace for tests whose browsers do WebRTC.

ICE gathers candidates on every interface it finds; on the machine's own
address a browser's connectivity checks would leave loopback.  Inside a new
network namespace whose only interface is ``lo`` (brought up), every
candidate is 127.0.0.1, and the servers the browser talks to run in the same
namespace.

``loopback_namespace()`` keeps the namespace alive with a ``sleep`` started by
``unshare --net`` and yields a function that turns a command line into one run
inside it (``nsenter --net=/proc/PID/ns/net``).  Creating a namespace needs
CAP_SYS_ADMIN (root, as the tests run here and in CI): without it the test
fails, saying so, rather than skipping.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator, Sequence

import pytest

__all__ = ["Enter", "loopback_namespace"]

Enter = Callable[[Sequence[str]], list[str]]

_HOLD = "ip link set lo up && echo up && exec sleep 86400"


@contextlib.contextmanager
def loopback_namespace() -> Iterator[Enter]:
    holder = subprocess.Popen(
        ["unshare", "--net", "--", "sh", "-c", _HOLD],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        if holder.stdout.readline() != "up\n":
            holder.kill()
            _, err = holder.communicate()
            pytest.fail(f"no loopback-only network namespace (unshare --net): {err}", pytrace=False)
        netns = f"--net=/proc/{holder.pid}/ns/net"

        def enter(argv: Sequence[str]) -> list[str]:
            return ["nsenter", netns, "--", *argv]

        yield enter
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.communicate()
