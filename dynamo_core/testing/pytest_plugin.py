"""The pytest plugin of dynamo_core's conformance suites: their failures show values.

pytest rewrites ``assert`` statements (to show the values of a failed one) only in test modules
and in modules registered before they are imported; an installed suite is neither. The plugin
registers the suites (`SUITES`). It is on by default, through the ``pytest11`` entry point that
dynamo-core installs (named ``dynamo_core``; ``-p no:dynamo_core`` turns it off), and costs
nothing: the entry point imports no dynamo_core module. With plugin autoloading off
(``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``) turn it on in your ``conftest.py``, before anything
imports a suite::

    pytest_plugins = ["dynamo_core.testing.pytest_plugin"]
"""

from __future__ import annotations

from _dynamo_core_pytest import SUITES  # importing it registers them

__all__ = ["SUITES"]
