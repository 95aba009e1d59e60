"""The cluster file and the configuration check in the handshake."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynamo_core import codec
from dynamo_core.aio.auth import (
    NONCE_SIZE,
    Acceptor,
    AuthError,
    Challenge,
    ConfigMismatch,
    Connector,
    Hello,
    config_differences,
)
from dynamo_core.aio.config import config_summary, load_cluster_file
from dynamo_core.errors import DecodeError

FILE = """
cluster = "carts"
n = 2
r = 1
w = 1
partitions = 8
strict = true

[nodes]
B = "127.0.0.1:7002"
A = "127.0.0.1:7001"

[security]
secret_file = "node.secret"
client_secret_file = "client.secret"
tls_ca = "pki/ca.pem"
tls_cert = "pki/node-{id}.pem"
tls_key = "pki/node-{id}.key"
"""


def summary(**changes: object) -> tuple[tuple[str, str], ...]:
    options: dict[str, object] = {
        "nodes": ["A", "B", "C"],
        "n": 3,
        "r": 2,
        "w": 2,
        "partitions": 64,
        "strict": False,
        "security": "secret",
    }
    options.update(changes)
    return config_summary(**options)  # type: ignore[arg-type]


def test_a_cluster_file_loads_with_paths_relative_to_it(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(FILE)
    cluster = load_cluster_file(path)
    assert cluster.cluster == "carts"
    assert cluster.nodes == (("A", "127.0.0.1:7001"), ("B", "127.0.0.1:7002"))
    assert (cluster.n, cluster.r, cluster.w, cluster.partitions, cluster.strict) == (
        2,
        1,
        1,
        8,
        True,
    )
    assert cluster.secret_file == tmp_path / "node.secret"
    assert cluster.node_file(cluster.tls_cert, "B") == str(tmp_path / "pki" / "node-B.pem")
    assert cluster.address("B") == "127.0.0.1:7002"
    with pytest.raises(ValueError, match="names no node 'Z'"):
        cluster.address("Z")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("n = 3\nreplicas = 3\n[nodes]\nA = 'h:1'\n", "unknown keys \\['replicas'\\]"),
        ("n = 3\n", "\\[nodes\\] must list"),
        ("n = 0\n[nodes]\nA = 'h:1'\n", "n must be a positive integer"),
        ("strict = 'yes'\n[nodes]\nA = 'h:1'\n", "strict must be true or false"),
        ("[nodes]\nA = 7\n", "nodes.A must be"),
        ("[nodes]\nA = 'h:1'\n[security]\nsecret = 'x'\n", "\\[security\\] keys"),
        ("[nodes\n", "not a valid TOML"),
    ],
)
def test_bad_cluster_files_name_the_problem(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=error):
        load_cluster_file(path)


def test_summaries_name_every_difference_and_hide_member_names() -> None:
    mine = summary()
    assert config_differences(mine, summary()) == []
    assert config_differences(mine, summary(nodes=["C", "B", "A"])) == []  # order is irrelevant
    assert config_differences(mine, summary(n=5, strict=True, nodes=["A", "B"])) == [
        "n 3 here, 5 there",
        "the node lists differ",
        "quorum sloppy here, strict there",
    ]
    assert "A" not in dict(mine)["nodes"]


def test_nodes_with_different_configurations_refuse_each_other_and_both_say_why() -> None:
    connector = Connector("node", "A", secret=None, expect="B", config=summary(n=5))
    acceptor = Acceptor("B", secret=None, peers={"A"}, config=summary())
    with pytest.raises(ConfigMismatch, match="node 'A' has another .*: n 3 here, 5 there") as info:
        acceptor.on_hello(connector.hello())
    with pytest.raises(AuthError, match="node 'B' has another .*: n 5 here, 3 there"):
        connector.on_challenge(info.value.reply)


def test_equal_or_missing_summaries_pass_and_clients_are_not_told() -> None:
    for mine, theirs in ((summary(), summary()), (summary(), ()), ((), summary())):
        connector = Connector("node", "A", secret=None, config=theirs)
        acceptor = Acceptor("B", secret=None, peers={"A"}, config=mine)
        connector.on_challenge(acceptor.on_hello(connector.hello()))
    acceptor = Acceptor("B", secret=None, peers={"A"}, config=summary())
    challenge = Challenge.from_dict(
        codec.loads(acceptor.on_hello(Connector("client", None, secret=None).hello()))
    )
    assert challenge.config == ()


def test_summaries_on_the_wire_are_checked() -> None:
    hello = Hello("node", "A", b"n" * NONCE_SIZE, "c", summary())
    assert Hello.from_dict(hello.to_dict()) == hello
    data = hello.to_dict()
    data["config"] = {f"k{i}": "v" for i in range(17)}
    with pytest.raises(DecodeError, match="at most 16"):
        Hello.from_dict(data)
    data["config"] = {"n": 3}
    with pytest.raises(DecodeError, match="string"):
        Hello.from_dict(data)
    with pytest.raises(ValueError, match="sorted"):
        Hello("node", "A", b"n" * NONCE_SIZE, "c", (("z", "1"), ("a", "2")))
