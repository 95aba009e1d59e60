"""The conformance suite for [`Storage`][dynamo_core.interfaces.Storage] backends.

Subclass [`StorageConformance`][dynamo_core.testing.StorageConformance] in a pytest module and
say how to open your backend; pytest then runs every check below against it:

```python
from pathlib import Path

from dynamo_core.testing import StorageConformance
from myapp.lmdb_storage import LMDBStorage


class TestLMDBStorage(StorageConformance):
    durable = True  # also checks that data survives close() and reopen

    def make_storage(self, directory: Path) -> LMDBStorage:
        return LMDBStorage(directory / "db")
```

Every failure names the operation, its arguments, what the contract expects and what the
backend did, for example ``store.scan('text') returned <generator ...>; expected TypeError
naming 'start' (the Storage contract: scan validates its arguments when called, not on the
first next())``. The suite needs pytest and hypothesis (the ``test`` extra); the pytest plugin
[`dynamo_core.testing.pytest_plugin`][dynamo_core.testing.pytest_plugin] has pytest rewrite its
assertions too.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from dynamo_core.errors import StorageClosedError
from dynamo_core.interfaces import Storage

__all__ = ["StorageConformance", "storage_state_machine"]

StorageFactory = Callable[[Path], Storage]

# Few distinct keys, with shared prefixes and the bytes at the ends of the order, so that
# overwrites, deletes and ordering corner cases come up often.
_keys = st.sampled_from(
    [b"", b"\x00", b"\x00\x00", b"\x7f", b"\x80", b"\xff", b"\xff\xff", b"a", b"a\x00", b"ab", b"b"]
) | st.binary(max_size=6)
_values = st.binary(max_size=64)

# What the contract (the docstring of dynamo_core.interfaces.Storage) says, quoted by failures.
_EAGER = "the Storage contract: every method validates its arguments when called"
_EAGER_SCAN = (
    "the Storage contract: scan validates its arguments when called, not on the first next()"
)
_ATOMIC = "the Storage contract: write_batch checks every item before it writes any"
_CLOSED = "the Storage contract: every operation after close() raises StorageClosedError"


def _call(operation: str, *args: object) -> str:
    """How a failure names a call: ``store.scan(b'a', None)``."""
    return f"store.{operation}({', '.join(_show(arg) for arg in args)})"


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def _expect_equal(operation: str, actual: object, expected: object, why: str = "") -> None:
    """Fail naming `operation` and both results unless ``actual == expected``."""
    if actual != expected:
        note = f" ({why})" if why else ""
        raise AssertionError(
            f"{operation} returned {_show(actual)}; expected {_show(expected)}{note}"
        )


def _expect_raises(
    kind: type[BaseException],
    operation: str,
    call: Callable[[], object],
    *,
    naming: str | None = None,
    contract: str = _EAGER,
) -> None:
    """Fail naming `operation` unless `call` raises `kind` (with `naming` in its message)."""
    wanted = f"{kind.__name__}" + (f" naming {naming!r}" if naming else "")
    try:
        result = call()
    except kind as exc:
        if naming is not None and not re.search(re.escape(naming), str(exc)):
            raise AssertionError(
                f"{operation} raised {kind.__name__}({str(exc)!r}); expected {wanted} ({contract})"
            ) from exc
        return
    except Exception as exc:
        raise AssertionError(
            f"{operation} raised {type(exc).__name__}({str(exc)!r}); expected {wanted} ({contract})"
        ) from exc
    raise AssertionError(f"{operation} returned {_show(result)}; expected {wanted} ({contract})")


def storage_state_machine(
    factory: StorageFactory, *, durable: bool = False
) -> type[RuleBasedStateMachine]:
    """Return a hypothesis state machine that runs a backend beside a dict model.

    Every step — put, delete, batch, scan over random bounds and, for durable backends, close and
    reopen — is applied to both, and after each one every key and every scan must agree. A
    failure names the operation and both results; hypothesis prints the steps before it.

    Args:
        factory: Opens the backend in the given directory. Called again on the same directory
            to reopen it.
        durable: Whether the backend keeps its data across close and reopen.

    Returns:
        A `RuleBasedStateMachine` subclass; run it with `run_state_machine_as_test` or expose
        its ``TestCase`` attribute to pytest.
    """

    class StorageMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.directory = Path(tempfile.mkdtemp(prefix="dynamo-core-conformance-"))
            self.store = factory(self.directory)
            self.model: dict[bytes, bytes] = {}

        @rule(key=_keys, value=_values)
        def put(self, key: bytes, value: bytes) -> None:
            self.store.put(key, value)
            self.model[key] = value

        @rule(key=_keys)
        def delete(self, key: bytes) -> None:
            self.store.delete(key)
            self.model.pop(key, None)

        @rule(
            puts=st.lists(st.tuples(_keys, _values), max_size=8),
            deletes=st.lists(_keys, max_size=8),
        )
        def batch(self, puts: list[tuple[bytes, bytes]], deletes: list[bytes]) -> None:
            put_keys = {key for key, _ in puts}
            deletes = [key for key in deletes if key not in put_keys]
            self.store.write_batch(puts, deletes)
            self.model.update(puts)
            for key in deletes:
                self.model.pop(key, None)

        @rule(puts=st.lists(st.tuples(_keys, _values), min_size=1, max_size=4), key=_keys)
        def conflicting_batch_changes_nothing(
            self, puts: list[tuple[bytes, bytes]], key: bytes
        ) -> None:
            clash = puts[0][0]
            _expect_raises(
                ValueError,
                _call("write_batch", puts, [key, clash]),
                lambda: self.store.write_batch(puts, [key, clash]),
                naming="both put and deleted",
                contract=_ATOMIC,
            )

        @rule(start=st.none() | _keys, end=st.none() | _keys)
        def scan(self, start: bytes | None, end: bytes | None) -> None:
            expected = sorted(
                (k, v)
                for k, v in self.model.items()
                if (start is None or k >= start) and (end is None or k < end)
            )
            _expect_equal(
                f"list({_call('scan', start, end)})",
                list(self.store.scan(start, end)),
                expected,
                "the pairs with start <= key < end, in ascending key order",
            )

        @precondition(lambda self: durable)
        @rule()
        def reopen(self) -> None:
            self.store.close()
            self.store = factory(self.directory)

        @invariant()
        def agrees_with_model(self) -> None:
            for key in _SAMPLE_KEYS:
                _expect_equal(_call("get", key), self.store.get(key), self.model.get(key))
            _expect_equal(
                "dict(store.scan())",
                dict(self.store.scan()),
                self.model,
                "what the steps above wrote",
            )

        def teardown(self) -> None:
            self.store.close()
            shutil.rmtree(self.directory, ignore_errors=True)

    StorageMachine.__name__ = f"StorageMachine[{getattr(factory, '__qualname__', 'factory')}]"
    return StorageMachine


_SAMPLE_KEYS = (b"", b"\x00", b"\xff", b"a", b"a\x00", b"b")


class StorageConformance:
    """The checks every [`Storage`][dynamo_core.interfaces.Storage] backend must pass.

    Subclass it as ``Test<Name>`` in a pytest module and implement
    [`make_storage`][dynamo_core.testing.StorageConformance.make_storage]. Set
    ``durable = True`` if the backend keeps data across `close()` and reopening (the suite then
    reopens stores and checks the data is still there). A crash test — killing a writer with
    SIGKILL — is backend-specific; see ``tests/storage/test_sqlite_crash.py`` for one.

    Each failure names the operation, its arguments, the expected and the actual result, and
    the rule of the contract it breaks.
    """

    durable: ClassVar[bool] = False

    def make_storage(self, directory: Path) -> Storage:
        """Open the backend under test, storing any files in `directory`.

        Called again with the same directory to reopen a durable store.
        """
        raise NotImplementedError("subclasses of StorageConformance must implement make_storage")

    # -- helpers -------------------------------------------------------------------------------

    def _open(self, directory: Path) -> Storage:
        store: object = self.make_storage(directory)
        if not isinstance(store, Storage):
            missing = [
                name
                for name in ("get", "put", "delete", "scan", "write_batch", "close", "__enter__")
                if not callable(getattr(store, name, None))
            ]
            raise AssertionError(
                f"make_storage returned a {type(store).__name__}, which lacks the Storage "
                f"methods {', '.join(missing) or '__exit__'}"
            )
        return store

    # -- basic operations ------------------------------------------------------------------------

    def test_get_missing_is_none(self, tmp_path: Path) -> None:
        with self._open(tmp_path) as store:
            _expect_equal(_call("get", b"missing"), store.get(b"missing"), None)

    def test_put_get_overwrite(self, tmp_path: Path) -> None:
        with self._open(tmp_path) as store:
            store.put(b"k", b"v1")
            _expect_equal(_call("get", b"k"), store.get(b"k"), b"v1", "after put(b'k', b'v1')")
            store.put(b"k", b"v2")
            _expect_equal(_call("get", b"k"), store.get(b"k"), b"v2", "after put(b'k', b'v2')")

    def test_empty_key_and_value_are_distinct_from_missing(self, tmp_path: Path) -> None:
        with self._open(tmp_path) as store:
            store.put(b"", b"")
            _expect_equal(_call("get", b""), store.get(b""), b"", "after put(b'', b'')")
            _expect_equal("list(store.scan())", list(store.scan()), [(b"", b"")])

    def test_delete(self, tmp_path: Path) -> None:
        with self._open(tmp_path) as store:
            store.put(b"k", b"v")
            store.delete(b"k")
            _expect_equal(_call("get", b"k"), store.get(b"k"), None, "after delete(b'k')")
            store.delete(b"k")  # deleting a missing key is not an error
            _expect_equal("list(store.scan())", list(store.scan()), [], "after delete(b'k')")

    def test_binary_values_round_trip(self, tmp_path: Path) -> None:
        value = bytes(range(256)) * 4096  # 1 MiB with every byte value, NUL included
        with self._open(tmp_path) as store:
            store.put(b"\x00\xff", value)
            _expect_equal(
                _call("get", b"\x00\xff"),
                store.get(b"\x00\xff"),
                value,
                "after put of 1 MiB holding every byte value",
            )

    # -- order and scans -------------------------------------------------------------------------

    def test_scan_is_in_unsigned_byte_order(self, tmp_path: Path) -> None:
        keys = [b"b", b"\xff", b"a\x00", b"", b"\x80", b"a", b"\x7f", b"\x00", b"ab", b"\xff\x00"]
        with self._open(tmp_path) as store:
            for i, key in enumerate(keys):
                store.put(key, str(i).encode())
            _expect_equal(
                "[key for key, _ in store.scan()]",
                [k for k, _ in store.scan()],
                sorted(keys),
                "unsigned byte order, shorter first on a common prefix",
            )

    def test_scan_bounds_are_half_open(self, tmp_path: Path) -> None:
        with self._open(tmp_path) as store:
            store.write_batch([(bytes([i]), bytes([i])) for i in range(10)])
            cases: list[tuple[bytes | None, bytes | None, list[bytes]]] = [
                (b"\x03", b"\x07", [b"\x03", b"\x04", b"\x05", b"\x06"]),
                (b"\x08", None, [b"\x08", b"\x09"]),
                (None, b"\x02", [b"\x00", b"\x01"]),
                (b"\x05", b"\x05", []),
                (b"\x07", b"\x03", []),
            ]
            for start, end, expected in cases:
                _expect_equal(
                    f"keys of {_call('scan', start, end)}",
                    [k for k, _ in store.scan(start, end)],
                    expected,
                    "start <= key < end over the keys 0x00 .. 0x09",
                )

    def test_scan_survives_writes_while_iterating(self, tmp_path: Path) -> None:
        with self._open(tmp_path) as store:
            store.write_batch([(b"%05d" % i, b"x") for i in range(0, 3000, 2)])
            seen = []
            for key, _ in store.scan():
                seen.append(key)
                n = int(key)
                if n % 10 == 0:
                    store.put(b"%05d" % (n + 1), b"new")  # ahead of the cursor
                    store.delete(b"%05d" % (n + 4))
            _expect_equal(
                "the keys of store.scan() with puts and deletes during the scan",
                seen,
                sorted(set(seen)),
                "every key at most once and in order",
            )
            # Keys present from start to end must all be seen; the ones written or deleted
            # during the scan may or may not be.
            untouched = [b"%05d" % i for i in range(0, 3000, 2) if i % 10 != 4]
            missed = sorted(set(untouched) - set(seen))
            if missed:
                raise AssertionError(
                    f"store.scan() with puts and deletes during the scan missed {len(missed)} "
                    f"keys present from start to end (first {missed[:3]!r}); expected every "
                    "such key (the Storage contract: writes during a scan may or may not be "
                    "seen, the other keys must be)"
                )

    # -- batches ---------------------------------------------------------------------------------

    def test_batch_applies_puts_and_deletes(self, tmp_path: Path) -> None:
        with self._open(tmp_path) as store:
            store.write_batch([(b"a", b"1"), (b"b", b"2"), (b"c", b"3")])
            puts = [(b"d", b"4"), (b"a", b"first"), (b"a", b"last")]
            store.write_batch(puts, [b"b", b"zz"])
            _expect_equal(
                f"dict(store.scan()) after {_call('write_batch', puts, [b'b', b'zz'])}",
                dict(store.scan()),
                {b"a": b"last", b"c": b"3", b"d": b"4"},
                "a key put twice keeps the later value; deleting a missing key is no error",
            )

    def test_batch_with_key_put_and_deleted_changes_nothing(self, tmp_path: Path) -> None:
        with self._open(tmp_path) as store:
            store.put(b"a", b"1")
            puts, deletes = [(b"b", b"2"), (b"a", b"x")], [b"a"]
            operation = _call("write_batch", puts, deletes)
            _expect_raises(
                ValueError,
                operation,
                lambda: store.write_batch(puts, deletes),
                naming="both put and deleted",
                contract=_ATOMIC,
            )
            _expect_equal(
                f"dict(store.scan()) after the refused {operation}",
                dict(store.scan()),
                {b"a": b"1"},
                _ATOMIC,
            )

    @pytest.mark.parametrize(
        "puts",
        [
            [(b"ok", b"v"), ("str-key", b"v")],
            [(b"ok", b"v"), (b"k", "str-value")],
            [(b"ok", b"v"), (b"k", bytearray(b"v"))],
            [(b"ok", b"v"), [b"k", b"v"]],
            [(b"ok", b"v"), (b"k", b"v", b"extra")],
        ],
        ids=["str-key", "str-value", "bytearray-value", "list-item", "triple"],
    )
    def test_bad_batch_item_changes_nothing(self, tmp_path: Path, puts: list[Any]) -> None:
        with self._open(tmp_path) as store:
            store.put(b"a", b"1")
            _expect_raises(
                TypeError,
                f"{_call('write_batch', iter(puts), [b'a'])} (puts as an iterator of {puts!r})",
                lambda: store.write_batch(iter(puts), [b"a"]),
                naming="puts[1]",
                contract=_ATOMIC,
            )
            bad_deletes: list[Any] = [b"a", "not-bytes"]
            _expect_raises(
                TypeError,
                _call("write_batch", [(b"z", b"1")], bad_deletes),
                lambda: store.write_batch([(b"z", b"1")], bad_deletes),
                naming="deletes[1]",
                contract=_ATOMIC,
            )
            _expect_equal(
                "dict(store.scan()) after the refused batches",
                dict(store.scan()),
                {b"a": b"1"},
                _ATOMIC,
            )

    # -- bad input -------------------------------------------------------------------------------

    def test_non_bytes_arguments_raise_type_error(self, tmp_path: Path) -> None:
        bad: Any = "text"
        with self._open(tmp_path) as store:
            checks: list[tuple[str, Callable[[], object], str, str]] = [
                (_call("get", bad), lambda: store.get(bad), "key", _EAGER),
                (_call("put", bad, b"v"), lambda: store.put(bad, b"v"), "key", _EAGER),
                (_call("put", b"k", bad), lambda: store.put(b"k", bad), "value", _EAGER),
                (_call("put", b"k", None), lambda: store.put(b"k", None), "value", _EAGER),  # type: ignore[arg-type]
                (_call("delete", bad), lambda: store.delete(bad), "key", _EAGER),
                (_call("scan", bad), lambda: store.scan(bad), "start", _EAGER_SCAN),
                (_call("scan", None, bad), lambda: store.scan(None, bad), "end", _EAGER_SCAN),
            ]
            for operation, call, naming, contract in checks:
                _expect_raises(TypeError, operation, call, naming=naming, contract=contract)
            _expect_equal("list(store.scan()) after the refused calls", list(store.scan()), [])

    # -- lifecycle -------------------------------------------------------------------------------

    def test_closed_store_refuses_every_operation(self, tmp_path: Path) -> None:
        store = self._open(tmp_path)
        store.put(b"k", b"v")
        iterator = store.scan()
        store.close()
        store.close()  # idempotent
        operations: list[tuple[str, Callable[[], object]]] = [
            (_call("get", b"k"), lambda: store.get(b"k")),
            (_call("put", b"k", b"v"), lambda: store.put(b"k", b"v")),
            (_call("delete", b"k"), lambda: store.delete(b"k")),
            (_call("scan"), store.scan),
            ("list(iterator) of a scan opened before close()", lambda: list(iterator)),
            (_call("write_batch", [(b"k", b"v")]), lambda: store.write_batch([(b"k", b"v")])),
            ("store.__enter__() (a with block)", store.__enter__),
        ]
        for operation, call in operations:
            _expect_raises(
                StorageClosedError,
                f"after close(), {operation}",
                call,
                contract=_CLOSED + ("; scan raises when called" if "scan()" in operation else ""),
            )

    def test_context_manager_closes(self, tmp_path: Path) -> None:
        with self._open(tmp_path) as store:
            store.put(b"k", b"v")
        _expect_raises(
            StorageClosedError,
            f"after leaving the with block, {_call('get', b'k')}",
            lambda: store.get(b"k"),
            contract="the Storage contract: the context manager closes the store on exit",
        )

    def test_reopen_keeps_data(self, tmp_path: Path) -> None:
        if not self.durable:  # a fresh store in the same directory must still work
            with self._open(tmp_path) as store:
                store.put(b"k", b"v")
            with self._open(tmp_path) as store:
                store.put(b"k2", b"v2")
                _expect_equal(
                    _call("get", b"k2"),
                    store.get(b"k2"),
                    b"v2",
                    "on a store opened again in the directory of a closed one",
                )
            return
        with self._open(tmp_path) as store:
            store.write_batch([(b"a", b"1"), (b"b", b"2")])
            store.put(b"c", b"3")
            store.delete(b"a")
        with self._open(tmp_path) as store:
            _expect_equal(
                "dict(store.scan()) after close() and reopening",
                dict(store.scan()),
                {b"b": b"2", b"c": b"3"},
                "durable = True: data must survive close() and reopen",
            )

    # -- the model ---------------------------------------------------------------------------------

    def test_stateful_against_dict_model(self) -> None:
        run_state_machine_as_test(storage_state_machine(self.make_storage, durable=self.durable))
