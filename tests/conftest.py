"""Fixtures shared by every test tree."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def unique_id() -> str:
    """A short id unique to this test, for names that must never collide between tests."""
    return "t" + uuid.uuid4().hex[:12]
