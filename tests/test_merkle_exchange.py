"""MerkleExchange: the sans-I/O protocol against a brute-force two-dict model, costs and misuse."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from dynamo_core import codec
from dynamo_core.errors import DecodeError, LocalProtocolError, RemoteProtocolError
from dynamo_core.hashing import TOKEN_SPACE, TokenRange, token, token_function
from dynamo_core.merkle import (
    DIGEST_SIZE,
    Abort,
    Close,
    Done,
    Effect,
    ExchangeReport,
    ExchangeRole,
    ExchangeState,
    Failed,
    GetItems,
    GetNodes,
    Hello,
    InSync,
    Items,
    LoadItems,
    MerkleExchange,
    MerkleTree,
    Message,
    Nodes,
    Send,
    UseDepth,
    decode_message,
    encode_message,
    item_digest,
    message_from_dict,
    run_exchange,
)
from dynamo_core.strategies import item_digests, keys

Store = dict[bytes, bytes]


def kb(key: str | bytes) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else key


def digest_of(i: int) -> bytes:
    return hashlib.blake2b(i.to_bytes(8, "big", signed=True), digest_size=DIGEST_SIZE).digest()


def expected(a: Store, b: Store) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """The brute-force answer from a's side: missing, remote_missing, different."""
    return (
        sorted(b.keys() - a.keys()),
        sorted(a.keys() - b.keys()),
        sorted(k for k in a.keys() & b.keys() if a[k] != b[k]),
    )


def trees(a: Store, b: Store, depth: int, rng: TokenRange) -> tuple[MerkleTree, MerkleTree]:
    return (
        MerkleTree.from_items(a.items(), depth, start=rng.start, end=rng.end),
        MerkleTree.from_items(b.items(), depth, start=rng.start, end=rng.end),
    )


def diverged(n: int, d: int, seed: int) -> tuple[Store, Store]:
    """Two stores of about n keys that differ in exactly d keys, a third of each kind."""
    rnd = random.Random(seed)
    a = {b"key:%d" % i: digest_of(i) for i in range(n)}
    b = dict(a)
    for i, key in enumerate(rnd.sample(sorted(a), d)):
        if i % 3 == 0:
            del b[key]
        elif i % 3 == 1:
            del a[key]
        else:
            b[key] = digest_of(-1 - i)
    return a, b


stores = st.dictionaries(keys().map(kb), item_digests(), max_size=30)


def checked_exchange(
    ta: MerkleTree,
    tb: MerkleTree,
    a: Store,
    b: Store,
    *,
    before_confirm: Callable[[], object] | None = None,
    **options: object,
) -> tuple[ExchangeReport, ExchangeReport]:
    """run_exchange, step by step, checking both state machines after every input.

    Messages go through the byte codec; LoadItems is answered with the whole store (the exchange
    must keep only the asked segments). Returns both sides' final reports.
    """
    sides = {
        "a": MerkleExchange(ta, **options),  # type: ignore[arg-type]
        "b": MerkleExchange(tb, "responder"),
    }
    store = {"a": a, "b": b}
    wire: list[tuple[str, bytes]] = []
    reports: dict[str, ExchangeReport] = {}
    now = 10.0

    def handle(name: str, effects: list[Effect]) -> None:
        sides[name]._check_invariants()
        for effect in effects:
            if isinstance(effect, Send):
                wire.append(("b" if name == "a" else "a", encode_message(effect.message)))
            elif isinstance(effect, LoadItems):
                assert list(effect.ranges) == sides[name].tree.ranges_of(effect.segments)
                handle(name, sides[name].items_loaded(store[name].items(), now))
            elif isinstance(effect, Done):
                assert sides[name].finished
                reports[name] = effect.report
            else:
                raise AssertionError(f"unexpected effect {effect!r}")

    handle("a", sides["a"].start(now))
    while True:
        if wire:
            name, data = wire.pop(0)
            handle(name, sides[name].receive(decode_message(data), now))
            continue
        # the one timer channel: only the initiator ever has one (its confirmation pass)
        assert sides["b"].deadline() is None
        at = sides["a"].deadline()
        if at is None:
            break
        now = at
        if before_confirm is not None:
            before_confirm()
        handle("a", sides["a"].on_timer(now))
    assert set(reports) == {"a", "b"}
    for field in ("round_trips", "messages", "digests", "items", "wire_bytes"):
        assert getattr(reports["a"], field) == getattr(reports["b"], field), field
    return reports["a"], reports["b"]


# -- the exchange against the model ------------------------------------------------------------


