"""The ring's caps and the small pieces its modules share."""

from __future__ import annotations

import hashlib
import math
from typing import Any, Final, NoReturn, SupportsIndex

from dynamo_core.errors import EmptyRingError

__all__ = [
    "DEFAULT_PARTITIONS",
    "MAX_DECODED_TOKENS",
    "MAX_NODES",
    "MAX_NODE_TOKENS",
    "MAX_PARTITIONS",
    "MAX_REPLICAS",
    "MAX_VNODES",
]

DEFAULT_PARTITIONS: Final = 4096
"""Partitions of a strategy-3 ring when neither `partitions` nor `vnodes` is given."""

MAX_PARTITIONS: Final = 2**18
"""The most partitions a ring may have (262,144: enough for about 26,000 nodes at 10 each)."""

MAX_VNODES: Final = 4096
"""The most tokens per unit of weight of a strategy-1 ring."""

MAX_NODE_TOKENS: Final = 2**16
"""The most tokens one node of a strategy-1 ring may place (``vnodes * weight``)."""

MAX_NODES: Final = 65_536
"""The most nodes a ring may have."""

MAX_DECODED_TOKENS: Final = 2**18
"""The most tokens (all nodes together) of a strategy-1 ring that `from_dict` builds: the cap is
checked before any token is placed, so decoding stays linear in the input and bounded."""

MAX_REPLICAS: Final = 64
"""The largest replication factor a ring accepts."""


class _EmptyTable(list[Any]):
    """The lookup table of a ring with no nodes: every index raises `EmptyRingError`."""

    __slots__ = ()

    def __getitem__(self, index: SupportsIndex | slice) -> NoReturn:
        raise EmptyRingError("the ring has no nodes: add a node before looking keys up")


_EMPTY: Final = _EmptyTable()


def _zone_key(node: str, zone: str | None) -> tuple[str, str]:
    """What zone distinctness compares: the zone, or for a node without one, the node itself."""
    return ("zone", zone) if zone is not None else ("node", node)


def _key_id(secret: bytes) -> str:
    """A public fingerprint of a cluster secret: equal rings must use the same one."""
    return hashlib.blake2b(b"dynamo_core.ring key id", digest_size=8, key=secret).hexdigest()


def _token_count(vnodes: int, weight: float) -> int:
    """The tokens a strategy-1 node of `weight` places: ``vnodes * weight``, rounded, at least 1."""
    return max(1, math.floor(vnodes * weight + 0.5))
