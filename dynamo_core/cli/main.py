"""The ``dynamo-core`` command: the narrated demo and the simulation checker.

``dynamo-core demo`` tells the shopping-cart story on a simulated 5-node cluster.
``dynamo-core simulate --seeds N`` runs N seeded simulations with faults, checks every history
and exits 1 if any found a violation; ``--json`` ends the output with one JSON summary line.

Output uses ``rich`` (the ``cli`` extra) when it is installed and plain text otherwise; ``rich``
is imported only here, never by ``import dynamo_core``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import IO, Any, NoReturn

from dynamo_core import __version__
from dynamo_core.cli.admin import add_admin_commands
from dynamo_core.cli.cluster import add_commands as _add_cluster_commands
from dynamo_core.cli.cluster import add_placement_arguments, counted
from dynamo_core.cli.demo import Progress, run_demo
from dynamo_core.testing.simulation import (
    CHURN_EVENTS,
    FAULTS,
    RESOLVERS,
    SimulationConfig,
    SimulationResult,
    run_simulations,
)

__all__ = ["main"]


# -- output ------------------------------------------------------------------------------------


class _PlainProgress:
    def __init__(self, label: str, total: int, stream: IO[str]) -> None:
        self.label, self.total, self.done, self.stream = label, total, 0, stream
        self._shown = -1

    def advance(self, amount: int = 1) -> None:
        self.done += amount
        tenth = 10 * self.done // max(self.total, 1)
        if tenth != self._shown:
            self._shown = tenth
            print(f"  {self.label}: {self.done}/{self.total}", file=self.stream, flush=True)


class _Ui:
    """Narration, tables and progress bars: rich when available, plain text otherwise."""

    def __init__(self, *, plain: bool = False) -> None:
        self.rich: Any = None
        if not plain:
            try:
                import rich.console  # noqa: PLC0415 - optional, loaded on use
            except ImportError:
                pass
            else:
                self.rich = rich
                self.console = rich.console.Console(highlight=False)
                self.err = rich.console.Console(stderr=True, highlight=False)

    def title(self, text: str) -> None:
        if self.rich is not None:
            self.console.print(f"[bold]{text}[/bold]")
        else:
            print(text)
            print("=" * len(text))

    def step(self, number: int, title: str) -> None:
        if self.rich is not None:
            self.console.print()
            self.console.rule(f"[bold cyan]Step {number}. {title}", align="left")
        else:
            print(f"\n--- Step {number}. {title} ---")

    def say(self, text: str) -> None:
        if self.rich is not None:
            from rich.markup import escape  # noqa: PLC0415

            self.console.print(escape(text))
        else:
            print(text)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        if self.rich is not None:
            from rich.markup import escape  # noqa: PLC0415
            from rich.table import Table  # noqa: PLC0415

            self.console.print(f"[bold]{escape(title)}[/bold]")
            table = Table()
            for column in columns:
                table.add_column(column)
            for row in rows:
                table.add_row(*row)
            self.console.print(table)
            return
        widths = [
            max(len(str(c)), *(len(str(r[i])) for r in rows)) if rows else len(str(c))
            for i, c in enumerate(columns)
        ]
        print(f"\n{title}")
        print("  ".join(str(c).ljust(w) for c, w in zip(columns, widths, strict=True)))
        print("  ".join("-" * w for w in widths))
        for row in rows:
            print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))

    @contextmanager
    def progress(self, label: str, total: int) -> Iterator[Progress]:
        if self.rich is None:
            yield _PlainProgress(label, total, sys.stderr)
            return
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress  # noqa: PLC0415

        with RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.err,
            transient=True,
        ) as bar:
            task = bar.add_task(label, total=total)

            class _Bar:
                def advance(self, amount: int = 1) -> None:
                    bar.advance(task, amount)

            yield _Bar()


# -- demo --------------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    ui = _Ui(plain=args.plain)
    ui.title(
        f"dynamo-core {__version__} demo: Alice's shopping cart on 5 simulated nodes "
        "(N=3, R=2, W=2, sloppy quorum)"
    )
    ui.say(
        "Everything runs in virtual time in this process, deterministically (seed "
        f"{args.seed}): the same story on every run."
    )
    outcome = run_demo(ui, seed=args.seed)
    if not outcome.ok:
        ui.say(f"\nThe demo did not go as told ({counted(len(outcome.problems), 'problem')}):")
        for problem in outcome.problems:
            ui.say(f"  - {problem}")
        return 1
    ui.say(
        "\nThe story went as told. Next: `dynamo-core simulate --seeds 100` checks 100 "
        "such histories under random faults."
    )
    return 0


# -- simulate ----------------------------------------------------------------------------------


def _config(args: argparse.Namespace) -> SimulationConfig:
    return SimulationConfig(
        nodes=args.nodes,
        n=args.n,
        r=args.r,
        w=args.w,
        sloppy=not args.strict,
        ops=args.ops,
        clients=args.clients,
        keys=args.keys,
        faults=args.faults,
        resolver=args.resolver,
        partitions=args.partitions,
        max_rounds=args.max_rounds,
        churn=args.churn,
    )


def _simulate(args: argparse.Namespace) -> int:
    try:
        config = _config(args)
    except (TypeError, ValueError) as exc:
        print(f"dynamo-core simulate: error: {exc}", file=sys.stderr)
        return 2
    seeds = range(args.seed_start, args.seed_start + args.seeds)
    ui = _Ui(plain=args.plain)
    ui.title(
        f"dynamo-core simulate: {counted(len(seeds), 'seed')} x {counted(config.ops, 'op')}, "
        f"{counted(config.nodes, 'node')}, "
        f"N={config.n} R={config.r} W={config.w} "
        f"{'sloppy' if config.sloppy else 'strict'} quorum, resolver {config.resolver}"
    )
    ui.say(f"faults: {', '.join(config.faults) or 'none'}")
    if config.churn:
        ui.say("churn: joins and leaves during the load (" + ", ".join(CHURN_EVENTS) + ")")
    with ui.progress("seeds", len(seeds)) as bar:

        def on_result(_: SimulationResult) -> None:
            bar.advance()

        jobs = min(args.jobs, len(seeds))
        if jobs > 1:
            with ProcessPoolExecutor(jobs) as pool:
                summary = run_simulations(seeds, config, executor=pool, progress=on_result)
        else:
            summary = run_simulations(seeds, config, progress=on_result)
    failures = [result for result in summary.results if not result.ok]
    data = summary.to_dict()
    rows = [
        ["seeds", f"{summary.seeds:,}"],
        ["read-modify-write operations", f"{summary.operations:,}"],
        ["adds acknowledged", f"{summary.acknowledged:,}"],
        ["acknowledged adds lost", f"{summary.lost:,}"],
        ["items that appeared from nowhere", f"{data['unexpected']:,}"],
        ["unacknowledged adds that survived (legal)", f"{data['recovered']:,}"],
        ["violations", f"{summary.violations:,}"],
        ["unconverged (keys, segments, hints)", f"{summary.unconverged:,}"],
        ["most siblings in one read", str(data["max_siblings"])],
        ["most anti-entropy rounds to converge", str(data["max_rounds_to_converge"])],
        *(
            [
                ["joins / leaves requested", f"{data['joins']:,} / {data['leaves']:,}"],
                ["ring versions minted", f"{data['versions']:,}"],
                ["seeds whose ring did not converge", f"{data['ring_unconverged_seeds']:,}"],
                ["moved data vs ideal 1/(n+1), worst", f"{data['moved_fraction_vs_ideal']:.3f}"],
            ]
            if config.churn
            else []
        ),
        ["faults injected", ", ".join(f"{k} {v}" for k, v in summary.faults().items() if v) or "-"],
        ["messages", f"{data['messages']:,}"],
        ["simulated ops / s (wall clock)", f"{data['ops_per_second']:,.0f}"],
        ["seeds / minute", f"{data['seeds_per_minute']:,.1f}"],
        ["trace hash", summary.trace_hash[:32]],
    ]
    ui.table("Summary", ["", "value"], rows)
    for result in failures[: args.show_failures]:
        ui.say(f"seed {result.seed}:")
        for violation in result.violations[:5]:
            ui.say(f"  - {violation}")
    if failures:
        found = f"{counted(len(failures), 'seed')} found violations"
        ui.say(f"{found}; rerun one with --seed-start S --seeds 1")
    else:
        ui.say("No violation: every acknowledged add survived and every replica converged.")
    if args.json:
        sys.stdout.flush()
        print(json.dumps(data, sort_keys=True), flush=True)
    return 0 if summary.ok else 1


# -- the parser --------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (exit 2), pointing at --help instead of repeating the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dynamo-core",
        description="The Amazon Dynamo primitives, composed and checked in simulation.",
    )
    parser.add_argument("--version", action="version", version=f"dynamo-core {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="tell the shopping-cart story on a simulated cluster")
    demo.add_argument("--seed", type=int, default=0, help="the network's seed (default 0)")
    demo.add_argument("--plain", action="store_true", help="plain text, no colours or boxes")
    demo.set_defaults(func=_demo)

    sim = sub.add_parser(
        "simulate",
        help="run seeded simulations with faults and check every history",
        description="Run seeded cluster simulations with faults, check every history (no "
        "acknowledged add lost, nothing resurrected, siblings only for concurrent writes, "
        "replicas converged) and exit 1 on any violation.",
    )
    sim.add_argument("--seeds", type=int, default=10, help="how many seeds (default 10)")
    sim.add_argument("--seed-start", type=int, default=0, help="the first seed (default 0)")
    sim.add_argument("--nodes", type=int, default=5, help="cluster size (default 5)")
    add_placement_arguments(sim)
    sim.add_argument("--ops", type=int, default=2000, help="operations per seed (default 2000)")
    sim.add_argument("--clients", type=int, default=5, help="concurrent clients (default 5)")
    sim.add_argument("--keys", type=int, default=8, help="shopping carts (default 8)")
    sim.add_argument(
        "--faults",
        default="all",
        help=f"comma-separated faults, 'all' or 'none' (default all): {', '.join(FAULTS)}",
    )
    sim.add_argument(
        "--resolver",
        choices=RESOLVERS,
        default="union",
        help="how clients merge siblings; lww is the negative control that must lose writes",
    )
    sim.add_argument(
        "--churn", action="store_true", help="join and remove nodes during the load (membership)"
    )
    sim.add_argument(
        "--max-rounds", type=int, default=10, help="anti-entropy rounds allowed to converge"
    )
    sim.add_argument(
        "--jobs", type=int, default=1, help="worker processes (default 1; try the core count)"
    )
    sim.add_argument("--json", action="store_true", help="end with one JSON summary line")
    sim.add_argument("--plain", action="store_true", help="plain text, no colours or boxes")
    sim.add_argument(
        "--show-failures", type=int, default=5, help="failing seeds to detail (default 5)"
    )
    sim.set_defaults(func=_simulate)
    _add_cluster_commands(sub)
    add_admin_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Returns:
        0 on success, 1 when the demo or a simulation found a problem, 2 on bad usage.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "simulate":
        for name in ("seeds", "jobs"):
            if getattr(args, name) < 1:
                parser.error(f"--{name.replace('_', '-')} must be at least 1")
        if args.seed_start < 0:
            parser.error("--seed-start must be at least 0")
    try:
        status: int = args.func(args)
    except BrokenPipeError:  # the reader went away (`dynamo-core stats | head`): not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush succeeds
        return 0
    return status
