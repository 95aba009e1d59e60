"""The handshake and the frame seal, without sockets: every refusal and every binding."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo_core import codec
from dynamo_core.aio.auth import (
    NONCE_SIZE,
    TAG_SIZE,
    Acceptor,
    AuthError,
    Certified,
    Challenge,
    Connector,
    FrameSeal,
    Hello,
    Peer,
    Proof,
    load_secret,
    new_secret,
    parse_secret,
)
from dynamo_core.errors import DecodeError

SECRET = b"s" * 32
CLIENTS = b"c" * 32
OTHER = b"o" * 32


def handshake(connector: Connector, acceptor: Acceptor) -> tuple[Peer, Peer]:
    """Run the four frames; return (the peer the acceptor saw, the peer the connector saw)."""
    challenge = acceptor.on_hello(connector.hello())
    finish, seen_by_acceptor = acceptor.on_proof(connector.on_challenge(challenge))
    return seen_by_acceptor, connector.on_proof(finish)


def node_pair(**acceptor: object) -> tuple[Peer, Peer]:
    kw: dict[str, object] = {"secret": SECRET, "peers": {"A", "C"}, **acceptor}
    return handshake(
        Connector("node", "A", secret=SECRET, expect="B"),
        Acceptor("B", **kw),  # type: ignore[arg-type]
    )


def test_nodes_authenticate_each_other_and_get_matching_seals() -> None:
    at_b, at_a = node_pair()
    assert at_b == Peer("node", "A", authenticated=True)
    assert at_a == Peer("node", "B", authenticated=True)
    assert at_a.seal is not None and at_b.seal is not None
    for payload in (b"", b"x", b"hello" * 100):
        assert at_b.seal.open(at_a.seal.seal(payload)) == payload
        assert at_a.seal.open(at_b.seal.seal(payload)) == payload


def test_without_a_secret_the_handshake_only_names_the_peer() -> None:
    at_b, at_client = handshake(
        Connector("client", None, secret=None), Acceptor("B", secret=None, peers=())
    )
    assert at_b == Peer("client", None, authenticated=False)
    assert at_b.seal is None and at_client.seal is None


def test_the_acceptor_sends_no_proof_before_the_connector_proved() -> None:
    # Finding 4: a stranger's hello must not return anything to test secret guesses against.
    acceptor = Acceptor("B", secret=SECRET, client_secret=CLIENTS, peers={"A"})
    challenge = codec.loads(acceptor.on_hello(Connector("client", None, secret=OTHER).hello()))
    assert isinstance(challenge, dict)
    assert set(challenge) == {"type", "v", "id", "nonce", "config"}
    assert challenge["config"] == {}  # nor the configuration
    with pytest.raises(AuthError, match="does not know the client secret"):
        acceptor.on_proof(codec.dumps(Proof(b"\x00" * 32).to_dict()))


def test_a_client_secret_cannot_prove_the_node_role() -> None:
    # Finding 1: a client holding the client secret claims to be node A.
    acceptor = Acceptor("B", secret=SECRET, client_secret=CLIENTS, peers={"A"})
    liar = Connector("node", "A", secret=CLIENTS)
    proof = liar.on_challenge(acceptor.on_hello(liar.hello()))
    with pytest.raises(AuthError, match="does not know the node secret"):
        acceptor.on_proof(proof)


def test_clients_are_answered_only_when_configured() -> None:
    hello = Connector("client", None, secret=CLIENTS).hello()
    with pytest.raises(AuthError, match="no client secret"):
        Acceptor("B", secret=SECRET, peers={"A"}).on_hello(hello)
    with pytest.raises(AuthError, match="clients are not accepted"):
        Acceptor("B", secret=None, peers={"A"}, allow_clients=False).on_hello(hello)
    at_b, _ = handshake(
        Connector("client", None, secret=CLIENTS),
        Acceptor("B", secret=SECRET, client_secret=CLIENTS, peers={"A"}),
    )
    assert at_b == Peer("client", None, authenticated=True)


def test_a_wrong_secret_is_refused_by_the_acceptor_first() -> None:
    acceptor = Acceptor("B", secret=SECRET, peers={"A"})
    connector = Connector("node", "A", secret=OTHER)
    proof = connector.on_challenge(acceptor.on_hello(connector.hello()))
    with pytest.raises(AuthError, match="does not know the node secret"):
        acceptor.on_proof(proof)


def test_no_proof_when_the_secret_is_required() -> None:
    acceptor = Acceptor("B", secret=SECRET, peers={"A"})
    connector = Connector("node", "A", secret=None)
    with pytest.raises(AuthError, match="no proof"):
        acceptor.on_proof(connector.on_challenge(acceptor.on_hello(connector.hello())))


def test_a_connector_with_a_secret_refuses_an_acceptor_without_one() -> None:
    connector = Connector("node", "A", secret=SECRET)
    acceptor = Acceptor("B", secret=None, peers={"A"})
    finish, _ = acceptor.on_proof(connector.on_challenge(acceptor.on_hello(connector.hello())))
    with pytest.raises(AuthError, match="acceptor sent no proof"):
        connector.on_proof(finish)


def test_an_impostor_acceptor_is_refused() -> None:
    connector = Connector("node", "A", secret=SECRET)
    acceptor = Acceptor("B", secret=OTHER, peers={"A"})
    proof = connector.on_challenge(acceptor.on_hello(connector.hello()))
    with pytest.raises(AuthError):
        acceptor.on_proof(proof)
    with pytest.raises(AuthError, match="acceptor does not know the secret"):
        connector.on_proof(codec.dumps(Proof(b"\x02" * 32).to_dict()))


def test_a_proof_from_another_session_is_refused() -> None:
    nonce_a, nonce_b = b"a" * NONCE_SIZE, b"b" * NONCE_SIZE
    first = Connector("node", "A", secret=SECRET, nonce=nonce_a)
    acceptor = Acceptor("B", secret=SECRET, peers={"A"}, nonce=nonce_b)
    old_proof = first.on_challenge(acceptor.on_hello(first.hello()))
    again = Acceptor("B", secret=SECRET, peers={"A"}, nonce=b"c" * NONCE_SIZE)
    again.on_hello(first.hello())
    with pytest.raises(AuthError, match="wrong proof"):
        again.on_proof(old_proof)


def test_the_acceptor_proof_cannot_be_reflected() -> None:
    # The acceptor's proof, sent back to another acceptor as a connector proof, fails.
    nonce_c, nonce_a = b"n" * NONCE_SIZE, b"m" * NONCE_SIZE
    connector = Connector("node", "A", secret=SECRET, nonce=nonce_c)
    acceptor = Acceptor("B", secret=SECRET, peers={"A"}, nonce=nonce_a)
    finish, _ = acceptor.on_proof(connector.on_challenge(acceptor.on_hello(connector.hello())))
    twin = Acceptor("B", secret=SECRET, peers={"A"}, nonce=nonce_a)
    twin.on_hello(Connector("node", "A", secret=None, nonce=nonce_c).hello())
    with pytest.raises(AuthError, match="wrong proof"):
        twin.on_proof(finish)


def test_a_proof_binds_the_id_the_role_and_the_cluster() -> None:
    nonce_c, nonce_a = b"n" * NONCE_SIZE, b"m" * NONCE_SIZE
    as_a = Connector("node", "A", secret=SECRET, nonce=nonce_c)
    acceptor = Acceptor("B", secret=SECRET, peers={"A", "C"}, nonce=nonce_a)
    proof_a = as_a.on_challenge(acceptor.on_hello(as_a.hello()))
    for hello, other in [
        (Hello("node", "C", nonce_c), Acceptor("B", secret=SECRET, peers={"C"}, nonce=nonce_a)),
        (
            Hello("client", None, nonce_c),
            Acceptor("B", secret=None, client_secret=SECRET, peers=(), nonce=nonce_a),
        ),
        (
            Hello("node", "A", nonce_c, "blue"),
            Acceptor("B", secret=SECRET, peers={"A"}, nonce=nonce_a, cluster="blue"),
        ),
    ]:
        other.on_hello(codec.dumps(hello.to_dict()))
        with pytest.raises(AuthError, match="wrong proof"):
            other.on_proof(proof_a)


def test_two_clusters_sharing_a_secret_refuse_each_other() -> None:
    connector = Connector("node", "A", secret=SECRET, cluster="blue")
    with pytest.raises(AuthError, match="cluster 'blue'"):
        Acceptor("B", secret=SECRET, peers={"A"}, cluster="green").on_hello(connector.hello())


def test_the_channel_binding_is_in_the_keys() -> None:
    # A relay terminating TLS on both sides sees two TLS channels: the proofs do not match.
    connector = Connector("node", "A", secret=SECRET, certified=Certified(("node", "B"), b"1"))
    acceptor = Acceptor("B", secret=SECRET, peers={"A"}, certified=Certified(("node", "A"), b"2"))
    with pytest.raises(AuthError, match="wrong proof"):
        acceptor.on_proof(connector.on_challenge(acceptor.on_hello(connector.hello())))


@pytest.mark.parametrize(
    ("identity", "role", "error"),
    [
        (("node", "C"), "node", "certificate of node 'C' cannot act as node 'A'"),
        (("client", "A"), "node", "certificate of client 'A' cannot act as node 'A'"),
        (None, "node", "names no dynamo-core"),
        (None, "client", "names no dynamo-core"),
    ],
)
def test_the_acceptor_checks_the_certificate_against_the_hello(
    identity: tuple[str, str] | None, role: str, error: str
) -> None:
    acceptor = Acceptor("B", secret=None, peers={"A", "C"}, certified=Certified(identity))  # type: ignore[arg-type]
    hello = Connector(role, "A" if role == "node" else None, secret=None).hello()  # type: ignore[arg-type]
    with pytest.raises(AuthError, match=error):
        acceptor.on_hello(hello)


def test_certificates_that_match_pass_and_a_client_certificate_serves_a_client() -> None:
    at_b, at_a = handshake(
        Connector("node", "A", secret=None, expect="B", certified=Certified(("node", "B"))),
        Acceptor("B", secret=None, peers={"A"}, certified=Certified(("node", "A"))),
    )
    assert at_b == Peer("node", "A", authenticated=True)
    assert at_a == Peer("node", "B", authenticated=True)
    at_b, _ = handshake(
        Connector("client", None, secret=None, certified=Certified(("node", "B"))),
        Acceptor("B", secret=None, peers={"A"}, certified=Certified(("client", "ops"))),
    )
    assert at_b == Peer("client", None, authenticated=True)


def test_the_connector_checks_the_acceptor_certificate() -> None:
    # Finding 2, outbound: a listener holding A's certificate answers as B.
    # Refused before the connector says anything, when it knows whom it dialled ...
    connector = Connector("node", "C", secret=None, expect="B", certified=Certified(("node", "A")))
    with pytest.raises(AuthError, match="certificate of node 'A' cannot act as node 'B'"):
        connector.hello()
    for identity, error in ((("client", "x"), "a client's, not a node's"), (None, "names no")):
        client = Connector("client", None, secret=None, certified=Certified(identity))  # type: ignore[arg-type]
        with pytest.raises(AuthError, match=error):
            client.hello()
    # ... and a client, which dials an address, checks the id the acceptor then claims.
    acceptor = Acceptor("B", secret=None, peers={"C"})
    client = Connector("client", None, secret=None, certified=Certified(("node", "A")))
    with pytest.raises(AuthError, match="certificate of node 'A' cannot act as node 'B'"):
        client.on_challenge(acceptor.on_hello(client.hello()))


def test_unknown_own_and_out_of_order() -> None:
    with pytest.raises(AuthError, match="unknown node id 'Z'"):
        Acceptor("B", secret=None, peers={"A"}).on_hello(
            Connector("node", "Z", secret=None).hello()
        )
    with pytest.raises(AuthError, match="own id"):
        Acceptor("B", secret=None, peers={"A"}).on_hello(
            Connector("node", "B", secret=None).hello()
        )
    with pytest.raises(AuthError, match="proof before hello"):
        Acceptor("B", secret=None, peers={"A"}).on_proof(codec.dumps(Proof(b"").to_dict()))
    with pytest.raises(AuthError, match="proof before challenge"):
        Connector("node", "A", secret=None).on_proof(codec.dumps(Proof(b"").to_dict()))


def test_the_connector_checks_whom_it_reached() -> None:
    connector = Connector("node", "A", secret=None, expect="B")
    challenge = Acceptor("C", secret=None, peers={"A"}).on_hello(connector.hello())
    with pytest.raises(AuthError, match="expected node 'B', reached 'C'"):
        connector.on_challenge(challenge)


def test_an_id_that_is_not_utf8_is_a_decode_error() -> None:
    # Finding 8: a lone surrogate in a challenge id used to escape as UnicodeEncodeError.
    raw = codec.dumps(Challenge("B", b"m" * NONCE_SIZE).to_dict()).replace(b'"B"', b'"\\ud800"')
    with pytest.raises(DecodeError, match="UTF-8"):
        Connector("client", None, secret=CLIENTS).on_challenge(raw)
    with pytest.raises(ValueError, match="UTF-8"):
        Hello("node", "\ud800", b"n" * NONCE_SIZE)


def test_malformed_handshake_frames_are_decode_errors() -> None:
    acceptor = Acceptor("B", secret=None, peers={"A"})
    old_hello = b'{"type":"aio_hello","v":1,"role":"client","id":null,"nonce":"' + (
        base64.b64encode(b"n" * 32) + b'"}'
    )
    for payload in (b"\xff\xfe", b"[]", b'{"type":"aio_hello","v":1}', b"x" * 5000, old_hello):
        with pytest.raises(DecodeError):
            acceptor.on_hello(payload)


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="at least 32 random bytes"):
        Acceptor("B", secret=b"s" * 31, peers=())
    with pytest.raises(TypeError, match="secret must be bytes"):
        Connector("node", "A", secret="text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="node_id must be given"):
        Connector("node", None, secret=None)
    with pytest.raises(ValueError, match="role"):
        Hello("root", None, b"n" * NONCE_SIZE)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nonce must be 32 bytes"):
        Hello("client", None, b"short")
    with pytest.raises(ValueError, match="binding"):
        Certified(None, b"x" * 200)


def test_handshake_messages_round_trip() -> None:
    hello = Hello("node", "A", b"n" * NONCE_SIZE, "blue")
    challenge = Challenge("B", b"m" * NONCE_SIZE)
    for proof in (Proof(b""), Proof(b"p" * 32)):
        assert Proof.from_dict(proof.to_dict()) == proof
    assert Hello.from_dict(hello.to_dict()) == hello
    assert Challenge.from_dict(challenge.to_dict()) == challenge


# -- the frame seal ----------------------------------------------------------------------------


def seals() -> tuple[FrameSeal, FrameSeal]:
    at_b, at_a = node_pair()
    assert at_a.seal is not None and at_b.seal is not None
    return at_a.seal, at_b.seal


@given(st.lists(st.binary(max_size=64), min_size=1, max_size=8), st.data())
def test_any_tampering_with_a_sealed_stream_is_refused(
    payloads: list[bytes], data: st.DataObject
) -> None:
    """Law: the receiver accepts exactly the sender's frames, in order; any other frame at the
    next position — a replay, a later frame, a changed or truncated one — is refused."""
    sender, receiver = seals()
    sealed = [sender.seal(p) for p in payloads]
    cut = data.draw(st.integers(0, len(sealed) - 1))
    for frame, payload in zip(sealed[:cut], payloads[:cut], strict=True):
        assert receiver.open(frame) == payload
    expected = sealed[cut]
    wrong = data.draw(
        st.one_of(
            st.sampled_from(sealed[:cut] + sealed[cut + 1 :] or [b""]),  # replayed / reordered
            st.binary(max_size=len(expected) - 1).map(lambda b: expected[: len(b)]),  # truncated
            st.integers(0, len(expected) - 1).map(
                lambda i: expected[:i] + bytes([expected[i] ^ 1]) + expected[i + 1 :]
            ),  # a flipped bit
        )
    )
    if wrong != expected:
        with pytest.raises(AuthError):
            receiver.open(wrong)


def test_a_seal_adds_one_tag_and_directions_differ() -> None:
    sender, receiver = seals()
    frame = sender.seal(b"payload")
    assert len(frame) == len(b"payload") + TAG_SIZE
    with pytest.raises(AuthError):  # a frame sealed A->B does not open in the B->A direction
        sender.open(frame)
    assert receiver.open(frame) == b"payload"


# -- secrets -----------------------------------------------------------------------------------


def test_new_secrets_parse_and_differ() -> None:
    one, two = new_secret(), new_secret()
    assert one != two
    assert parse_secret(one) == bytes.fromhex(one)
    assert len(parse_secret(one)) == 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ab" * 32, b"\xab" * 32),
        ("  " + "AB" * 40 + "\n", b"\xab" * 40),
        (base64.b64encode(b"\x01" * 32).decode() + "\n", b"\x01" * 32),
    ],
)
def test_secret_formats(text: str, expected: bytes) -> None:
    assert parse_secret(text) == expected


@pytest.mark.parametrize(
    "text", ["summer2024summer", "ab" * 31, base64.b64encode(b"x" * 31).decode(), "", "é" * 64]
)
def test_weak_or_malformed_secrets_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="32"):
        parse_secret(text)


def test_load_secret_refuses_files_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(new_secret() + "\n")
    for mode in (0o644, 0o666, 0o640, 0o604):
        os.chmod(path, mode)
        with pytest.raises(PermissionError, match="chmod 600"):
            load_secret(path)
    os.chmod(path, 0o600)
    assert len(load_secret(path)) == 32
    path.write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match="hex or base64"):
        load_secret(path)
