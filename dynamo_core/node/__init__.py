"""The Dynamo node: every primitive composed into one replica and coordinator, as a pure core.

A [`Node`][dynamo_core.node.Node] is what one machine of a Dynamo cluster runs. It owns

* a [`HashRing`][dynamo_core.ring.HashRing] (the same on every node) that says which nodes
  replicate each key — the key's *preference list* — and which nodes stand in when they fail;
* a [`Storage`][dynamo_core.interfaces.Storage] holding one [`DVVSet`][dynamo_core.dvv.DVVSet]
  per key it replicates (encoded through the codec), its actor epoch (the KV679 guard of
  [`ActorEpochs`][dynamo_core.epochs.ActorEpochs]) and its
  [`HintStore`][dynamo_core.hints.HintStore];
* one [`MerkleTree`][dynamo_core.merkle.MerkleTree] per ring segment it replicates, updated on
  every local write;
* a [`PhiAccrualDetector`][dynamo_core.failure.PhiAccrualDetector] fed by heartbeats, with
  Dynamo's local signal: a request that times out marks its target suspect;
* [`PutCoordinator`][dynamo_core.quorum.PutCoordinator] and
  [`GetCoordinator`][dynamo_core.quorum.GetCoordinator] for the client requests it coordinates,
  a [`Handoff`][dynamo_core.hints.Handoff] that delivers its hints when their targets come back,
  and [`MerkleExchange`][dynamo_core.merkle.MerkleExchange]s with replica peers.

It is a sans-I/O state machine, like every core in the library: no clock, no sockets, no
threads, no global randomness. Time comes in as ``now``; inputs are client requests
([`put`][dynamo_core.node.Node.put], [`get`][dynamo_core.node.Node.get]), messages from other
nodes ([`receive`][dynamo_core.node.Node.receive]) and timers
([`on_timer`][dynamo_core.node.Node.on_timer], due at [`deadline`][dynamo_core.node.Node.deadline]).
Every input returns the effects it causes — [`Send`][dynamo_core.node.Send] a message,
[`Reply`][dynamo_core.node.Reply] to a client, and informational effects
([`AntiEntropyDone`][dynamo_core.node.AntiEntropyDone],
[`HintsDelivered`][dynamo_core.hints.HintsDelivered],
[`HintsExpired`][dynamo_core.hints.HintsExpired]) — for a driver to carry out: the
deterministic [`Simulation`][dynamo_core.testing.Simulation], or your own.

**The write path.** Any node takes a client `put`. A node outside the key's preference list
forwards it to the first primary it believes up (Dynamo does the same); a primary coordinates:
it loads its stored state, picks an actor id with [`ActorEpochs`][dynamo_core.epochs.ActorEpochs]
(so a node that lost data never reissues a dot), applies ``state.update(value, actor,
context)``, stores the result together with its epoch in one atomic batch, and runs a
`PutCoordinator` over the key's nodes in ring order minus those believed down. Fallbacks keep
what they receive for a failed primary as a hint and hand it over when the primary is back.

**The read path.** A `get` collects `r` answers, replies with the merged siblings and an opaque
context, and read-repairs stale replicas once every answer is in.

**Anti-entropy.** Every `anti_entropy_interval` the node offers the Merkle roots of the ranges it
shares with its next replica peer (round robin); for each range whose roots differ, it runs a
`MerkleExchange` and repairs the differing keys in both directions by shipping states that the
receiver merges with ``sync``.

**Membership.** Ring versions spread by gossip ([`Membership`][dynamo_core.membership.Membership]);
a node installs each new version, streams in the ranges it gains, and hands over and drops the
ranges it loses.

**The package.** `Node` (in `core`) is the wiring: a dispatch table from message type to the
part that handles it, `deadline()` the minimum of the parts' deadlines, and what crosses parts
(installing a ring version). Each module beside it owns one job: `config`
([`NodeConfig`][dynamo_core.node.NodeConfig]), `effects` (what an input returns), `contexts`
(client contexts), `keyspace` (the layout of the storage namespace), `replica` (the store),
`state` (what every part reads), and the parts `coordination`, `liveness`, `anti_entropy`,
`membership` and `streams` (see the architecture page).
"""

from __future__ import annotations

from dynamo_core.node.config import NodeConfig
from dynamo_core.node.contexts import decode_context, encode_context
from dynamo_core.node.core import Node
from dynamo_core.node.effects import (
    NODE_STATUSES,
    AntiEntropyDone,
    Effect,
    MembershipView,
    Quarantined,
    Reply,
    RingChanged,
    Send,
    TransferDone,
    VersionRefused,
)

__all__ = [
    "NODE_STATUSES",
    "AntiEntropyDone",
    "Effect",
    "MembershipView",
    "Node",
    "NodeConfig",
    "Quarantined",
    "Reply",
    "RingChanged",
    "Send",
    "TransferDone",
    "VersionRefused",
    "decode_context",
    "encode_context",
]
