"""What goes in and out of a coordinator: replica replies, effects for the driver, results."""

from __future__ import annotations

from typing import Generic, TypeAlias, TypeVar

import attrs

from dynamo_core.effects import SetTimer
from dynamo_core.errors import Unavailable
from dynamo_core.interfaces import ReplicaState

__all__ = [
    "Complete",
    "Fetched",
    "GetEffect",
    "GetResult",
    "Key",
    "PutEffect",
    "PutResult",
    "Refused",
    "SendFetch",
    "SendRepair",
    "SendStore",
    "Stored",
]

Key: TypeAlias = str | bytes
"""A key as users pass it: `str` (UTF-8) or `bytes`. The coordinators only echo it in requests."""

S = TypeVar("S", bound=ReplicaState)
R = TypeVar("R")


# -- replies (inputs from replicas) ------------------------------------------------------------


@attrs.frozen
class Stored:
    """A replica's acknowledgement of a [`SendStore`][dynamo_core.quorum.SendStore].

    It means the replica merged the state into what it holds (``local.sync(state)``) and made
    the result durable.
    """


@attrs.frozen
class Refused:
    """A replica's refusal of a request (overloaded, out of disk, not responsible, ...).

    Attributes:
        reason: Free text for logs; the coordinators do not interpret it.
    """

    reason: str = attrs.field(default="", validator=attrs.validators.instance_of(str))


@attrs.frozen
class Fetched(Generic[S]):
    """A replica's reply to a [`SendFetch`][dynamo_core.quorum.SendFetch].

    Attributes:
        state: What the replica holds for the key, or `None` when it holds nothing (not found).
    """

    state: S | None = None

    @property
    def found(self) -> bool:
        """Whether the replica holds a state for the key."""
        return self.state is not None


# -- effects (outputs for the driver) ----------------------------------------------------------


@attrs.frozen
class SendStore(Generic[S]):
    """Effect: send `state` to `target` for it to merge into its own.

    The target replies [`Stored`][dynamo_core.quorum.Stored] or
    [`Refused`][dynamo_core.quorum.Refused].

    Attributes:
        target: The node to send to.
        key: The key being written.
        state: The state to merge.
        hint: When `target` is a fallback, the primary it stands in for: the target keeps the
            state as a hint and hands it to that primary when it recovers. `None` for a primary.
    """

    target: str
    key: Key
    state: S
    hint: str | None = None


@attrs.frozen
class SendFetch:
    """Effect: ask `target` for its state of `key`.

    The target replies [`Fetched`][dynamo_core.quorum.Fetched] or
    [`Refused`][dynamo_core.quorum.Refused].

    Attributes:
        target: The node to ask.
        key: The key being read.
        hint: When `target` is a fallback, the primary it stands in for (it may hold a hinted
            state for that primary). `None` for a primary.
    """

    target: str
    key: Key
    hint: str | None = None


@attrs.frozen
class SendRepair(Generic[S]):
    """Effect: read repair — send `state` to `target`, which answered with a stale state.

    The target merges it like a store; no reply is expected and none may be fed back.

    Attributes:
        target: The stale replica.
        key: The key that was read.
        state: The merge of every state the read collected.
        hint: As for [`SendStore`][dynamo_core.quorum.SendStore].
    """

    target: str
    key: Key
    state: S
    hint: str | None = None


@attrs.frozen
class Complete(Generic[R]):
    """Effect, emitted exactly once per request: the request's outcome.

    Attributes:
        result: The success value, or the [`Unavailable`][dynamo_core.errors.Unavailable]
            error to raise to the client.
    """

    result: R | Unavailable

    @property
    def ok(self) -> bool:
        """Whether the request succeeded."""
        return not isinstance(self.result, Unavailable)

    def unwrap(self) -> R:
        """Return the success value.

        Raises:
            Unavailable: The request failed.
        """
        if isinstance(self.result, Unavailable):
            raise self.result
        return self.result


@attrs.frozen
class PutResult:
    """The outcome of a successful write.

    Attributes:
        acked: The nodes whose acknowledgements counted toward `w`, sorted.
        hinted: ``(fallback, primary)`` for every fallback that acknowledged a hinted copy by the
            time the write completed (counted or not), sorted.
    """

    acked: tuple[str, ...]
    hinted: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class GetResult(Generic[S]):
    """The outcome of a successful read.

    Attributes:
        state: The merge (``sync``) of every state answered so far, or `None` when every
            answer was "not found". For a [`DVVSet`][dynamo_core.DVVSet], ``state.values`` are
            the siblings and ``state.context`` is the context the client sends back with its
            next write.
        answered: The nodes whose answers counted toward `r`, sorted.
        not_found: The nodes among all that answered which held nothing, sorted.
    """

    state: S | None
    answered: tuple[str, ...]
    not_found: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        """Whether any replica held a state."""
        return self.state is not None


PutEffect: TypeAlias = SendStore[S] | SetTimer | Complete[PutResult]
"""What [`PutCoordinator`][dynamo_core.quorum.PutCoordinator] methods return a list of."""

GetEffect: TypeAlias = SendFetch | SendRepair[S] | SetTimer | Complete[GetResult[S]]
"""What [`GetCoordinator`][dynamo_core.quorum.GetCoordinator] methods return a list of."""
