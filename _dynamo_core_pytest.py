"""pytest's entry point for dynamo_core: has pytest rewrite the conformance suites' assertions.

pytest rewrites ``assert`` statements (to show the values of a failed one) only in test modules
and in modules registered before they are imported; an installed suite is neither. pytest loads
this module at start-up in every environment where dynamo-core is installed, so it lives outside
the package and imports nothing of it: pytest only needs the suites' names. The documented way
to turn it on by hand is `dynamo_core.testing.pytest_plugin`, which imports this module.

PYTEST_DONT_REWRITE: it asserts nothing.
"""

from __future__ import annotations

import pytest

__all__ = ["SUITES"]

SUITES = ("dynamo_core.testing.storage",)
"""The modules whose assertions pytest rewrites."""

pytest.register_assert_rewrite(*SUITES)
