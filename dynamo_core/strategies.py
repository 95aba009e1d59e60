"""Hypothesis strategies for dynamo_core's types, for your own property-based tests.

They live in `dynamo_core.testing.strategies`, beside the other test helpers; this module is
their short import path and documents them.

Needs the ``hypothesis`` extra. Importing this module registers every type for
``st.from_type``, as importing `dynamo_core.testing.strategies` does.
"""

from __future__ import annotations

from dynamo_core.testing.strategies import *  # noqa: F403 - the short path re-exports them all
from dynamo_core.testing.strategies import __all__ as __all__  # noqa: PLC0414 - re-exported
