"""The consistent-hash ring: which nodes hold each key, and what moves when membership changes.

[`HashRing`][dynamo_core.ring.HashRing] maps every key to a *preference list* of distinct nodes,
the first of which is its *owner* (the coordinator in Dynamo's terms). Two placement strategies
from the Dynamo paper are offered:

* **Strategy 3 (the default): Q equal partitions.** The 64-bit token circle is cut into
  ``Q = partitions`` equal partitions (4096 by default; a power of two, so the partition of a token
  is ``token >> (64 - log2(Q))``). Nodes *claim* whole partitions: each owns a number proportional
  to its weight (``k`` or ``k + 1`` with equal weights), any `replicas` consecutive partitions are
  on distinct nodes (and distinct zones) whenever that is possible, a join takes only what balance
  requires and only the joining node gains data, and a leave hands the leaver's partitions to the
  others evenly. Preference lists are precomputed per partition, so a lookup is one hash, one
  shift and one list index.
* **Strategy 1: ``vnodes`` tokens per unit of weight.** Node ``n`` with weight ``w`` places
  ``max(1, floor(vnodes * w + 0.5))`` tokens at ``token(f"{n}#{i}")`` for ``i = 0, 1, ...``
  (the ring's token function over the UTF-8 name, so another language reproduces placement). A
  key belongs to the first node token strictly greater than its own token, wrapping at ``2**64``.
  Balance is statistical: max/mean ownership falls only like ``1/sqrt(vnodes)``.

Both strategies give identical placement in every process and on every machine: nothing depends
on `hash()`, `PYTHONHASHSEED` or set and dict iteration order.
"""

from __future__ import annotations

from dynamo_core.hashing import TokenRange
from dynamo_core.ring.bounds import (
    DEFAULT_PARTITIONS,
    MAX_NODES,
    MAX_PARTITIONS,
    MAX_REPLICAS,
    MAX_VNODES,
)
from dynamo_core.ring.bounds import (
    MAX_DECODED_TOKENS as MAX_DECODED_TOKENS,
)
from dynamo_core.ring.bounds import (
    MAX_NODE_TOKENS as MAX_NODE_TOKENS,
)
from dynamo_core.ring.hashring import KEEP as KEEP
from dynamo_core.ring.hashring import HashRing
from dynamo_core.ring.transfers import Transfer

__all__ = [
    "DEFAULT_PARTITIONS",
    "MAX_NODES",
    "MAX_PARTITIONS",
    "MAX_REPLICAS",
    "MAX_VNODES",
    "HashRing",
    "TokenRange",
    "Transfer",
]
