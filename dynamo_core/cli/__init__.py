"""The ``dynamo-core`` command, as a package.

`main` holds the commands, `demo` the narrated story, `cluster` the commands that run and
talk to a TCP cluster, and `admin` the operator's membership commands.

The package sits above the library: nothing in it is imported by ``import dynamo_core``.
"""

from __future__ import annotations

from dynamo_core.cli.main import main

__all__ = ["main"]
