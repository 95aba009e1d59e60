"""Quorum sizes: the consistency levels and the policy that says how many replicas must answer."""

from __future__ import annotations

import enum
from typing import cast

import attrs

from dynamo_core import codec
from dynamo_core._check import check_positive_int
from dynamo_core.errors import DecodeError

__all__ = ["ConsistencyLevel", "QuorumPolicy"]


# -- consistency levels and the policy ---------------------------------------------------------


class ConsistencyLevel(enum.Enum):
    """Named replica counts, as Cassandra spells them.

    [`count(n)`][dynamo_core.quorum.ConsistencyLevel.count] turns a level into a number of
    replicas for a replication factor `n`. The values are the names, so
    ``ConsistencyLevel("QUORUM")`` reads a level from configuration.
    """

    ONE = "ONE"
    """One replica."""
    TWO = "TWO"
    """Two replicas (an error when ``n < 2``)."""
    THREE = "THREE"
    """Three replicas (an error when ``n < 3``)."""
    QUORUM = "QUORUM"
    """A majority: ``n // 2 + 1`` (Riak's and Cassandra's default)."""
    ALL = "ALL"
    """Every replica: ``n``."""
    ANY = "ANY"
    """Writes only: one acknowledgement from anyone, a fallback holding a hint included."""

    def count(self, n: int, *, write: bool = True) -> int:
        """Return how many replicas this level requires when a key has `n` replicas.

        Args:
            n: The replication factor.
            write: Whether the level is for a write (`ANY` is allowed only for writes).

        Returns:
            A number of replicas in ``1 .. n``.

        Raises:
            TypeError: `n` is not an `int`.
            ValueError: `n` is below 1, the level needs more replicas than `n`, or the level is
                `ANY` for a read.
        """
        check_positive_int(n, "n")
        if self is ConsistencyLevel.ANY:
            if not write:
                raise ValueError("read level ANY is not allowed: ANY is for writes only")
            return 1
        needed = {
            ConsistencyLevel.ONE: 1,
            ConsistencyLevel.TWO: 2,
            ConsistencyLevel.THREE: 3,
            ConsistencyLevel.QUORUM: n // 2 + 1,
            ConsistencyLevel.ALL: n,
        }[self]
        if needed > n:
            raise ValueError(f"level {self.value} needs {needed} replicas but n is {n}")
        return needed


