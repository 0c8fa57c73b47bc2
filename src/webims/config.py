"""Configuration: a TOML file, overridden by ``WEBIMS_*`` environment variables.

Every element reads its section; nothing here is a module global.  Defaults
are the embedded deployment of DESIGN.md (everything on 127.0.0.1).

Example (all keys optional)::

    data_dir = "data"
    [sip]
    host = "127.0.0.1"
    t1 = 0.5
    [pcscf]
    sip_port = 5060
    ws_port = 7080
    wss_port = 7443
    [icscf]
    sip_port = 5070
    [scscf]
    sip_port = 5080
    [hss]
    store = "postgresql://hss@db/hss"   # default: the SQLite file <data_dir>/hss.sqlite3
    diameter_port = 3868
    api_port = 9870
    api_key = "..."                     # default: made on first start, <data_dir>/hss-api-key
    [web]
    port = 8443                         # WWSF + WAF, one HTTPS origin
    public_url = "https://127.0.0.1:8443"
    pcscf_url = "wss://127.0.0.1:7443/"
    production = false                  # true: plain HTTP refused
    [trace]
    enabled = true                      # the message trace of ``webims trace``
    max_bytes = 67108864                # size cap of <data_dir>/trace
    [metrics]
    port = 9464                         # Prometheus /metrics over HTTP (0: off)

Environment: ``WEBIMS_PCSCF__WSS_PORT=8443`` (nested keys joined by ``__``).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = ["ConfigError", "Settings", "load_settings"]


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid."""


class SipSettings(BaseModel):
    #: Address every SIP listener binds to.
    host: str = "127.0.0.1"
    #: RFC 3261 timer values (seconds).
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    #: Home domain (names the elements answer to, besides their addresses).
    domain: str = "home1.net"


class ElementSettings(BaseModel):
    #: UDP and TCP port of the element's SIP listener (0: none).
    sip_port: int = Field(default=0, ge=0, le=65535)
    #: Host names that designate this element in Route/Request-URI.
    aliases: list[str] = Field(default_factory=list)


class CxClientSettings(BaseModel):
    """A CSCF's Diameter Cx client towards the HSS."""

    #: Our Origin-Host.
    identity: str = ""
    #: Seconds a Cx request may wait for its answer.
    timeout: float = Field(default=3.0, gt=0, le=60)


class PcscfSettings(ElementSettings):
    sip_port: int = Field(default=5060, ge=0, le=65535)
    #: SIP over WebSocket (development only; 0 turns it off) and over secure WebSocket.
    ws_port: int = Field(default=7080, ge=0, le=65535)
    wss_port: int = Field(default=7443, ge=0, le=65535)
    #: Server certificate and key for WSS; the dev CA makes them when unset.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    aliases: list[str] = Field(default_factory=lambda: ["pcscf.home1.net"])
    #: P-Visited-Network-ID this eP-CSCF puts in REGISTER (its network).
    network_id: str = "home1.net"
    #: The I-CSCF REGISTER goes to; unset: the I-CSCF of this deployment.
    icscf_uri: str | None = None
    #: How Bearer tokens are checked: "local" (ES256 against the WAF's JWKS)
    #: or "introspect" (that, then RFC 7662 introspection at the WAF).
    token_check: str = Field(default="local", pattern="^(local|introspect)$")
    #: The WAF (token issuer); unset: ``[waf] issuer`` or ``[web] public_url``.
    waf_issuer: str | None = None
    #: Put ``authorization-entity`` in every forwarded REGISTER (SPEC §8 21).
    send_authorization_entity: bool = True
    #: Subscribe to the reg event package after an initial registration.
    subscribe_reg_event: bool = True
    #: Deregister a WIC whose WebSocket closes, on its behalf (SPEC §9.6 item 22, a
    #: project option): the registration ends at once rather than at its expiry.
    deregister_on_close: bool = False
    #: Let WICs register with IMS credentials instead of a token (TS 24.371 scenario 1,
    #: TS 33.203 X.2: SIP Digest over WSS, challenged by the S-CSCF).  Off: the
    #: web-authentication mode, where every REGISTER needs a Bearer token.
    ims_auth: bool = False
    #: Check again the Bearer token a WIC sends with a request outside a dialog
    #: (INVITE, MESSAGE, SUBSCRIBE…; TS 24.371 7.2.1, SPEC §1.4 C): an expired, revoked
    #: or forged one gets 401 ``invalid_token``, another subscriber's 403, one without
    #: ``ims:call`` on an INVITE 403 ``insufficient_scope``.  Requests
    #: without a token, and requests inside a dialog, are authorised by the binding.
    revalidate_tokens: bool = True


