"""The `dynamo-core` command: `demo` and `simulate`, run as a user runs them."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext

import pytest

from dynamo_core.cli import main
from dynamo_core.cli.demo import Progress, decode_cart, encode_cart, run_demo

REQUIRED = (
    "seeds",
    "operations",
    "acknowledged",
    "lost",
    "violations",
    "unconverged",
    "trace_hash",
)


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynamo_core", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def last_json(stdout: str) -> dict[str, object]:
    lines = stdout.strip().splitlines()
    data = json.loads(lines[-1])
    assert isinstance(data, dict)
    return data


def test_demo_tells_the_whole_story_and_exits_0() -> None:
    result = run("demo")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for needle in (
        "Step 1. Placement",
        "preference list",
        "crashes",
        "hint",
        "Siblings",
        "{book, lamp, pen}",
        "{book, mug, pen}",
        "Hints delivered",
        "Merkle exchanges",
        "digests",
        "Alice's cart: {book, lamp, mug, pen}",
        "A sixth node joins",
        "Transfer plan of ring version",
        "n6 now holds",
        "The story went as told",
    ):
        assert needle in out, needle


def test_demo_is_deterministic() -> None:
    first, second = run("demo", "--plain"), run("demo", "--plain")
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout
    assert "trace hash" in first.stdout


def test_simulate_five_seeds_prints_a_json_summary_last() -> None:
    result = run("simulate", "--seeds", "5", "--json")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = last_json(result.stdout)
    for field in REQUIRED:
        assert field in data, field
    assert data["seeds"] == 5
    assert data["operations"] == 5 * 2000
    assert data["lost"] == data["violations"] == data["unconverged"] == 0
    assert isinstance(data["acknowledged"], int)
    assert data["acknowledged"] > 0
    assert "Summary" in result.stdout


def test_simulate_with_lww_finds_loss_and_exits_1() -> None:
    result = run("simulate", "--seeds", "3", "--ops", "150", "--resolver", "lww", "--json")
    assert result.returncode == 1
    data = last_json(result.stdout)
    assert isinstance(data["lost"], int)
    assert data["lost"] > 0
    assert data["failed_seeds"]
    assert "acknowledged adds lost" in result.stdout


def test_jobs_do_not_change_the_results() -> None:
    args = ("simulate", "--seeds", "4", "--ops", "60", "--json", "--plain")
    one, two = run(*args), run(*args, "--jobs", "2")
    assert one.returncode == two.returncode == 0
    a, b = last_json(one.stdout), last_json(two.stdout)
    assert a["trace_hash"] == b["trace_hash"]
    for field in ("operations", "acknowledged", "lost", "violations", "messages"):
        assert a[field] == b[field], field


def test_bad_usage_exits_2() -> None:
    assert run("simulate", "--seeds", "0").returncode == 2
    assert run("simulate", "--n", "4", "--nodes", "3").returncode == 2
    assert run("simulate", "--faults", "meteor").returncode == 2
    assert run("simulate", "--partitions", "48").returncode == 2
    assert run("nonsense").returncode == 2
    assert run().returncode == 2
    assert run("--version").stdout.startswith("dynamo-core ")


def test_main_in_process_plain(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["simulate", "--seeds", "2", "--ops", "40", "--plain", "--faults", "crash"])
    out = capsys.readouterr().out
    assert status == 0
    assert "No violation" in out
    assert "crash" in out
    assert out.startswith("dynamo-core simulate: 2 seeds x 40 ops, 5 nodes,")
    assert main(["simulate", "--seeds", "1", "--ops", "1", "--plain", "--faults", "none"]) == 0
    assert capsys.readouterr().out.startswith("dynamo-core simulate: 1 seed x 1 op, 5 nodes,")


def test_usage_errors_are_one_line_naming_the_argument() -> None:
    for argv, named in [
        (("simulate", "--seeds", "0"), "--seeds must be at least 1"),
        (("simulate", "--ops", "many"), "argument --ops: invalid int value: 'many'"),
        (("nonsense",), "invalid choice: 'nonsense'"),
    ]:
        result = run(*argv)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and named in result.stderr, result.stderr
        assert result.stderr.startswith("dynamo-core") and "--help" in result.stderr


class Recorder:
    """A narrator that keeps everything, for checking the story in process."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.tables: list[tuple[str, list[list[str]]]] = []

    def step(self, number: int, title: str) -> None:
        self.lines.append(f"step {number}: {title}")

    def say(self, text: str) -> None:
        self.lines.append(text)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.tables.append((title, [list(row) for row in rows]))

    def progress(self, label: str, total: int) -> AbstractContextManager[Progress]:
        class _Bar:
            def advance(self, amount: int = 1) -> None:
                pass

        return nullcontext(_Bar())


def test_run_demo_checks_every_step() -> None:
    recorder = Recorder()
    outcome = run_demo(recorder)
    assert outcome.ok, outcome.problems
    assert outcome.final_cart == ("book", "lamp", "mug", "pen")
    assert sum(line.startswith("step ") for line in recorder.lines) == 7
    titles = [title for title, _ in recorder.tables]
    assert any("Siblings" in t for t in titles)
    plan = next(rows for title, rows in recorder.tables if title.startswith("Transfer plan"))
    assert plan and all(row[3] == "n6" for row in plan)  # a join moves data to the joiner only
    exchanges = next(rows for title, rows in recorder.tables if title.startswith("Merkle"))
    assert exchanges
    assert run_demo(Recorder()).trace_hash == outcome.trace_hash


def test_cart_codec() -> None:
    assert decode_cart(encode_cart({"b", "a"})) == {"a", "b"}
    assert encode_cart({"b", "a"}) == b'["a","b"]'


def test_simulate_churn_reports_membership_fields() -> None:
    result = run("simulate", "--churn", "--seeds", "2", "--ops", "100", "--json", "--plain")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = last_json(result.stdout)
    assert data["lost"] == data["violations"] == data["unconverged"] == 0
    assert data["ring_unconverged_seeds"] == 0
    joins, leaves, moved = data["joins"], data["leaves"], data["moved_fraction_vs_ideal"]
    assert isinstance(joins, int) and isinstance(leaves, int) and joins + leaves > 0
    assert isinstance(moved, float) and moved <= 1.1
    assert "joins / leaves requested" in result.stdout
    config = data["config"]
    assert isinstance(config, dict) and config["churn"] is True


def test_the_serve_clock_has_a_wall_base_and_monotonic_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    from dynamo_core.cli.cluster import _WallClock

    clock = _WallClock()
    assert abs(clock.now() - time.time()) < 1.0  # wall time: valid after a reboot
    first = clock.now()
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3600.0)  # NTP steps the clock back
    assert clock.now() >= first  # timers do not jump
    assert abs(clock.now() - real()) < 1.0


def test_a_reader_that_goes_away_is_not_an_error() -> None:
    # `dynamo-core demo | head -1`: the pipe closes while the command still prints. A 4 KiB pipe
    # (smaller than the demo's output) makes the command meet the closed pipe for sure.
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dynamo_core", "demo", "--plain"],
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(write_end)
    with os.fdopen(read_end) as reader:
        assert reader.readline().startswith("dynamo-core")
    _, errors = proc.communicate(timeout=60)
    assert proc.returncode == 0, errors
    assert "Traceback" not in errors