@given(
    a=stores,
    changes=stores,
    drops=st.sets(st.integers(0, 29)),
    depth=st.integers(0, 8),
    levels=st.integers(1, 4),
    whole=st.booleans(),
    confirm=st.sampled_from([None, 0.0, 2.5]),
)
@settings(max_examples=100)
def test_exchange_reports_exactly_the_differing_keys(
    a: Store,
    changes: Store,
    drops: set[int],
    depth: int,
    levels: int,
    whole: bool,
    confirm: float | None,
) -> None:
    rng = TokenRange.whole() if whole else TokenRange(2**63, 2**62)  # a wrapping range
    a = {k: v for k, v in a.items() if token(k) in rng}
    b = {**a, **{k: v for k, v in changes.items() if token(k) in rng}}
    for i, key in enumerate(sorted(a)):
        if i in drops:
            b.pop(key, None)
    ta, tb = trees(a, b, depth, rng)
    report, _ = checked_exchange(ta, tb, a, b, levels_per_round=levels, confirm_delay=confirm)
    assert report == run_exchange(ta, tb, a, b, levels_per_round=levels, confirm_delay=confirm)
    missing, remote_missing, different = expected(a, b)
    assert list(report.missing) == missing
    assert list(report.remote_missing) == remote_missing
    assert list(report.different) == different
    assert list(report.segments) == ta.diff_segments(tb)
    assert list(report.ranges) == ta.diff(tb)
    assert report.fetched == report.segments
    assert report.unconfirmed == ()
    assert report.in_sync == (ta.root == tb.root)
    assert report.role is ExchangeRole.INITIATOR
    extra = 0 if confirm is None or not report.segments else 1
    descent = max(math.ceil(depth / levels), 1)  # the Hello is one round trip even at depth 0
    fetch = 1 if report.segments else 0
    assert report.round_trips == (1 if report.in_sync else descent + fetch + extra)
    if depth:
        assert report.round_trips <= math.ceil(depth / levels) + 2
    assert report.items == sum(1 for k in b if tb.segment(k) in set(report.segments))
    assert report.repairs == len(missing) + len(remote_missing) + len(different)


def test_trees_in_sync_cost_one_round_trip() -> None:
    a, _ = diverged(500, 0, 1)
    ta, tb = trees(a, dict(a), 10, TokenRange.whole())
    report = run_exchange(ta, tb, a, dict(a))
    assert report.in_sync
    assert (report.round_trips, report.messages, report.digests, report.items) == (1, 2, 1, 0)
    assert report.segments == ()
    assert report.missing == report.remote_missing == report.different == ()
    hello = Hello(10, 0, TOKEN_SPACE, ta.fingerprint, ta.root, 8)
    assert report.wire_bytes == len(encode_message(hello)) + len(encode_message(InSync()))


@pytest.mark.parametrize(
    ("depth", "n", "d"),
    [
        (12, 8000, 1),
        (12, 8000, 4),
        (12, 8000, 40),
        (14, 30000, 1),
        (14, 30000, 163),
        (16, 60000, 1),
    ],
)
@pytest.mark.parametrize("levels", [1, 2, 3])
def test_digests_within_3x_of_the_lower_bound(depth: int, n: int, d: int, levels: int) -> None:
    a, b = diverged(n, d, seed=depth * 1000 + d)
    ta, tb = trees(a, b, depth, TokenRange.whole())
    report = run_exchange(ta, tb, a, b, levels_per_round=levels)
    bound = d * (depth - math.log2(d))
    assert report.digests <= 3 * bound, (report.digests, bound)
    assert report.round_trips <= math.ceil(depth / levels) + 2
    assert report.repairs == d
    assert len(report.segments) <= d
    every_leaf = 2**depth
    assert report.digests < every_leaf / 5  # d is at most 1% of the segments


def test_more_levels_per_round_trade_digests_for_round_trips() -> None:
    a, b = diverged(30000, 100, seed=5)
    ta, tb = trees(a, b, 14, TokenRange.whole())
    reports = [run_exchange(ta, tb, a, b, levels_per_round=lv) for lv in (1, 2, 4, 7)]
    assert [r.round_trips for r in reports] == [15, 8, 5, 3]
    digests = [r.digests for r in reports]
    assert digests[1] <= digests[2] <= digests[3]
    assert len({(r.missing, r.remote_missing, r.different) for r in reports}) == 1


def test_str_keys_are_reported_as_utf8_bytes() -> None:
    a = {"ключ": item_digest("ключ", b"1"), "same": item_digest("same", b"x")}
    b = {"same": item_digest("same", b"x")}
    ta = MerkleTree.from_items(a.items(), 4)
    tb = MerkleTree.from_items(b.items(), 4)
    report = run_exchange(ta, tb, a, b)
    assert report.remote_missing == ("ключ".encode(),)


