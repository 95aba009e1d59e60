"""The cluster commands of ``dynamo-core``: ``serve``, ``put``, ``get``, ``stats``, ``secret``.

``admin`` (membership changes) lives in [`dynamo_core.cli.admin`][dynamo_core.cli.admin] and
shares the security options and the cluster-file handling defined here.

Only argparse here at import time: asyncio and `dynamo_core.aio` load when a command runs, so
``import dynamo_core`` (and ``dynamo-core demo``) stay light.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

    from dynamo_core.aio.transport import Address

__all__ = ["add_commands"]

_INCARNATION_FILE = "incarnation"
_STORE_FILE = "node.sqlite3"


class UsageError(Exception):
    """A bad command line: the command prints it in one line and exits 2."""


def _peers(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, address = part.partition("=")
        if not sep or not name or not address:
            raise UsageError(f"--peers entries must be ID=HOST:PORT, got {part!r}")
        if name in out:
            raise UsageError(f"--peers names {name!r} twice")
        out[name] = address
    return out


def load_secret_option(path: str | None, flag: str = "--secret-file") -> bytes | None:
    """The secret in the file `path` given to `flag`, or `None`; a bad file is a usage error."""
    if path is None:
        return None
    from dynamo_core.aio.auth import load_secret  # noqa: PLC0415 - the one loader of the API

    try:
        return load_secret(path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{flag}: {exc}") from None


def tls_option(args: argparse.Namespace) -> tuple[ssl.SSLContext, ssl.SSLContext] | None:
    """The TLS contexts of ``--tls-cert``, ``--tls-key`` and ``--tls-ca``, or `None`."""
    given = [args.tls_cert, args.tls_key, args.tls_ca]
    if not any(given):
        return None
    if not all(given):
        raise UsageError("--tls-cert, --tls-key and --tls-ca go together")
    from dynamo_core.aio import tls_contexts  # noqa: PLC0415 - loads asyncio

    try:
        return tls_contexts(args.tls_cert, args.tls_key, args.tls_ca)
    except OSError as exc:  # ssl.SSLError is an OSError
        raise UsageError(f"cannot load the TLS files: {exc}") from None


def counted(n: int, noun: str) -> str:
    """``1 seed``, ``2 seeds``: counts printed for people."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def positive_number(text: str, what: str = "a number") -> float:
    """An argparse type: a finite number above zero (`what` names it in the error)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be {what} above 0, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above zero."""
    return positive_number(text, "a number of seconds")


def _listen_address(text: str) -> Address:
    from dynamo_core.aio import parse_address  # noqa: PLC0415 - loads asyncio

    try:
        return parse_address(text, "--listen")
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def _check_can_listen(address: Address) -> None:
    """Bind the address once before anything is created, so a taken port changes nothing."""
    import socket  # noqa: PLC0415

    try:
        infos = socket.getaddrinfo(address[0], address[1], type=socket.SOCK_STREAM)
        family, kind, proto, _, sockaddr = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(sockaddr)
    except OSError as exc:
        raise _CannotListen(f"cannot listen on {address[0]}:{address[1]}: {exc}") from None


class _CannotListen(Exception):
    pass


def _data_directory(text: str) -> Path:
    """Check --data without creating it: a directory, or a path one can be created at."""
    data = Path(text)
    if data.exists():
        if not data.is_dir():
            raise UsageError(f"--data must be a directory, and {text!r} is not one")
        if not os.access(data, os.R_OK | os.W_OK | os.X_OK):
            raise UsageError(f"--data {text!r} is not writable by this user")
        return data
    parent = data.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--data {text!r} cannot be created: {str(parent)!r} is not writable")
    return data


class _WallClock:
    """Wall time read once at start, then advanced by the monotonic clock.

    A durable node keeps hints whose times must survive a reboot (a wall-time base), and runs
    timers that must not jump when NTP steps the wall clock (monotonic progress): this gives it
    both, one ``now`` for the node.
    """

    def __init__(self) -> None:
        self._offset = time.time() - time.monotonic()

    def now(self) -> float:
        return self._offset + time.monotonic()


def _begin(address: Address, data: Path, text: str) -> int:
    """Create the data directory and count this start (returned), once the port is free.

    Called after every argument is checked, so a failed start creates nothing.
    """
    _check_can_listen(address)
    try:
        data.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot use --data {text!r}: {exc}") from None
    try:
        return next_incarnation(data)
    except (OSError, ValueError) as exc:  # a full disk: never start without recording it
        raise UsageError(f"cannot record the incarnation in {text!r}: {exc}") from None


