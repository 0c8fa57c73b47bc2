"""The [waf] settings section and what the WAF makes of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from webims.config import ConfigError, load_settings
from webims.waf.element import WafConfig


def test_defaults_follow_the_web_element() -> None:
    config = WafConfig.from_settings(load_settings())
    assert config.issuer == "https://127.0.0.1:8443"
    assert config.redirect_uris == ("https://127.0.0.1:8443/callback",)
    assert config.wwsf_identity == "wwsf.home1.net"
    assert config.authorization_entity == "webrtc_authserver1@thirdparty.net"
    assert config.audience == ("home1.net",)
    assert config.access_token_ttl == 600
    assert config.resource_servers == (("pcscf", ""),)


def test_the_section_overrides(tmp_path: Path) -> None:
    path = tmp_path / "webims.toml"
    path.write_text(
        '[web]\npublic_url = "https://web.home1.net"\n'
        '[waf]\nissuer = "https://waf.home1.net/"\naccess_token_ttl = 120\n'
        'audience = ["home1.net", "visited.net"]\n'
        '[waf.resource_servers]\npcscf = "0123456789abcdef0123"\n'
    )
    config = WafConfig.from_settings(load_settings(path))
    assert config.issuer == "https://waf.home1.net"
    assert config.redirect_uris == ("https://web.home1.net/callback",)
    assert config.access_token_ttl == 120
    assert config.audience == ("home1.net", "visited.net")
    assert config.resource_servers == (("pcscf", "0123456789abcdef0123"),)


def test_bad_values_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "webims.toml"
    for bad in ("access_token_ttl = 0", "key_rotation_days = 0", "audience = []", "x = 1"):
        path.write_text(f"[waf]\n{bad}\n")
        with pytest.raises(ConfigError):
            load_settings(path)
