"""Provisioning of the WWSF's side: the demo web accounts and the HSS
subscriptions of the identity pool.

* :func:`seed_web_demo`: the web accounts ``user1``/``user2`` of DESIGN.md,
  with the passwords and IMS identities of the HSS's demo subscribers
  (:data:`webims.hss.provisioning.DEMO_SUBSCRIBERS`), those that are missing.
* :func:`seed_pool`: one HSS subscriber ``pool-N`` per pair of the pool, so
  the HSS knows every identity the WWSF may lend (TS 33.203 X.4); each
  allows this WWSF (REQ 3.2) and the demo WAF, and gets a random password
  nobody knows (a pool identity registers with tokens, never with Digest).

Both leave what exists alone, so they may run at every start.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from ..config import PoolPair
from ..hss.provisioning import DEMO_SUBSCRIBERS, DEMO_WAF, NewSubscriber
from ..hss.store import SubscriberExists, SubscriberStore
from .accounts import AccountExists, AccountStore

__all__ = ["pool_subscriber_name", "seed_pool", "seed_web_demo"]


def seed_web_demo(accounts: AccountStore) -> list[tuple[str, bool]]:
    """Add the demo web accounts that are missing; ``(name, added)`` each."""
    outcome = []
    for demo in DEMO_SUBSCRIBERS:
        added = False
        if accounts.get(demo.name) is None:
            assert demo.password is not None
            try:
                accounts.add(demo.name, demo.password, demo.impi, demo.impus)
                added = True
            except AccountExists:
                if accounts.get(demo.name) is None:  # the IMPI is someone else's
                    raise
        outcome.append((demo.name, added))
    return outcome


def pool_subscriber_name(n: int) -> str:
    return f"pool-{n}"


async def seed_pool(
    store: SubscriberStore, pairs: Sequence[PoolPair], wwsf_identity: str
) -> list[tuple[str, bool]]:
    """Provision the pool's pairs as HSS subscribers ``pool-1`` … that are missing."""
    outcome = []
    for n, pair in enumerate(pairs, start=1):
        name = pool_subscriber_name(n)
        added = False
        if await store.get(name) is None and await store.by_impi(pair.impi) is None:
            new = NewSubscriber(
                name=name,
                password=secrets.token_urlsafe(24),
                impi=pair.impi,
                impus=[pair.impu],
                allowed_waf=[DEMO_WAF],
                allowed_wwsf=[wwsf_identity],
            )
            try:
                await store.add(new.subscriber())
                added = True
            except SubscriberExists:
                if await store.get(name) is None:
                    raise
        outcome.append((name, added))
    return outcome
