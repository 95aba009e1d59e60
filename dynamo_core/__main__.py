"""``python -m dynamo_core``: the same as the ``dynamo-core`` command."""

from dynamo_core.cli import main

raise SystemExit(main())
