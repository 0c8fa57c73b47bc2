"""The eP-CSCF element: the CSCF shell with the eP-CSCF's procedures and its token
validator (no Cx: the eP-CSCF never talks to the HSS).

Listeners (``webims.ims.element.listen_specs``): WSS on ``[pcscf] wss_port`` (7443,
subprotocol ``sip`` enforced by ``webims.transport.ws``), plain WS on ``ws_port``
(7080, for development only; 0 turns it off, as a production configuration should:
RFC 8898 §2 has tokens sent over TLS only), Mw on UDP and TCP ``sip_port`` (5060).

The token validator (``webims.pcscf.token``) is set from the deployment: the issuer is
``[pcscf] waf_issuer``, else ``[waf] issuer``, else ``[web] public_url``; the audience is
the home domain ``[sip] domain``; the mode is ``[pcscf] token_check``.  HTTPS to the
WAF trusts the system CAs and, when the web element runs on the development CA, that
CA too.  In ``introspect`` mode the eP-CSCF's client secret is ``[waf]
resource_servers.pcscf`` or, unset, the one the WAF keeps in ``<data_dir>/waf/pcscf-secret``.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from ..config import ConfigError, Settings
from ..devca import ensure_dev_ca
from ..ims.element import Cscf
from .app import EpCscf, PcscfConfig
from .token import Mode, TokenValidator

__all__ = ["make", "pcscf_config", "validator_from_settings"]


def waf_issuer(settings: Settings) -> str:
    return (settings.pcscf.waf_issuer or settings.waf.issuer or settings.web.public_url).rstrip("/")


def _introspection_secret(settings: Settings) -> str:
    configured = settings.waf.resource_servers.get("pcscf", "")
    if configured:
        return configured
    path = Path(settings.data_dir) / "waf" / "pcscf-secret"
    try:
        return path.read_text().strip()
    except OSError as err:
        raise ConfigError(
            f"[pcscf] token_check = introspect needs the WAF's secret for pcscf ({path}): {err}"
        ) from None


def validator_from_settings(settings: Settings) -> TokenValidator:
    """The eP-CSCF's ``TokenValidator`` for this deployment (see the module notes)."""
    verify = ssl.create_default_context()
    if settings.web.tls_cert is None:
        verify.load_verify_locations(cafile=ensure_dev_ca(settings.data_dir).ca_cert)
    mode: Mode = "introspect" if settings.pcscf.token_check == "introspect" else "local"
    return TokenValidator(
        waf_issuer(settings),
        settings.sip.domain,
        mode=mode,
        verify=verify,
        client_secret=_introspection_secret(settings) if mode == "introspect" else "",
    )


def pcscf_config(cscf: Cscf) -> PcscfConfig:
    settings = cscf.settings
    topology = cscf.topology
    return PcscfConfig(
        domain=topology.domain,
        network_id=settings.pcscf.network_id,
        host=topology.pcscf_host,
        port=topology.pcscf_port,
        icscf_uri=topology.icscf_uri,
        authz_server=waf_issuer(settings),
        send_authorization_entity=settings.pcscf.send_authorization_entity,
        subscribe_reg_event=settings.pcscf.subscribe_reg_event,
        deregister_on_close=settings.pcscf.deregister_on_close,
        ims_auth=settings.pcscf.ims_auth,
        revalidate_tokens=settings.pcscf.revalidate_tokens,
    )


def make(settings: Settings, *, validator: TokenValidator | None = None) -> Cscf:
    """The eP-CSCF of ``settings`` (``webims run pcscf`` starts it).  ``validator``
    replaces the one made from the settings (a test's, with its own clock)."""
    checker = validator or validator_from_settings(settings)

    def make_app(cscf: Cscf) -> EpCscf:
        return EpCscf(cscf, checker, pcscf_config(cscf))

    cscf = Cscf("pcscf", settings, make_app)
    assert isinstance(cscf.app, EpCscf)
    cscf.endpoint.flow_closed_hooks.append(cscf.app.flow_closed)
    cscf.close_hooks += [cscf.app.close, checker.aclose]
    return cscf