def test_ranges_must_match() -> None:
    ta, tb = MerkleTree(4), MerkleTree(4, start=5)
    with pytest.raises(ValueError, match="different ranges"):
        run_exchange(ta, tb, {}, {})


# -- mixed depths: the deeper side folds -------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32), st.integers(0, 40), st.booleans())
def test_a_depth_11_and_a_depth_12_tree_find_exactly_the_differing_keys(
    seed: int, d: int, deeper_initiates: bool
) -> None:
    a, b = diverged(4096, d, seed)  # depth_for(4095) == 11, depth_for(4097) == 12
    deep, shallow = (12, 11) if deeper_initiates else (11, 12)
    ta = MerkleTree.from_items(a.items(), deep)
    tb = MerkleTree.from_items(b.items(), shallow)
    report = run_exchange(ta, tb, a, b)
    assert (list(report.missing), list(report.remote_missing), list(report.different)) == (
        expected(a, b)
    )
    assert report.depth == 11
    assert report.in_sync == (d == 0)
    assert ta.depth == deep and tb.depth == shallow  # the callers' trees are untouched


@settings(max_examples=30, deadline=None)
@given(stores, st.integers(0, 8), st.integers(0, 8))
def test_fold_equals_the_tree_built_at_that_depth(store: Store, deep: int, shallow: int) -> None:
    deep, shallow = max(deep, shallow), min(deep, shallow)
    tree = MerkleTree.from_items(store.items(), deep)
    folded = tree.fold(shallow)
    built = MerkleTree.from_items(store.items(), shallow)
    assert folded.root == built.root and folded.same_shape(built)
    assert folded is not tree.fold(deep) and tree.fold(deep).root == tree.root
    rng = TokenRange(2**63 + 12345, 2**62)  # wraps; its size is not a power of two
    tree = MerkleTree.from_items(
        ((k, v) for k, v in store.items() if token(k) in rng), deep, start=rng.start, end=rng.end
    )
    built = MerkleTree.from_items(
        ((k, v) for k, v in store.items() if token(k) in rng), shallow, start=rng.start, end=rng.end
    )
    assert tree.fold(shallow).root == built.root


def test_a_local_diff_of_two_depths_says_to_fold() -> None:
    deep, shallow = MerkleTree(6), MerkleTree(4)
    with pytest.raises(ValueError, match=r"fold the deeper tree with fold\(4\)"):
        deep.diff(shallow)
    assert deep.fold(4).diff(shallow) == []


def test_fold_refuses_a_deeper_depth() -> None:
    with pytest.raises(ValueError, match="depth must be 0..4"):
        MerkleTree(4).fold(5)
    with pytest.raises(TypeError, match="depth"):
        MerkleTree(4).fold(2.0)  # type: ignore[arg-type]


def test_a_shallower_responder_answers_use_depth_and_the_initiator_folds() -> None:
    initiator = MerkleExchange(MerkleTree.from_items([("k", digest_of(1))], 6))
    responder = MerkleExchange(MerkleTree(4), "responder")
    answer = one(responder.receive(one(initiator.start())))
    assert answer == UseDepth(4) and state(responder) is ExchangeState.IDLE
    hello = one(initiator.receive(answer))
    assert isinstance(hello, Hello)
    assert hello.depth == 4 and initiator.tree.depth == 4
    check(initiator)
    nodes = one(responder.receive(hello))  # the same depth now: the descent starts
    assert isinstance(nodes, Nodes)
    initiator.receive(nodes)
    # UseDepth is only an answer to a Hello, and only to a shallower depth.
    with pytest.raises(RemoteProtocolError, match="UseDepth"):
        initiator.receive(UseDepth(2))
    fresh = MerkleExchange(MerkleTree(4))
    fresh.start()
    with pytest.raises(RemoteProtocolError, match="UseDepth"):
        fresh.receive(UseDepth(4))


# -- options -----------------------------------------------------------------------------------


def test_fetch_items_false_reports_ranges_only() -> None:
    a, b = diverged(2000, 5, 3)
    ta, tb = trees(a, b, 10, TokenRange.whole())
    report = run_exchange(ta, tb, a, b, fetch_items=False)
    assert list(report.segments) == ta.diff_segments(tb)
    assert list(report.ranges) == ta.diff(tb)
    assert report.items == 0
    assert report.fetched == ()
    assert report.missing == report.remote_missing == report.different == ()


def test_max_segments_caps_the_items_fetched() -> None:
    a, b = diverged(2000, 30, 4)
    ta, tb = trees(a, b, 10, TokenRange.whole())
    report = run_exchange(ta, tb, a, b, max_segments=5)
    assert report.fetched == report.segments[:5]
    assert len(report.segments) > 5
    reported = set(report.missing) | set(report.remote_missing) | set(report.different)
    assert reported
    assert all(ta.segment(key) in report.fetched for key in reported)


