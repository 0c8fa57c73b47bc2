"""WAF: the OAuth 2.0 authorisation server of TS 24.371 (web authorisation function).

Issues the access tokens (RFC 9068 JWTs signed ES256) that the WIC presents to the eP-CSCF
in ``Authorization: Bearer``, after the WWSF has authenticated the web user and mapped it
to its IMS identities (Annex A.3.2 step 1).
"""

from webims.waf.element import Waf, WafConfig
from webims.waf.identity import CurrentUser, ImsIdentity, ResolveIdentity

__all__ = ["CurrentUser", "ImsIdentity", "ResolveIdentity", "Waf", "WafConfig"]
