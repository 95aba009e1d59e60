"""The pytest plugin of dynamo_core's conformance suites: their failures show values.

pytest rewrites ``assert`` statements (to show the values of a failed one) only in test modules
and in modules registered before they are imported; an installed suite is neither. This plugin
registers them. It is on by default, through the ``pytest11`` entry point that dynamo-core
installs; with plugin autoloading off (``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``) turn it on in your
``conftest.py``, before anything imports the suite::

    pytest_plugins = ["dynamo_core.testing.pytest_plugin"]

Loading it costs nothing else: it imports no suite and no other dynamo_core module.
"""

from __future__ import annotations

import pytest

__all__ = ["SUITES"]

SUITES = ("dynamo_core.testing.storage",)
"""The modules whose assertions the plugin has pytest rewrite."""

pytest.register_assert_rewrite(*SUITES)
