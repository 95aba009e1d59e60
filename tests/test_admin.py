"""Admin requests: the codecs (validated, capped) and a node's answers, without sockets."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo_core import HashRing, Node, QuorumPolicy, codec
from dynamo_core.admin import (
    MAX_REPORTED,
    AdminAccepted,
    AdminRefused,
    AdminReply,
    AdminRequest,
    MemberRow,
    RingReport,
    reply_from_dict,
    request_from_dict,
)
from dynamo_core.errors import ChangeRefused, DecodeError
from dynamo_core.hashing import TokenRange
from dynamo_core.membership import Change
from dynamo_core.node import Send
from dynamo_core.ring import Transfer


def cluster(*members: str, n: int = 3) -> dict[str, Node]:
    ring = HashRing(n, partitions=16)
    ring.add_nodes(list(members))
    return {m: Node(m, ring, policy=QuorumPolicy(n, 2, 2)) for m in members}


def ask(node: Node, request: AdminRequest, now: float = 0.0) -> tuple[AdminReply, list[Any]]:
    """Send `request` to `node` as the driver does: from a sender name of its own."""
    effects = node.receive("admin/1", request, now)  # type: ignore[arg-type]
    replies: list[Any] = [
        e.message for e in effects if isinstance(e, Send) and e.target == "admin/1"
    ]
    assert len(replies) == 1
    node._check_invariants()
    return replies[0], [e for e in effects if not (isinstance(e, Send) and e.target == "admin/1")]


def test_the_claimant_applies_a_leave_at_once_and_reports_the_moving_data() -> None:
    nodes = cluster("a", "b", "c", "d")
    a = nodes["a"]
    report, _ = ask(a, AdminRequest(1, "ring"))
    assert isinstance(report, RingReport)
    assert (report.node, report.status, report.epoch, report.settled) == ("a", "member", 0, True)
    assert report.fingerprint == a.ring.fingerprint
    assert sum(report.partitions().values()) == 16
    assert [m.node for m in report.members] == ["a", "b", "c", "d"]
    reply, effects = ask(a, AdminRequest(2, "leave", "d"))
    assert isinstance(reply, AdminAccepted)
    assert reply == AdminAccepted(2, reply.change, True, 1)
    assert reply.change.startswith("a/0/")
    assert any(isinstance(e, Send) for e in effects)  # the new version is gossiped
    report, _ = ask(a, AdminRequest(3, "ring"))
    assert isinstance(report, RingReport)
    assert report.epoch == 1
    assert not report.settled
    assert [m.node for m in report.members] == ["a", "b", "c"]
    assert report.transfers == len(report.pending_transfers) > 0
    assert report.transfers_done == 0


def test_another_member_queues_the_change_for_the_claimant() -> None:
    b = cluster("a", "b", "c", "d")["b"]
    reply, _ = ask(b, AdminRequest(1, "replace", "d", new="e"))
    assert isinstance(reply, AdminAccepted)
    assert (reply.applied, reply.epoch) == (False, 0)
    report, _ = ask(b, AdminRequest(2, "ring"))
    assert isinstance(report, RingReport)
    assert report.pending_changes == 1
    assert report.changes == (Change(reply.change, "replace", "d", new="e"),)


@pytest.mark.parametrize(
    ("request_", "code", "reason"),
    [
        (AdminRequest(1, "join", "b"), "already_member", "'b' is already a member"),
        (AdminRequest(1, "replace", "b", new="c"), "already_member", "'c' is already"),
        (AdminRequest(1, "replace", "zz", new="y"), "not_member", "'zz' is not a member"),
        (AdminRequest(1, "leave", "zz"), "not_member", "'zz' is not a member"),
        (AdminRequest(1, "update", "zz", zone="z"), "not_member", "'zz' is not a member"),
        (AdminRequest(1, "leave", "a"), "too_few_members", "would leave 2 members, fewer than n=3"),
        (AdminRequest(1, "update", "a", weight=100.0), "bad_weight", "under one of the 16"),
        (AdminRequest(1, "join", "e", weight=100.0), "bad_weight", "under one of the 16"),
    ],
)
def test_refusals_are_typed_and_change_nothing(
    request_: AdminRequest, code: str, reason: str
) -> None:
    b = cluster("a", "b", "c")["b"]
    before = (b.ring.fingerprint, b.membership)
    reply, effects = ask(b, request_)
    assert isinstance(reply, AdminRefused)
    assert reply.code == code
    assert reason in reply.reason
    assert effects == []
    assert (b.ring.fingerprint, b.membership) == before


def test_the_node_refuses_with_the_code_the_operator_sees() -> None:
    b = cluster("a", "b", "c")["b"]
    before = (b.ring.fingerprint, b.membership)
    with pytest.raises(ChangeRefused, match="'b' is already a member") as joined:
        b.join("b", 0.0)
    assert joined.value.code == "already_member"
    with pytest.raises(ChangeRefused, match="fewer than n=3") as left:
        b.leave("a", 0.0)
    assert left.value.code == "too_few_members"
    with pytest.raises(ChangeRefused) as replaced:
        b.replace("zz", "y", 0.0)
    assert replaced.value.code == "not_member"
    assert isinstance(replaced.value, ValueError)
    assert (b.ring.fingerprint, b.membership) == before


def test_a_second_leave_of_the_same_node_is_refused() -> None:
    b = cluster("a", "b", "c", "d")["b"]
    assert isinstance(ask(b, AdminRequest(1, "leave", "d"))[0], AdminAccepted)
    reply, _ = ask(b, AdminRequest(2, "leave", "d"))
    assert isinstance(reply, AdminRefused)
    assert reply.code == "not_member"


def test_a_node_outside_the_ring_refuses_changes() -> None:
    outside = Node("e", HashRing(3, partitions=16), seeds=["a"])
    reply, _ = ask(outside, AdminRequest(1, "join", "f"))
    assert isinstance(reply, AdminRefused)
    assert reply.code == "outside"
    report, _ = ask(outside, AdminRequest(2, "ring"))
    assert isinstance(report, RingReport)
    assert (report.status, report.outside, report.members) == ("outside", True, ())


def test_an_update_keeps_what_it_does_not_name() -> None:
    ring = HashRing(3, partitions=16)
    ring.add_node("a", zone="z1")
    ring.add_nodes(["b", "c", "d"])
    a = Node("a", ring)
    reply, _ = ask(a, AdminRequest(1, "update", "a", weight=2.0))
    assert isinstance(reply, AdminAccepted)
    assert reply.applied
    assert (a.ring.zone("a"), a.ring.weight("a")) == ("z1", 2.0)
    expected = ring.copy()
    expected.update_node("a", weight=2.0)
    assert a.ring.fingerprint == expected.fingerprint


# -- codecs ------------------------------------------------------------------------------------

REPLIES: list[AdminReply] = [
    AdminAccepted(1, "a/0/1", True, 3),
    AdminRefused(2, "not_member", "node 'x' is not a member"),
    RingReport(
        3,
        "a",
        "member",
        4,
        "0123456789abcdef",
        False,
        "a",
        False,
        (MemberRow("a", "z1", 2.0, 10), MemberRow("b", None, 1.0, 6)),
        2,
        1,
        (Transfer(TokenRange(0, 2**60), "a", "b"),),
        1,
        (Change("b/0/1", "join", "c", "z2", 1.5),),
    ),
]


@pytest.mark.parametrize("reply", REPLIES, ids=lambda r: type(r).__name__)
def test_replies_round_trip(reply: AdminReply) -> None:
    assert reply_from_dict(codec.loads(codec.dumps(reply.to_dict()))) == reply


ids = st.text("abcxyz-/", min_size=1, max_size=8)


@st.composite
def requests(draw: st.DrawFn) -> AdminRequest:
    op = draw(st.sampled_from(["join", "leave", "replace", "update", "ring"]))
    rid = draw(st.integers(0, 2**63 - 1))
    if op == "ring":
        return AdminRequest(rid, "ring")
    node = draw(ids)
    if op == "replace":
        return AdminRequest(rid, "replace", node, new=draw(ids.filter(lambda x: x != node)))
    if op == "leave":
        return AdminRequest(rid, "leave", node)
    zone = draw(st.none() | ids)
    weight = draw(st.none() | st.floats(0.01, 100.0))
    if op == "update" and zone is None and weight is None:
        weight = 2.0
    return AdminRequest(rid, op, node, zone=zone, weight=weight)  # type: ignore[arg-type]


@given(requests())
def test_requests_round_trip(request: AdminRequest) -> None:
    assert request_from_dict(codec.loads(codec.dumps(request.to_dict()))) == request


GOOD = AdminRequest(1, "join", "e", zone="z", weight=2.0).to_dict()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"op": "nuke"}, "op must be one of"),
        ({"op": "leave"}, "takes no zone and no weight"),
        ({"op": "ring"}, "ring takes none"),
        ({"node": None}, "node is required"),
        ({"weight": -1.0}, "above 0"),
        ({"weight": float("inf")}, "finite"),
        ({"weight": "2"}, "weight"),
        ({"rid": -1}, "rid"),
        ({"node": "x" * 300}, "node"),
        ({"new": "e"}, "new is required by a replace, and only"),
        ({"extra": 1}, "extra"),
    ],
)
def test_hostile_requests_are_refused_by_name(change: dict[str, object], message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        request_from_dict({**GOOD, **change})


def test_requests_at_each_limit_are_accepted_and_one_past_refused() -> None:
    top = codec.MAX_COUNTER
    assert request_from_dict({**GOOD, "rid": top}).rid == top
    with pytest.raises(DecodeError, match="rid"):
        request_from_dict({**GOOD, "rid": top + 1})
    longest = "n" * 255
    assert request_from_dict({**GOOD, "node": longest}).node == longest
    with pytest.raises(DecodeError, match="node"):
        request_from_dict({**GOOD, "node": longest + "n"})
    assert request_from_dict({**GOOD, "zone": "z" * 255}).zone == "z" * 255
    with pytest.raises(DecodeError, match="zone"):
        request_from_dict({**GOOD, "zone": "z" * 256})


def test_a_report_of_exactly_max_reported_items_round_trips() -> None:
    transfer = Transfer(TokenRange(0, 2**60), "a", "b").to_dict()
    data = REPLIES[2].to_dict()
    data["pending_transfers"] = [transfer] * MAX_REPORTED
    report = reply_from_dict(data)
    assert isinstance(report, RingReport)
    assert len(report.pending_transfers) == MAX_REPORTED


def test_reports_are_capped() -> None:
    transfer = Transfer(TokenRange(0, 2**60), "a", "b").to_dict()
    data = REPLIES[2].to_dict()
    data["pending_transfers"] = [transfer] * (MAX_REPORTED + 1)
    with pytest.raises(DecodeError, match="pending_transfers"):
        reply_from_dict(data)
    with pytest.raises(DecodeError, match="admin reply"):
        reply_from_dict({**data, "type": "admin_nuke"})
    with pytest.raises(DecodeError, match="weight"):
        reply_from_dict({**REPLIES[2].to_dict(), "members": [["a", None, None, 3]]})
    with pytest.raises(DecodeError, match="code must be one of"):
        reply_from_dict({**REPLIES[1].to_dict(), "code": "oops"})
