"""Transfers: what data moves between nodes when the ring changes, and how a plan is built."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Self

import attrs

from dynamo_core import codec
from dynamo_core._check import MAX_NODE_ID_LEN, node_id_field
from dynamo_core.errors import DecodeError
from dynamo_core.hashing import TOKEN_SPACE, TokenRange

__all__ = ["Transfer"]


def _check_range(_: object, attribute: attrs.Attribute[TokenRange], value: TokenRange) -> None:
    if type(value) is not TokenRange:
        raise TypeError(f"{attribute.name} must be a TokenRange, not {type(value).__name__}")


@attrs.frozen
class Transfer:
    """The data of `range` must be sent from `source` to `target`.

    Produced by [`HashRing.transfers_to`][dynamo_core.ring.HashRing.transfers_to]: `target`
    becomes a replica of `range` and `source` already held it.

    Raises:
        TypeError: `range` is not a `TokenRange`, or a node id is not a `str`.
        ValueError: a node id is empty or too long, or `source` equals `target`.
    """

    range: TokenRange = attrs.field(validator=_check_range)
    source: str = attrs.field(validator=node_id_field)
    target: str = attrs.field(validator=node_id_field)

    def __attrs_post_init__(self) -> None:
        if self.source == self.target:
            raise ValueError(f"source and target must differ, both are {self.source!r}")

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as ``{"type": "transfer", "v": 1, "range": {...}, "source", "target"}``."""
        return codec.envelope(
            "transfer",
            {"range": self.range.to_dict(), "source": self.source, "target": self.target},
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode what [`to_dict`][dynamo_core.ring.Transfer.to_dict] produced.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded transfer.
        """
        obj = codec.open_envelope(data, "transfer", required=("range", "source", "target"))
        rng = TokenRange.from_dict(obj["range"])
        source = codec.as_str(obj["source"], "transfer.source", max_len=MAX_NODE_ID_LEN)
        target = codec.as_str(obj["target"], "transfer.target", max_len=MAX_NODE_ID_LEN)
        if source == target:
            raise DecodeError("transfer.source and transfer.target must differ")
        return cls(rng, source, target)


def _pair_sources(
    before: Sequence[str], after: Sequence[str], new: Sequence[str], members: Mapping[str, object]
) -> tuple[tuple[str, str], ...]:
    """Name a source for each new replica of a range.

    The i-th new replica receives from the i-th node that lost a replica of the range but is
    still a member (it holds the data and is about to drop it: on a join, the node whose
    partition the joiner took, so a partition's ranges coalesce into one transfer); when there
    is no such node, from the first node of the old list that is still a member (on a leave),
    or from the old owner if none is.
    """
    departed = [node for node in before if node not in after and node in members]
    fallback = next((node for node in before if node in members), before[0])
    return tuple(
        (departed[i] if i < len(departed) else fallback, target) for i, target in enumerate(new)
    )


def _plan(pieces: Sequence[tuple[int, tuple[tuple[str, str], ...]]]) -> list[Transfer]:
    """Turn per-piece moves into coalesced transfers.

    `pieces` are ``(start, moves)`` in token order; piece i covers ``[start_i, start_{i+1})`` and
    the last one wraps to the first start. Runs of consecutive pieces (cyclically) with the same
    ``(source, target)`` become one transfer.
    """
    count = len(pieces)
    starts = [start for start, _ in pieces]

    def end_of(i: int) -> int:
        if i + 1 < count:
            return starts[i + 1]
        return starts[0] if starts[0] != 0 else TOKEN_SPACE

    runs: dict[tuple[str, str], list[int]] = {}
    for i, (_, moves) in enumerate(pieces):
        for move in moves:
            runs.setdefault(move, []).append(i)
    out: list[Transfer] = []
    for (source, target), indexes in runs.items():
        if len(indexes) == count:
            out.append(Transfer(TokenRange(starts[0], end_of(count - 1)), source, target))
            continue
        groups: list[list[int]] = []
        for i in indexes:
            if groups and groups[-1][-1] == i - 1:
                groups[-1].append(i)
            else:
                groups.append([i])
        if len(groups) > 1 and groups[0][0] == 0 and groups[-1][-1] == count - 1:
            groups[0] = groups.pop() + groups[0]  # the run wraps past the last piece
        out.extend(
            Transfer(TokenRange(starts[group[0]], end_of(group[-1])), source, target)
            for group in groups
        )
    out.sort(key=lambda t: (t.range.start, t.source, t.target))
    return out
