"""The connection handshake and the frame seal: who is on the other end, and proof of every frame.

Every connection starts with four frames, whatever the role of the connecting side:

1. the connector sends a [`Hello`][dynamo_core.aio.auth.Hello]: the cluster name, its role
   (``"node"``, ``"client"`` or ``"admin"``), its node id (nodes only) and a fresh random nonce;
2. the acceptor answers with a [`Challenge`][dynamo_core.aio.auth.Challenge]: its own id and
   nonce, and **no proof** — a stranger learns nothing it could test secret guesses against;
3. the connector sends its [`Proof`][dynamo_core.aio.auth.Proof] first;
4. the acceptor checks it and only then sends its own `Proof`.

**Three roles, two secrets.** Nodes prove the *node secret*, clients the *client secret*; a
client never holds the node secret, so whatever role it claims it cannot prove it is a node.
An *admin* (an operator's ``dynamo-core admin`` command, which changes membership) proves the
node secret too: changing the ring is a node's power, so it takes a node's credential. An
acceptor answers client hellos only when it allows clients, and — when it has a node secret
— only when it was also given a client secret.

**Keys.** Both sides hash the transcript — a version label, the cluster name, the role, both ids,
both nonces and the TLS channel binding (``tls-unique``, when the connection is TLS) — and
derive per-connection keys from the role's secret with HKDF-SHA256 (RFC 5869, built from
`hmac`): one proof per direction, one frame key per direction. Fresh nonces stop replays across
connections, distinct labels stop reflection, the ids and the role bind the identity claimed,
the cluster name keeps two clusters that share a secret apart, and the channel binding stops a
relay that terminates TLS on both sides from passing the handshake through.

**Every frame after the handshake is sealed** ([`FrameSeal`][dynamo_core.aio.auth.FrameSeal]):
an HMAC-SHA256 tag over an implicit 64-bit sequence number and the payload, so an injected,
replayed, reordered, dropped or truncated frame fails the check and the connection is closed.
The standard alternative, TLS with a pre-shared key, needs `ssl` PSK callbacks that Python
only has from 3.13; with certificates, use mutual TLS (both layers can be on at once).

**Certificates.** Under mutual TLS, the certificate's subjectAltName URI
(``dynamo-core://node/ID``, ``dynamo-core://client/NAME`` or ``dynamo-core://admin/NAME``,
see [`dynamo_core.aio.tls`][dynamo_core.aio.tls]) must match: a node hello must come with the
certificate of that very node, an admin hello with an admin certificate, and a connector
accepts only the certificate of the node it reached (and meant to reach).

Without a secret and without TLS the handshake only names the peer: use that on loopback or a
trusted network only. The identity a node claims here is the *sender* of every message that
arrives on the connection afterwards; frames never carry their own sender.

Pure: [`Acceptor`][dynamo_core.aio.auth.Acceptor] and
[`Connector`][dynamo_core.aio.auth.Connector] turn frames into frames; the transport moves them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Final, Literal, Self

import attrs

from dynamo_core import codec
from dynamo_core._check import MAX_NODE_ID_LEN, check_bytes, check_node_id, node_id_field
from dynamo_core.errors import DecodeError, DynamoError

__all__ = [
    "DEFAULT_CLUSTER",
    "MAX_SUMMARY_ITEMS",
    "MIN_SECRET_BYTES",
    "NONCE_SIZE",
    "PROOF_SIZE",
    "TAG_SIZE",
    "Acceptor",
    "AuthError",
    "Certified",
    "Challenge",
    "ConfigMismatch",
    "ConfigSummary",
    "Connector",
    "FrameSeal",
    "Hello",
    "Peer",
    "Proof",
    "Role",
    "check_secret",
    "config_differences",
    "load_secret",
    "new_secret",
    "parse_secret",
]

Role = Literal["node", "client", "admin"]
"""What a connecting side is: another node (sending node messages), a client, or an admin
(sending membership changes, proving the node secret)."""

NONCE_SIZE: Final = 32
"""Bytes of a handshake nonce."""

PROOF_SIZE: Final = hashlib.sha256().digest_size
"""Bytes of a handshake proof."""

TAG_SIZE: Final = hashlib.sha256().digest_size
"""Bytes of the tag that seals each frame after the handshake."""

MIN_SECRET_BYTES: Final = 32
"""The shortest secret accepted: 32 bytes (256 bits), random, so guessing is hopeless."""

DEFAULT_CLUSTER: Final = "dynamo-core"
"""The cluster name when none is given."""

ConfigSummary = tuple[tuple[str, str], ...]
"""``(name, value)`` pairs, sorted by name: what two nodes of one cluster must agree on (see
[`config_summary`][dynamo_core.aio.config.config_summary])."""

MAX_SUMMARY_ITEMS: Final = 16
"""The most entries a configuration summary may have on the wire."""

_MAX_BINDING: Final = 128
_ROLES: Final = ("node", "client", "admin")
_LABEL: Final = b"dynamo-core/aio/handshake/v2"


class AuthError(DynamoError):
    """A handshake or a sealed frame failed.

    A wrong or missing proof, an unknown id, a refused role or certificate, another cluster, or
    a frame whose tag does not check out.
    """


class ConfigMismatch(AuthError):
    """A node's cluster configuration differs from this node's.

    Attributes:
        reply: The challenge to send before closing, so the other side can name the difference
            in its own log too.
    """

    def __init__(self, message: str, reply: bytes) -> None:
        super().__init__(message)
        self.reply = reply


def config_differences(mine: ConfigSummary, theirs: ConfigSummary) -> list[str]:
    """Say how two summaries differ, one phrase per differing entry (empty when equal)."""
    here, there = dict(mine), dict(theirs)
    out = []
    for name in sorted(set(here) | set(there)):
        a, b = here.get(name, "-"), there.get(name, "-")
        if a != b:
            what = "the node lists differ" if name == "nodes" else f"{name} {a} here, {b} there"
            out.append(what)
    return out


# -- secrets -----------------------------------------------------------------------------------


def check_secret(secret: object, name: str = "secret") -> bytes | None:
    """Return `secret` if it is `None` or `bytes` of at least 32 bytes.

    Raises:
        TypeError: `secret` is not `bytes` or `None`.
        ValueError: `secret` is shorter than 32 bytes.
    """
    if secret is None:
        return None
    data = check_bytes(secret, name)
    if len(data) < MIN_SECRET_BYTES:
        raise ValueError(
            f"{name} must be at least {MIN_SECRET_BYTES} random bytes, got {len(data)} "
            "(make one with `dynamo-core secret`)"
        )
    return data


def new_secret() -> str:
    """Return a fresh secret: 32 random bytes as 64 hex digits (``dynamo-core secret``)."""
    return secrets.token_hex(MIN_SECRET_BYTES)


def parse_secret(text: str, name: str = "secret") -> bytes:
    """Decode a secret written as hex or as standard base64 (surrounding whitespace ignored).

    Text made only of an even number of hex digits is hex; anything else must be base64.

    Raises:
        TypeError: `text` is not a `str`.
        ValueError: `text` is neither, or decodes to fewer than 32 bytes.
    """
    if type(text) is not str:
        raise TypeError(f"{name} must be a str of hex or base64, not {type(text).__name__}")
    text = text.strip()
    try:
        if text and len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text):
            data = bytes.fromhex(text)
        else:
            data = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise ValueError(
            f"{name} must be hex or base64 of at least {MIN_SECRET_BYTES} random bytes "
            "(make one with `dynamo-core secret`)"
        ) from None
    checked = check_secret(data, name)
    assert checked is not None
    return checked


def load_secret(path: str | os.PathLike[str]) -> bytes:
    """Read a secret file: hex or base64 of at least 32 bytes, readable by its owner only.

    The CLI and the Python API read secrets only through this function, so a node and a client
    given the same file always agree.

    Raises:
        OSError: the file cannot be read.
        PermissionError: the file is readable by its group or by others (``chmod 600`` it).
        ValueError: the content is not a valid secret.
    """
    file = Path(path)
    with file.open("rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise PermissionError(
                f"{file} is accessible by its group or others (mode {stat.S_IMODE(mode):o}); "
                f"run `chmod 600 {file}`"
            )
        raw = f.read(4096)
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError(f"{file} must hold the secret as hex or base64 text") from None
    return parse_secret(text, str(file))


# -- key schedule ------------------------------------------------------------------------------


def _hkdf(secret: bytes, salt: bytes, *labels: bytes) -> list[bytes]:
    """HKDF-SHA256 (RFC 5869): extract with `salt`, one 32-byte expansion per label."""
    prk = hmac.digest(salt, secret, "sha256")
    return [hmac.digest(prk, label + b"\x01", "sha256") for label in labels]


def _transcript(
    cluster: str, hello: Hello, acceptor: str, acceptor_nonce: bytes, binding: bytes
) -> bytes:
    parts = [
        _LABEL,
        cluster.encode("utf-8"),
        hello.role.encode("ascii"),
        (hello.node_id or "").encode("utf-8"),
        acceptor.encode("utf-8"),
        hello.nonce,
        acceptor_nonce,
        binding,
    ]
    # Length-prefix every part so no two different tuples give the same message.
    return hashlib.sha256(b"".join(len(p).to_bytes(4, "big") + p for p in parts)).digest()


class FrameSeal:
    """The per-frame MAC of one authenticated connection, both directions.

    `seal` appends to each payload sent an HMAC-SHA256 tag over the next send sequence number
    and the payload; `open` checks and strips the tag of each payload received against the
    next receive sequence number. Sequence numbers are implicit (never sent), so a replayed,
    reordered or dropped frame fails the check like a forged one.

    Made by the handshake (see [`Peer`][dynamo_core.aio.auth.Peer]); not thread-safe.
    """

    __slots__ = ("_receive_key", "_received", "_send_key", "_sent")

    def __init__(self, send_key: bytes, receive_key: bytes) -> None:
        self._send_key = send_key
        self._receive_key = receive_key
        self._sent = 0
        self._received = 0

    def seal(self, payload: bytes) -> bytes:
        """Return `payload` followed by its tag."""
        tag = hmac.digest(self._send_key, self._sent.to_bytes(8, "big") + payload, "sha256")
        self._sent += 1
        return payload + tag

    def open(self, frame: bytes) -> bytes:
        """Return the payload of a sealed `frame`.

        Raises:
            AuthError: the tag is missing or wrong (the connection must be closed).
        """
        if len(frame) < TAG_SIZE:
            raise AuthError("a frame without its tag")
        payload, tag = frame[:-TAG_SIZE], frame[-TAG_SIZE:]
        seq = self._received.to_bytes(8, "big")
        if not hmac.compare_digest(tag, hmac.digest(self._receive_key, seq + payload, "sha256")):
            raise AuthError(
                f"frame {self._received} has a wrong tag: forged, replayed or out of order"
            )
        self._received += 1
        return payload


# -- handshake messages ------------------------------------------------------------------------


def _check_role(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if value not in _ROLES:
        raise ValueError(f"{attribute.name} must be 'node', 'client' or 'admin', got {value!r:.40}")


def _check_nonce(_: object, attribute: attrs.Attribute[bytes], value: object) -> None:
    if len(check_bytes(value, attribute.name)) != NONCE_SIZE:
        raise ValueError(f"{attribute.name} must be {NONCE_SIZE} bytes, got {len(value)}")  # type: ignore[arg-type]


def _check_proof(_: object, attribute: attrs.Attribute[bytes], value: object) -> None:
    if len(check_bytes(value, attribute.name)) not in (0, PROOF_SIZE):
        raise ValueError(f"{attribute.name} must be empty or {PROOF_SIZE} bytes")


def _check_summary(_: object, attribute: attrs.Attribute[ConfigSummary], value: object) -> None:
    if type(value) is not tuple or len(value) > MAX_SUMMARY_ITEMS:
        raise ValueError(f"{attribute.name} must be a tuple of at most {MAX_SUMMARY_ITEMS} pairs")
    for item in value:
        if not (
            type(item) is tuple
            and len(item) == 2
            and all(type(x) is str and 1 <= len(x) <= 64 for x in item)
        ):
            raise ValueError(f"{attribute.name} must hold (name, value) pairs of short strings")
    if [name for name, _ in value] != sorted({name for name, _ in value}):
        raise ValueError(f"{attribute.name} must be sorted by name, without duplicates")


def _decode_summary(obj: Mapping[str, object], what: str) -> ConfigSummary:
    raw = obj.get("config", {})
    if not isinstance(raw, dict) or len(raw) > MAX_SUMMARY_ITEMS:
        raise DecodeError(f"{what} must be an object of at most {MAX_SUMMARY_ITEMS} entries")
    return tuple(
        sorted(
            (codec.as_str(name, f"{what} name", max_len=64), codec.as_str(value, what, max_len=64))
            for name, value in raw.items()
        )
    )


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


@attrs.frozen
class Hello:
    """Handshake, frame 1 (connector to acceptor).

    Attributes:
        role: ``"node"``, ``"client"`` or ``"admin"``.
        node_id: The connecting node's id; `None` for a client or an admin.
        nonce: 32 fresh random bytes.
        cluster: The cluster the connector belongs to.
        config: A node's [configuration summary][dynamo_core.aio.config.config_summary], or
            empty.
    """

    role: Role = attrs.field(validator=_check_role)
    node_id: str | None = attrs.field(validator=attrs.validators.optional(node_id_field))
    nonce: bytes = attrs.field(validator=_check_nonce)
    cluster: str = attrs.field(default=DEFAULT_CLUSTER, validator=node_id_field)
    config: ConfigSummary = attrs.field(default=(), validator=_check_summary)

    def __attrs_post_init__(self) -> None:
        if (self.role == "node") != (self.node_id is not None):
            raise ValueError("node_id must be given for role 'node' and only for it")

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as an ``aio_hello`` envelope."""
        return codec.envelope(
            "aio_hello",
            {
                "role": self.role,
                "id": self.node_id,
                "nonce": codec.encode_bytes(self.nonce),
                "cluster": self.cluster,
                "config": dict(self.config),
            },
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode an ``aio_hello`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid hello (an older release's
                hello, without a cluster name, is not).
        """
        obj = codec.open_envelope(
            data, "aio_hello", required=("role", "id", "nonce", "cluster"), optional=("config",)
        )
        role = codec.as_str(obj["role"], "aio_hello.role", max_len=8)
        raw_id = obj["id"]
        node_id = (
            None
            if raw_id is None
            else codec.as_str(raw_id, "aio_hello.id", max_len=MAX_NODE_ID_LEN)
        )
        nonce = _decode_nonce(obj["nonce"], "aio_hello.nonce")
        cluster = codec.as_str(obj["cluster"], "aio_hello.cluster", max_len=MAX_NODE_ID_LEN)
        config = _decode_summary(obj, "aio_hello.config")
        return _build(cls, "aio_hello", role, node_id, nonce, cluster, config)  # type: ignore[return-value]


@attrs.frozen
class Challenge:
    """Handshake, frame 2 (acceptor to connector): no proof, only who answers and a nonce.

    Attributes:
        node_id: The accepting node's id.
        nonce: 32 fresh random bytes.
        config: The acceptor's configuration summary, for a node connector only; or empty.
    """

    node_id: str = attrs.field(validator=node_id_field)
    nonce: bytes = attrs.field(validator=_check_nonce)
    config: ConfigSummary = attrs.field(default=(), validator=_check_summary)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as an ``aio_challenge`` envelope."""
        return codec.envelope(
            "aio_challenge",
            {
                "id": self.node_id,
                "nonce": codec.encode_bytes(self.nonce),
                "config": dict(self.config),
            },
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode an ``aio_challenge`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid challenge.
        """
        obj = codec.open_envelope(
            data, "aio_challenge", required=("id", "nonce"), optional=("config",)
        )
        return _build(  # type: ignore[return-value]
            cls,
            "aio_challenge",
            codec.as_str(obj["id"], "aio_challenge.id", max_len=MAX_NODE_ID_LEN),
            _decode_nonce(obj["nonce"], "aio_challenge.nonce"),
            _decode_summary(obj, "aio_challenge.config"),
        )


@attrs.frozen
class Proof:
    """Handshake, frames 3 (connector) and 4 (acceptor): a proof, empty without a secret."""

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
        proof = codec.as_bytes(obj["proof"], "aio_proof.proof", max_len=PROOF_SIZE)
        return _build(cls, "aio_proof", proof)  # type: ignore[return-value]


@attrs.frozen
class Certified:
    """What TLS established about the other end of a connection.

    Attributes:
        identity: ``(role, name)`` from the peer certificate's ``dynamo-core://`` URI, or
            `None` when the certificate names none (see
            [`certificate_identity`][dynamo_core.aio.tls.certificate_identity]).
        binding: The TLS channel binding (``tls-unique``), bound into the handshake keys.
    """

    identity: tuple[Role, str] | None
    binding: bytes = attrs.field(default=b"")

    def __attrs_post_init__(self) -> None:
        if len(check_bytes(self.binding, "binding")) > _MAX_BINDING:
            raise ValueError(f"binding must be at most {_MAX_BINDING} bytes")


@attrs.frozen
class Peer:
    """The authenticated other end of a connection.

    Attributes:
        role: ``"node"``, ``"client"`` or ``"admin"``.
        node_id: The peer node's id (for a client or an admin: `None`).
        authenticated: Whether the peer proved its role's secret or showed its certificate.
        seal: The connection's frame seal (with a secret), or `None` (no secret: frames go
            as they are, protected by TLS if it is on).
    """

    role: Role
    node_id: str | None
    authenticated: bool
    seal: FrameSeal | None = attrs.field(default=None, eq=False, repr=False)


def _load(payload: bytes, decoder: Callable[[object], object]) -> object:
    return decoder(codec.loads(payload, max_bytes=4096))


def _check_certificate(certified: Certified, role: Role, node_id: str | None) -> None:
    """Refuse a connection whose certificate does not name the identity claimed."""
    identity = certified.identity
    if identity is None:
        raise AuthError("the peer certificate names no dynamo-core:// identity")
    kind, name = identity
    if role == "node" and identity != ("node", node_id):
        raise AuthError(
            f"the certificate of {kind} {name!r:.80} cannot act as node {node_id!r:.80}"
        )
    if role == "admin" and kind != "admin":
        raise AuthError(f"the certificate of {kind} {name!r:.80} cannot act as an admin")


class Acceptor:
    """The accepting side of one handshake.

    Args:
        node_id: This node's id.
        secret: The node secret (proved by nodes), or `None`.
        client_secret: The client secret (proved by clients), or `None`. With a node secret
            and no client secret, clients are refused.
        peers: The node ids allowed to connect as nodes.
        allow_clients: Whether clients may connect at all.
        allow_admin: Whether admins may connect at all (they prove the node secret, or show
            an admin certificate under TLS).
        cluster: This node's cluster name; hellos from another cluster are refused.
        certified: What TLS established about the peer, or `None` without TLS.
        config: This node's configuration summary (empty: no check); a node whose summary
            differs is refused with [`ConfigMismatch`][dynamo_core.aio.auth.ConfigMismatch].
        nonce: This side's nonce (default: 32 random bytes; tests pass their own).

    Raises:
        TypeError, ValueError: an argument is invalid.
    """

    __slots__ = (
        "_certified",
        "_client_secret",
        "_hello",
        "_keys",
        "_nonce",
        "_peers",
        "_secret",
        "allow_admin",
        "allow_clients",
        "cluster",
        "config",
        "node_id",
    )

    def __init__(
        self,
        node_id: str,
        *,
        secret: bytes | None,
        client_secret: bytes | None = None,
        peers: Collection[str],
        allow_clients: bool = True,
        allow_admin: bool = True,
        cluster: str = DEFAULT_CLUSTER,
        certified: Certified | None = None,
        config: ConfigSummary = (),
        nonce: bytes | None = None,
    ) -> None:
        self.node_id = check_node_id(node_id, "node_id")
        self.allow_admin = bool(allow_admin)
        self._secret = check_secret(secret)
        self._client_secret = check_secret(client_secret, "client_secret")
        self._peers = frozenset(peers)
        self.allow_clients = allow_clients
        self.cluster = check_node_id(cluster, "cluster")
        self._certified = certified
        _check_summary(None, attrs.fields(Hello).config, config)
        self.config = config
        self._nonce = secrets.token_bytes(NONCE_SIZE) if nonce is None else nonce
        _check_nonce(None, attrs.fields(Hello).nonce, self._nonce)
        self._hello: Hello | None = None
        self._keys: list[bytes] | None = None

    def on_hello(self, payload: bytes) -> bytes:
        """Take the connector's first frame; return the challenge frame to send.

        Raises:
            dynamo_core.errors.DecodeError: `payload` is not a hello.
            AuthError: the hello is from another cluster, names an unknown node or this node
                itself, comes with a certificate that does not name it, or is from a client
                (an admin) when clients (admins) are refused. Nothing is sent back then:
                close the connection.
            ConfigMismatch: a node's configuration summary differs: send its `reply`, then
                close the connection.
        """
        hello = _load(payload, Hello.from_dict)
        assert isinstance(hello, Hello)
        if hello.cluster != self.cluster:
            raise AuthError(
                f"the peer is in cluster {hello.cluster!r:.80}, this node in {self.cluster!r}"
            )
        if hello.role == "node":
            if hello.node_id == self.node_id:
                raise AuthError(f"a peer claims this node's own id {self.node_id!r}")
            if hello.node_id not in self._peers:
                raise AuthError(f"unknown node id {hello.node_id!r:.80}")
        elif hello.role == "admin":
            if not self.allow_admin:
                raise AuthError("admins are not accepted here")
        elif not self.allow_clients:
            raise AuthError("clients are not accepted here")
        elif self._secret is not None and self._client_secret is None:
            raise AuthError("clients are not accepted here (this node has no client secret)")
        if self._certified is not None:
            _check_certificate(self._certified, hello.role, hello.node_id)
        key = self._client_secret if hello.role == "client" else self._secret  # admin: node's
        if key is not None:
            binding = b"" if self._certified is None else self._certified.binding
            salt = _transcript(self.cluster, hello, self.node_id, self._nonce, binding)
            self._keys = _hkdf(key, salt, b"connector proof", b"acceptor proof", b"c2a", b"a2c")
        self._hello = hello
        if hello.role != "node":  # clients are not told the configuration
            return codec.dumps(Challenge(self.node_id, self._nonce).to_dict())
        reply = codec.dumps(Challenge(self.node_id, self._nonce, self.config).to_dict())
        differences = config_differences(self.config, hello.config) if hello.config else []
        if self.config and differences:
            self._hello = None
            raise ConfigMismatch(
                f"node {hello.node_id!r} has another cluster configuration: "
                + "; ".join(differences),
                reply,
            )
        return reply

    def on_proof(self, payload: bytes) -> tuple[bytes, Peer]:
        """Take the connector's proof; return this side's proof frame to send, and the peer.

        Raises:
            dynamo_core.errors.DecodeError: `payload` is not a proof.
            AuthError: the proof is wrong or missing (with a secret for the peer's role), or
                `on_hello` did not succeed first.
        """
        hello = self._hello
        if hello is None:
            raise AuthError("proof before hello")
        self._hello = None  # one proof per handshake
        proof = _load(payload, Proof.from_dict)
        assert isinstance(proof, Proof)
        certified = self._certified is not None
        if self._keys is None:
            return codec.dumps(Proof(b"").to_dict()), Peer(hello.role, hello.node_id, certified)
        mine, theirs, c2a, a2c = self._keys
        if not proof.proof:
            raise AuthError(
                f"the peer sent no proof but this node requires the {hello.role} secret"
            )
        if not hmac.compare_digest(proof.proof, mine):
            raise AuthError(f"wrong proof: the peer does not know the {hello.role} secret")
        peer = Peer(hello.role, hello.node_id, True, FrameSeal(a2c, c2a))
        return codec.dumps(Proof(theirs).to_dict()), peer


class Connector:
    """The connecting side of one handshake.

    Args:
        role: ``"node"``, ``"client"`` or ``"admin"``.
        node_id: This node's id (role ``"node"``), `None` for a client or an admin.
        secret: The secret of this role (the node secret for a node or an admin, the client
            secret for a client), or `None`.
        expect: The id the acceptor must have (a node connecting to a known peer), or `None`.
        cluster: The cluster name.
        certified: What TLS established about the acceptor, or `None` without TLS.
        config: This node's configuration summary (role ``"node"``; empty: no check).
        nonce: This side's nonce (default: 32 random bytes).

    Raises:
        TypeError, ValueError: an argument is invalid.
    """

    __slots__ = ("_certified", "_challenge", "_hello", "_keys", "_secret", "expect")

    def __init__(
        self,
        role: Role,
        node_id: str | None,
        *,
        secret: bytes | None,
        expect: str | None = None,
        cluster: str = DEFAULT_CLUSTER,
        certified: Certified | None = None,
        config: ConfigSummary = (),
        nonce: bytes | None = None,
    ) -> None:
        self._secret = check_secret(secret)
        self.expect = None if expect is None else check_node_id(expect, "expect")
        self._certified = certified
        self._hello = Hello(
            role,
            node_id,
            secrets.token_bytes(NONCE_SIZE) if nonce is None else nonce,
            cluster,
            config,
        )
        self._challenge: Challenge | None = None
        self._keys: list[bytes] | None = None

    def hello(self) -> bytes:
        """Return the first frame to send.

        Raises:
            AuthError: TLS is on and the acceptor's certificate is not a node's (or, with
                `expect`, not that node's): nothing is sent to it.
        """
        certified = self._certified
        if certified is not None:
            identity = certified.identity
            if identity is None:
                raise AuthError("the acceptor's certificate names no dynamo-core:// identity")
            if identity[0] != "node":
                raise AuthError(f"the acceptor's certificate is a {identity[0]}'s, not a node's")
            if self.expect is not None:
                _check_certificate(certified, "node", self.expect)
        return codec.dumps(self._hello.to_dict())

    def on_challenge(self, payload: bytes) -> bytes:
        """Take the acceptor's challenge; return this side's proof frame to send.

        Raises:
            dynamo_core.errors.DecodeError: `payload` is not a challenge.
            AuthError: the acceptor is not the expected node, its certificate does not name
                the node it claims to be, or (between nodes) its configuration summary differs.
        """
        challenge = _load(payload, Challenge.from_dict)
        assert isinstance(challenge, Challenge)
        if self.expect is not None and challenge.node_id != self.expect:
            raise AuthError(f"expected node {self.expect!r}, reached {challenge.node_id!r:.80}")
        if self._certified is not None:
            _check_certificate(self._certified, "node", challenge.node_id)
        mine = self._hello.config
        differences = config_differences(mine, challenge.config) if challenge.config else []
        if mine and differences:
            raise AuthError(
                f"node {challenge.node_id!r} has another cluster configuration: "
                + "; ".join(differences)
            )
        self._challenge = challenge
        if self._secret is None:
            return codec.dumps(Proof(b"").to_dict())
        binding = b"" if self._certified is None else self._certified.binding
        hello = self._hello
        salt = _transcript(hello.cluster, hello, challenge.node_id, challenge.nonce, binding)
        self._keys = _hkdf(
            self._secret, salt, b"connector proof", b"acceptor proof", b"c2a", b"a2c"
        )
        return codec.dumps(Proof(self._keys[0]).to_dict())

    def on_proof(self, payload: bytes) -> Peer:
        """Take the acceptor's proof; return who the acceptor is.

        Raises:
            dynamo_core.errors.DecodeError: `payload` is not a proof.
            AuthError: (with a secret) the acceptor's proof is missing or wrong, or
                `on_challenge` did not succeed first.
        """
        challenge = self._challenge
        if challenge is None:
            raise AuthError("proof before challenge")
        self._challenge = None
        proof = _load(payload, Proof.from_dict)
        assert isinstance(proof, Proof)
        if self._keys is None:
            return Peer("node", challenge.node_id, self._certified is not None)
        _, expected, c2a, a2c = self._keys
        if not proof.proof:
            raise AuthError("the acceptor sent no proof but this side requires the secret")
        if not hmac.compare_digest(proof.proof, expected):
            raise AuthError("wrong proof: the acceptor does not know the secret")
        return Peer("node", challenge.node_id, True, FrameSeal(c2a, a2c))
