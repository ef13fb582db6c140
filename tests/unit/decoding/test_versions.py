"""Version detection: by shape unless the record says; explicit claims must be known."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.decoding.upstream import payload
from workers.decoding import DecodeError, DecodeErrorKind
from workers.decoding.versions import KNOWN_VERSIONS, detect_version
from workers.events import EventType


@pytest.mark.parametrize(
    ("fixture", "event_type", "version"),
    [
        ("seats-generated.v1.producer", EventType.SEATS_GENERATED, 1),
        ("reservation-created.v1.producer", EventType.RESERVATION_CREATED, 1),
        ("reservation-created.v1.contract", EventType.RESERVATION_CREATED, 1),
        ("reservation-created.v2.docs", EventType.RESERVATION_CREATED, 2),
        ("reservation-expired.v1.contract", EventType.RESERVATION_EXPIRED, 1),
        ("reservation-expired.v2.docs", EventType.RESERVATION_EXPIRED, 2),
        ("reservation-expired.v3.producer", EventType.RESERVATION_EXPIRED, 3),
        ("order-placed.v1", EventType.ORDER_PLACED, 1),
    ],
)
def test_shapes_are_recognised(fixture: str, event_type: EventType, version: int) -> None:
    assert detect_version(event_type, payload(fixture), []) == version


@pytest.mark.parametrize(
    ("data", "version"),
    [
        ({"concertEventId": None}, 3),
        ({"messageId": "x", "expiresAt": "x"}, 3),
        ({"expiresAt": "x", "status": "expired"}, 2),
        ({"status": "Expired"}, 1),
        ({}, 1),
    ],
    ids=repr,
)
def test_expired_markers_decide(data: dict[str, Any], version: int) -> None:
    assert detect_version(EventType.RESERVATION_EXPIRED, data, []) == version


@pytest.mark.parametrize(
    ("headers", "data", "version"),
    [
        ([("schema-version", b"2")], {}, 2),
        ([("SCHEMA-VERSION", b"V2")], {}, 2),
        ({"version": b"reservation-expired/v1"}, {"messageId": "x"}, 1),
        ([], {"schemaVersion": 3}, 3),
        ([], {"version": "v2"}, 2),
        ([("other", b"9"), ("version", b" 3 ")], {"version": 3}, 3),
    ],
    ids=repr,
)
def test_explicit_versions_win(headers: Any, data: dict[str, Any], version: int) -> None:
    assert detect_version(EventType.RESERVATION_EXPIRED, data, headers) == version


@pytest.mark.parametrize(
    ("headers", "data", "says"),
    [
        ([("version", b"4")], {}, "reservation-expired/v4 is not a version this decoder knows"),
        ([], {"version": 0}, "$.version is 0, not a version"),
        ([], {"version": -1}, "$.version is -1, not a version"),
        ([], {"version": 1.0}, "$.version is 1.0, not a version"),
        ([], {"version": None}, "$.version is None, not a version"),
        ([("version", None)], {}, "header 'version' is None, not a version"),
        ([("version", b"\xff")], {}, "not a version"),
        ([("version", b"1")], {"schemaVersion": "2"}, "conflicting versions"),
    ],
    ids=repr,
)
def test_unusable_explicit_versions_fail(headers: Any, data: dict[str, Any], says: str) -> None:
    with pytest.raises(DecodeError) as caught:
        detect_version(EventType.RESERVATION_EXPIRED, data, headers)

    assert caught.value.kind is DecodeErrorKind.UNKNOWN_VERSION
    assert says in caught.value.reason


def test_every_known_version_has_a_schema_file_and_a_builder() -> None:
    from workers.decoding.build import BUILDERS
    from workers.decoding.validators import load_validators

    known = {(t, v) for t, versions in KNOWN_VERSIONS.items() for v in versions}
    assert set(BUILDERS) == known
    assert set(load_validators()) == known