_PLACEMENT = ("n", "r", "w", "partitions", "strict")


def apply_cluster_file(args: argparse.Namespace, *, node: bool, admin: bool = False) -> None:
    """Fill `args` from ``--config``; a flag given on the command line must agree with it.

    A node takes everything; a client the node addresses, the client secret and the CA; an
    admin (`admin`) the node addresses, the **node** secret and the CA.
    """
    if args.config is None:
        return
    from dynamo_core.aio.config import load_cluster_file  # noqa: PLC0415

    try:
        cluster = load_cluster_file(args.config)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--config: {exc}") from None

    def take(name: str, value: object, default: object) -> None:
        given = getattr(args, name)
        if given is not None and given != default and str(given) != str(value):
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} {given} contradicts {args.config}, which says {value}")
        setattr(args, name, value)

    take("cluster", cluster.cluster, args.flag_defaults["cluster"])
    files: dict[str, object] = {"tls_ca": cluster.tls_ca}
    if node:
        for name in _PLACEMENT:
            take(name, getattr(cluster, name), args.flag_defaults[name])
        try:
            address = cluster.address(args.id)
        except ValueError as exc:
            raise UsageError(f"--config: {exc}") from None
        if args.listen is None:
            args.listen = address
        peers = ",".join(f"{i}={a}" for i, a in cluster.nodes if i != args.id)
        take("peers", peers, "")
        if cluster.members is not None and not args.join:  # a joining node learns them
            take("members", ",".join(cluster.members), None)
        files |= {
            "secret_file": cluster.secret_file,
            "client_secret_file": cluster.client_secret_file,
            "tls_cert": cluster.node_file(cluster.tls_cert, args.id),
            "tls_key": cluster.node_file(cluster.tls_key, args.id),
        }
    else:
        if args.nodes is None:  # a client may talk to fewer nodes than the file lists
            args.nodes = ",".join(a for _, a in cluster.nodes)
        files["secret_file"] = cluster.secret_file if admin else cluster.client_secret_file
    for name, value in files.items():
        if value is not None:
            take(name, str(value), None)


def _summary(
    args: argparse.Namespace, peers: dict[str, str], secret: bytes | None, tls: object
) -> tuple[tuple[str, str], ...]:
    from dynamo_core.aio.config import config_summary  # noqa: PLC0415

    modes = [m for m, on in (("secret", secret is not None), ("tls", tls is not None)) if on]
    return config_summary(
        nodes=[args.id, *peers],
        n=args.n,
        r=args.r,
        w=args.w,
        partitions=args.partitions,
        strict=args.strict,
        security="+".join(modes) or "none",
    )


def _node_security(
    args: argparse.Namespace, host: str
) -> tuple[bytes | None, bytes | None, tuple[ssl.SSLContext, ssl.SSLContext] | None]:
    """The node secret, the client secret and the TLS contexts of `serve`, checked."""
    from dynamo_core.aio.transport import is_loopback  # noqa: PLC0415

    secret = load_secret_option(args.secret_file)
    client_secret = load_secret_option(args.client_secret_file, "--client-secret-file")
    if client_secret is not None and client_secret == secret:
        raise UsageError("--client-secret-file must hold another secret than --secret-file")
    tls = tls_option(args)
    if secret is None and tls is None and not is_loopback(host) and not args.insecure:
        raise UsageError(
            f"refusing to listen on {args.listen} with neither --secret-file nor TLS: anyone "
            "who reaches it could read, write and pose as a node (add --insecure to do it anyway)"
        )
    return secret, client_secret, tls


