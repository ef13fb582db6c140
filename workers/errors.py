"""The error policy, in one place: what the workers do with each kind of failure.

Every exception a stage can meet falls into one of three classes, decided by `classify`
from the table `RULES` (first match wins, so the narrow exceptions come before the broad
ones they subclass):

    DEAD_LETTER  the input can never succeed (bad bytes, schema, version, values):
                 park the record in its dead-letter topic with the reason, go on;
    RETRY        a dependency is unavailable for now (PostgreSQL, Redis, Kafka down,
                 timeouts, serialization failures, deadlocks): keep the batch, pause its
                 partitions, retry with backoff, acknowledge nothing until it succeeds;
    STOP         anything else is a defect no rule covers: stop the process without
                 acknowledging (never skip, never retry a bug forever in silence).

Why STOP is the default: an unknown error cannot be proven transient (retrying it could
wait forever on a bug) nor permanent for this one record (dead-lettering it could park
every record of a topic). Stopping loses nothing: the batch was not acknowledged, and a
restarted worker resumes at the last commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import asyncpg
import redis.exceptions as redis_errors
from aiokafka import errors as kafka_errors
from asyncpg.exceptions._base import DataError as ClientDataError  # not exported publicly

from workers.decoding import DecodeError, SchemasNotFoundError
from workers.projection.batches import MalformedFactsError


class Policy(StrEnum):
    """What a stage does with a failure."""

    DEAD_LETTER = "dead_letter"
    """The record itself is bad and always will be: produce it, untouched, to its source's
    dead-letter topic with the reason, and process the next record."""

    RETRY = "retry"
    """A dependency failed and will come back: pause the batch's partitions, retry the
    step with capped exponential backoff and jitter, acknowledge nothing meanwhile."""

    STOP = "stop"
    """A defect or a broken deployment: stop the worker without acknowledging the batch,
    so that nothing is skipped; a restarted worker resumes at the last commit."""


@dataclass(frozen=True, slots=True)
class Rule:
    """Exceptions of `types` get `policy`; `why` is the rule's justification (for docs)."""

    types: tuple[type[BaseException], ...]
    policy: Policy
    why: str


_NOT_NETWORK_OS_ERRORS: tuple[type[OSError], ...] = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)
"""OSErrors about local files (the RocksDB data dir, the schema files): retrying cannot
help, so they fall through to STOP; every other OSError is a network failure."""

RULES: Sequence[Rule] = (
    # ---- bad input: never retried
    Rule((DecodeError,), Policy.DEAD_LETTER,
         "an upstream record that cannot be decoded (any DecodeErrorKind, INTERNAL too: "
         "the decoder asks for such records to be parked and reported)"),
    Rule((MalformedFactsError,), Policy.DEAD_LETTER,
         "a seat-facts message that is not in the format the ingest stage writes"),
    Rule((SchemasNotFoundError,), Policy.STOP,
         "the schema files are missing: every record would fail, so it is a deployment "
         "fault, never a dead letter"),
    # ---- PostgreSQL: client-side defects before the transient classes they resemble
    Rule((asyncpg.exceptions.DataError, ClientDataError,
          asyncpg.exceptions.ClientConfigurationError,
          asyncpg.exceptions.UnsupportedClientFeatureError,
          asyncpg.exceptions.InvalidAuthorizationSpecificationError),
         Policy.STOP,
         "a value PostgreSQL refuses (class 22) or the driver cannot encode (the client's "
         "DataError, an InterfaceError), a bad DSN or wrong credentials: a defect or a "
         "configuration fault that no retry repairs"),
    Rule((asyncpg.exceptions.PostgresConnectionError,  # class 08: connection exceptions
          asyncpg.exceptions.InterfaceError,  # "connection is closed", released, ...
          asyncpg.exceptions.OperatorInterventionError,  # 57: shutdown, starting, timeout
          asyncpg.exceptions.InsufficientResourcesError,  # 53: too many connections, disk
          asyncpg.exceptions.TransactionRollbackError,  # 40: serialization, deadlock
          asyncpg.exceptions.LockNotAvailableError,  # 55P03: lock_timeout
          asyncpg.exceptions.ReadOnlySQLTransactionError,  # 25006: a failover in progress
          asyncpg.exceptions.IdleInTransactionSessionTimeoutError),
         Policy.RETRY,
         "PostgreSQL unreachable, restarting, overloaded or failing over, or a "
         "transaction lost a serialization or deadlock race: the same batch succeeds later"),
    # ---- Redis
    Rule((redis_errors.AuthenticationError, redis_errors.AuthorizationError),
         Policy.STOP,
         "wrong Redis credentials or ACL: a configuration fault"),
    Rule((redis_errors.ConnectionError,  # includes BusyLoadingError, MaxConnectionsError
          redis_errors.TimeoutError,
          redis_errors.WatchError,
          redis_errors.TryAgainError,
          redis_errors.ClusterDownError,
          redis_errors.MasterDownError,
          redis_errors.ReadOnlyError,
          redis_errors.OutOfMemoryError),
         Policy.RETRY,
         "Redis unreachable, loading its dataset, failing over or out of memory, or a "
         "checkpoint moved under WATCH: the same batch succeeds later"),
    # ---- Kafka (the producer of seat facts, dead letters and the table changelog)
    Rule((kafka_errors.KafkaConnectionError, kafka_errors.KafkaTimeoutError,
          kafka_errors.NodeNotReadyError, kafka_errors.RequestTimedOutError,
          kafka_errors.NotLeaderForPartitionError, kafka_errors.LeaderNotAvailableError,
          kafka_errors.NotEnoughReplicasError, kafka_errors.NotEnoughReplicasAfterAppendError,
          kafka_errors.KafkaUnavailableError),
         Policy.RETRY,
         "Kafka unreachable, electing a leader or short of in-sync replicas"),
    # ---- the operating system
    Rule(_NOT_NETWORK_OS_ERRORS, Policy.STOP,
         "a local file is missing or not accessible: retrying cannot help"),
    Rule((OSError,),  # ConnectionError, TimeoutError, gaierror, "Multiple exceptions"
         Policy.RETRY,
         "a socket failed: refused, reset, unreachable, timed out, name not resolved"),
)  # fmt: skip


REDIS_BUSY = "BUSY "
"""Redis answers every command with this error while another client's script runs (a
replay's batch, an operator's EVAL): redis-py raises a plain ResponseError for it, so
it is told apart by its text. The script ends, or is killed; the same batch succeeds."""


def classify(exc: BaseException) -> Policy:
    """The policy for `exc`: the first rule of `RULES` it matches, else STOP.

    A Kafka error no rule names is retried when aiokafka itself marks it retriable
    (`retriable = True`: the Kafka protocol says the request may succeed later).
    """
    for rule in RULES:
        if isinstance(exc, rule.types):
            return rule.policy
    if isinstance(exc, redis_errors.ResponseError) and str(exc).startswith(REDIS_BUSY):
        return Policy.RETRY
    if isinstance(exc, kafka_errors.KafkaError) and getattr(exc, "retriable", False):
        return Policy.RETRY
    return Policy.STOP


def describe(exc: BaseException) -> str:
    """`Type: message`, bounded, for logs and health reports."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 500 else text[:497] + "..."
