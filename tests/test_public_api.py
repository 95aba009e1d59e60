"""The public names are the contract: pin them, and keep `import dynamo_core` light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dynamo_core

EXPECTED_ALL = sorted(
    [
        "ActorEpochs",
        "Change",
        "Clock",
        "Complete",
        "ConsistencyLevel",
        "CoordinatorState",
        "DVVSet",
        "DecodeError",
        "DeliveryFailed",
        "Dot",
        "DynamoError",
        "EmptyRingError",
        "ExchangeReport",
        "Fetched",
        "GetCoordinator",
        "GetReply",
        "GetResult",
        "Handoff",
        "HashRing",
        "Hint",
        "HintBatch",
        "HintStore",
        "HintsDelivered",
        "HintsExpired",
        "LocalProtocolError",
        "Membership",
        "MemoryStorage",
        "MerkleExchange",
        "MerkleTree",
        "Node",
        "NodeConfig",
        "Ordering",
        "PhiAccrualDetector",
        "ProtocolError",
        "PutCoordinator",
        "PutReply",
        "PutResult",
        "QuorumPolicy",
        "RangeStream",
        "Refused",
        "RemoteProtocolError",
        "ReplicaState",
        "RequestFailed",
        "RingChanged",
        "RingVersion",
        "SQLiteStorage",
        "SendFetch",
        "SendHints",
        "SendRepair",
        "SendStore",
        "Storage",
        "StorageClosedError",
        "StorageError",
        "Stored",
        "TokenRange",
        "Transfer",
        "TransferDone",
        "Transport",
        "Unavailable",
        "VectorClock",
        "VersionRecord",
        "Versioned",
        "__version__",
        "depth_for",
        "item_digest",
        "keyed_token",
        "last_write_wins",
        "reconcile",
        "run_exchange",
        "token",
        "token_function",
    ]
)


def test_all_is_pinned() -> None:
    assert sorted(dynamo_core.__all__) == EXPECTED_ALL
    assert dynamo_core.__all__ == sorted(dynamo_core.__all__), "keep __all__ sorted"
    for name in dynamo_core.__all__:
        assert hasattr(dynamo_core, name), name


AIO_ALL = sorted(
    [
        "AdminCall",
        "AuthError",
        "Client",
        "ClientCall",
        "ClientError",
        "Driver",
        "DriverTransport",
        "FrameDecoder",
        "FrameError",
        "FrameTooLarge",
        "Inbound",
        "Inbox",
        "TcpTransport",
        "TransportConfig",
        "admin_request",
        "encode_frame",
        "parse_address",
        "serve",
        "tls_contexts",
    ]
)


def test_aio_all_is_pinned() -> None:
    import dynamo_core.aio as aio  # loads asyncio: on purpose, only here

    assert sorted(aio.__all__) == AIO_ALL
    assert aio.__all__ == sorted(aio.__all__), "keep __all__ sorted"
    for name in aio.__all__:
        assert hasattr(aio, name), name
    for name in ("AuthError", "ClientError", "FrameError", "FrameTooLarge"):
        assert issubclass(getattr(aio, name), dynamo_core.DynamoError), name


def test_the_pure_aio_modules_work_without_asyncio() -> None:
    # Load framing, auth and protocol by path (the package __init__ loads asyncio) in a process
    # where importing asyncio fails.
    aio_dir = Path(dynamo_core.__file__).parent / "aio"
    code = (
        "import sys, importlib.util\n"
        "sys.modules['asyncio'] = None\n"
        "for name in ('framing', 'auth', 'protocol'):\n"
        f"    path = r'{aio_dir}/' + name + '.py'\n"
        "    spec = importlib.util.spec_from_file_location('pure_' + name, path)\n"
        "    module = importlib.util.module_from_spec(spec)\n"
        "    spec.loader.exec_module(module)\n"
        "print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_errors_share_a_base() -> None:
    for name in dynamo_core.__all__:
        obj = getattr(dynamo_core, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, dynamo_core.DynamoError), name
    assert issubclass(dynamo_core.DecodeError, ValueError)
    error = dynamo_core.Unavailable("2 of 3 needed", required=2, answered=["c", "a"])
    assert error.answered == ("a", "c") and error.required == 2


def test_import_pulls_in_neither_hypothesis_nor_asyncio() -> None:
    code = (
        "import sys, dynamo_core\n"
        "bad = sorted(m for m in ('hypothesis', 'asyncio', 'pytest', 'rich') if m in sys.modules)\n"
        "print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_version_is_a_string() -> None:
    assert isinstance(dynamo_core.__version__, str)
    assert dynamo_core.__version__[0].isdigit()
