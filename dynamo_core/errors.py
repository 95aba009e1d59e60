"""The exceptions dynamo_core raises.

Every error the library defines derives from [`DynamoError`][dynamo_core.errors.DynamoError], so an
application can catch the whole family in one clause. Bad *arguments* are reported with the
built-in `TypeError` and `ValueError` (a message names the argument and what was allowed), as the
standard library does; the classes here cover what the built-ins cannot say.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "ChangeRefused",
    "CorruptRecord",
    "DecodeError",
    "DotCollision",
    "DynamoError",
    "EffectFailed",
    "EmptyRingError",
    "LimitExceeded",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "StorageClosedError",
    "StorageError",
    "StorageFull",
    "Unavailable",
]


class DynamoError(Exception):
    """The base class of every exception defined by dynamo_core."""


class DecodeError(DynamoError, ValueError):
    """Encoded data is malformed, of the wrong type, out of range or over a size cap.

    Raised by every decoder in the library (`from_dict`, `codec.loads`, ...) instead of a bare
    `KeyError`, `IndexError` or `TypeError`, so code that reads another process's bytes needs one
    `except` clause. It subclasses `ValueError` because the input value is what is wrong.
    """


class StorageError(DynamoError):
    """A storage backend could not carry out an operation."""


class CorruptRecord(StorageError):
    """A stored record failed to decode; the store itself still works.

    Never a reason for a node to stop: the node quarantines a corrupt replica or node record,
    and the driver contains the error anywhere else (the input that met it fails).
    """


class StorageFull(StorageError):
    """A write failed in a way that may pass: the disk is full (ENOSPC, SQLite's ``SQLITE_FULL``).

    Nothing was written. A node that meets it refuses writes for a while (a degraded mode),
    keeps serving reads and resumes writing by itself once a write succeeds again.
    """


class StorageClosedError(StorageError):
    """An operation was attempted on a storage backend after `close()`."""


class EmptyRingError(DynamoError, LookupError):
    """A lookup was made on a ring that has no nodes."""


class ProtocolError(DynamoError):
    """A protocol state machine was used in a way its protocol does not allow.

    As in h11, the two subclasses say whose fault it was:
    [`LocalProtocolError`][dynamo_core.errors.LocalProtocolError] for the caller's own misuse
    (input after completion, an unknown timer) and
    [`RemoteProtocolError`][dynamo_core.errors.RemoteProtocolError] for a peer that sent something
    it should not have (a reply nobody asked for, a duplicate).
    """


class LocalProtocolError(ProtocolError):
    """The local caller drove a protocol core incorrectly; the core's state is unchanged."""


class RemoteProtocolError(ProtocolError):
    """A remote peer sent input the protocol does not allow; the core's state is unchanged."""


class Unavailable(DynamoError):
    """Too few replicas answered for a request to meet its consistency requirement.

    Attributes:
        required: How many distinct replicas had to answer.
        answered: The replicas that did answer (and counted), sorted.
        primaries: The primaries among `answered` (nodes of the key's preference list, not
            fallbacks), sorted.
        required_primaries: How many of the answers had to come from primaries (the policy's
            `pr` or `pw`; 0 when any node counts).
    """

    def __init__(
        self,
        message: str,
        *,
        required: int,
        answered: Iterable[str] = (),
        primaries: Iterable[str] = (),
        required_primaries: int = 0,
    ) -> None:
        super().__init__(message)
        self.required = required
        self.answered: tuple[str, ...] = tuple(sorted(answered))
        self.primaries: tuple[str, ...] = tuple(sorted(primaries))
        self.required_primaries = required_primaries


class LimitExceeded(DynamoError, ValueError):
    """A write was refused because it would take a key over an admission limit.

    Nothing was written. The limits are those of [`Limits`][dynamo_core.limits.Limits]; the
    message says what the client should do (for siblings: read, merge the values and write the
    merge back with the context the read returned).

    Attributes:
        limit: The limit's name (``"max_siblings"``, ``"max_value_bytes"``,
            ``"max_record_bytes"``, ``"max_clock_entries"``).
        maximum: The limit's value, or `None` when it is not known (a client that only got the
            node's message).
        actual: What the write would have reached, or `None` when it is not known.
    """

    def __init__(
        self, message: str, *, limit: str, maximum: int | None = None, actual: int | None = None
    ) -> None:
        super().__init__(message)
        self.limit = limit
        self.maximum = maximum
        self.actual = actual


class ChangeRefused(DynamoError, ValueError):
    """A membership change was refused because of the ring as it will be; nothing changed.

    Raised by [`Node.join`][dynamo_core.node.Node.join] and its siblings, and sent to an operator
    as an [`AdminRefused`][dynamo_core.admin.AdminRefused] with the same `code`.

    Attributes:
        code: ``"not_member"``, ``"already_member"`` or ``"too_few_members"``.
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class EffectFailed(DynamoError):
    """An effect handler raised while a driver was carrying out an effect.

    The drivers in [`dynamo_core.drive`][dynamo_core.drive] and
    [`dynamo_core.aio`][dynamo_core.aio.Driver] stop with it; the handler's exception is the
    ``__cause__``.

    Attributes:
        effect: The effect the handler was given.
    """

    def __init__(self, effect: object, cause: BaseException) -> None:
        super().__init__(
            f"the handler failed on {type(effect).__name__}: {type(cause).__name__}: {cause}"[:1024]
        )
        self.effect = effect


class DotCollision(DynamoError, ValueError):
    """Two replica states hold the same dot with different values.

    A dot ``(actor, counter)`` names one write, so this can only come from two writers that used
    the same actor identity and minted the same counter: merging would silently keep one value
    and drop the other, so [`DVVSet.sync`][dynamo_core.dvv.DVVSet.sync] refuses instead. Give
    every writer an identity that never repeats a dot: one actor per replica, updated with an
    atomic read-modify-write there, or [`ActorEpochs`][dynamo_core.epochs.ActorEpochs] with a
    durable epoch.

    Attributes:
        actor: The actor of the dot.
        counter: The counter of the dot.
    """

    def __init__(self, actor: str, counter: int) -> None:
        super().__init__(
            f"dot ({actor!r}, {counter}) holds different values in the two states: two writers "
            f"share the actor {actor!r}; give each writer its own identity (see ActorEpochs)"
        )
        self.actor = actor
        self.counter = counter
