"""The I-CSCF element: the CSCF shell with the I-CSCF's procedures and a Cx
client (UAR, LIR) to the HSS."""

from __future__ import annotations

from ..config import Settings
from ..ims.element import Cscf
from .procedures import IcscfProcedures

__all__ = ["make"]


def make(settings: Settings) -> Cscf:
    """The I-CSCF of ``settings`` (``webims run icscf`` starts it)."""
    return Cscf("icscf", settings, IcscfProcedures, cx=settings.icscf.cx)
