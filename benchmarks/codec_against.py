"""The wire codec of this checkout beside the codec of another git revision, in one process.

``python -m benchmarks.codec_against [REV]`` (default ``main``) extracts ``dynamo_core`` at `REV`
with ``git archive`` into a temporary directory, renamed ``dynamo_core_ref`` so both versions
import side by side, and times ``decode_message(encode_message(m))`` of the same messages with
each, round-robin (`benchmarks.harness`). Column ``x REV`` above 1 means this checkout is faster.

A one-off comparison for reviewing a codec change, not part of ``make bench`` (it needs git and
the revision); ``make bench`` measures the codec against its JSON floor. Each encoding encodes
its state again, even where this checkout's `DVVSet` remembers its encoding (see `_cold`).
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from types import ModuleType
from typing import Any

from benchmarks.harness import Case, Group, format_table, measure

_PACKAGE = re.compile(r"\bdynamo_core\b")


def _import_ref(rev: str, into: Path) -> ModuleType:
    """Import ``dynamo_core`` at git revision `rev` as ``dynamo_core_ref``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, "dynamo_core"],
        check=True,
        capture_output=True,
        cwd=Path(__file__).parent.parent,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4
            tar.extractall(into, filter="data")
        else:  # older Pythons: our own repository's archive, trusted
            tar.extractall(into)
    (into / "dynamo_core").rename(into / "dynamo_core_ref")
    for path in (into / "dynamo_core_ref").rglob("*.py"):
        path.write_text(_PACKAGE.sub("dynamo_core_ref", path.read_text()))
    sys.path.insert(0, str(into))
    return importlib.import_module("dynamo_core_ref")


def _messages(package: ModuleType, siblings: int) -> dict[str, list[Any]]:
    """The messages of `benchmarks.bench_codec`, built with `package`'s classes."""
    m = importlib.import_module(f"{package.__name__}.messages")
    state = package.DVVSet()
    for i, node in enumerate(("node-a#1", "node-b#1", "node-c#1")):
        state = state.update(b"v" * 100, node, state.context if i else None)
    one = state
    for i in range(siblings - 1):
        state = state.update(bytes([i]) * 100, "node-a#1")
    key = b"cart:12345"
    return {
        "put: 2 StoreRequest + 2 StoreReply": [
            m.StoreRequest(7, key, one, None, 4),
            m.StoreRequest(7, key, one, None, 4),
            m.StoreReply(7),
            m.StoreReply(7),
        ],
        "get: 2 FetchRequest + 2 FetchReply": [
            m.FetchRequest(8, key),
            m.FetchRequest(8, key),
            m.FetchReply(8, one),
            m.FetchReply(8, one),
        ],
        f"{siblings} siblings: StoreRequest + FetchReply": [
            m.StoreRequest(9, key, state, None, 4),
            m.FetchReply(9, state),
        ],
    }


def _cold(package: ModuleType, encode: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    """`encode`, made to encode each state again: a revision whose `DVVSet` remembers its
    encoding (`to_bytes`) would otherwise time the first encoding only once. Clearing it is
    counted in this revision's time."""
    dvv = importlib.import_module(f"{package.__name__}.dvv")
    forget = getattr(dvv, "_set_raw", None)
    if forget is None:
        return encode

    def cold(message: Any) -> bytes:
        state = getattr(message, "state", None)
        if state is not None:
            forget(state, None)
        return encode(message)

    return cold


def _cases(package: ModuleType, messages: list[Any], label: str) -> list[Case]:
    m = importlib.import_module(f"{package.__name__}.messages")
    encode, decode = _cold(package, m.encode_message), m.decode_message
    wire = [encode(message) for message in messages]

    def both() -> None:
        for message in messages:
            decode(encode(message))

    n = len(messages)
    return [
        Case(f"encode + decode, {label}", both, ops=n),
        Case(f"encode, {label}", lambda: [encode(message) for message in messages], ops=n),
        Case(f"decode, {label}", lambda: [decode(data) for data in wire], ops=n),
    ]


def main(argv: list[str]) -> int:
    rev = argv[0] if argv else "main"
    import dynamo_core

    with tempfile.TemporaryDirectory() as tmp:
        ref = _import_ref(rev, Path(tmp))
        now_groups = _messages(dynamo_core, 3)
        ref_groups = _messages(ref, 3)
        for title, messages in now_groups.items():
            ref_messages = ref_groups[title]
            assert [ref.messages.encode_message(x) for x in ref_messages] == [
                dynamo_core.messages.encode_message(x) for x in messages
            ], "the two revisions write different bytes"
            for kind in ("encode + decode", "encode", "decode"):
                cases = [
                    c
                    for c in _cases(dynamo_core, messages, "now") + _cases(ref, ref_messages, rev)
                    if c.name.startswith(kind + ",")
                ]
                group = Group(f"{title}, {kind}, per message", cases, compare=(cases[1].name,))
                print(format_table(measure(group, repeats=9)), end="\n\n", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