class IcscfSettings(ElementSettings):
    sip_port: int = Field(default=5070, ge=0, le=65535)
    aliases: list[str] = Field(default_factory=lambda: ["icscf.home1.net"])
    #: "host:port" of the Mw peers whose REGISTERs are accepted (the
    #: eP-CSCFs); unset: the eP-CSCF of this deployment.
    trusted_peers: list[str] | None = None
    #: S-CSCFs to select from when the HSS answers with capabilities:
    #: SIP URI -> capabilities it has; unset: the S-CSCF of this deployment
    #: with every capability.
    scscfs: dict[str, list[int]] | None = None
    cx: CxClientSettings = Field(
        default_factory=lambda: CxClientSettings(identity="icscf.home1.net")
    )


class ScscfSettings(ElementSettings):
    sip_port: int = Field(default=5080, ge=0, le=65535)
    aliases: list[str] = Field(default_factory=lambda: ["scscf.home1.net"])
    #: This S-CSCF's SIP URI (the Cx Server-Name); unset: made from the first
    #: alias and the SIP port.
    server_name: str | None = None
    #: "host:port" of the Mw peers whose ``auth-done`` is trusted (I-CSCFs,
    #: eP-CSCFs); unset: the I-CSCF and eP-CSCF of this deployment.
    trusted_peers: list[str] | None = None
    #: Registration lifetimes (seconds): below min_expires is answered 423.
    min_expires: int = Field(default=60, ge=1)
    max_expires: int = Field(default=3600, ge=1)
    default_expires: int = Field(default=3600, ge=1)
    #: Authorisation entities (WAF/WWSF identities) barred by the operator.
    barred_auth_entities: list[str] = Field(default_factory=list)
    cx: CxClientSettings = Field(
        default_factory=lambda: CxClientSettings(identity="scscf.home1.net")
    )


class HssSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Subscriber store: a ``postgresql://`` URL, or the path of a SQLite file;
    #: unset, the SQLite file ``hss.sqlite3`` in the data directory.
    store: str | None = None
    #: Address the Diameter (Cx) listener and the provisioning API bind to.
    host: str = "127.0.0.1"
    diameter_port: int = Field(default=3868, ge=0, le=65535)
    #: Diameter identity (Origin-Host) and realm (Origin-Realm).
    identity: str = "hss.home1.net"
    realm: str = "home1.net"
    #: Provisioning REST API (0: none).
    api_port: int = Field(default=9870, ge=0, le=65535)
    #: Key the API requires in ``X-API-Key``; unset, one is made on first
    #: start and kept in ``<data_dir>/hss-api-key`` (mode 0600).
    api_key: str | None = Field(default=None, min_length=16)
    #: Origin-Host values of the Diameter peers (the CSCFs) allowed to
    #: connect; empty, any peer that advertises Cx.  A CER from another
    #: host is answered DIAMETER_UNKNOWN_PEER (3010) and the connection closed.
    peers: list[str] = Field(default_factory=list)
    #: RFC 3539 watchdog interval Tw, seconds (the RFC asks for at least 6).
    watchdog_interval: float = Field(default=30.0, ge=1.0, le=3600.0)

    def store_location(self, data_dir: Path) -> str:
        """The store to open: ``store`` if set, else the embedded SQLite file."""
        return self.store or str(data_dir / "hss.sqlite3")


class PoolPair(BaseModel):
    """One subscription of the WWSF's identity pool (TS 33.203 X.4)."""

    model_config = ConfigDict(extra="forbid")

    impi: str = Field(min_length=1, max_length=255, pattern=r"^\S+$")
    impu: str = Field(min_length=1, max_length=255, pattern=r"^\S+$")


def _demo_pool() -> list[PoolPair]:
    return [
        PoolPair(impi=f"pool{n}_private@home1.net", impu=f"sip:pool{n}_public1@home1.net")
        for n in range(1, 5)
    ]


