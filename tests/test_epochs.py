"""Actor epochs: the KV679 guard."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from dynamo_core import ActorEpochs, DVVSet, VectorClock
from dynamo_core.epochs import MAX_BASE_NODE_LEN, actor_id, parse_actor
from dynamo_core.errors import DotCollision


def test_actor_ids_round_trip() -> None:
    assert actor_id("node-a", 7) == "node-a#7"
    assert parse_actor("node-a#7") == ("node-a", 7)
    assert parse_actor("n#1#12") == ("n#1", 12)
    for plain in ("node-a", "#3", "a#", "a#03", "a#x", "a#-1", "a#1٣", "a#" + "9" * 20):
        assert parse_actor(plain) is None
    assert parse_actor(actor_id("x" * MAX_BASE_NODE_LEN, 2**63 - 1)) == (
        "x" * MAX_BASE_NODE_LEN,
        2**63 - 1,
    )
    with pytest.raises(ValueError, match="carry an epoch"):
        actor_id("x" * (MAX_BASE_NODE_LEN + 1), 1)
    with pytest.raises(ValueError, match="1..2"):
        actor_id("a", 0)
    with pytest.raises(TypeError, match="int"):
        actor_id("a", True)


@given(st.text(min_size=1, max_size=20), st.integers(1, 2**63 - 1))
def test_parse_inverts_actor_id(node: str, epoch: int) -> None:
    assert parse_actor(actor_id(node, epoch)) == (node, epoch)


def test_constructor_checks() -> None:
    with pytest.raises(TypeError, match="epoch"):
        ActorEpochs("a", epoch=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="epoch"):
        ActorEpochs("a", epoch=-1)
    with pytest.raises(TypeError, match="reuse_previous"):
        ActorEpochs("a", reuse_previous=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="local"):
        ActorEpochs("a").actor_for(DVVSet())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="context"):
        ActorEpochs("a").actor_for(VectorClock(), {"a#1": 1})  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        ActorEpochs("a", epoch=2**63 - 1).mint()
    epochs = ActorEpochs("a", epoch=3)
    assert (epochs.node, epochs.epoch, epochs.floor) == ("a", 3, 4)
    assert repr(epochs) == "ActorEpochs('a', epoch=3, floor=4)"


def test_choice_of_actor() -> None:
    epochs = ActorEpochs("n", epoch=4)
    fresh = epochs.actor_for(VectorClock())
    assert fresh == "n#5" and epochs.epoch == 5
    assert epochs.actor_for(VectorClock({"n#5": 2, "other#9": 1})) == "n#5"  # reused
    assert epochs.actor_for(VectorClock({"n#4": 2})) == "n#6"  # minted before the start
    assert epochs.actor_for(VectorClock({"n#5": 2}), VectorClock({"n#5": 2})) == "n#5"
    assert epochs.actor_for(VectorClock({"n#5": 2}), VectorClock({"n#5": 3})) == "n#7"  # loss
    assert epochs.actor_for(VectorClock({"n#5": 1, "n#6": 1})) == "n#6"  # the newest usable
    assert epochs.actor_for(VectorClock({"nn#5": 1, "n#99": 1})) == "n#8"  # not ours / unknown
    assert not epochs.usable("n#4") and epochs.usable("n#5") and not epochs.usable("n#9")
    trusting = ActorEpochs("n", epoch=4, reuse_previous=True)
    assert trusting.actor_for(VectorClock({"n#4": 2})) == "n#4"
    epochs._check_invariants()


def _put(
    state: DVVSet[bytes], value: bytes, actor: str, context: VectorClock | None
) -> DVVSet[bytes]:
    return state.update(value, actor, context)


def test_kv679_a_replica_that_lost_its_data_reissues_a_dot_without_epochs() -> None:
    # r0 coordinates a write, r1 receives it; then r0 loses its copy of the key.
    first = _put(DVVSet(), b"acknowledged", "r0", None)
    r1 = DVVSet[bytes]().sync(first)
    r0: DVVSet[bytes] = DVVSet()  # lost
    # Without epochs r0 reuses its actor id: the new write gets the same dot (r0, 1).
    second = _put(r0, b"new write", "r0", None)
    # Merging would keep one of them and lose an acknowledged write: the merge refuses.
    with pytest.raises(DotCollision, match=r"\('r0', 1\)"):
        r1.sync(second)


def test_kv679_epochs_keep_both_writes() -> None:
    epochs = ActorEpochs("r0", epoch=0)
    first = _put(DVVSet(), b"acknowledged", epochs.actor_for(VectorClock()), None)
    r1 = DVVSet[bytes]().sync(first)
    stored_epoch = epochs.epoch
    # r0 restarts with its data lost; its epoch counter is durable.
    epochs = ActorEpochs("r0", epoch=stored_epoch)
    lost: DVVSet[bytes] = DVVSet()
    actor = epochs.actor_for(lost.context)
    second = _put(lost, b"new write", actor, None)
    assert sorted(r1.sync(second).values) == [b"acknowledged", b"new write"]
    # Even without a restart, a context showing more writes than held triggers a new epoch.
    epochs2 = ActorEpochs("r9")
    a = epochs2.actor_for(VectorClock())
    written = _put(_put(DVVSet(), b"1", a, None), b"2", a, None)
    partially_lost = _put(DVVSet(), b"1", a, None)  # an older copy came back
    actor = epochs2.actor_for(partially_lost.context, written.context)
    assert actor != a
    after = _put(partially_lost, b"3", actor, written.context)
    assert sorted(written.sync(after).values) == [b"3"]


def test_retired_actors_are_never_written_with_again() -> None:
    epochs = ActorEpochs("n", epoch=4)
    a, b, c = (epochs.actor_for(VectorClock()) for _ in range(3))
    assert (a, b, c) == ("n#5", "n#6", "n#7")
    epochs.retire(VectorClock({b: 3, "other#6": 1, "n#2": 1, "n#99": 1}))  # only ours count
    assert epochs.usable(a) and not epochs.usable(b) and epochs.usable(c)
    assert epochs.actor_for(VectorClock({a: 1, b: 4})) == a  # the newest usable one
    assert epochs.actor_for(VectorClock({b: 4})) == "n#8"  # a stale copy came back: fresh
    epochs._check_invariants()
    epochs.retire(VectorClock({a: 1}))  # retiring the oldest epochs raises the floor
    assert epochs.floor == 7 and not epochs.usable(a) and epochs.usable(c)
    epochs._check_invariants()
    with pytest.raises(TypeError, match="context must be a VectorClock"):
        epochs.retire({"n#7": 1})  # type: ignore[arg-type]
    assert epochs.usable(c)


def test_kv679_a_copy_deleted_after_its_range_moved_away_comes_back_stale() -> None:
    # r0 coordinates two writes; the key's range moves away and r0 deletes its copy; an older
    # copy comes back (a hint, a stream) and r0 coordinates again without a restart.
    epochs = ActorEpochs("r0", epoch=0)
    older = _put(DVVSet(), b"1", epochs.actor_for(VectorClock()), None)
    newer = _put(older, b"2", epochs.actor_for(older.context), older.context)
    elsewhere = DVVSet[bytes]().sync(newer)  # another replica acknowledged "2"
    epochs.retire(newer.context)  # what the node does before deleting
    again = _put(older, b"3", epochs.actor_for(older.context), None)
    assert sorted(elsewhere.sync(again).values) == [b"2", b"3"]


class EpochMachine(RuleBasedStateMachine):
    """A replica that restarts (sometimes losing keys) or hands keys away and gets stale copies
    back never hands out a dot twice."""

    def __init__(self) -> None:
        super().__init__()
        self.stored_epoch = 0
        self.epochs = ActorEpochs("r", epoch=0)
        self.local: dict[int, DVVSet[bytes]] = {}
        self.issued: set[tuple[str, int]] = set()
        self.seen_context: dict[int, VectorClock] = {}
        self.history: dict[int, list[DVVSet[bytes]]] = {}

    @rule(key=st.integers(0, 1), with_context=st.booleans())
    def write(self, key: int, with_context: bool) -> None:
        state = self.local.get(key, DVVSet())
        context = self.seen_context.get(key) if with_context else None
        actor = self.epochs.actor_for(state.context, context)
        self.epochs._check_invariants()
        new = state.update(b"v", actor, context)
        dot = (actor, new.context.get(actor))
        assert dot not in self.issued
        self.issued.add(dot)
        self.local[key] = new
        self.history.setdefault(key, []).append(new)
        self.stored_epoch = self.epochs.epoch  # durable with the write
        self.seen_context[key] = new.context.merge(self.seen_context.get(key, VectorClock()))

    @rule(lose=st.sets(st.integers(0, 1)))
    def restart(self, lose: set[int]) -> None:
        for key in lose:
            self.local.pop(key, None)
        self.epochs = ActorEpochs("r", epoch=self.stored_epoch)

    @rule(key=st.integers(0, 1))
    def move_away(self, key: int) -> None:
        state = self.local.pop(key, None)
        if state is not None:
            self.epochs.retire(state.context)

    @rule(key=st.integers(0, 1), data=st.data())
    def stale_copy_returns(self, key: int, data: st.DataObject) -> None:
        versions = self.history.get(key)
        if versions:
            copy = data.draw(st.sampled_from(versions))
            self.local[key] = self.local.get(key, DVVSet()).sync(copy)

    @invariant()
    def epoch_never_goes_back(self) -> None:
        assert self.epochs.epoch >= self.stored_epoch
        self.epochs._check_invariants()


TestEpochMachine = EpochMachine.TestCase
TestEpochMachine.settings = settings(max_examples=300, stateful_step_count=30)
