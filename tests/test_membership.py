"""Membership: change requests, ring versions, the claimant rule, adoption and settling."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dynamo_core import HashRing, codec
from dynamo_core.errors import DecodeError
from dynamo_core.hashing import TOKEN_SPACE
from dynamo_core.membership import (
    MAX_CHANGES,
    Change,
    GossipDigest,
    GossipUpdate,
    Membership,
    RingVersion,
    VersionRecord,
    holders,
    moved_fraction,
    stream_sources,
)
from dynamo_core.strategies import changes, version_records


def ring_of(*names: str, partitions: int = 64, replicas: int = 3) -> HashRing:
    ring = HashRing(replicas, partitions=partitions)
    for name in names:
        ring.add_node(name)
    return ring


def state(*names: str, node: str = "a", min_members: int = 3) -> Membership:
    return Membership(node, VersionRecord(0, ring_of(*names)), min_members=min_members)


def settle(m: Membership) -> None:
    rec = m.record
    m.complete_many((i, t.source) for i, t in enumerate(rec.plan))
    assert m.settled
    m._check_invariants()


# -- value types -------------------------------------------------------------------------------


def test_changes_validate_their_fields() -> None:
    Change("a/0/1", "join", "d", "z1", 2.0)
    with pytest.raises(ValueError, match="op"):
        Change("a/0/1", "rename", "d")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="leave takes no zone"):
        Change("a/0/1", "leave", "d", "z1")
    with pytest.raises(ValueError, match="weight"):
        Change("a/0/1", "join", "d", None, 0.0)
    with pytest.raises(TypeError, match="node"):
        Change("a/0/1", "join", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="id"):
        Change("", "join", "d")


def test_ring_versions_order_by_epoch_then_fingerprint() -> None:
    assert RingVersion(2, "00") > RingVersion(1, "ff")
    assert RingVersion(1, "ab") > RingVersion(1, "aa")
    assert str(RingVersion(3, "0123456789abcdef")) == "v3:01234567"
    with pytest.raises(ValueError, match="epoch"):
        RingVersion(-1, "aa")


def test_a_record_must_be_consistent() -> None:
    before = ring_of("a", "b", "c")
    after = before.copy()
    after.add_node("d")
    plan = tuple(before.transfers_to(after))
    with pytest.raises(ValueError, match="settled"):
        VersionRecord(1, after, None, plan, frozenset(), ())
    with pytest.raises(ValueError, match="outside the plan"):
        VersionRecord(1, after, before, plan, frozenset(), ((len(plan), "a"),))
    with pytest.raises(ValueError, match="sorted"):
        VersionRecord(1, after, before, plan, frozenset(), ((1, "a"), (0, "b")))
    with pytest.raises(TypeError, match="ring"):
        VersionRecord(1, "ring")  # type: ignore[arg-type]


@given(changes())
def test_changes_round_trip(change: Change) -> None:
    assert Change.from_dict(codec.loads(codec.dumps(change.to_dict()))) == change


@settings(max_examples=40)
@given(version_records())
def test_records_round_trip(record: VersionRecord) -> None:
    again = VersionRecord.from_dict(codec.loads(codec.dumps(record.to_dict())))
    assert again == record
    assert again.version == record.version
    assert again.settled == record.settled


def test_decoders_refuse_what_the_constructors_refuse() -> None:
    good = VersionRecord(0, ring_of("a", "b", "c")).to_dict()
    bad: dict[str, object] = dict(good)
    bad["completed"] = [[0, "a"]]  # a settled record with no plan has nothing done
    with pytest.raises(DecodeError):
        VersionRecord.from_dict(bad)
    with pytest.raises(DecodeError):
        VersionRecord.from_dict(dict(bad, completed=[[0, "a"], [0, "b"]]))
    with pytest.raises(DecodeError):
        Change.from_dict(dict(Change("x", "leave", "a").to_dict(), zone="z"))


# -- the claimant and minting ------------------------------------------------------------------


def test_only_the_claimant_of_a_settled_version_mints() -> None:
    b = state("a", "b", "c", node="b")
    b.request(Change("b/0/1", "join", "d"))
    assert b.claimant() == "a"
    assert b.mint() is None  # b is not the claimant
    a = state("a", "b", "c")
    a.request(Change("b/0/1", "join", "d"))
    record = a.mint()
    assert record is not None and record.epoch == 1 and not record.settled
    a.request(Change("b/0/2", "join", "e"))
    assert a.mint() is None  # not settled yet
    settle(a)
    second = a.mint()
    assert second is not None and second.epoch == 2 and "e" in second.ring


def test_two_joins_at_once_are_one_transition() -> None:
    m = state("a", "b", "c", "d")
    m.request(Change("x/0/2", "join", "f"))
    m.request(Change("x/0/1", "join", "e", "z", 2.0))
    record = m.mint()
    assert record is not None
    assert record.ring.nodes == ("a", "b", "c", "d", "e", "f")
    assert record.ring.weight("e") == 2.0 and record.ring.zone("e") == "z"
    assert record.applied == {"x/0/1", "x/0/2"}
    assert {t.target for t in record.plan} == {"e", "f"}
    assert m.pending() == ()


def test_a_join_and_leave_in_one_batch_is_a_no_op_version() -> None:
    m = state("a", "b", "c")
    m.request(Change("x/0/1", "join", "d"))
    m.request(Change("x/0/2", "leave", "d"))
    record = m.mint()
    assert record is not None and record.settled and record.plan == ()
    assert record.ring == ring_of("a", "b", "c")
    assert record.epoch == 1  # still a version: gossip tells everyone both are applied
    assert m.pending() == ()


def test_invalid_requests_are_recorded_and_never_applied_later() -> None:
    m = state("a", "b", "c")
    m.request(Change("x/0/1", "join", "a"))  # already a member
    m.request(Change("x/0/2", "leave", "zz"))  # not a member
    m.request(Change("x/0/3", "leave", "c"))  # would leave 2 < n = 3
    record = m.mint()
    assert record is not None and record.ring.nodes == ("a", "b", "c")
    assert record.applied == {"x/0/1", "x/0/2", "x/0/3"}
    assert m.mint() is None


def test_a_leaving_node_is_the_first_source_of_what_it_held() -> None:
    m = state("a", "b", "c", "d", "e")
    m.request(Change("x/0/1", "leave", "c"))
    record = m.mint()
    assert record is not None and record.plan
    for index, transfer in enumerate(record.plan):
        sources = stream_sources(record, index)
        assert record.previous is not None
        able = holders(record.previous, transfer.range)
        assert set(sources) <= set(able) and transfer.target not in sources
        if "c" in able:
            assert sources[0] == "c"


def test_a_join_moves_about_one_share() -> None:
    m = state("a", "b", "c", "d", "e")
    m.request(Change("x/0/1", "join", "f"))
    record = m.mint()
    assert record is not None
    assert moved_fraction(record) / (1 / 6) <= 1.1
    assert all(t.target == "f" for t in record.plan)


@settings(max_examples=30)
@given(
    st.integers(3, 8),
    st.integers(1, 3),
    st.sampled_from([64, 128, 256]),
)
def test_joins_move_within_a_tenth_of_the_ideal(before: int, joiners: int, partitions: int) -> None:
    names = [f"n{i}" for i in range(before)]
    m = Membership("n0", VersionRecord(0, ring_of(*names, partitions=partitions)))
    for i in range(joiners):
        m.request(Change(f"x/0/{i}", "join", f"j{i}"))
    record = m.mint()
    assert record is not None
    ideal = joiners / (before + joiners)
    assert moved_fraction(record) <= 1.1 * ideal
    assert sum(t.range.size for t in record.plan) <= TOKEN_SPACE * 3


# -- replace and update ------------------------------------------------------------------------


def test_replace_and_update_changes_validate_and_round_trip() -> None:
    replace = Change("a/0/1", "replace", "b", new="x")
    update = Change("a/0/2", "update", "b", "z9", 2.0)
    for change in (replace, update):
        assert Change.from_dict(codec.loads(codec.dumps(change.to_dict()))) == change
    assert "new" not in update.to_dict()
    with pytest.raises(ValueError, match="new is required"):
        Change("a/0/1", "replace", "b")
    with pytest.raises(ValueError, match="new is required"):
        Change("a/0/1", "join", "b", new="x")
    with pytest.raises(ValueError, match="replace takes no zone"):
        Change("a/0/1", "replace", "b", "z", new="x")
    with pytest.raises(ValueError, match="cannot replace itself"):
        Change("a/0/1", "replace", "b", new="b")
    with pytest.raises(ValueError, match="new"):
        Change("a/0/1", "replace", "b", new="")
    bad = replace.to_dict()
    bad["new"] = 7
    with pytest.raises(DecodeError, match="new"):
        Change.from_dict(bad)


def test_a_replace_is_one_version_whose_plan_sends_only_the_old_nodes_data_to_the_new() -> None:
    m = state("a", "b", "c", "d", "e")
    before = m.record.ring
    m.request(Change("x/0/1", "replace", "c", new="f"))
    record = m.mint()
    assert record is not None and record.epoch == 1
    assert record.ring.nodes == ("a", "b", "d", "e", "f")
    assert record.plan and {t.target for t in record.plan} == {"f"}
    moved = sum(t.range.size for t in record.plan)
    held = sum(r.size for r in before.ranges("c", replicated=True))
    assert moved == held  # exactly c's replicas, all to f
    assert m.pending() == ()


def test_replace_in_a_batch_with_other_changes() -> None:
    m = state("a", "b", "c", "d")
    m.request(Change("x/0/1", "join", "e", "z1", 2.0))
    m.request(Change("x/0/2", "replace", "e", new="f"))  # e joined in this batch: f joins
    m.request(Change("x/0/3", "replace", "b", new="g"))
    m.request(Change("x/0/4", "replace", "g", new="h"))  # a chain: b is replaced by h
    m.request(Change("x/0/5", "replace", "zz", new="k"))  # not a member: ignored
    m.request(Change("x/0/6", "replace", "a", new="c"))  # by a member: ignored
    m.request(Change("x/0/7", "update", "h", "z2", 1.0))
    record = m.mint()
    assert record is not None
    ring = record.ring
    assert ring.nodes == ("a", "c", "d", "f", "h")
    assert (ring.weight("f"), ring.zone("f")) == (2.0, "z1")
    assert ring.zone("h") == "z2"
    ring._check_invariants()


def test_an_update_rebalances_in_one_version() -> None:
    m = state("a", "b", "c", "d")
    m.request(Change("x/0/1", "update", "b", "z1", 2.0))
    m.request(Change("x/0/2", "update", "zz", None, 2.0))  # not a member: ignored
    record = m.mint()
    assert record is not None
    assert (record.ring.weight("b"), record.ring.zone("b")) == (2.0, "z1")
    assert len(record.ring.ranges("b")) >= 1
    assert record.ring.ownership()["b"] == pytest.approx(2 / 5, abs=1 / 64)
    assert record.plan and "b" in {t.target for t in record.plan}


# -- adoption ----------------------------------------------------------------------------------


def minted(names: tuple[str, ...], join: str, epoch: int = 0) -> VersionRecord:
    m = Membership(names[0], VersionRecord(epoch, ring_of(*names)))
    m.request(Change(f"{names[0]}/0/{join}", "join", join))
    record = m.mint()
    assert record is not None
    return record


def test_nodes_adopt_newer_versions_only() -> None:
    m = state("a", "b", "c", node="b")
    newer = minted(("a", "b", "c"), "d")
    assert m.adopt(newer) and m.version == newer.version
    assert not m.adopt(VersionRecord(0, ring_of("a", "b", "c")))
    assert m.version == newer.version


def test_equal_epochs_resolve_to_the_larger_fingerprint() -> None:
    one = minted(("a", "b", "c"), "d")
    two = minted(("a", "b", "c"), "e")
    assert one.epoch == two.epoch and one.version != two.version
    winner = max(one, two, key=lambda r: r.version)
    for order in ((one, two), (two, one)):
        m = state("a", "b", "c", node="b")
        for record in order:
            m.adopt(record)
        assert m.version == winner.version


def test_an_outside_node_adopts_what_a_member_says() -> None:
    outsider = Membership("z", VersionRecord(0, HashRing(3, partitions=64)), outside=True)
    digest = outsider.digest()
    assert digest.outside
    cluster = VersionRecord(0, ring_of("a", "b", "c"))
    assert outsider.adopt(cluster)
    assert not outsider.outside and outsider.version == cluster.version
    assert outsider.mint() is None  # not the claimant


def test_completed_transfers_merge_and_settle() -> None:
    record = minted(("a", "b", "c", "d"), "e")
    m = state("a", "b", "c", "d", node="c")
    m.adopt(record)
    first = [(0, record.plan[0].source)]
    assert m.complete_many(first) and not m.complete_many(first)
    assert not m.complete_many([(len(record.plan) + 5, "x")])
    rest = [(i, t.source) for i, t in enumerate(record.plan)]
    assert m.complete_many(rest)
    assert m.settled and m.record.previous is None
    assert not m.complete_many(rest)  # nothing left to do once settled
    # A record of the same version contributes only its completed transfers.
    other = state("a", "b", "c", "d", node="d")
    other.adopt(record)
    assert other.adopt(m.record) and other.settled


def test_digests_change_with_the_known_changes() -> None:
    m = state("a", "b", "c")
    empty = m.digest()
    assert m.request(Change("x/0/1", "join", "d"))
    assert not m.request(Change("x/0/1", "join", "d"))
    assert m.digest().changes != empty.changes
    other = state("a", "b", "c", node="b")
    other.request(Change("x/0/1", "join", "d"))
    assert other.digest().changes == m.digest().changes
    assert m.digest(answer=True).answer


def test_the_change_set_is_capped() -> None:
    m = state("a", "b", "c")
    m._changes = {f"x/{i}": Change(f"x/{i}", "join", "d") for i in range(MAX_CHANGES)}
    assert not m.request(Change("y/0", "join", "e"))


def test_gossip_messages_round_trip() -> None:
    record = minted(("a", "b", "c"), "d")
    update = GossipUpdate(
        record, 1, record.ring.fingerprint, ((0, "a"),), (Change("x", "leave", "a"),)
    )
    again = GossipUpdate.from_dict(codec.loads(codec.dumps(update.to_dict())))
    assert again == update
    digest = GossipDigest(3, "ab" * 8, False, (0, 2), "cd" * 8, True)
    assert GossipDigest.from_dict(codec.loads(codec.dumps(digest.to_dict()))) == digest


def test_persisted_state_round_trips() -> None:
    m = state("a", "b", "c")
    m.request(Change("x/0/1", "join", "d"))
    m.mint()
    again = Membership.from_dict(codec.loads(codec.dumps(m.to_dict())), min_members=3)
    assert again.record == m.record and again.changes() == m.changes()
    assert again.pending() == () and again.outside == m.outside


# -- convergence -------------------------------------------------------------------------------


@settings(max_examples=60)
@given(st.data())
def test_any_delivery_order_converges_on_the_largest_version(data: st.DataObject) -> None:
    base = ("a", "b", "c")
    records = [VersionRecord(0, ring_of(*base))]
    m = Membership("a", records[0], min_members=3)
    for i in range(data.draw(st.integers(1, 4))):
        m.request(Change(f"a/0/{i}", "join", f"j{i}"))
        record = m.mint()
        assert record is not None
        records.append(record)
        settle(m)
        records.append(m.record)
    nodes = [Membership(f"n{i}", records[0], min_members=3) for i in range(3)]
    for node in nodes:
        for record in data.draw(st.permutations(records)):
            node.adopt(record)
        node._check_invariants()
    assert {node.version for node in nodes} == {m.version}
    assert all(node.settled for node in nodes)


class MembershipMachine(RuleBasedStateMachine):
    """The claimant's membership against a model: the member set after each applied batch."""

    def __init__(self) -> None:
        super().__init__()
        self.m = state("a", "b", "c")
        self.model = {"a", "b", "c"}
        self.pending: list[Change] = []
        self.counter = 0
        self.epoch = 0

    @rule(node=st.sampled_from("bcdefg"), op=st.sampled_from(["join", "leave"]))
    def request(self, node: str, op: str) -> None:
        self.counter += 1
        change = Change(f"x/0/{self.counter:04d}", op, node)  # type: ignore[arg-type]
        assert self.m.request(change)
        self.pending.append(change)

    @precondition(lambda self: self.m.settled)
    @rule()
    def mint(self) -> None:
        record = self.m.mint()
        if not self.pending:
            assert record is None
            return
        assert record is not None and record.epoch == self.epoch + 1
        self.epoch = record.epoch
        for change in sorted(self.pending, key=lambda c: c.id):
            if change.op == "join":
                self.model.add(change.node)
            elif change.node in self.model and len(self.model) > 3:
                self.model.discard(change.node)
        self.pending.clear()

    @precondition(lambda self: not self.m.settled)
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        plan = self.m.record.plan
        index = data.draw(st.integers(0, len(plan) - 1))
        self.m.complete_many([(index, plan[index].source)])

    @invariant()
    def agrees(self) -> None:
        self.m._check_invariants()
        assert set(self.m.record.ring.nodes) == self.model
        assert self.m.record.epoch == self.epoch
        assert {c.id for c in self.m.pending()} == {c.id for c in self.pending}
        if self.m.settled:
            assert self.m.record.previous is None


TestMembershipMachine = MembershipMachine.TestCase
TestMembershipMachine.settings = settings(max_examples=40, stateful_step_count=30)


def test_records_are_immutable_values() -> None:
    record = VersionRecord(0, ring_of("a", "b", "c"))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        record.epoch = 3  # type: ignore[misc]
