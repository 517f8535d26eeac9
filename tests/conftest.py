"""Shared test helpers: where the repository and the shared reference live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests are deterministic and take no wall-clock limits: the same examples on every
# run (derandomize), no per-example deadline and no "too slow" health check, so a busy
# 2-core CI machine gets the same verdict as a quiet one. HYPOTHESIS_PROFILE=explore
# draws fresh random examples when hunting for new bugs.
settings.register_profile(
    "ci", derandomize=True, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("explore", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
LANGUAGE_MD = SHARED / "LANGUAGE.md"
OPENAPI = SHARED / "reference" / "kajabi-openapi-customers.yml"


def require(path: Path) -> Path:
    """Skip (with the reason) when a file of ../shared is not beside this checkout."""
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared reference is not beside this checkout")
    return path
