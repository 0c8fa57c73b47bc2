"""The eP-CSCF's tests run a real WAF over HTTP: the fixtures of ``tests.waf``."""

from tests.waf.conftest import site, waf_site_factory

__all__ = ["site", "waf_site_factory"]
