"""Fixtures of the decoding tests: choosing the JSON parse path."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from workers.decoding import json_bytes


@pytest.fixture(params=["fast", "exact"])
def parse_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Force every parse through one path (orjson or the exact stdlib parser)."""
    path: str = request.param
    monkeypatch.setattr(json_bytes, "_needs_exact", lambda shapes: path == "exact")
    yield path
