"""Writes to a subscriber store until killed, acknowledging each write.

Run by test_store_durability.py as ``python store_writer.py URL``: for
i = 0, 1, 2…, it adds subscriber ``w<i>`` and prints ``add <i>``, then
registers its IMPU and prints ``reg <i>``; each line is printed and flushed
only after the store method returned.  It stops by itself after a minute,
should the test that runs it die first.
"""

from __future__ import annotations

import asyncio
import sys
import time

from webims.hss import open_store
from webims.hss.model import (
    PrivateIdentity,
    PublicIdentity,
    RegistrationState,
    ServerAssignment,
    Subscriber,
)

LIFETIME = 60.0


def subscriber(i: int) -> Subscriber:
    """Subscriber ``w<i>`` as added (before its registration)."""
    impu = f"sip:w{i}@home1.net"
    return Subscriber(
        name=f"w{i}",
        privates=(PrivateIdentity.with_password(f"w{i}@home1.net", "pw", (impu,)),),
        publics=(PublicIdentity(impu, irs="irs", service_profile="default"),),
        allowed_waf=(f"waf{i}.thirdparty.net",),
    )


def assignment(i: int) -> ServerAssignment:
    return ServerAssignment(f"sip:scscf{i}.home1.net", f"scscf{i}.home1.net")


async def main(url: str) -> None:
    deadline = time.monotonic() + LIFETIME
    out = sys.stdout
    async with open_store(url) as store:
        i = 0
        while time.monotonic() < deadline:
            sub = subscriber(i)
            await store.add(sub)
            out.write(f"add {i}\n")
            out.flush()
            await store.set_registration(
                sub.name, [sub.publics[0].impu], RegistrationState.REGISTERED, assignment(i)
            )
            out.write(f"reg {i}\n")
            out.flush()
            i += 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
