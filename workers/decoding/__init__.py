"""Kafka record parts -> canonical events of `workers.events`, one per record.

    event = decode(EventType.RESERVATION_CREATED, value, key, headers, timestamp_ms)

Every upstream shape of a topic (the contract file, the documentation variant, what the .NET
producers really send; see schemas/README.md) becomes the same canonical type, with ids,
times and money in one form, so nothing downstream branches on a producer's quirks. A bad
record raises `DecodeError`, whose `kind` says why, `reason` says where (a JSON path) and
`schema_version` says which shape was detected.

Call `load_validators()` at start-up to fail fast on missing schema files
(`SchemasNotFoundError`); otherwise they are compiled on the first `decode`.
"""

from workers.decoding.decoder import decode
from workers.decoding.errors import DecodeError, DecodeErrorKind, SchemasNotFoundError
from workers.decoding.validators import SCHEMAS_DIR_ENV, load_validators, schemas_dir
from workers.decoding.versions import KNOWN_VERSIONS

__all__ = [
    "KNOWN_VERSIONS",
    "SCHEMAS_DIR_ENV",
    "DecodeError",
    "DecodeErrorKind",
    "SchemasNotFoundError",
    "decode",
    "load_validators",
    "schemas_dir",
]
