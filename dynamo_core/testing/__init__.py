"""Test support for dynamo_core and for applications built on it.

Needs the ``hypothesis`` extra (``pip install dynamo-core[hypothesis]``).

* [`StorageConformance`][dynamo_core.testing.StorageConformance] — the conformance suite every
  [`Storage`][dynamo_core.interfaces.Storage] backend must pass; subclass it in your own tests.
* [`storage_state_machine`][dynamo_core.testing.storage_state_machine] — a hypothesis stateful
  test that runs a backend beside a dict model.
* [`FakeClock`][dynamo_core.testing.FakeClock] — a [`Clock`][dynamo_core.interfaces.Clock] that
  moves only when told to.
* [`SetHistory`][dynamo_core.testing.SetHistory] — Jepsen's set-full checker: which acknowledged
  writes were lost, which unacknowledged ones survived, what appeared from nowhere.
"""

from dynamo_core.testing.clock import FakeClock
from dynamo_core.testing.history import SetCheck, SetHistory
from dynamo_core.testing.storage import StorageConformance, storage_state_machine

__all__ = ["FakeClock", "SetCheck", "SetHistory", "StorageConformance", "storage_state_machine"]
