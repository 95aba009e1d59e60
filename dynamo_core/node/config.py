"""`NodeConfig`: the timings and limits of a node, checked when it is made."""

from __future__ import annotations

import attrs

from dynamo_core import merkle
from dynamo_core._check import check_positive_float, check_positive_int, check_time
from dynamo_core.failure import PhiModel
from dynamo_core.limits import Limits

__all__ = ["NodeConfig"]


def _positive(_: object, attribute: attrs.Attribute[float], value: object) -> None:
    check_positive_float(value, attribute.name)


def _optional_positive(_: object, attribute: attrs.Attribute[float | None], value: object) -> None:
    if value is not None:
        check_positive_float(value, attribute.name)


def _positive_int(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    check_positive_int(value, attribute.name)


def _depth(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    if type(value) is not int:
        raise TypeError(f"{attribute.name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= merkle.MAX_DEPTH:
        raise ValueError(f"{attribute.name} must be in 0..{merkle.MAX_DEPTH}, got {value}")


def _levels(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    check_positive_int(value, attribute.name, maximum=merkle.MAX_LEVELS_PER_ROUND)


def _optional_time(_: object, attribute: attrs.Attribute[float | None], value: object) -> None:
    if value is not None:
        check_time(value, attribute.name)


def _phi_model(value: object) -> PhiModel:
    return PhiModel.parse(value, "phi_model")


@attrs.frozen
class NodeConfig:
    """Timings and limits of a [`Node`][dynamo_core.node.Node].

    Every node of a cluster should use the same `merkle_depth`. An exchange between trees of
    different depths works (the deeper side folds), but the roots a node offers each round are
    compared as they are, so ranges of different depths are offered again every round.

    Attributes:
        heartbeat_interval: Seconds between heartbeats to every other node; also the failure
            detector's expected interval and how often hint targets are re-checked.
        phi_threshold: The φ above which the detector convicts a silent node (Cassandra: 8).
        phi_model: The detector's model of heartbeat intervals,
            [`PhiModel`][dynamo_core.failure.PhiModel] or its value: ``"exponential"``
            (Cassandra, the default) or ``"normal"`` (Akka).
        phi_acceptable_pause: Normal model only: seconds of silence added to the mean
            interval (Akka's ``acceptable-heartbeat-pause``); `None` means 0.
        phi_min_std: Normal model only: the floor of the intervals' standard deviation
            (Akka's ``min-std-deviation``); `None` means 0.1 s.
        request_timeout: The overall time budget of a coordinated put or get, in seconds.
        replica_timeout: How long one replica may take before a fallback replaces it (puts);
            default: a quarter of `request_timeout`.
        forward_timeout: How long a node waits for the primary it forwarded a request to;
            default: twice `request_timeout`.
        anti_entropy_interval: Seconds between anti-entropy rounds (one peer per round).
        exchange_timeout: An anti-entropy offer or exchange that makes no progress for this
            long is dropped.
        max_exchanges: The most Merkle exchanges one round starts with its peer; the other
            differing ranges wait for the next round with that peer.
        merkle_depth: The depth of each range's tree (``2**depth`` segments), capped for ranges
            with fewer tokens than segments.
        levels_per_round: Tree levels an exchange descends per round trip.
        confirm_delay: Re-check differing segments after this pause before repairing (Riak's
            compare-twice); `None` repairs after one pass (repairs are idempotent merges).
        hint_ttl: Seconds after which an undelivered hint expires (the hint window is the same).
        max_hints_per_target: Hints a fallback keeps for one failed node.
        max_hint_bytes_per_target: Encoded hint bytes a fallback keeps for one failed node.
        handoff_timeout: Seconds to wait for a hint batch to be acknowledged.
        handoff_backoff: First retry delay after a failed hint batch (doubling, up to 60 s).
        handoff_rate: Hint bytes per second a node sends at most.
        gossip_interval: Seconds between membership gossip rounds (one random peer a round).
        stream_batch_bytes: The most state bytes one range-stream batch carries.
        stream_rate: Range-stream bytes per second one incoming stream pulls at most.
        stream_timeout: Seconds to wait for a stream batch before pulling again (three silent
            pulls move the stream to another source).
        limits: The admission limits of client writes (values, siblings, clock entries,
            record bytes); see [`Limits`][dynamo_core.limits.Limits].
        storage_full_pause: After a write failed with
            [`StorageFull`][dynamo_core.errors.StorageFull], the node refuses client writes and
            starts no anti-entropy or range stream for this many seconds, then tries again.
    """

    heartbeat_interval: float = attrs.field(default=1.0, validator=_positive)
    phi_threshold: float = attrs.field(default=8.0, validator=_positive)
    phi_model: PhiModel = attrs.field(default=PhiModel.EXPONENTIAL, converter=_phi_model)
    phi_acceptable_pause: float | None = attrs.field(default=None, validator=_optional_time)
    phi_min_std: float | None = attrs.field(default=None, validator=_optional_positive)
    request_timeout: float = attrs.field(default=1.0, validator=_positive)
    replica_timeout: float | None = attrs.field(default=None, validator=_optional_positive)
    forward_timeout: float | None = attrs.field(default=None, validator=_optional_positive)
    anti_entropy_interval: float = attrs.field(default=10.0, validator=_positive)
    exchange_timeout: float = attrs.field(default=10.0, validator=_positive)
    max_exchanges: int = attrs.field(default=4, validator=_positive_int)
    merkle_depth: int = attrs.field(default=10, validator=_depth)
    levels_per_round: int = attrs.field(default=2, validator=_levels)
    confirm_delay: float | None = attrs.field(default=None, validator=_optional_time)
    hint_ttl: float = attrs.field(default=3 * 3600.0, validator=_positive)
    max_hints_per_target: int = attrs.field(default=100_000, validator=_positive_int)
    max_hint_bytes_per_target: int = attrs.field(default=64 * 2**20, validator=_positive_int)
    handoff_timeout: float = attrs.field(default=10.0, validator=_positive)
    handoff_backoff: float = attrs.field(default=1.0, validator=_positive)
    handoff_rate: float = attrs.field(default=1024 * 1024.0, validator=_positive)
    gossip_interval: float = attrs.field(default=1.0, validator=_positive)
    stream_batch_bytes: int = attrs.field(default=1 << 20, validator=_positive_int)
    stream_rate: float = attrs.field(default=16 * 1024 * 1024.0, validator=_positive)
    stream_timeout: float = attrs.field(default=5.0, validator=_positive)
    limits: Limits = attrs.field(factory=Limits, validator=attrs.validators.instance_of(Limits))
    storage_full_pause: float = attrs.field(default=1.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.phi_model is PhiModel.EXPONENTIAL:
            for name in ("phi_acceptable_pause", "phi_min_std"):
                if getattr(self, name) is not None:
                    raise ValueError(
                        f"{name} applies to phi_model='normal' (Akka) only, "
                        "not to the exponential model"
                    )
        if self.replica_timeout is not None and self.replica_timeout > self.request_timeout:
            raise ValueError(
                f"replica_timeout must be at most request_timeout={self.request_timeout}, "
                f"got {self.replica_timeout}"
            )
