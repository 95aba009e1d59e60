"""``dynamo-core admin``: change the membership of a running cluster, and watch it move.

``join NODE``, ``leave NODE``, ``replace OLD NEW``, ``update NODE`` and ``ring`` each send one
[admin request][dynamo_core.admin] to a member (``--via HOST:PORT``, or the nodes of
``--config`` in turn until one answers) over an admin connection, which proves the **node**
secret (or shows a ``dynamo-core://admin/NAME`` certificate). Exit status: 0 when the change
was accepted (or the ring shown), 1 when it was refused or no node answered, 2 on bad usage.

Only argparse at import time; asyncio loads when the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from dynamo_core.cli.cluster import (
    UsageError,
    apply_cluster_file,
    counted,
    load_secret_option,
    positive_number,
    positive_seconds,
    run_command,
    security_options,
    tls_option,
)

if TYPE_CHECKING:
    from dynamo_core.admin import AdminReply, AdminRequest, RingReport

__all__ = ["add_admin_commands"]


def _request(args: argparse.Namespace) -> AdminRequest:
    """The request the command line asks for; an invalid one is a usage error."""
    from dynamo_core.admin import AdminRequest  # noqa: PLC0415

    op = args.admin_command
    try:
        if op == "ring":
            return AdminRequest(1, "ring")
        if op == "replace":
            return AdminRequest(1, "replace", args.old, new=args.new)
        if op == "leave":
            return AdminRequest(1, "leave", args.node)
        return AdminRequest(1, op, args.node, zone=args.zone, weight=args.weight)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def _targets(args: argparse.Namespace) -> list[str]:
    """Where to send: ``--via``, or every node of ``--config`` in order."""
    args.nodes = None
    if args.via is not None:
        if args.config is not None:
            apply_cluster_file(args, node=False, admin=True)
        return [args.via]
    if args.config is None:
        raise UsageError("give --via HOST:PORT (a member) or --config (the cluster file)")
    apply_cluster_file(args, node=False, admin=True)
    return [n for n in args.nodes.split(",") if n]


def _send(args: argparse.Namespace, request: AdminRequest) -> tuple[str, AdminReply]:
    """Send `request` to the first target that answers: ``(address, reply)``."""
    import asyncio  # noqa: PLC0415 - loads asyncio on use

    from dynamo_core.aio import AuthError, admin_request, parse_address  # noqa: PLC0415

    targets = _targets(args)
    tls = tls_option(args)
    secret = load_secret_option(args.secret_file)
    try:
        addresses = [parse_address(t, "--via") for t in targets]
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    failures = []
    for address, shown in zip(addresses, targets, strict=True):
        try:
            reply = asyncio.run(
                admin_request(
                    address,
                    request,
                    secret=secret,
                    ssl=None if tls is None else tls[1],
                    cluster=args.cluster,
                    timeout=args.timeout,
                )
            )
        except (OSError, TimeoutError, ValueError, AuthError) as exc:  # ValueError: DecodeError
            failures.append(f"{shown}: {exc or type(exc).__name__}")
            continue
        return shown, reply
    raise _Unreachable(failures)


class _Unreachable(Exception):
    def __init__(self, failures: list[str]) -> None:
        super().__init__("; ".join(failures))
        self.failures = failures


def _ring_rows(report: RingReport) -> list[str]:
    """The human form of a ring report."""
    state = (
        "settled"
        if report.settled
        else f"moving data: {report.transfers_done} of {report.transfers} transfers done"
    )
    version = f"ring version {report.epoch} [{report.fingerprint}]"
    outside = " (this node holds no ring version yet)" if report.outside else ""
    lines = [
        f"node {report.node} ({report.status}), {version}, {state}",
        f"claimant {report.claimant or '-'}{outside}",
        "",
    ]
    header = ("member", "zone", "weight", "partitions")
    rows = [(m.node, m.zone or "-", f"{m.weight:g}", str(m.partitions)) for m in report.members]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    lines += [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    pending = report.transfers - report.transfers_done
    if pending:
        shown = len(report.pending_transfers)
        more = f" (first {shown})" if shown < pending else ""
        lines += ["", f"{counted(pending, 'pending transfer')}{more}:"]
        lines += [
            f"  [{t.range.start:#018x}, {t.range.end:#018x})  {t.source} -> {t.target}"
            for t in report.pending_transfers
        ]
    if report.pending_changes:
        lines += ["", f"{counted(report.pending_changes, 'queued change')}:"]
        for c in report.changes:
            what = f"{c.op} {c.node}" + (f" by {c.new}" if c.new else "")
            if c.op in ("join", "update"):
                what += f" (zone {c.zone or '-'}, weight {c.weight:g})"
            lines.append(f"  {c.id}  {what}")
    return lines


def _describe(request: AdminRequest) -> str:
    what = f"{request.op} {request.node}"
    if request.new is not None:
        what += f" by {request.new}"
    if request.zone is not None:
        what += f" zone {request.zone}"
    if request.weight is not None:
        what += f" weight {request.weight:g}"
    return what


def _admin(args: argparse.Namespace) -> int:
    from dynamo_core.admin import AdminAccepted, AdminRefused  # noqa: PLC0415

    request = _request(args)
    name = f"dynamo-core admin {args.admin_command}"
    try:
        via, reply = _send(args, request)
    except _Unreachable as exc:
        tried = counted(len(exc.failures), "node")
        print(f"{name}: no node answered ({tried} tried): {exc}", file=sys.stderr)
        return 1
    out: dict[str, Any]
    if isinstance(reply, AdminRefused):
        if args.json:
            print(json.dumps({"via": via, "refused": reply.code, "reason": reply.reason}))
        print(f"{name}: refused ({reply.code}): {reply.reason}", file=sys.stderr)
        return 1
    if isinstance(reply, AdminAccepted):
        out = {"via": via, "change": reply.change, "applied": reply.applied, "epoch": reply.epoch}
        if args.json:
            print(json.dumps(out, sort_keys=True))
        else:
            when = (
                f"applied in ring version {reply.epoch}"
                if reply.applied
                else "queued: the claimant applies it in the next ring version"
            )
            print(f"accepted: {_describe(request)} (change {reply.change}), {when}")
        return 0
    if args.json:
        print(json.dumps(reply.to_dict() | {"via": via}, sort_keys=True))
    else:
        print("\n".join(_ring_rows(reply)))
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--via", help="HOST:PORT of the member to ask (default: --config's nodes)")
    parser.add_argument(
        "--timeout", type=positive_seconds, default=10.0, help="seconds per node tried (default 10)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    security_options(parser, node=False, admin=True)
    parser.set_defaults(flag_defaults={"cluster": parser.get_default("cluster")})


def add_admin_commands(sub: Any) -> None:
    """Add ``admin`` and its subcommands to the subparsers."""
    group = sub.add_parser(
        "admin",
        help="change the membership of a running cluster (join, leave, replace, update, ring)",
        description="Change the membership of a running cluster and watch the data move. Each "
        "command asks one member over an admin connection (the node secret, or an admin "
        "certificate); the change spreads by gossip and the claimant applies it.",
    )
    ops = group.add_subparsers(dest="admin_command", required=True, metavar="ACTION")
    join = ops.add_parser("join", help="add NODE (start it with `serve --join` first or after)")
    join.add_argument("node", help="the node to add (it must be in every node's --peers)")
    leave = ops.add_parser("leave", help="remove NODE: its data moves to the others")
    leave.add_argument("node", help="the member to remove")
    replace = ops.add_parser("replace", help="put NEW in OLD's place: only OLD's data moves")
    replace.add_argument("old", help="the member to replace")
    replace.add_argument("new", help="its replacement (start it with `serve --join`)")
    update = ops.add_parser("update", help="change NODE's zone or weight in place")
    update.add_argument("node", help="the member to change")
    for cmd in (join, update):
        cmd.add_argument("--zone", help="its failure zone")
        cmd.add_argument("--weight", type=positive_number, help="its relative capacity (> 0)")
    ring = ops.add_parser("ring", help="show the ring: version, members, data still moving")
    for cmd in (join, leave, replace, update, ring):
        _common(cmd)
        cmd.set_defaults(func=run_command(_admin))