class WebSettings(BaseModel):
    """The co-located WWSF + WAF web element (one HTTPS origin)."""

    model_config = ConfigDict(extra="forbid")

    #: Address and port of the HTTPS listener.
    host: str = "127.0.0.1"
    port: int = Field(default=8443, ge=0, le=65535)
    #: Server certificate and key; the dev CA makes them when unset.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: The origin browsers reach the element at (no trailing slash).
    public_url: str = "https://127.0.0.1:8443"
    #: The WWSF's identity, carried in the tokens (claim ``wwsf``).
    wwsf_identity: str = "wwsf.home1.net"
    #: Where the WIC opens SIP over WebSocket (the eP-CSCF's W2 side).
    pcscf_url: str = "wss://127.0.0.1:7443/"
    #: Production: plain HTTP is refused, ``public_url`` must be https.
    production: bool = False
    #: Lifetime of a session cookie (seconds).
    session_lifetime: int = Field(default=1800, ge=60, le=86400)
    #: Failed logins allowed per user and per client address within
    #: ``login_window`` seconds; past that, 429 with Retry-After.
    login_failures: int = Field(default=5, ge=1)
    login_window: int = Field(default=300, ge=1)
    #: IMPI/IMPU pairs lent to guests (TS 33.203 X.4); empty: no guests.
    pool: list[PoolPair] = Field(default_factory=_demo_pool)
    #: How long a lent pair stays with its guest after the guest's last token
    #: was issued (seconds); longer than the access-token lifetime.
    pool_lease: int = Field(default=900, ge=60)
    #: Pool identities one client address may take within ``login_window``.
    guest_lends: int = Field(default=3, ge=1)


class WafSettings(BaseModel):
    """The WAF, the OAuth 2.0 authorisation server co-located with the WWSF."""

    model_config = ConfigDict(extra="forbid")

    #: The ``iss`` of the tokens and the RFC 8414 ``issuer``; unset: ``[web] public_url``.
    issuer: str | None = None
    #: The identity the eP-CSCF names as authorisation entity (claim ``authorization_entity``).
    authorization_entity: str = "webrtc_authserver1@thirdparty.net"
    #: The tokens' ``aud``: the IMS domain(s) whose eP-CSCFs accept them.
    audience: list[str] = Field(default_factory=lambda: ["home1.net"], min_length=1)
    #: Lifetime of an access token and of a refresh token (seconds).
    access_token_ttl: int = Field(default=600, ge=1, le=86400)
    refresh_token_ttl: int = Field(default=86400, ge=60)
    #: A new signing key every this many days (the old one stays published until the
    #: tokens it signed have expired).
    key_rotation_days: float = Field(default=30.0, gt=0)
    #: Resource servers allowed to introspect, name -> HTTP Basic secret; an empty secret
    #: is made on first start into ``<data_dir>/waf/<name>-secret`` (mode 0600).
    resource_servers: dict[str, str] = Field(default_factory=lambda: {"pcscf": ""})
    #: Redirect URIs of the WIC; empty: ``<public_url>/callback``.
    redirect_uris: list[str] = Field(default_factory=list)


class TraceSettings(BaseModel):
    """The message trace (``webims trace``): every SIP, Diameter and OAuth
    message the elements handle, in ``<data_dir>/trace`` (:mod:`webims.observe`)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    #: Records held in memory between two writes (a ring: the oldest go when full).
    ring: int = Field(default=8192, ge=16, le=1 << 20)
    #: Seconds between two writes to disk.
    flush_interval: float = Field(default=0.25, gt=0, le=60)
    #: A trace file is rotated at this size (bytes); one older generation is kept.
    file_bytes: int = Field(default=8 << 20, ge=64 << 10)
    #: The trace directory is kept under this size: the oldest files go first.
    max_bytes: int = Field(default=64 << 20, ge=1 << 20)


class MetricsSettings(BaseModel):
    """The Prometheus ``/metrics`` listener (:mod:`webims.observe.metrics`) of the
    elements of one process; processes on one host need different ports."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    #: HTTP port of ``/metrics`` (0: none).
    port: int = Field(default=9464, ge=0, le=65535)


class Settings(BaseSettings):
    """The whole deployment."""

    model_config = SettingsConfigDict(
        env_prefix="WEBIMS_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Path("data")
    sip: SipSettings = Field(default_factory=SipSettings)
    pcscf: PcscfSettings = Field(default_factory=PcscfSettings)
    icscf: IcscfSettings = Field(default_factory=IcscfSettings)
    scscf: ScscfSettings = Field(default_factory=ScscfSettings)
    hss: HssSettings = Field(default_factory=HssSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    waf: WafSettings = Field(default_factory=WafSettings)
    trace: TraceSettings = Field(default_factory=TraceSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file (given as init values).
        return (env_settings, init_settings)


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read ``path`` (TOML) if given, apply the environment, then ``overrides``."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ConfigError(f"{path}: {err}") from None
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**data)
    except ValueError as err:
        raise ConfigError(str(err)) from None
