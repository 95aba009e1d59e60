from __future__ import annotations

import pytest

from dynamo_core import codec
from dynamo_core.aio.auth import (
    NONCE_SIZE,
    Acceptor,
    AuthError,
    Challenge,
    Connector,
    Hello,
    Peer,
    Proof,
)
from dynamo_core.errors import DecodeError

SECRET = b"s" * 32
OTHER = b"o" * 32


def handshake(connector: Connector, acceptor: Acceptor) -> tuple[Peer, Peer]:
    challenge = acceptor.on_hello(connector.hello())
    proof, acceptor_seen = connector.on_challenge(challenge)
    return acceptor.on_proof(proof), acceptor_seen


def test_mutual_authentication_with_the_secret() -> None:
    seen_by_acceptor, seen_by_connector = handshake(
        Connector("node", "A", secret=SECRET, expect="B"),
        Acceptor("B", secret=SECRET, peers={"A", "C"}),
    )
    assert seen_by_acceptor == Peer("node", "A", authenticated=True)
    assert seen_by_connector == Peer("node", "B", authenticated=True)


def test_without_a_secret_the_handshake_only_names_the_peer() -> None:
    peer, _ = handshake(
        Connector("client", None, secret=None), Acceptor("B", secret=None, peers=())
    )
    assert peer == Peer("client", None, authenticated=False)


def test_a_wrong_secret_is_refused_by_the_connector_first() -> None:
    connector = Connector("node", "A", secret=OTHER)
    challenge = Acceptor("B", secret=SECRET, peers={"A"}).on_hello(connector.hello())
    with pytest.raises(AuthError, match="acceptor does not know the cluster secret"):
        connector.on_challenge(challenge)


def test_a_wrong_connector_proof_is_refused() -> None:
    acceptor = Acceptor("B", secret=SECRET, peers={"A"})
    connector = Connector("node", "A", secret=OTHER)
    acceptor.on_hello(connector.hello())
    forged = codec.dumps(Proof(b"\x00" * 32).to_dict())
    with pytest.raises(AuthError, match="does not know the cluster secret"):
        acceptor.on_proof(forged)


def test_no_proof_when_the_secret_is_required() -> None:
    acceptor = Acceptor("B", secret=SECRET, peers={"A"})
    connector = Connector("node", "A", secret=None)
    challenge = acceptor.on_hello(connector.hello())
    proof, _ = connector.on_challenge(challenge)  # a connector without a secret sends none
    with pytest.raises(AuthError, match="no proof"):
        acceptor.on_proof(proof)


def test_a_connector_with_a_secret_refuses_an_acceptor_without_one() -> None:
    connector = Connector("node", "A", secret=SECRET)
    challenge = Acceptor("B", secret=None, peers={"A"}).on_hello(connector.hello())
    with pytest.raises(AuthError, match="acceptor sent no proof"):
        connector.on_challenge(challenge)


def test_a_proof_from_another_session_is_refused() -> None:
    nonce_a, nonce_b = b"a" * NONCE_SIZE, b"b" * NONCE_SIZE
    first = Connector("node", "A", secret=SECRET, nonce=nonce_a)
    acceptor = Acceptor("B", secret=SECRET, peers={"A"}, nonce=nonce_b)
    old_proof, _ = first.on_challenge(acceptor.on_hello(first.hello()))
    # A replay against a fresh acceptor nonce fails.
    again = Acceptor("B", secret=SECRET, peers={"A"}, nonce=b"c" * NONCE_SIZE)
    again.on_hello(first.hello())
    with pytest.raises(AuthError, match="wrong proof"):
        again.on_proof(old_proof)


def test_the_acceptor_proof_cannot_be_reflected_as_the_connector_proof() -> None:
    connector = Connector("node", "A", secret=SECRET)
    acceptor = Acceptor("B", secret=SECRET, peers={"A"})
    challenge = Challenge.from_dict(codec.loads(acceptor.on_hello(connector.hello())))
    with pytest.raises(AuthError, match="wrong proof"):
        acceptor.on_proof(codec.dumps(Proof(challenge.proof).to_dict()))


def test_the_proof_binds_the_claimed_identity() -> None:
    # A holder of A's transcript cannot claim to be C: the acceptor's MAC covers the id.
    nonce = b"n" * NONCE_SIZE
    as_a = Connector("node", "A", secret=SECRET, nonce=nonce)
    acceptor = Acceptor("B", secret=SECRET, peers={"A", "C"}, nonce=b"m" * NONCE_SIZE)
    proof_a, _ = as_a.on_challenge(acceptor.on_hello(as_a.hello()))
    as_c = Connector("node", "C", secret=OTHER, nonce=nonce)
    acceptor_c = Acceptor("B", secret=SECRET, peers={"A", "C"}, nonce=b"m" * NONCE_SIZE)
    acceptor_c.on_hello(as_c.hello())
    with pytest.raises(AuthError, match="wrong proof"):
        acceptor_c.on_proof(proof_a)


def test_unknown_own_and_refused_identities() -> None:
    with pytest.raises(AuthError, match="unknown node id 'Z'"):
        Acceptor("B", secret=None, peers={"A"}).on_hello(
            Connector("node", "Z", secret=None).hello()
        )
    with pytest.raises(AuthError, match="own id"):
        Acceptor("B", secret=None, peers={"A"}).on_hello(
            Connector("node", "B", secret=None).hello()
        )
    with pytest.raises(AuthError, match="clients are not accepted"):
        Acceptor("B", secret=None, peers={"A"}, allow_clients=False).on_hello(
            Connector("client", None, secret=None).hello()
        )
    with pytest.raises(AuthError, match="proof before hello"):
        Acceptor("B", secret=None, peers={"A"}).on_proof(codec.dumps(Proof(b"").to_dict()))


def test_the_connector_checks_whom_it_reached() -> None:
    connector = Connector("node", "A", secret=None, expect="B")
    challenge = Acceptor("C", secret=None, peers={"A"}).on_hello(connector.hello())
    with pytest.raises(AuthError, match="expected node 'B', reached 'C'"):
        connector.on_challenge(challenge)


def test_malformed_handshake_frames_are_decode_errors() -> None:
    acceptor = Acceptor("B", secret=None, peers={"A"})
    for payload in (b"\xff\xfe", b"[]", b'{"type":"aio_hello","v":1}', b"x" * 5000):
        with pytest.raises(DecodeError):
            acceptor.on_hello(payload)


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Acceptor("B", secret=b"short", peers=())
    with pytest.raises(TypeError, match="secret must be bytes"):
        Connector("node", "A", secret="text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="node_id must be given"):
        Connector("node", None, secret=None)
    with pytest.raises(ValueError, match="role"):
        Hello("admin", None, b"n" * NONCE_SIZE)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nonce must be 32 bytes"):
        Hello("client", None, b"short")


def test_handshake_messages_round_trip() -> None:
    hello = Hello("node", "A", b"n" * NONCE_SIZE)
    challenge = Challenge("B", b"m" * NONCE_SIZE, b"p" * 32)
    proof = Proof(b"")
    assert Hello.from_dict(hello.to_dict()) == hello
    assert Challenge.from_dict(challenge.to_dict()) == challenge
    assert Proof.from_dict(proof.to_dict()) == proof
