"""Shared test configuration: hypothesis profiles.

``HYPOTHESIS_PROFILE`` picks the profile; without it, CI (``CI`` set) uses ``ci`` and a developer
machine ``dev``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=50, deadline=None)
# CI explores a fixed set of 200 examples per test (derandomize), so a submission's verdict does
# not depend on luck; the dev profile keeps drawing fresh examples on every run.
settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
_default = "ci" if os.environ.get("CI") else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or _default)