def test_confirmation_drops_differences_that_heal_in_flight() -> None:
    a, b = diverged(1000, 0, 6)
    key, late, stuck = b"in-flight", b"late", b"stuck"
    for store in (a, b):
        store[late] = digest_of(1)
    a[key] = digest_of(2)  # a write that has reached a but not yet b
    a[stuck] = digest_of(3)  # a real divergence
    b[late] = digest_of(4)  # b has a newer version of `late`, which a receives in flight
    ta, tb = trees(a, b, 12, TokenRange.whole())

    def land() -> None:
        tb.insert(key, a[key])
        b[key] = a[key]
        ta.update(late, a[late], b[late])
        a[late] = b[late]

    report = run_exchange(ta, tb, a, b, confirm_delay=1.0, before_confirm=land)
    assert report.remote_missing == (stuck,)
    assert report.missing == report.different == ()
    assert report.segments == (ta.segment(stuck),)
    assert set(report.unconfirmed) == {ta.segment(key), ta.segment(late)} - {ta.segment(stuck)}
    depth_rounds = math.ceil(12 / 2)
    assert report.round_trips == depth_rounds + 2


def test_without_confirmation_in_flight_writes_are_reported() -> None:
    a, b = diverged(1000, 0, 6)
    a[b"in-flight"] = digest_of(2)
    ta, tb = trees(a, b, 12, TokenRange.whole())
    report = run_exchange(ta, tb, a, b)
    assert report.remote_missing == (b"in-flight",)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"levels_per_round": 0}, ValueError, "levels_per_round"),
        ({"levels_per_round": 9}, ValueError, "levels_per_round"),
        ({"levels_per_round": 2.0}, TypeError, "levels_per_round"),
        ({"confirm_delay": -1.0}, ValueError, "confirm_delay"),
        ({"confirm_delay": "1"}, TypeError, "confirm_delay"),
        ({"fetch_items": 1}, TypeError, "fetch_items"),
        ({"max_segments": 0}, ValueError, "max_segments"),
        ({"role": "observer"}, ValueError, "role"),
        ({"role": 1}, TypeError, "role"),
        ({"role": "responder", "levels_per_round": 3}, ValueError, "initiator"),
        ({"role": "responder", "confirm_delay": 1.0}, ValueError, "initiator"),
    ],
)
def test_constructor_rejects_bad_arguments(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        MerkleExchange(MerkleTree(4), **kwargs)  # type: ignore[arg-type]


def test_constructor_needs_a_tree() -> None:
    with pytest.raises(TypeError, match="tree"):
        MerkleExchange({})  # type: ignore[arg-type]


# -- driving the protocol by hand: states, effects and misuse ----------------------------------


def state(exchange: MerkleExchange) -> ExchangeState:
    return exchange.state  # a call, so mypy does not narrow the state between steps


def check(*exchanges: MerkleExchange) -> None:
    for exchange in exchanges:
        exchange._check_invariants()


def sends(effects: list[Effect]) -> list[Message]:
    return [effect.message for effect in effects if isinstance(effect, Send)]


def one(effects: list[Effect]) -> Message:
    messages = sends(effects)
    assert len(messages) == 1, effects
    return messages[0]


@pytest.fixture
def pair() -> tuple[MerkleExchange, MerkleExchange, Store, Store]:
    a, b = diverged(300, 3, 9)
    ta, tb = trees(a, b, 4, TokenRange.whole())
    return MerkleExchange(ta), MerkleExchange(tb, "responder"), a, b


def drive_to_items(
    initiator: MerkleExchange, responder: MerkleExchange
) -> tuple[list[Effect], list[Effect]]:
    """Run the descent; return the initiator's GetItems effects and the responder's answer."""
    effects = initiator.start()
    while True:
        answer = responder.receive(one(effects))
        effects = initiator.receive(one(answer))
        if any(isinstance(e, LoadItems) for e in effects):
            return effects, responder.receive(one(effects))


def test_a_full_run_by_hand(pair: tuple[MerkleExchange, MerkleExchange, Store, Store]) -> None:
    initiator, responder, a, b = pair
    assert state(initiator) is state(responder) is ExchangeState.IDLE
    check(initiator)
    hello = one(initiator.start())
    assert isinstance(hello, Hello)
    assert state(initiator) is ExchangeState.AWAIT_NODES
    check(initiator)
    nodes = one(responder.receive(hello))
    assert isinstance(nodes, Nodes)
    assert (nodes.height, len(nodes.digests)) == (2, 4 * DIGEST_SIZE)
    assert state(responder) is ExchangeState.SERVING
    check(responder)
    effects = initiator.receive(nodes)
    request = one(effects)
    assert isinstance(request, GetNodes)
    assert request.height == 2
    assert request.to_height == 0
    effects = initiator.receive(one(responder.receive(request)))
    get_items = one(effects)
    load = [e for e in effects if isinstance(e, LoadItems)]
    assert isinstance(get_items, GetItems)
    assert len(load) == 1
    assert load[0].segments == get_items.segments
    assert list(load[0].ranges) == initiator.tree.ranges_of(get_items.segments)
    assert state(initiator) is ExchangeState.AWAIT_ITEMS
    check(initiator)
    responder_effects = responder.receive(get_items)
    assert state(responder) is ExchangeState.LOADING
    check(responder)
    assert [type(e) for e in responder_effects] == [LoadItems]
    answer = responder.items_loaded(b.items())
    items = one(answer)
    assert isinstance(items, Items)
    assert list(items.keys) == sorted(items.keys)
    assert state(responder) is ExchangeState.DONE
    check(responder)
    responder_report = next(e.report for e in answer if isinstance(e, Done))
    # the initiator gets the peer's items first, then its own
    assert initiator.receive(items) == []
    final = initiator.items_loaded(a.items())
    report = next(e.report for e in final if isinstance(e, Done))
    assert state(initiator) is ExchangeState.DONE
    check(initiator)
    assert initiator.finished
    assert (report.missing, report.remote_missing, report.different) == tuple(
        tuple(x) for x in expected(a, b)
    )
    # both sides saw the same messages, bytes and digests
    for field in ("round_trips", "messages", "digests", "items", "wire_bytes"):
        assert getattr(report, field) == getattr(responder_report, field), field
    assert responder_report.role is ExchangeRole.RESPONDER
    assert responder_report.missing == ()
    assert report == initiator.report()


def test_local_items_may_come_first(
    pair: tuple[MerkleExchange, MerkleExchange, Store, Store],
) -> None:
    initiator, responder, a, b = pair
    drive_to_items(initiator, responder)
    assert initiator.items_loaded(a.items()) == []
    with pytest.raises(LocalProtocolError, match="no LoadItems"):
        initiator.items_loaded(a.items())
    final = initiator.receive(one(responder.items_loaded(b.items())))
    assert any(isinstance(e, Done) for e in final)


def test_misuse_is_a_local_protocol_error(
    pair: tuple[MerkleExchange, MerkleExchange, Store, Store],
) -> None:
    initiator, responder, a, _ = pair
    with pytest.raises(LocalProtocolError, match="initiator"):
        responder.start()
    with pytest.raises(LocalProtocolError, match="items"):
        responder.items_loaded([])
    with pytest.raises(LocalProtocolError, match="no LoadItems"):
        initiator.items_loaded(a.items())
    with pytest.raises(LocalProtocolError, match="no timer"):
        initiator.on_timer(1.0)
    initiator.start()
    with pytest.raises(LocalProtocolError, match="start"):
        initiator.start()
    with pytest.raises(TypeError, match="message"):
        initiator.receive("hello")  # type: ignore[arg-type]
    assert state(initiator) is ExchangeState.AWAIT_NODES
    check(initiator)


def test_confirm_delay_needs_now_and_sets_a_timer() -> None:
    a, b = diverged(300, 2, 11)
    ta, tb = trees(a, b, 4, TokenRange.whole())
    initiator = MerkleExchange(ta, confirm_delay=5.0)
    responder = MerkleExchange(tb, "responder")
    with pytest.raises(LocalProtocolError, match="now"):
        initiator.start()
    assert state(initiator) is ExchangeState.IDLE
    check(initiator)
    effects = initiator.start(now=100.0)
    while initiator.deadline() is None:
        effects = initiator.receive(one(responder.receive(one(effects))), now=100.0)
    assert effects == [], "no timer effect: deadline() is the timer"
    assert initiator.deadline() == 105.0
    assert state(initiator) is ExchangeState.AWAIT_CONFIRM
    check(initiator)
    assert initiator.on_timer(104.0) == []
    recheck = one(initiator.on_timer(105.0))
    assert isinstance(recheck, GetNodes)
    assert recheck.height == recheck.to_height == 0
    assert initiator.deadline() is None
    effects = initiator.receive(one(responder.receive(recheck)), now=106.0)
    assert isinstance(one(effects), GetItems)


def test_unexpected_messages_are_remote_protocol_errors(
    pair: tuple[MerkleExchange, MerkleExchange, Store, Store],
) -> None:
    initiator, responder, _, b = pair
    tree = initiator.tree
    hello = Hello(tree.depth, tree.start, tree.end, tree.fingerprint, tree.root, 2)
    for message in (Nodes(0, b""), GetItems((1,)), Close(), InSync(), Items((), b"")):
        with pytest.raises(RemoteProtocolError, match="unexpected"):
            responder.receive(message)
    assert state(responder) is ExchangeState.IDLE
    check(responder)
    with pytest.raises(RemoteProtocolError, match="unexpected"):
        initiator.receive(hello)
    initiator.start()
    for wrong in (hello, GetItems((1,)), Items((), b""), Close()):
        with pytest.raises(RemoteProtocolError, match="unexpected"):
            initiator.receive(wrong)
    with pytest.raises(RemoteProtocolError, match="expected height"):
        initiator.receive(Nodes(2, b"x" * 16))
    with pytest.raises(RemoteProtocolError, match="expected height"):
        initiator.receive(Nodes(1, b"x" * 64))
    assert state(initiator) is ExchangeState.AWAIT_NODES
    check(initiator)
    assert initiator.report().messages == 1  # rejected messages are not counted
    responder.receive(hello)
    with pytest.raises(RemoteProtocolError, match="unexpected"):
        responder.receive(hello)
    for bad in (
        GetNodes(4, (1,), 2),  # parent out of range at the top
        GetNodes(2, (4,), 0),
        GetNodes(1, (0,), 2),  # upwards
        GetNodes(5, (0,), 0),  # above the top
        GetNodes(2, (), 0),
    ):
        with pytest.raises(RemoteProtocolError, match="GetNodes"):
            responder.receive(bad)
    with pytest.raises(RemoteProtocolError, match="GetItems"):
        responder.receive(GetItems((16,)))
    with pytest.raises(RemoteProtocolError, match="GetItems"):
        responder.receive(GetItems(()))
    assert state(responder) is ExchangeState.SERVING
    check(responder)
    done = responder.receive(Close())
    assert [type(e) for e in done] == [Done]
    with pytest.raises(RemoteProtocolError, match="finished"):
        responder.receive(Close())
    assert b  # keep the fixture's store alive for the reader


def test_too_many_levels_in_one_request_is_refused() -> None:
    tree = MerkleTree(12)
    responder = MerkleExchange(tree, "responder")
    other = MerkleTree.from_items([(b"a", digest_of(1))], 12)
    with pytest.raises(RemoteProtocolError, match="Hello"):
        responder.receive(Hello(12, 0, TOKEN_SPACE, tree.fingerprint, other.root, 3))
    responder.receive(Hello(12, 0, TOKEN_SPACE, tree.fingerprint, other.root, 4))
    with pytest.raises(RemoteProtocolError, match="GetNodes"):
        responder.receive(GetNodes(12, (0,), 3))


def test_items_outside_the_asked_segments_are_refused(
    pair: tuple[MerkleExchange, MerkleExchange, Store, Store],
) -> None:
    initiator, responder, a, b = pair
    effects, _ = drive_to_items(initiator, responder)
    asked = set(one(effects).segments)  # type: ignore[union-attr]
    outsider = next(k for k in sorted(b) if initiator.tree.segment(k) not in asked)
    with pytest.raises(RemoteProtocolError, match="outside"):
        initiator.receive(Items((outsider,), b[outsider]))
    assert state(initiator) is ExchangeState.AWAIT_ITEMS
    check(initiator)
    good = one(responder.items_loaded(b.items()))
    assert initiator.receive(good) == []
    with pytest.raises(RemoteProtocolError, match="unexpected"):
        initiator.receive(good)
    assert a


def test_bad_local_items_change_nothing(
    pair: tuple[MerkleExchange, MerkleExchange, Store, Store],
) -> None:
    initiator, responder, _, b = pair
    _, effects = drive_to_items(initiator, responder)
    (load,) = effects
    assert isinstance(load, LoadItems)
    key = next(k for k in sorted(b) if responder.tree.segment(k) in load.segments)
    with pytest.raises(ValueError, match="twice"):  # as bytes and again as str
        responder.items_loaded([*b.items(), (key.decode(), b[key])])
    with pytest.raises(ValueError, match="16 bytes"):
        responder.items_loaded([(b"k", b"short")])
    with pytest.raises(TypeError, match="key"):
        responder.items_loaded([(5, digest_of(1))])  # type: ignore[list-item]
    assert state(responder) is ExchangeState.LOADING
    check(responder)
    assert any(isinstance(e, Done) for e in responder.items_loaded(b.items()))


def test_shape_mismatch_aborts_both_sides() -> None:
    initiator = MerkleExchange(MerkleTree(4))
    responder = MerkleExchange(MerkleTree(4, token_fn=token_function(b"k" * 16)), "responder")
    effects = responder.receive(one(initiator.start()))
    abort = one(effects)
    assert isinstance(abort, Abort)
    assert "token functions differ" in abort.reason
    assert [e for e in effects if isinstance(e, Failed)] == [Failed(abort.reason, by_peer=False)]
    assert state(responder) is ExchangeState.FAILED
    check(responder)
    assert initiator.receive(abort) == [Failed(abort.reason, by_peer=True)]
    assert state(initiator) is ExchangeState.FAILED
    check(initiator)
    with pytest.raises(LocalProtocolError, match="abort"):
        initiator.abort("again")


def test_local_abort(pair: tuple[MerkleExchange, MerkleExchange, Store, Store]) -> None:
    initiator, responder, _, _ = pair
    responder.receive(one(initiator.start()))
    with pytest.raises(ValueError, match="reason"):
        initiator.abort("")
    effects = initiator.abort("shutting down")
    assert effects == [Send(Abort("shutting down")), Failed("shutting down", by_peer=False)]
    assert responder.receive(Abort("shutting down")) == [Failed("shutting down", by_peer=True)]
    assert initiator.finished
    assert responder.finished


def test_trees_that_converge_mid_exchange_close_cleanly() -> None:
    a, b = diverged(500, 1, 12)
    ta, tb = trees(a, b, 8, TokenRange.whole())
    initiator, responder = MerkleExchange(ta), MerkleExchange(tb, "responder")
    nodes = one(responder.receive(one(initiator.start())))
    # repair behind the exchange's back before it descends
    for key in a.keys() | b.keys():
        if a.get(key) != b.get(key):
            if key in b:
                tb.remove(key, b.pop(key))
            if key in a:
                tb.insert(key, a[key])
                b[key] = a[key]
    effects = initiator.receive(one(responder.receive(one(initiator.receive(nodes)))))
    if not any(isinstance(e, Done) for e in effects):  # converged one level lower
        effects = initiator.receive(one(responder.receive(one(effects))))
    assert isinstance(sends(effects)[0], Close)
    report = next(e.report for e in effects if isinstance(e, Done))
    assert report.segments == ()
    assert responder.receive(Close())[0] == Done(responder.report())


# -- messages on the wire ----------------------------------------------------------------------

MESSAGES: list[Message] = [
    Hello(16, 5, TOKEN_SPACE, 2**64 - 1, bytes(range(16)), 14),
    InSync(),
    UseDepth(11),
    GetNodes(14, (0, 3, 2**14 - 1), 12),
    Nodes(12, bytes(range(32))),
    GetItems((1, 2, 65535)),
    Items((b"", b"a", b"b\x00"), bytes(48)),
    Close(),
    Abort("tree shapes differ"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=[type(m).__name__ for m in MESSAGES])
def test_messages_round_trip(message: Message) -> None:
    data = message.to_dict()
    assert type(message).from_dict(data) == message
    assert message_from_dict(data) == message
    assert decode_message(encode_message(message)) == message
    assert encode_message(message) == codec.dumps(data)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([], "object"),
        ({"type": 3}, "message type"),
        ({"type": "token_range", "v": 1}, "message type"),
        ({**GetNodes(3, (1,), 1).to_dict(), "parents": [2, 1]}, "increasing"),
        ({**GetNodes(3, (1,), 1).to_dict(), "parents": [1, 1]}, "increasing"),
        ({**GetNodes(3, (1,), 1).to_dict(), "parents": [2**20]}, "parents"),
        ({**GetNodes(3, (1,), 1).to_dict(), "height": 21}, "height"),
        ({**Nodes(1, b"").to_dict(), "digests": codec.encode_bytes(b"x" * 15)}, "16-byte"),
        ({**Hello(1, 0, 2, 0, bytes(16), 0).to_dict(), "root": codec.encode_bytes(b"x")}, "root"),
        ({**Hello(1, 0, 2, 0, bytes(16), 0).to_dict(), "end": 0}, "end"),
        ({**Items((b"a",), bytes(16)).to_dict(), "keys": ["YQ==", "YQ=="]}, "increasing"),
        ({**Items((b"a",), bytes(16)).to_dict(), "keys": ["Yg==", "YQ=="]}, "increasing"),
        (
            {**Items((b"a",), bytes(16)).to_dict(), "digests": codec.encode_bytes(bytes(32))},
            "digest",
        ),
        (
            {**Items((b"a",), bytes(16)).to_dict(), "keys": [codec.encode_bytes(b"k" * 65537)]},
            "limit",
        ),
        ({**Abort("x").to_dict(), "reason": ""}, "reason"),
        ({**Close().to_dict(), "extra": 1}, "unknown"),
    ],
)
def test_hostile_messages_raise_decode_error(data: object, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        message_from_dict(data)


def test_decode_message_caps_its_input() -> None:
    with pytest.raises(DecodeError, match="limit"):
        decode_message(encode_message(Items((b"a",), bytes(16))), max_bytes=10)


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: GetNodes(1, (2, 1), 0), ValueError),
        (lambda: GetNodes(1, [1], 0), TypeError),  # type: ignore[arg-type]
        (lambda: Nodes(1, b"x"), ValueError),
        (lambda: Nodes(1, "x" * 16), TypeError),  # type: ignore[arg-type]
        (lambda: Items((b"b", b"a"), bytes(32)), ValueError),
        (lambda: Items((b"a",), bytes(32)), ValueError),
        (lambda: Items(("a",), bytes(16)), ValueError),  # type: ignore[arg-type]
        (lambda: Hello(21, 0, 1, 0, bytes(16), 0), ValueError),
        (lambda: Hello(1, 0, 1, 0, bytes(16), True), TypeError),
        (lambda: Abort(5), TypeError),  # type: ignore[arg-type]
    ],
    ids=[
        "parents-order",
        "parents-list",
        "digest-length",
        "digests-str",
        "keys-order",
        "digest-count",
        "str-keys",
        "depth",
        "bool-height",
        "reason-type",
    ],
)
def test_messages_validate_their_fields(
    build: Callable[[], object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        build()


# -- replicas that drift and repair: a stateful test -------------------------------------------


class Replicas(RuleBasedStateMachine):
    """Two replicas with stores and trees; writes reach one or both; exchanges then repair.

    The model is the two dicts: after each exchange-and-repair the stores and trees are equal,
    and the report named exactly the keys that differed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stores: tuple[Store, Store] = ({}, {})
        self.trees = (MerkleTree(0), MerkleTree(0))
        self.levels = 2

    @initialize(depth=st.integers(0, 7), levels=st.integers(1, 4))
    def setup(self, depth: int, levels: int) -> None:
        self.trees = (MerkleTree(depth), MerkleTree(depth))
        self.levels = levels

    def write(self, side: int, key: bytes, value: bytes) -> None:
        store, tree = self.stores[side], self.trees[side]
        new = item_digest(key, value)
        if key in store:
            tree.update(key, store[key], new)
        else:
            tree.insert(key, new)
        store[key] = new

    def delete(self, side: int, key: bytes) -> None:
        store, tree = self.stores[side], self.trees[side]
        if key in store:
            tree.remove(key, store.pop(key))

    @rule(key=st.binary(max_size=6), value=st.binary(max_size=4))
    def write_both(self, key: bytes, value: bytes) -> None:
        self.write(0, key, value)
        self.write(1, key, value)

    @rule(side=st.integers(0, 1), key=st.binary(max_size=6), value=st.binary(max_size=4))
    def write_one(self, side: int, key: bytes, value: bytes) -> None:
        self.write(side, key, value)

    @rule(side=st.integers(0, 1), data=st.data())
    def delete_one(self, side: int, data: st.DataObject) -> None:
        if self.stores[side]:
            self.delete(side, data.draw(st.sampled_from(sorted(self.stores[side]))))

    @rule(confirm=st.booleans())
    def exchange_and_repair(self, confirm: bool) -> None:
        a, b = self.stores
        ta, tb = self.trees
        missing, remote_missing, different = expected(a, b)
        report, _ = checked_exchange(
            ta, tb, a, b, levels_per_round=self.levels, confirm_delay=1.0 if confirm else None
        )
        assert list(report.missing) == missing
        assert list(report.remote_missing) == remote_missing
        assert list(report.different) == different
        for key in report.missing:
            ta.insert(key, b[key])
            a[key] = b[key]
        for key in report.remote_missing:
            tb.insert(key, a[key])
            b[key] = a[key]
        for key in report.different:  # say the initiator's version wins
            tb.update(key, b[key], a[key])
            b[key] = a[key]
        assert a == b
        assert ta == tb
        assert run_exchange(ta, tb, a, b).in_sync

    @invariant()
    def trees_match_stores(self) -> None:
        for store, tree in zip(self.stores, self.trees, strict=True):
            tree._check_invariants()
            assert tree == MerkleTree.from_items(store.items(), tree.depth)


TestReplicas = Replicas.TestCase
TestReplicas.settings = settings(max_examples=30, stateful_step_count=25, deadline=None)


def test_report_defaults_describe_an_empty_exchange() -> None:
    report = ExchangeReport(ExchangeRole.RESPONDER)
    assert report.repairs == 0
    assert report.wire_bytes == 0
