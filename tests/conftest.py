"""Shared test helpers: where the repository and the shared reference live."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
LANGUAGE_MD = SHARED / "LANGUAGE.md"
OPENAPI = SHARED / "reference" / "kajabi-openapi-customers.yml"


def require(path: Path) -> Path:
    """Skip (with the reason) when a file of ../shared is not beside this checkout."""
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared reference is not beside this checkout")
    return path