def next_incarnation(data: Path) -> int:
    """Bump and return the boot counter kept in `data`.

    Written atomically: a temporary file is written and fsynced, renamed over the counter, and
    the directory fsynced, so a crash leaves the old counter or the new one, never neither.

    Raises:
        OSError: the directory cannot be written.
        ValueError: the counter file is corrupt.
    """
    path = data / _INCARNATION_FILE
    previous = -1
    if path.exists():
        text = path.read_text().strip()
        if not text.isdigit():
            raise ValueError(f"{path} does not hold a boot counter: {text[:40]!r}")
        previous = int(text)
    incarnation = (previous + 1) % 2**31
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        f.write(f"{incarnation}\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    fd = os.open(data, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return incarnation


def _serve(args: argparse.Namespace) -> int:  # noqa: PLR0915 - the start-up steps, in order
    import asyncio  # noqa: PLC0415 - the cluster commands load asyncio on use
    import logging  # noqa: PLC0415
    import signal  # noqa: PLC0415

    from dynamo_core import HashRing, Node, NodeConfig, QuorumPolicy, SQLiteStorage  # noqa: PLC0415
    from dynamo_core.aio import TcpTransport, TransportConfig, serve  # noqa: PLC0415
    from dynamo_core.errors import StorageError  # noqa: PLC0415

    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    apply_cluster_file(args, node=True)
    peers = _peers(args.peers)
    if args.id in peers:
        raise UsageError(f"--peers must not name this node ({args.id!r})")
    if args.listen is None:
        raise UsageError("--listen is required (or --config naming this node's address)")
    address = _listen_address(args.listen)
    secret, client_secret, tls = _node_security(args, address[0])
    data = _data_directory(args.data)
    if args.n > len(peers) + 1:
        raise UsageError(f"--n {args.n} is more than the {len(peers) + 1} nodes of the cluster")
    members = _bootstrap_members(args, peers)
    try:
        ring = HashRing(args.n, partitions=args.partitions)
        if members:
            ring.add_nodes(members)  # the same ring on every node of the bootstrap
        policy = QuorumPolicy(args.n, args.r, args.w, sloppy=not args.strict)
        config = NodeConfig(
            heartbeat_interval=args.heartbeat,
            request_timeout=args.request_timeout,
            anti_entropy_interval=args.anti_entropy,
            handoff_backoff=min(1.0, args.heartbeat),
            handoff_timeout=max(2 * args.request_timeout, 1.0),
            gossip_interval=args.gossip,
        )
        config.limits.check_frame(args.max_frame)
        transport_config = TransportConfig(max_frame=args.max_frame)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    try:
        incarnation = _begin(address, data, args.data)
    except _CannotListen as exc:
        print(f"dynamo-core serve: error: {exc}", file=sys.stderr)
        return 1
    clock = _WallClock()  # hints live in SQLite: a wall-time base (see the clock guide)
    try:
        storage = SQLiteStorage(data / _STORE_FILE, synchronous=args.sync.upper())
    except StorageError as exc:
        print(f"dynamo-core serve: error: {exc}", file=sys.stderr)
        return 1
    try:
        node = Node(
            args.id,
            ring,
            policy=policy,
            config=config,
            storage=storage,
            now=clock.now(),
            incarnation=incarnation,
            seeds=sorted(peers) if args.id not in members else (),
        )
        transport = TcpTransport(
            args.id,
            address,
            peers,
            secret=secret,
            client_secret=client_secret,
            server_ssl=None if tls is None else tls[0],
            client_ssl=None if tls is None else tls[1],
            config=transport_config,
            cluster=args.cluster,
            config_summary=_summary(args, peers, secret, tls),
        )
    except StorageError as exc:
        storage.close()
        print(f"dynamo-core serve: error: {exc}", file=sys.stderr)
        return 1
    except BaseException:
        storage.close()
        raise

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def started() -> None:
            host, port = transport.address
            print(
                f"dynamo-core: node {args.id} listening on {host}:{port} "
                f"(incarnation {incarnation}, {counted(len(peers), 'peer')}, N={args.n} R={args.r} "
                f"W={args.w})",
                flush=True,
            )

        await serve(node, transport, clock=clock, stop=stop, started=started)

    try:
        asyncio.run(main())
    except OSError as exc:  # the listen address is taken or cannot be bound
        print(f"dynamo-core serve: error: cannot listen on {args.listen}: {exc}", file=sys.stderr)
        return 1
    except StorageError as exc:  # the storage stopped working for good (logged by serve)
        print(f"dynamo-core serve: error: storage failed, node stopped: {exc}", file=sys.stderr)
        return 1
    print(f"dynamo-core: node {args.id} stopped", flush=True)
    return 0


def _bootstrap_members(args: argparse.Namespace, peers: dict[str, str]) -> list[str]:
    """The ring a node starts from when its storage holds none (sorted ids; empty to join).

    Every node but a joining one is given the same list: ``--members`` (default: this node and
    every peer). A node started with ``--join`` starts outside it and learns the ring from its
    peers, which it gossips with as seeds.
    """
    known = {args.id, *peers}
    if args.join:
        if args.members is not None:
            raise UsageError(
                "--join and --members exclude each other: a joining node learns "
                "the members from its peers"
            )
        return []
    if args.members is None:
        return sorted(known)
    members = sorted({m.strip() for m in args.members.split(",") if m.strip()})
    strangers = [m for m in members if m not in known]
    if strangers:
        raise UsageError(f"--members names nodes that are neither --id nor a peer: {strangers}")
    if len(members) < args.n:
        raise UsageError(f"--members names {len(members)} nodes, fewer than --n {args.n}")
    return members


def _client_args(args: argparse.Namespace) -> dict[str, Any]:
    apply_cluster_file(args, node=False)
    tls = tls_option(args)
    return {
        "secret": load_secret_option(args.secret_file),
        "ssl": None if tls is None else tls[1],
        "timeout": args.timeout,
        "cluster": args.cluster,
    }


def _nodes(args: argparse.Namespace) -> list[Address]:
    from dynamo_core.aio import parse_address  # noqa: PLC0415

    nodes = [n.strip() for n in (args.nodes or "").split(",") if n.strip()]
    if not nodes:
        raise UsageError("--nodes must name at least one HOST:PORT (or give --config)")
    try:
        return [parse_address(n, "--nodes") for n in nodes]
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def _show(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(value).decode()


def _client_command(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415

    from dynamo_core.aio import Client, ClientError  # noqa: PLC0415

    options = _client_args(args)
    nodes = _nodes(args)
    context = None
    if getattr(args, "context", None):
        try:
            context = base64.b64decode(args.context, validate=True)
        except (binascii.Error, ValueError):
            raise UsageError("--context must be the base64 context a get printed") from None

    async def run() -> dict[str, Any]:
        async with Client(nodes, **options) as client:
            if args.command == "put":
                reply = await client.put(args.key, args.value.encode("utf-8"), context)
                return {"acked": list(reply.acked), "hinted": [list(p) for p in reply.hinted]}
            if args.command == "get":
                got = await client.get_reply(args.key)
                return {
                    "found": got.found,
                    "values": [_show(v) for v in got.values],
                    "context": base64.b64encode(got.context).decode(),
                }
            node, counters = await client.stats(nodes[0])
            return {"node": node, "stats": counters}

    try:
        out = asyncio.run(run())
    except ClientError as exc:
        print(f"dynamo-core {args.command}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(out, sort_keys=True))
    elif args.command == "stats":
        print(f"node {out['node']}")
        counters: dict[str, int] = out["stats"]
        width = max((len(name) for name in counters), default=0)
        for name in sorted(counters):
            print(f"  {name:<{width}}  {counters[name]:>12,}")
    elif args.command == "put":
        hinted = ", ".join(f"{f} for {p}" for f, p in out["hinted"])
        print(f"stored on {', '.join(out['acked'])}" + (f" (hints: {hinted})" if hinted else ""))
    else:
        if not out["found"]:
            print("(not found)")
        for value in out["values"]:
            print(value)
        print(f"context: {out['context']}")
    return 0


def run_command(func: Any) -> Any:
    """Wrap a command: a `UsageError` becomes one line on stderr and exit status 2."""

    def wrapped(args: argparse.Namespace) -> int:
        try:
            status: int = func(args)
        except UsageError as exc:
            print(f"dynamo-core {args.command}: error: {exc}", file=sys.stderr)
            return 2
        return status

    return wrapped


_run = run_command


def add_placement_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ring and quorum options shared by `serve` and `simulate`."""
    parser.add_argument("--n", type=int, default=3, help="replicas per key (default 3)")
    parser.add_argument("--r", type=int, default=2, help="read quorum (default 2)")
    parser.add_argument("--w", type=int, default=2, help="write quorum (default 2)")
    parser.add_argument("--strict", action="store_true", help="strict quorum (no sloppy fallbacks)")
    parser.add_argument("--partitions", type=int, default=64, help="ring partitions (default 64)")


def _new_secret(args: argparse.Namespace) -> int:
    from dynamo_core.aio.auth import new_secret  # noqa: PLC0415

    secret = new_secret()
    if args.out is None:
        print(secret)
        return 0
    try:  # created owner-only, never over an existing file
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise UsageError(f"cannot create {args.out}: {exc}") from None
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return 0


def security_options(parser: argparse.ArgumentParser, *, node: bool, admin: bool = False) -> None:
    """Add the security options of a node, a client or (`admin`) an operator's command."""
    if admin:
        parser.add_argument(
            "--secret-file",
            help="the NODE secret (admins prove it; the client secret does not open an admin "
            "connection)",
        )
    elif node:
        parser.add_argument(
            "--secret-file",
            help="the node secret, shared by the nodes only (hex or base64 of >= 32 random "
            "bytes, mode 600; see `dynamo-core secret`)",
        )
        parser.add_argument(
            "--client-secret-file",
            help="the client secret: with --secret-file, clients are accepted only with it",
        )
        parser.add_argument(
            "--insecure",
            action="store_true",
            help="allow listening beyond loopback with neither a secret nor TLS",
        )
    else:
        parser.add_argument("--secret-file", help="the client secret (what the nodes were given)")
    parser.add_argument("--cluster", default="dynamo-core", help="the cluster's name")
    parser.add_argument(
        "--config",
        help="a TOML cluster file shared by every node and client (nodes, ring, quorum, "
        "security); flags given as well must agree with it",
    )
    parser.add_argument(
        "--tls-cert",
        help="PEM certificate of this process (mutual TLS; SAN URI dynamo-core://node/ID, "
        "dynamo-core://client/NAME or, for admin, dynamo-core://admin/NAME)",
    )
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--tls-ca", help="PEM certificate of the cluster's CA")


def add_commands(sub: Any) -> None:
    """Add ``serve``, ``put``, ``get``, ``stats`` and ``secret`` to the subparsers."""
    srv = sub.add_parser(
        "serve",
        help="run one node of a cluster over TCP",
        description="Run one node: SQLite storage and hints under --data, the first ring built "
        "from --members (default: --id and every --peers id; identical on every node), or, "
        "with --join, learnt from the peers. Stops cleanly on SIGTERM/SIGINT.",
    )
    srv.add_argument("--id", required=True, help="this node's id")
    srv.add_argument("--listen", help="HOST:PORT to listen on (default: --config's address)")
    srv.add_argument(
        "--peers",
        default="",
        help="every other node that is or may become a member: ID=HOST:PORT,ID=HOST:PORT",
    )
    srv.add_argument(
        "--members",
        help="the first ring's members, ID,ID,... (default: --id and every peer); peers left "
        "out can join later with `dynamo-core admin join` or `replace`",
    )
    srv.add_argument(
        "--join",
        action="store_true",
        help="start outside the ring and learn it from the peers (then `dynamo-core admin "
        "join` or `replace` makes this node a member)",
    )
    srv.add_argument("--data", required=True, help="directory for the node's storage")
    add_placement_arguments(srv)
    srv.add_argument("--heartbeat", type=float, default=1.0, help="seconds (default 1)")
    srv.add_argument("--anti-entropy", type=float, default=10.0, help="seconds (default 10)")
    srv.add_argument(
        "--gossip", type=float, default=1.0, help="membership gossip interval, seconds (default 1)"
    )
    srv.add_argument("--request-timeout", type=float, default=1.0, help="seconds (default 1)")
    srv.add_argument(
        "--sync",
        choices=("full", "normal"),
        default="full",
        help="SQLite synchronous mode: full survives power loss, normal only a process crash",
    )
    srv.add_argument("--max-frame", type=int, default=16 * 2**20, help="frame cap in bytes")
    srv.add_argument("--log-level", default="warning", choices=("debug", "info", "warning"))
    security_options(srv, node=True)
    srv.set_defaults(
        flag_defaults={k: srv.get_default(k) for k in (*_PLACEMENT, "cluster", "members")}
    )
    srv.set_defaults(func=run_command(_serve))

    for name, text in (
        ("put", "write a value (UTF-8 text) to a running cluster"),
        ("get", "read a key from a running cluster: siblings and context"),
        ("stats", "print one node's counters (a table; JSON with --json)"),
    ):
        cmd = sub.add_parser(name, help=text, description=text)
        if name in ("put", "get"):
            cmd.add_argument("key", help="the key")
        if name == "put":
            cmd.add_argument("value", help="the value")
            cmd.add_argument("--context", help="the base64 context a get printed")
        cmd.add_argument("--nodes", help="HOST:PORT,HOST:PORT of some nodes (or --config)")
        cmd.add_argument(
            "--timeout", type=positive_seconds, default=5.0, help="seconds per attempt (> 0)"
        )
        cmd.add_argument("--json", action="store_true", help="print one JSON object")
        security_options(cmd, node=False)
        cmd.set_defaults(flag_defaults={"cluster": cmd.get_default("cluster")})
        cmd.set_defaults(func=run_command(_client_command))

    gen = sub.add_parser(
        "secret",
        help="print a fresh secret (32 random bytes, hex) for --secret-file",
        description="Print a fresh secret: 32 random bytes as 64 hex digits. With --out, "
        "write it to a new file readable by its owner only.",
    )
    gen.add_argument("--out", help="create this file (mode 600) instead of printing")
    gen.set_defaults(func=run_command(_new_secret))
