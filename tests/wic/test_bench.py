"""The register bench's parts that need no running system: bench subscribers
in the HSS store and the web accounts, tokens signed with the WAF's key, the
percentiles."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from webims.config import load_settings
from webims.hss import open_store
from webims.waf.keys import KeyRing
from webims.wic.bench import (
    SECRETS_FILE,
    mint_logins,
    percentile,
    provision_bench_subscribers,
)
from webims.wwsf.accounts import AccountStore
from webims.wwsf.db import DATABASE_FILE, open_database


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) == 0.0


async def test_bench_subscribers_are_provisioned_once_with_their_web_accounts(
    tmp_path: Path,
) -> None:
    settings = load_settings(data_dir=tmp_path)
    steps: list[tuple[int, int]] = []
    first = await provision_bench_subscribers(settings, 2, progress=lambda *s: steps.append(s))
    assert steps == [(1, 2), (2, 2)]  # one step per web account
    again = await provision_bench_subscribers(settings, 2)
    assert [s.name for s in first] == ["bench0001", "bench0002"]
    assert first == again  # same passwords: kept in the data dir, not re-hashed
    assert first[0].impu == "sip:bench0001_public1@home1.net"
    assert first[0].impi == "bench0001_private@home1.net"
    assert (tmp_path / SECRETS_FILE).stat().st_mode & 0o777 == 0o600
    assert set(json.loads((tmp_path / SECRETS_FILE).read_text())) == {"bench0001", "bench0002"}
    async with open_store(settings.hss.store_location(tmp_path)) as store:
        sub = await store.get("bench0001")
    assert sub is not None
    assert [p.impu for p in sub.publics] == [first[0].impu]
    assert sub.allowed_waf == (settings.waf.authorization_entity,)
    with open_database(tmp_path / DATABASE_FILE) as db:
        accounts = AccountStore(db)
        account = accounts.verify("bench0002", first[1].password)
    assert account is not None and account.impi == first[1].impi


@pytest.mark.parametrize("count", [3])
async def test_minted_tokens_verify_against_the_wafs_jwks(tmp_path: Path, count: int) -> None:
    settings = load_settings(data_dir=tmp_path)
    subs = await provision_bench_subscribers(settings, count, web_accounts=False)
    logins = mint_logins(settings, subs)
    # The JWKS the WAF publishes from the same key directory.
    keys = KeyRing(tmp_path / "waf", rotation=86400.0, token_ttl=600, clock=time.time)
    jwks = KeySet.import_key_set(json.loads(keys.jwks_json()))
    for sub, login in zip(subs, logins, strict=True):
        claims = jwt.decode(login.access_token, jwks, algorithms=["ES256"]).claims
        assert claims["impi"] == sub.impi and claims["impu"] == [sub.impu]
        assert claims["sub"] == sub.name and claims["client_id"] == "wic"
        assert claims["authorization_entity"] == settings.waf.authorization_entity
        assert set(claims["scope"].split()) == {"ims:register", "ims:call"}
        assert login.impus == (sub.impu,)
    assert len({login.access_token for login in logins}) == count
