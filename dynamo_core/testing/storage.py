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

The suite needs pytest and hypothesis (the ``test`` extra).
"""

from __future__ import annotations

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


def storage_state_machine(
    factory: StorageFactory, *, durable: bool = False
) -> type[RuleBasedStateMachine]:
    """Return a hypothesis state machine that runs a backend beside a dict model.

    Every step — put, delete, batch, scan over random bounds and, for durable backends, close and
    reopen — is applied to both, and after each one every key and every scan must agree.

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
            with pytest.raises(ValueError, match="both put and deleted"):
                self.store.write_batch(puts, [key, clash])

        @rule(start=st.none() | _keys, end=st.none() | _keys)
        def scan(self, start: bytes | None, end: bytes | None) -> None:
            expected = sorted(
                (k, v)
                for k, v in self.model.items()
                if (start is None or k >= start) and (end is None or k < end)
            )
            assert list(self.store.scan(start, end)) == expected

        @precondition(lambda self: durable)
        @rule()
        def reopen(self) -> None:
            self.store.close()
            self.store = factory(self.directory)

        @invariant()
        def agrees_with_model(self) -> None:
            for key in _SAMPLE_KEYS:
                assert self.store.get(key) == self.model.get(key)
            assert dict(self.store.scan()) == self.model

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
    """

    durable: ClassVar[bool] = False

    def make_storage(self, directory: Path) -> Storage:
        """Open the backend under test, storing any files in `directory`.

        Called again with the same directory to reopen a durable store.
        """
        raise NotImplementedError("subclasses of StorageConformance must implement make_storage")

    # -- helpers -------------------------------------------------------------------------------

    def _open(self, directory: Path) -> Storage:
        store = self.make_storage(directory)
        assert isinstance(store, Storage), f"{type(store).__name__} lacks Storage methods"
        return store

    # -- basic operations ------------------------------------------------------------------------

    def test_get_missing_is_none(self, tmp_path: Path) -> None:
        with self._open(tmp_path) as store:
            assert store.get(b"missing") is None

    def test_put_get_overwrite(self, tmp_path: Path) -> None:
        with self._open(tmp_path) as store:
            store.put(b"k", b"v1")
            assert store.get(b"k") == b"v1"
            store.put(b"k", b"v2")
            assert store.get(b"k") == b"v2"

    def test_empty_key_and_value_are_distinct_from_missing(self, tmp_path: Path) -> None:
        with self._open(tmp_path) as store:
            store.put(b"", b"")
            assert store.get(b"") == b""
            assert list(store.scan()) == [(b"", b"")]

    def test_delete(self, tmp_path: Path) -> None:
        with self._open(tmp_path) as store:
            store.put(b"k", b"v")
            store.delete(b"k")
            assert store.get(b"k") is None
            store.delete(b"k")  # deleting a missing key is not an error
            assert list(store.scan()) == []

    def test_binary_values_round_trip(self, tmp_path: Path) -> None:
        value = bytes(range(256)) * 4096  # 1 MiB with every byte value, NUL included
        with self._open(tmp_path) as store:
            store.put(b"\x00\xff", value)
            assert store.get(b"\x00\xff") == value

    # -- order and scans -------------------------------------------------------------------------

    def test_scan_is_in_unsigned_byte_order(self, tmp_path: Path) -> None:
        keys = [b"b", b"\xff", b"a\x00", b"", b"\x80", b"a", b"\x7f", b"\x00", b"ab", b"\xff\x00"]
        with self._open(tmp_path) as store:
            for i, key in enumerate(keys):
                store.put(key, str(i).encode())
            assert [k for k, _ in store.scan()] == sorted(keys)

    def test_scan_bounds_are_half_open(self, tmp_path: Path) -> None:
        with self._open(tmp_path) as store:
            store.write_batch([(bytes([i]), bytes([i])) for i in range(10)])
            assert [k[0] for k, _ in store.scan(b"\x03", b"\x07")] == [3, 4, 5, 6]
            assert [k[0] for k, _ in store.scan(b"\x08")] == [8, 9]
            assert [k[0] for k, _ in store.scan(None, b"\x02")] == [0, 1]
            assert list(store.scan(b"\x05", b"\x05")) == []
            assert list(store.scan(b"\x07", b"\x03")) == []

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
            assert seen == sorted(set(seen)), "scan yielded a key twice or out of order"
            # Keys present from start to end must all be seen; the ones written or deleted
            # during the scan may or may not be.
            untouched = [b"%05d" % i for i in range(0, 3000, 2) if i % 10 != 4]
            assert set(untouched) <= set(seen)

    # -- batches ---------------------------------------------------------------------------------

    def test_batch_applies_puts_and_deletes(self, tmp_path: Path) -> None:
        with self._open(tmp_path) as store:
            store.write_batch([(b"a", b"1"), (b"b", b"2"), (b"c", b"3")])
            store.write_batch([(b"d", b"4"), (b"a", b"first"), (b"a", b"last")], [b"b", b"zz"])
            assert dict(store.scan()) == {b"a": b"last", b"c": b"3", b"d": b"4"}

    def test_batch_with_key_put_and_deleted_changes_nothing(self, tmp_path: Path) -> None:
        with self._open(tmp_path) as store:
            store.put(b"a", b"1")
            with pytest.raises(ValueError, match="both put and deleted"):
                store.write_batch([(b"b", b"2"), (b"a", b"x")], [b"a"])
            assert dict(store.scan()) == {b"a": b"1"}

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
            with pytest.raises(TypeError, match=r"puts\[1\]"):
                store.write_batch(iter(puts), [b"a"])
            with pytest.raises(TypeError, match=r"deletes\[1\]"):
                store.write_batch([(b"z", b"1")], [b"a", "not-bytes"])  # type: ignore[list-item]
            assert dict(store.scan()) == {b"a": b"1"}

    # -- bad input -------------------------------------------------------------------------------

    def test_non_bytes_arguments_raise_type_error(self, tmp_path: Path) -> None:
        bad: Any = "text"
        with self._open(tmp_path) as store:
            with pytest.raises(TypeError, match="key"):
                store.get(bad)
            with pytest.raises(TypeError, match="key"):
                store.put(bad, b"v")
            with pytest.raises(TypeError, match="value"):
                store.put(b"k", bad)
            with pytest.raises(TypeError, match="value"):
                store.put(b"k", None)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="key"):
                store.delete(bad)
            with pytest.raises(TypeError, match="start"):
                store.scan(bad)
            with pytest.raises(TypeError, match="end"):
                store.scan(None, bad)
            assert list(store.scan()) == []

    # -- lifecycle -------------------------------------------------------------------------------

    def test_closed_store_refuses_every_operation(self, tmp_path: Path) -> None:
        store = self._open(tmp_path)
        store.put(b"k", b"v")
        iterator = store.scan()
        store.close()
        store.close()  # idempotent
        operations: list[Callable[[], object]] = [
            lambda: store.get(b"k"),
            lambda: store.put(b"k", b"v"),
            lambda: store.delete(b"k"),
            store.scan,
            lambda: list(iterator),
            lambda: store.write_batch([(b"k", b"v")]),
            store.__enter__,
        ]
        for operation in operations:
            with pytest.raises(StorageClosedError):
                operation()

    def test_context_manager_closes(self, tmp_path: Path) -> None:
        with self._open(tmp_path) as store:
            store.put(b"k", b"v")
        with pytest.raises(StorageClosedError):
            store.get(b"k")

    def test_reopen_keeps_data(self, tmp_path: Path) -> None:
        if not self.durable:  # a fresh store in the same directory must still work
            with self._open(tmp_path) as store:
                store.put(b"k", b"v")
            with self._open(tmp_path) as store:
                store.put(b"k2", b"v2")
                assert store.get(b"k2") == b"v2"
            return
        with self._open(tmp_path) as store:
            store.write_batch([(b"a", b"1"), (b"b", b"2")])
            store.put(b"c", b"3")
            store.delete(b"a")
        with self._open(tmp_path) as store:
            assert dict(store.scan()) == {b"b": b"2", b"c": b"3"}

    # -- the model ---------------------------------------------------------------------------------

    def test_stateful_against_dict_model(self) -> None:
        run_state_machine_as_test(storage_state_machine(self.make_storage, durable=self.durable))
