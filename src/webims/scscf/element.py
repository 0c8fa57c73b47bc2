"""The S-CSCF as a running element (``webims run scscf``): the CSCF shell
with :class:`~.app.ScscfApplication` over it, and the HSS-initiated Cx
procedures (RTR, PPR) answered once the Cx client exists."""

from __future__ import annotations

from ..config import Settings
from ..ims.element import Cscf
from ..sip.proxy import ProxyApplication
from .app import ScscfApplication

__all__ = ["ScscfElement", "make"]


class ScscfElement(Cscf):
    """A :class:`Cscf` whose Cx client also serves RTR and PPR."""

    @property
    def scscf(self) -> ScscfApplication:
        assert isinstance(self.app, ScscfApplication)
        return self.app

    async def start(self) -> None:
        await super().start()
        if self.cx is not None:
            lifecycle = self.scscf.lifecycle
            self.cx.serve_rtr(lifecycle.on_rtr)
            self.cx.serve_ppr(lifecycle.on_ppr)

    async def close(self) -> None:
        if self.app is not None:
            self.scscf.close()
        await super().close()

    async def administrative_deregistration(self, impu: str, event: str = "deactivated") -> bool:
        """Deregister ``impu``'s set from here (TS 24.229 5.4.1.5)."""
        return await self.scscf.lifecycle.administrative_deregistration(impu, event)


def _make_app(cscf: Cscf) -> ProxyApplication:
    return ScscfApplication(cscf)


def make(settings: Settings) -> ScscfElement:
    """The S-CSCF of ``settings`` (not started)."""
    return ScscfElement("scscf", settings, _make_app, cx=settings.scscf.cx)
