"""S-CSCF selection by capabilities (TS 24.229 5.3.1.2, TS 29.228 §6.7).

When the HSS answers a UAR or LIR with Server-Capabilities instead of a
Server-Name, the I-CSCF picks an S-CSCF itself.  An S-CSCF is a candidate
when it has every mandatory capability; among the candidates the one with
the most optional capabilities wins, and a tie goes to the one listed first
(``[icscf] scscfs``, in configuration order).  An S-CSCF configured without
a capability list has every capability.

Server-Names inside Server-Capabilities are the HSS operator's preference:
the known ones among them are tried first, by the same rules.  A name the
I-CSCF does not know is not used, since nothing says what it can do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..diameter.cx import Capabilities

__all__ = ["select_scscf"]

#: S-CSCF URI -> the capabilities it has (None: every capability).
ScscfTable = Mapping[str, tuple[int, ...] | None]


def _has(caps: tuple[int, ...] | None, wanted: Iterable[int]) -> bool:
    return caps is None or all(c in caps for c in wanted)


def _optional_score(caps: tuple[int, ...] | None, optional: tuple[int, ...]) -> int:
    if caps is None:
        return len(optional)
    return sum(1 for c in optional if c in caps)


def _best(names: Iterable[str], scscfs: ScscfTable, required: Capabilities) -> str | None:
    best: str | None = None
    best_score = -1
    for name in names:
        caps = scscfs[name]
        if not _has(caps, required.mandatory):
            continue
        score = _optional_score(caps, required.optional)
        if score > best_score:  # strict: the first listed keeps a tie
            best, best_score = name, score
    return best


def select_scscf(
    required: Capabilities | None,
    scscfs: ScscfTable,
    *,
    exclude: Iterable[str] = (),
) -> str | None:
    """The S-CSCF URI to use for ``required`` capabilities, or None when no
    configured S-CSCF (other than those in ``exclude``) has all mandatory ones."""
    required = required or Capabilities()
    skipped = set(exclude)
    usable = {name: caps for name, caps in scscfs.items() if name not in skipped}
    preferred = [n for n in required.server_names if n in usable]
    if preferred:
        chosen = _best(preferred, usable, required)
        if chosen is not None:
            return chosen
    return _best(usable, usable, required)
