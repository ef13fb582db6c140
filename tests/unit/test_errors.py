"""The error policy table: every failure the workers can meet gets the intended policy."""

from __future__ import annotations

import ast
import inspect
import itertools
import socket

import asyncpg
import pytest
import redis.exceptions as redis_errors
from aiokafka import errors as kafka_errors
from asyncpg.exceptions._base import DataError as ClientDataError

from workers.decoding import DecodeError, DecodeErrorKind, SchemasNotFoundError
from workers.errors import RULES, Policy, classify, describe
from workers.projection.batches import MalformedFactsError, decode_facts
from workers.sinks.postgres_sink import UnknownOrderError

DEAD_LETTER, RETRY, STOP = Policy.DEAD_LETTER, Policy.RETRY, Policy.STOP


def pg(cls: type[asyncpg.PostgresError]) -> asyncpg.PostgresError:
    return cls("simulated")


CASES: list[tuple[str, BaseException, Policy]] = [
    # bad input
    *(
        (f"decode {kind}", DecodeError(kind, "why"), DEAD_LETTER)
        for kind in DecodeErrorKind  # INTERNAL too: the decoder asks to park such records
    ),
    ("malformed seat facts", MalformedFactsError("malformed"), DEAD_LETTER),
    ("schemas missing", SchemasNotFoundError("no schemas"), STOP),
    # PostgreSQL
    ("pg serialization", pg(asyncpg.exceptions.SerializationError), RETRY),
    ("pg deadlock", pg(asyncpg.exceptions.DeadlockDetectedError), RETRY),
    ("pg connection lost", pg(asyncpg.exceptions.ConnectionDoesNotExistError), RETRY),
    ("pg connection failure", pg(asyncpg.exceptions.ConnectionFailureError), RETRY),
    ("pg starting up", pg(asyncpg.exceptions.CannotConnectNowError), RETRY),
    ("pg admin shutdown", pg(asyncpg.exceptions.AdminShutdownError), RETRY),
    ("pg crash shutdown", pg(asyncpg.exceptions.CrashShutdownError), RETRY),
    ("pg statement timeout", pg(asyncpg.exceptions.QueryCanceledError), RETRY),
    ("pg too many connections", pg(asyncpg.exceptions.TooManyConnectionsError), RETRY),
    ("pg disk full", pg(asyncpg.exceptions.DiskFullError), RETRY),
    ("pg lock timeout", pg(asyncpg.exceptions.LockNotAvailableError), RETRY),
    ("pg read-only (failover)", pg(asyncpg.exceptions.ReadOnlySQLTransactionError), RETRY),
    ("pg closed", asyncpg.exceptions.InterfaceError("connection is closed"), RETRY),
    ("pg wrong password", pg(asyncpg.exceptions.InvalidPasswordError), STOP),
    ("pg data exception (22)", pg(asyncpg.exceptions.DataError), STOP),
    ("pg numeric overflow", pg(asyncpg.exceptions.NumericValueOutOfRangeError), STOP),
    ("pg driver cannot encode", ClientDataError("invalid input for query argument $1"), STOP),
    ("pg constraint", pg(asyncpg.exceptions.UniqueViolationError), STOP),
    ("pg check constraint", pg(asyncpg.exceptions.CheckViolationError), STOP),
    ("pg undefined table", pg(asyncpg.exceptions.UndefinedTableError), STOP),
    ("pg syntax", pg(asyncpg.exceptions.PostgresSyntaxError), STOP),
    ("pg string too long", pg(asyncpg.exceptions.StringDataRightTruncationError), STOP),
    ("pg index row too large", pg(asyncpg.exceptions.ProgramLimitExceededError), STOP),
    # Redis
    ("redis connection", redis_errors.ConnectionError("refused"), RETRY),
    ("redis timeout", redis_errors.TimeoutError("timeout"), RETRY),
    ("redis loading", redis_errors.BusyLoadingError("loading"), RETRY),
    ("redis watch", redis_errors.WatchError("moved"), RETRY),
    (
        "redis busy with a script",
        redis_errors.ResponseError(
            "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
        ),
        RETRY,
    ),
    ("redis wrong type", redis_errors.ResponseError("WRONGTYPE Operation against a key"), STOP),
    ("redis read-only replica", redis_errors.ReadOnlyError("readonly"), RETRY),
    ("redis out of memory", redis_errors.OutOfMemoryError("OOM"), RETRY),
    ("redis max connections", redis_errors.MaxConnectionsError("too many"), RETRY),
    ("redis auth", redis_errors.AuthenticationError("bad password"), STOP),
    ("redis script error", redis_errors.ResponseError("ERR Error running script"), STOP),
    ("redis wrong type", redis_errors.ResponseError("WRONGTYPE"), STOP),
    ("redis data error", redis_errors.DataError("bad arg"), STOP),
    # Kafka
    ("kafka connection", kafka_errors.KafkaConnectionError("down"), RETRY),
    ("kafka timeout", kafka_errors.KafkaTimeoutError(), RETRY),
    ("kafka not leader", kafka_errors.NotLeaderForPartitionError(), RETRY),
    ("kafka leader not available", kafka_errors.LeaderNotAvailableError(), RETRY),
    ("kafka request timed out", kafka_errors.RequestTimedOutError(), RETRY),
    ("kafka not enough replicas", kafka_errors.NotEnoughReplicasError(), RETRY),
    ("kafka node not ready", kafka_errors.NodeNotReadyError(), RETRY),
    ("kafka other retriable", kafka_errors.CoordinatorNotAvailableError(), RETRY),
    ("kafka message too large", kafka_errors.MessageSizeTooLargeError(), STOP),
    ("kafka authorization", kafka_errors.TopicAuthorizationFailedError(), STOP),
    ("kafka producer closed", kafka_errors.ProducerClosed(), STOP),
    # the operating system
    ("refused", ConnectionRefusedError(111, "refused"), RETRY),
    ("reset", ConnectionResetError(104, "reset"), RETRY),
    ("timeout", TimeoutError(), RETRY),
    ("dns", socket.gaierror(-2, "Name or service not known"), RETRY),
    ("asyncio multiple", OSError("Multiple exceptions: [Errno 111] ..."), RETRY),
    ("file missing", FileNotFoundError(2, "no such file"), STOP),
    ("permission", PermissionError(13, "denied"), STOP),
    # defects
    ("projection broke a promise", UnknownOrderError("orders missing"), STOP),
    ("key error", KeyError("x"), STOP),
    ("type error", TypeError("x"), STOP),
    ("value error", ValueError("x"), STOP),
    ("assertion", AssertionError("x"), STOP),
    ("runtime", RuntimeError("x"), STOP),
]


