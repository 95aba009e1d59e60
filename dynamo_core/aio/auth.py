"""The connection handshake: who is on the other end, and do they know the cluster secret.

Every connection starts with three frames, whatever the role of the connecting side:

1. the connector sends a [`Hello`][dynamo_core.aio.auth.Hello]: its role (``"node"`` or
   ``"client"``), its node id (nodes only) and a fresh random nonce;
2. the acceptor answers with a [`Challenge`][dynamo_core.aio.auth.Challenge]: its own id and
   nonce and, with a cluster secret, its proof;
3. the connector sends its [`Proof`][dynamo_core.aio.auth.Proof].

A proof is HMAC-SHA256 under the cluster secret over a label for the direction
(``acceptor`` / ``connector``), both nonces, both ids and the role, so neither side can replay
an old proof (fresh nonces) or reflect the other's (distinct labels), and a proof binds the
identity the peer claims. Proofs are compared with `hmac.compare_digest`. Without a secret the
proofs are empty and the handshake only names the peer — use that on trusted networks or under
mutual TLS only.

The identity a node claims here, checked against the proof, is the *sender* of every message
that arrives on the connection afterwards; frames never carry their own sender.

Pure: [`Acceptor`][dynamo_core.aio.auth.Acceptor] and
[`Connector`][dynamo_core.aio.auth.Connector] turn frames into frames; the transport moves them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Collection
from typing import Final, Literal, Self

import attrs

from dynamo_core import codec
from dynamo_core._check import MAX_NODE_ID_LEN, check_bytes, check_node_id
from dynamo_core.errors import DecodeError, DynamoError

__all__ = [
    "NONCE_SIZE",
    "PROOF_SIZE",
    "Acceptor",
    "AuthError",
    "Challenge",
    "Connector",
    "Hello",
    "Peer",
    "Proof",
    "Role",
    "check_secret",
]

Role = Literal["node", "client"]
"""What a connecting side is: another node (sending node messages) or a client."""

NONCE_SIZE: Final = 32
"""Bytes of a handshake nonce."""

PROOF_SIZE: Final = hashlib.sha256().digest_size
"""Bytes of an HMAC-SHA256 proof."""

MIN_SECRET_BYTES: Final = 16
"""The shortest cluster secret accepted."""

_ROLES: Final = ("node", "client")
_LABEL: Final = b"dynamo-core/aio/handshake/v1"


class AuthError(DynamoError):
    """A handshake failed: a wrong or missing proof, an unknown id, or a refused role."""


def check_secret(secret: object) -> bytes | None:
    """Return `secret` if it is `None` or `bytes` of at least 16 bytes.

    Raises:
        TypeError: `secret` is not `bytes` or `None`.
        ValueError: `secret` is shorter than 16 bytes.
    """
    if secret is None:
        return None
    check_bytes(secret, "secret")
    assert isinstance(secret, bytes)
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"secret must be at least {MIN_SECRET_BYTES} bytes, got {len(secret)}")
    return secret


def _check_role(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if value not in _ROLES:
        raise ValueError(f"{attribute.name} must be 'node' or 'client', got {value!r:.40}")


def _check_optional_id(_: object, attribute: attrs.Attribute[str | None], value: object) -> None:
    if value is not None:
        check_node_id(value, attribute.name)


def _check_nonce(_: object, attribute: attrs.Attribute[bytes], value: object) -> None:
    check_bytes(value, attribute.name)
    assert isinstance(value, bytes)
    if len(value) != NONCE_SIZE:
        raise ValueError(f"{attribute.name} must be {NONCE_SIZE} bytes, got {len(value)}")


def _check_proof(_: object, attribute: attrs.Attribute[bytes], value: object) -> None:
    check_bytes(value, attribute.name)
    assert isinstance(value, bytes)
    if len(value) not in (0, PROOF_SIZE):
        raise ValueError(f"{attribute.name} must be empty or {PROOF_SIZE} bytes")


def _build(cls: Callable[..., object], what: str, *args: object) -> object:
    try:
        return cls(*args)
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"{what}: {exc}") from None


def _decode_nonce(value: object, what: str) -> bytes:
    nonce = codec.as_bytes(value, what, max_len=NONCE_SIZE)
    if len(nonce) != NONCE_SIZE:
        raise DecodeError(f"{what} must be {NONCE_SIZE} bytes")
    return nonce


def _decode_proof(value: object, what: str) -> bytes:
    proof = codec.as_bytes(value, what, max_len=PROOF_SIZE)
    if len(proof) not in (0, PROOF_SIZE):
        raise DecodeError(f"{what} must be empty or {PROOF_SIZE} bytes")
    return proof


@attrs.frozen
class Hello:
    """Handshake, frame 1 (connector to acceptor).

    Attributes:
        role: ``"node"`` or ``"client"``.
        node_id: The connecting node's id; `None` for a client.
        nonce: 32 fresh random bytes.
    """

    role: Role = attrs.field(validator=_check_role)
    node_id: str | None = attrs.field(validator=_check_optional_id)
    nonce: bytes = attrs.field(validator=_check_nonce)

    def __attrs_post_init__(self) -> None:
        if (self.role == "node") != (self.node_id is not None):
            raise ValueError("node_id must be given for role 'node' and only for it")

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as an ``aio_hello`` envelope."""
        return codec.envelope(
            "aio_hello",
            {"role": self.role, "id": self.node_id, "nonce": codec.encode_bytes(self.nonce)},
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode an ``aio_hello`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid hello.
        """
        obj = codec.open_envelope(data, "aio_hello", required=("role", "id", "nonce"))
        role = codec.as_str(obj["role"], "aio_hello.role", max_len=8)
        raw_id = obj["id"]
        node_id = (
            None
            if raw_id is None
            else codec.as_str(raw_id, "aio_hello.id", max_len=MAX_NODE_ID_LEN)
        )
        nonce = _decode_nonce(obj["nonce"], "aio_hello.nonce")
        return _build(cls, "aio_hello", role, node_id, nonce)  # type: ignore[return-value]


@attrs.frozen
class Challenge:
    """Handshake, frame 2 (acceptor to connector).

    Attributes:
        node_id: The accepting node's id.
        nonce: 32 fresh random bytes.
        proof: The acceptor's HMAC proof; empty without a cluster secret.
    """

    node_id: str = attrs.field(validator=lambda _, a, v: check_node_id(v, a.name))
    nonce: bytes = attrs.field(validator=_check_nonce)
    proof: bytes = attrs.field(validator=_check_proof)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as an ``aio_challenge`` envelope."""
        return codec.envelope(
            "aio_challenge",
            {
                "id": self.node_id,
                "nonce": codec.encode_bytes(self.nonce),
                "proof": codec.encode_bytes(self.proof),
            },
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode an ``aio_challenge`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid challenge.
        """
        obj = codec.open_envelope(data, "aio_challenge", required=("id", "nonce", "proof"))
        return _build(  # type: ignore[return-value]
            cls,
            "aio_challenge",
            codec.as_str(obj["id"], "aio_challenge.id", max_len=MAX_NODE_ID_LEN),
            _decode_nonce(obj["nonce"], "aio_challenge.nonce"),
            _decode_proof(obj["proof"], "aio_challenge.proof"),
        )


@attrs.frozen
class Proof:
    """Handshake, frame 3 (connector to acceptor): the connector's proof, empty without a secret."""

    proof: bytes = attrs.field(validator=_check_proof)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as an ``aio_proof`` envelope."""
        return codec.envelope("aio_proof", {"proof": codec.encode_bytes(self.proof)})

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode an ``aio_proof`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid proof.
        """
        obj = codec.open_envelope(data, "aio_proof", required=("proof",))
        return cls(_decode_proof(obj["proof"], "aio_proof.proof"))


@attrs.frozen
class Peer:
    """The authenticated other end of a connection.

    Attributes:
        role: ``"node"`` or ``"client"``.
        node_id: The peer node's id (for a client: `None`).
        authenticated: Whether the peer proved knowledge of the cluster secret.
    """

    role: Role
    node_id: str | None
    authenticated: bool


def _mac(
    secret: bytes, direction: bytes, hello: Hello, acceptor_nonce: bytes, acceptor: str
) -> bytes:
    parts = [
        _LABEL,
        direction,
        hello.nonce,
        acceptor_nonce,
        (hello.node_id or "").encode("utf-8"),
        acceptor.encode("utf-8"),
        hello.role.encode("ascii"),
    ]
    # Length-prefix every part so no two different tuples give the same message.
    message = b"".join(len(p).to_bytes(4, "big") + p for p in parts)
    return hmac.new(secret, message, hashlib.sha256).digest()


def _load(payload: bytes, decoder: Callable[[object], object]) -> object:
    return decoder(codec.loads(payload, max_bytes=4096))


class Acceptor:
    """The accepting side of one handshake.

    Args:
        node_id: This node's id.
        secret: The cluster secret, or `None`.
        peers: The node ids allowed to connect as nodes.
        allow_clients: Whether clients may connect.
        nonce: This side's nonce (default: 32 random bytes; tests pass their own).

    Raises:
        TypeError, ValueError: an argument is invalid.
    """

    __slots__ = ("_hello", "_nonce", "_peers", "_secret", "allow_clients", "node_id")

    def __init__(
        self,
        node_id: str,
        *,
        secret: bytes | None,
        peers: Collection[str],
        allow_clients: bool = True,
        nonce: bytes | None = None,
    ) -> None:
        self.node_id = check_node_id(node_id, "node_id")
        self._secret = check_secret(secret)
        self._peers = frozenset(peers)
        self.allow_clients = allow_clients
        self._nonce = secrets.token_bytes(NONCE_SIZE) if nonce is None else nonce
        _check_nonce(None, attrs.fields(Hello).nonce, self._nonce)
        self._hello: Hello | None = None

    def on_hello(self, payload: bytes) -> bytes:
        """Take the connector's first frame; return the challenge frame to send.

        Raises:
            dynamo_core.errors.DecodeError: `payload` is not a hello.
            AuthError: the hello names an unknown node, this node itself, or a client when
                clients are refused. Nothing is sent back then: close the connection.
        """
        hello = _load(payload, Hello.from_dict)
        assert isinstance(hello, Hello)
        if hello.role == "node":
            if hello.node_id == self.node_id:
                raise AuthError(f"a peer claims this node's own id {self.node_id!r}")
            if hello.node_id not in self._peers:
                raise AuthError(f"unknown node id {hello.node_id!r:.80}")
        elif not self.allow_clients:
            raise AuthError("clients are not accepted here")
        self._hello = hello
        proof = b""
        if self._secret is not None:
            proof = _mac(self._secret, b"acceptor", hello, self._nonce, self.node_id)
        return codec.dumps(Challenge(self.node_id, self._nonce, proof).to_dict())

    def on_proof(self, payload: bytes) -> Peer:
        """Take the connector's proof; return who the peer is.

        Raises:
            dynamo_core.errors.DecodeError: `payload` is not a proof.
            AuthError: the proof is wrong or missing (with a secret), or `on_hello` did not
                succeed first.
        """
        hello = self._hello
        if hello is None:
            raise AuthError("proof before hello")
        proof = _load(payload, Proof.from_dict)
        assert isinstance(proof, Proof)
        if self._secret is None:
            return Peer(hello.role, hello.node_id, authenticated=False)
        expected = _mac(self._secret, b"connector", hello, self._nonce, self.node_id)
        if not proof.proof:
            raise AuthError("the peer sent no proof but this node requires the cluster secret")
        if not hmac.compare_digest(proof.proof, expected):
            raise AuthError("wrong proof: the peer does not know the cluster secret")
        return Peer(hello.role, hello.node_id, authenticated=True)


class Connector:
    """The connecting side of one handshake.

    Args:
        role: ``"node"`` or ``"client"``.
        node_id: This node's id (role ``"node"``), `None` for a client.
        secret: The cluster secret, or `None`.
        expect: The id the acceptor must have (a node connecting to a known peer), or `None`.
        nonce: This side's nonce (default: 32 random bytes).

    Raises:
        TypeError, ValueError: an argument is invalid.
    """

    __slots__ = ("_hello", "_secret", "expect")

    def __init__(
        self,
        role: Role,
        node_id: str | None,
        *,
        secret: bytes | None,
        expect: str | None = None,
        nonce: bytes | None = None,
    ) -> None:
        self._secret = check_secret(secret)
        self.expect = expect
        self._hello = Hello(
            role, node_id, secrets.token_bytes(NONCE_SIZE) if nonce is None else nonce
        )

    def hello(self) -> bytes:
        """Return the first frame to send."""
        return codec.dumps(self._hello.to_dict())

    def on_challenge(self, payload: bytes) -> tuple[bytes, Peer]:
        """Take the acceptor's challenge; return the proof frame to send and the acceptor.

        Raises:
            dynamo_core.errors.DecodeError: `payload` is not a challenge.
            AuthError: the acceptor is not the expected node, or (with a secret) its proof is
                missing or wrong.
        """
        challenge = _load(payload, Challenge.from_dict)
        assert isinstance(challenge, Challenge)
        if self.expect is not None and challenge.node_id != self.expect:
            raise AuthError(f"expected node {self.expect!r}, reached {challenge.node_id!r:.80}")
        hello = self._hello
        if self._secret is None:
            return codec.dumps(Proof(b"").to_dict()), Peer("node", challenge.node_id, False)
        expected = _mac(self._secret, b"acceptor", hello, challenge.nonce, challenge.node_id)
        if not challenge.proof:
            raise AuthError("the acceptor sent no proof but this side requires the cluster secret")
        if not hmac.compare_digest(challenge.proof, expected):
            raise AuthError("wrong proof: the acceptor does not know the cluster secret")
        mine = _mac(self._secret, b"connector", hello, challenge.nonce, challenge.node_id)
        return codec.dumps(Proof(mine).to_dict()), Peer("node", challenge.node_id, True)
