"""How every Kafka client of seatflow connects: one place for TLS and SASL.

The Faust app, the admin clients of `seatflow topics` and of the worker's start, and the
consumers of `workers.verify` all take their connection settings from here, so a cluster
that needs SASL_SSL works for every command once the settings say so.

`check_access` exists because aiokafka hides why it could not connect: a refused password
or an untrusted certificate is logged per attempt and then reported as "Unable to
bootstrap", which the worker would retry forever. A wrong secret is not an outage; it must
stop the process at start with a line that says what is wrong.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka import errors as kafka_errors
from aiokafka.conn import collect_hosts, create_conn

from workers.settings import KafkaSecurityProtocol, Settings

_AUTH_ERRORS = (
    kafka_errors.SaslAuthenticationFailed,
    kafka_errors.AuthenticationFailedError,
    kafka_errors.IllegalSaslStateError,
)
_MECHANISM_ERRORS = (
    kafka_errors.UnsupportedSaslMechanismError,
    kafka_errors.AuthenticationMethodNotSupported,
)


class KafkaAccessError(Exception):
    """Kafka answers but refuses us (credentials, TLS trust): retrying will not help."""


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of SSL and SASL_SSL connections; None without TLS."""
    if not settings.kafka_security_protocol.uses_tls:
        return None
    cafile = settings.kafka_ssl_cafile
    context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    context.check_hostname = settings.kafka_ssl_check_hostname
    if settings.kafka_ssl_certfile is not None:
        password = settings.kafka_ssl_key_password
        context.load_cert_chain(
            str(settings.kafka_ssl_certfile),
            str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
            password.get_secret_value() if password else None,
        )
    return context


def security_kwargs(settings: Settings) -> dict[str, Any]:
    """aiokafka's security arguments (security_protocol, ssl_context, sasl_*)."""
    protocol = settings.kafka_security_protocol
    kwargs: dict[str, Any] = {"security_protocol": protocol.value}
    if protocol.uses_tls:
        kwargs["ssl_context"] = ssl_context(settings)
    if protocol.uses_sasl:
        password = settings.kafka_sasl_password
        kwargs.update(
            sasl_mechanism=settings.kafka_sasl_mechanism.value,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=password.get_secret_value() if password else None,
        )
    return kwargs


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client: bootstrap servers and security."""
    return {"bootstrap_servers": settings.kafka_bootstrap, **security_kwargs(settings)}


def faust_credentials(settings: Settings) -> Any:
    """Faust's `broker_credentials` for the settings (None for PLAINTEXT)."""
    import faust  # deferred: importing faust is slow and only the worker needs it

    protocol = settings.kafka_security_protocol
    if protocol is KafkaSecurityProtocol.PLAINTEXT:
        return None
    if protocol is KafkaSecurityProtocol.SSL:
        return faust.SSLCredentials(ssl_context(settings))
    password = settings.kafka_sasl_password
    # With an ssl_context Faust's SASLCredentials speak SASL_SSL, without it SASL_PLAINTEXT.
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password.get_secret_value() if password else None,
        ssl_context=ssl_context(settings),
        mechanism=settings.kafka_sasl_mechanism.value,
    )


def describe_security(settings: Settings) -> str:
    """How we connect, for messages (never the password)."""
    protocol = settings.kafka_security_protocol
    if protocol.uses_sasl:
        return (
            f"{protocol} {settings.kafka_sasl_mechanism} as user {settings.kafka_sasl_username!r}"
        )
    return protocol.value


async def check_access(settings: Settings, within: float = 15.0) -> bool:
    """Open one connection to a bootstrap server with the configured security.

    Returns True once one server accepted us, False if none could be reached (the caller
    decides whether to wait for Kafka); raises `KafkaAccessError` when a server answered
    but refused our credentials or we refused its certificate.
    """
    kwargs = security_kwargs(settings)
    kwargs.pop("security_protocol")
    how = describe_security(settings)
    for host, port, _family in collect_hosts(settings.kafka_bootstrap, randomize=False):
        where = f"{host}:{port}"
        try:
            conn = await asyncio.wait_for(
                create_conn(
                    host, port, client_id="seatflow-check",
                    security_protocol=settings.kafka_security_protocol.value,
                    request_timeout_ms=int(within * 1000), **kwargs,
                ),
                within,
            )  # fmt: skip
        except _AUTH_ERRORS as e:
            raise KafkaAccessError(
                f"Kafka authentication failed at {where} ({how}): {_reason(e)} "
                "(check SEATFLOW_KAFKA_SASL_USERNAME / SEATFLOW_KAFKA_SASL_PASSWORD / "
                "SEATFLOW_KAFKA_SASL_MECHANISM)"
            ) from None
        except _MECHANISM_ERRORS as e:
            raise KafkaAccessError(
                f"Kafka at {where} does not accept {how}: {_reason(e)} "
                "(SEATFLOW_KAFKA_SASL_MECHANISM)"
            ) from None
        except ssl.SSLCertVerificationError as e:
            raise KafkaAccessError(
                f"TLS certificate of Kafka at {where} not trusted: {e.verify_message} "
                "(SEATFLOW_KAFKA_SSL_CAFILE, SEATFLOW_KAFKA_SSL_CHECK_HOSTNAME)"
            ) from None
        except ssl.SSLError as e:
            raise KafkaAccessError(
                f"TLS handshake with Kafka at {where} failed: {e.reason or e} (does that "
                "listener speak SEATFLOW_KAFKA_SECURITY_PROTOCOL="
                f"{settings.kafka_security_protocol}?)"
            ) from None
        except (OSError, TimeoutError, kafka_errors.KafkaError):
            continue
        conn.close()
        return True
    return False


def _reason(error: BaseException) -> str:
    text = str(error).strip()
    return text or type(error).__name__


@contextmanager
def quiet_aiokafka() -> Iterator[None]:
    """aiokafka logs each failed connection attempt; a command's one-line error says it better."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


async def send_as_batches(
    producer: AIOKafkaProducer, topic: str, partition: int, records: Iterable[tuple[bytes, bytes]]
) -> list[tuple[asyncio.Future[Any], int]]:
    """Queue (key, value) `records` for one partition as record batches built here, in
    order; return each batch's delivery future (its metadata holds the batch's FIRST
    offset) with the batch's record count.

    Why: for tens of thousands of seat states, `send()`'s per-message bookkeeping (and
    Faust's on top of it) costs more than encoding the record.
    """
    sent: list[tuple[asyncio.Future[Any], int]] = []
    batch, count = producer.create_batch(), 0
    for key, value in records:
        if batch.append(key=key, value=value, timestamp=None) is None:
            sent.append((await producer.send_batch(batch, topic, partition=partition), count))
            batch, count = producer.create_batch(), 0
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"record {key!r}: {len(value)} bytes, too large for a batch")
        count += 1
    if count:
        sent.append((await producer.send_batch(batch, topic, partition=partition), count))
    return sent
