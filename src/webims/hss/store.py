"""The subscriber store: one interface, two back-ends.

``SqliteStore`` (stdlib sqlite3 in WAL mode, a file under the data
directory: the embedded default) and ``PostgresStore`` (psycopg 3) implement
:class:`SubscriberStore`.  Both keep a schema version and migrate forward on
:meth:`SubscriberStore.open`; both commit every write before returning, so
a write that returned survives the process being killed.

Errors::

    StoreError                  the store cannot do what was asked
     ├── SubscriberExists       add(): a name, IMPI or IMPU is already taken
     ├── SubscriberNotFound     a change names no known subscriber or identity
     └── InvalidSubscriber      (model.py) the data breaks a rule of the model

The Cx procedures read a whole :class:`Subscriber` in one call, decide, and
write the outcome in one call (:meth:`SubscriberStore.set_registration`), so
each Cx request costs one read and at most one write transaction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from types import TracebackType

from .model import RegistrationState, ServerAssignment, Subscriber

__all__ = ["StoreError", "SubscriberExists", "SubscriberNotFound", "SubscriberStore"]


class StoreError(Exception):
    """The store cannot do what was asked."""


class SubscriberExists(StoreError):
    """A subscriber name, IMPI or IMPU given to add() is already provisioned."""


class SubscriberNotFound(StoreError):
    """A change names no known subscriber or identity."""


class SubscriberStore(ABC):
    """Subscriber data and registration state of the HSS."""

    # -- life cycle ---------------------------------------------------------

    @abstractmethod
    async def open(self) -> None:
        """Connect, create or migrate the schema."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections; idempotent."""

    async def __aenter__(self) -> SubscriberStore:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abstractmethod
    async def schema_version(self) -> int:
        """The migration the schema is at."""

    # -- reads (Cx) -----------------------------------------------------------

    @abstractmethod
    async def by_impu(self, impu: str) -> Subscriber | None:
        """The subscriber holding ``impu``: an exact IMPU first, then the
        wildcarded identities (TS 29.228 §6.1.2 and §6.1.6)."""

    @abstractmethod
    async def by_impi(self, impi: str) -> Subscriber | None:
        """The subscriber holding the private identity ``impi``."""

    @abstractmethod
    async def get(self, name: str) -> Subscriber | None:
        """The subscriber provisioned under ``name``."""

    @abstractmethod
    async def names(self) -> list[str]:
        """Every subscriber name, sorted."""

    # -- writes (Cx) -----------------------------------------------------------

    @abstractmethod
    async def set_registration(
        self,
        name: str,
        impus: Sequence[str],
        state: RegistrationState,
        assignment: ServerAssignment | None,
    ) -> None:
        """In one transaction: set ``state`` on each of ``impus`` and the
        subscription's S-CSCF assignment to ``assignment`` (None clears it).

        Raises :class:`SubscriberNotFound` (and changes nothing) if the
        subscriber or one of the IMPUs does not exist.
        """

    # -- provisioning ----------------------------------------------------------

    @abstractmethod
    async def add(self, subscriber: Subscriber) -> None:
        """Provision a new subscriber (validated first).

        Raises :class:`SubscriberExists` if its name or one of its IMPIs or
        (non-wildcard or wildcard) IMPUs is already provisioned; nothing is
        written then.
        """

    @abstractmethod
    async def replace(self, subscriber: Subscriber) -> None:
        """Replace the subscriber of the same name with ``subscriber`` (its
        registration state and assignment included), in one transaction.

        Raises :class:`SubscriberNotFound` if there is none, and
        :class:`SubscriberExists` if an identity it adds belongs to another.
        """

    @abstractmethod
    async def remove(self, name: str) -> Subscriber:
        """Delete a subscriber and return what it was; raises
        :class:`SubscriberNotFound`."""

    @abstractmethod
    async def set_barred(self, impu: str, barred: bool) -> Subscriber:
        """Bar or unbar one public identity; returns the subscriber after the
        change.  Raises :class:`SubscriberNotFound`."""