def _count_field(_instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    check_positive_int(value, attribute.name)


def _primary_field(_instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if type(value) is not int:
        raise TypeError(f"{attribute.name} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value}")


def _primary_count(value: object, n: int, name: str) -> int:
    """A per-request `pr` or `pw`: a count, or a level counted against `n` (not `ANY`)."""
    if isinstance(value, ConsistencyLevel):
        if value is ConsistencyLevel.ANY:
            raise ValueError(f"{name} level ANY is not allowed: ANY is for w only")
        return value.count(n)
    return cast("int", value)  # the policy's validator checks it


def _flag_field(_instance: object, attribute: attrs.Attribute[bool], value: object) -> None:
    if type(value) is not bool:
        raise TypeError(f"{attribute.name} must be a bool, not {type(value).__name__}")


@attrs.frozen
class QuorumPolicy:
    """How many replicas hold a key and how many must answer a read or a write.

    Examples:
        >>> policy = QuorumPolicy(3, 2, 2)
        >>> policy.is_strict
        True
        >>> QuorumPolicy.from_levels(5, read=ConsistencyLevel.ONE, write=ConsistencyLevel.ALL)
        QuorumPolicy(n=5, r=1, w=5, sloppy=True, notfound_ok=True, write_any=False, pr=0, pw=0)
        >>> QuorumPolicy(3, 2, 2, pr=2, pw=2).primaries_overlap
        True

    Attributes:
        n: Replicas per key (Dynamo's N, Riak's n_val, Cassandra's replication factor).
        r: Distinct replicas that must answer a read, ``1 <= r <= n``.
        w: Distinct replicas that must acknowledge a write, ``1 <= w <= n``.
        sloppy: Sloppy quorum (Dynamo, Riak): the first `n` *healthy* candidates serve the
            request and a fallback's answer counts. With ``sloppy=False`` only the primaries
            (the preference list) count, as in Cassandra; fallbacks still receive hinted copies
            of a write, but their acknowledgements do not count.
        notfound_ok: Whether a replica's "not found" counts as an answer to a read (Riak's
            ``notfound_ok``, true by default).
        write_any: The write level is `ANY`: ``w == 1`` and an acknowledgement from a fallback
            (a stored hint) counts even when `sloppy` is false (Cassandra's ANY).
        pr: Riak's PR: how many of the `r` counted answers must come from primaries (nodes of
            the key's preference list) rather than fallbacks, ``0 <= pr <= r``. 0 (the default)
            lets any counted answer do.
        pw: Riak's PW: how many of the `w` counted acknowledgements must come from primaries,
            ``0 <= pw <= w``; 0 (the default) lets any do. Must be 0 with `write_any`.

    Raises:
        TypeError: A count is not an `int` or a flag not a `bool`.
        ValueError: A count is out of range (the message names it and the allowed range),
            `write_any` is set with ``w != 1``, or `pw` is set with `write_any`.
    """

    n: int = attrs.field(default=3, validator=_count_field)
    r: int = attrs.field(default=2, validator=_count_field)
    w: int = attrs.field(default=2, validator=_count_field)
    sloppy: bool = attrs.field(default=True, kw_only=True, validator=_flag_field)
    notfound_ok: bool = attrs.field(default=True, kw_only=True, validator=_flag_field)
    write_any: bool = attrs.field(default=False, kw_only=True, validator=_flag_field)
    pr: int = attrs.field(default=0, kw_only=True, validator=_primary_field)
    pw: int = attrs.field(default=0, kw_only=True, validator=_primary_field)

    def __attrs_post_init__(self) -> None:
        if self.r > self.n:
            raise ValueError(f"r must be in 1..n={self.n}, got {self.r}")
        if self.w > self.n:
            raise ValueError(f"w must be in 1..n={self.n}, got {self.w}")
        if self.write_any and self.w != 1:
            raise ValueError(f"write_any (level ANY) needs w == 1, got w={self.w}")
        for name, primaries, quorum, of in (
            ("pr", self.pr, self.r, "r"),
            ("pw", self.pw, self.w, "w"),
        ):
            if primaries > quorum:  # so also <= n
                raise ValueError(
                    f"{name} must be in 0..{of}={quorum} (primaries among the {of} replies), "
                    f"got {primaries}"
                )
        if self.write_any and self.pw:
            raise ValueError(f"pw must be 0 with write_any (level ANY), got pw={self.pw}")

    @property
    def is_strict(self) -> bool:
        """Whether ``r + w > n``: every read quorum overlaps every write quorum.

        With a strict policy and no fallbacks involved, a read that starts after a write
        succeeded returns a state that descends the written one. Under sloppy quorum the
        overlap is among *whoever answered*, which may be fallbacks, so the guarantee does not
        hold while fallbacks stand in for primaries.
        """
        return self.r + self.w > self.n

    @property
    def primaries_overlap(self) -> bool:
        """Whether ``pr + pw > n``: every read's primaries overlap every write's primaries.

        Unlike [`is_strict`][dynamo_core.quorum.QuorumPolicy.is_strict], this holds under a
        sloppy quorum too, as long as the key's preference list did not change between the
        write and the read (a membership change moves the primaries).
        """
        return self.pr + self.pw > self.n

    @classmethod
    def from_levels(
        cls,
        n: int = 3,
        *,
        read: ConsistencyLevel = ConsistencyLevel.QUORUM,
        write: ConsistencyLevel = ConsistencyLevel.QUORUM,
        sloppy: bool = True,
        notfound_ok: bool = True,
        pr: int | ConsistencyLevel = 0,
        pw: int | ConsistencyLevel = 0,
    ) -> QuorumPolicy:
        """Build a policy from named levels.

        Args:
            n: The replication factor.
            read: The read level.
            write: The write level.
            sloppy: As the field.
            notfound_ok: As the field.
            pr: Primaries among the read's answers: a count or a level (not `ANY`).
            pw: Primaries among the write's acknowledgements: a count or a level (not `ANY`).

        Returns:
            The policy with ``r = read.count(n)`` and ``w = write.count(n)``; `write_any` is
            set when `write` is `ANY`.

        Raises:
            TypeError: `read` or `write` is not a `ConsistencyLevel`, or `n` not an `int`.
            ValueError: A level needs more than `n` replicas, `read` is `ANY`, or `pr` (`pw`)
                exceeds `r` (`w`).
        """
        for name, level in (("read", read), ("write", write)):
            if not isinstance(level, ConsistencyLevel):
                raise TypeError(f"{name} must be a ConsistencyLevel, not {type(level).__name__}")
        return cls(
            n,
            read.count(n, write=False),
            write.count(n, write=True),
            sloppy=sloppy,
            notfound_ok=notfound_ok,
            write_any=write is ConsistencyLevel.ANY,
            pr=_primary_count(pr, n, "pr"),
            pw=_primary_count(pw, n, "pw"),
        )

    def override(
        self,
        *,
        r: int | ConsistencyLevel | None = None,
        w: int | ConsistencyLevel | None = None,
        notfound_ok: bool | None = None,
        pr: int | ConsistencyLevel | None = None,
        pw: int | ConsistencyLevel | None = None,
    ) -> QuorumPolicy:
        """Return this policy with per-request changes; `None` keeps a field as it is.

        Args:
            r: A count or a level for the read quorum.
            w: A count or a level for the write quorum; `ConsistencyLevel.ANY` sets
                `write_any`, any other value clears it.
            notfound_ok: Whether not-found answers count toward `r`.
            pr: A count or a level (not `ANY`) for the primaries among the read's answers.
            pw: A count or a level (not `ANY`) for the primaries among the write's
                acknowledgements.

        Returns:
            The new policy (or this one, if nothing changes).

        Raises:
            TypeError: A value has the wrong type.
            ValueError: A value is out of range for `n`, `pr` (`pw`) would exceed the new `r`
                (`w`), or `pw` is set with `w` = `ANY`.
        """
        if r is None and w is None and notfound_ok is None and pr is None and pw is None:
            return self
        new_r, new_w, new_any = self.r, self.w, self.write_any
        if r is not None:
            new_r = r.count(self.n, write=False) if isinstance(r, ConsistencyLevel) else r
        if isinstance(w, ConsistencyLevel):
            new_w, new_any = w.count(self.n, write=True), w is ConsistencyLevel.ANY
        elif w is not None:
            new_w, new_any = w, False
        return QuorumPolicy(
            self.n,
            new_r,
            new_w,
            sloppy=self.sloppy,
            notfound_ok=self.notfound_ok if notfound_ok is None else notfound_ok,
            write_any=new_any,
            pr=self.pr if pr is None else _primary_count(pr, self.n, "pr"),
            pw=self.pw if pw is None else _primary_count(pw, self.n, "pw"),
        )

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode the policy as a codec envelope.

        Returns:
            ``{"type": "QuorumPolicy", "v": 1, "n": ..., "r": ..., "w": ..., "sloppy": ...,
            "notfound_ok": ..., "write_any": ..., "pr": ..., "pw": ...}``; `pr` and `pw` are
            left out when 0, so policies without them encode as before.
        """
        extra: dict[str, codec.JSONValue] = {}
        if self.pr:
            extra["pr"] = self.pr
        if self.pw:
            extra["pw"] = self.pw
        return codec.envelope(
            "QuorumPolicy",
            {
                "n": self.n,
                "r": self.r,
                "w": self.w,
                "sloppy": self.sloppy,
                "notfound_ok": self.notfound_ok,
                "write_any": self.write_any,
                **extra,
            },
        )

    @classmethod
    def from_dict(cls, data: object) -> QuorumPolicy:
        """Decode a policy made by [`to_dict`][dynamo_core.quorum.QuorumPolicy.to_dict].

        Returns:
            The policy.

        Raises:
            DecodeError: `data` is not a valid encoded policy.
        """
        obj = codec.open_envelope(
            data,
            "QuorumPolicy",
            required=("n", "r", "w", "sloppy", "notfound_ok", "write_any"),
            optional=("pr", "pw"),
        )
        n = codec.as_int(obj["n"], "QuorumPolicy.n", lo=1)
        r = codec.as_int(obj["r"], "QuorumPolicy.r", lo=1)
        w = codec.as_int(obj["w"], "QuorumPolicy.w", lo=1)
        sloppy = codec.as_bool(obj["sloppy"], "QuorumPolicy.sloppy")
        notfound_ok = codec.as_bool(obj["notfound_ok"], "QuorumPolicy.notfound_ok")
        write_any = codec.as_bool(obj["write_any"], "QuorumPolicy.write_any")
        pr = codec.as_int(obj.get("pr", 0), "QuorumPolicy.pr", lo=0)
        pw = codec.as_int(obj.get("pw", 0), "QuorumPolicy.pw", lo=0)
        try:
            return cls(
                n, r, w, sloppy=sloppy, notfound_ok=notfound_ok, write_any=write_any, pr=pr, pw=pw
            )
        except ValueError as exc:
            raise DecodeError(f"QuorumPolicy: {exc}") from None