@pytest.mark.parametrize(("name", "exc", "policy"), CASES, ids=[c[0] for c in CASES])
def test_policy(name: str, exc: BaseException, policy: Policy) -> None:
    assert classify(exc) is policy


def test_every_rule_says_why_and_no_rule_is_shadowed() -> None:
    seen: list[type[BaseException]] = []
    for rule in RULES:
        assert rule.why and rule.types
        for earlier in seen:
            for t in rule.types:
                # a later rule for a subclass of an earlier rule's type could never match
                assert not issubclass(t, earlier), f"{t.__name__} is shadowed by {earlier}"
        seen.extend(rule.types)


def test_every_policy_member_has_a_docstring() -> None:
    """Members are documented like DecodeErrorKind's: a string right after each one."""
    tree = ast.parse(inspect.getsource(Policy))
    body = tree.body[0].body  # type: ignore[attr-defined]
    documented = {
        stmt.targets[0].id
        for stmt, following in itertools.pairwise(body)
        if isinstance(stmt, ast.Assign)
        and isinstance(following, ast.Expr)
        and isinstance(following.value, ast.Constant)
        and len(str(following.value.value)) > 40
    }
    assert documented == {p.name for p in Policy}


def test_seat_facts_decode_errors_are_malformed_facts() -> None:
    bad_decimal = b'["o", "i", "s", "o", "m", "r", "c", "x", 0, 1, "1", "EUR", "2026-01-01"]'
    bad_time = b'["x", "i", "s", "r", null, null, null, "not a time"]'
    values = [b"", b"{", b'{"v": 2}', b'{"v": 1, "facts": [["q"]]}']
    values += [b'{"v": 1, "facts": [' + fact + b"]}" for fact in (bad_decimal, bad_time)]
    for value in values:
        with pytest.raises(MalformedFactsError):
            decode_facts(value)


def test_describe_is_bounded() -> None:
    assert describe(ValueError("x" * 5000)).endswith("...")
    assert len(describe(ValueError("x" * 5000))) == 500
    assert describe(KeyError("k")) == "KeyError: 'k'"
