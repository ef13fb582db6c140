"""UUIDs in any .NET form -> the one canonical form, and UUID-looking Kafka keys.

.NET writes GUIDs as "D" (8-4-4-4-12) in payloads and as "N" (32 hex digits) in some keys;
any case may occur. The read models key everything by the lower-case 8-4-4-4-12 form, so the
same seat never appears under two spellings. The nil GUID is what .NET writes for an unset
`Guid` field, never a real id, so it is refused wherever an id is required.
"""

from __future__ import annotations

import re

from workers.decoding.errors import DecodeError, DecodeErrorKind

NIL_UUID = "00000000-0000-0000-0000-000000000000"

_UUID_TEXT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{32}"
)


def canonical_uuid_or_nil(text: str) -> str:
    """Canonical form, the nil UUID included (the caller decides what nil means).

    Precondition: `text` matched the schemas' uuid pattern ("D" or "N" form, any case).
    """
    lower = text.lower()
    if len(lower) == 36:
        return lower
    return f"{lower[0:8]}-{lower[8:12]}-{lower[12:16]}-{lower[16:20]}-{lower[20:32]}"


def canonical_uuid(text: str, path: str) -> str:
    """Return `text` in canonical form; `path` names the field in error reasons.

    Precondition: `text` matched the schemas' uuid pattern ("D" or "N" form, any case).
    """
    canonical = canonical_uuid_or_nil(text)
    if canonical == NIL_UUID:
        raise DecodeError(
            DecodeErrorKind.INVALID_VALUE, f"{path}: the nil UUID {text!r} is not an id"
        )
    return canonical


def optional_uuid(text: str | None) -> str | None:
    """Canonical form of an optional id; null and the nil UUID both mean "unknown".

    Precondition: `text` is None or matched the schemas' uuid pattern.
    """
    if text is None:
        return None
    canonical = canonical_uuid_or_nil(text)
    return None if canonical == NIL_UUID else canonical


def uuid_in_key(key: bytes) -> str | None:
    """The canonical UUID a Kafka key spells, or None if the key does not look like one."""
    if len(key) not in (32, 36):
        return None
    try:
        text = key.decode("ascii")
    except UnicodeDecodeError:
        return None
    if _UUID_TEXT.fullmatch(text) is None:
        return None
    return canonical_uuid_or_nil(text)


def key_spells(key: bytes, canonical: str) -> bool:
    """Fast check that `key` is `canonical` in "D" or "N" form, any case (the usual case)."""
    if len(key) == 36:
        return key.lower() == canonical.encode("ascii")
    if len(key) == 32:
        return key.lower() == canonical.replace("-", "").encode("ascii")
    return False
