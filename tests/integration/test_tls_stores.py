"""PostgreSQL and Redis over TLS, configured by the settings alone.

Private servers (the shared ones speak plain TCP): a Redis listening only on a TLS port
with a password, a PostgreSQL with `ssl=on`, both with a certificate signed by a CA the
test makes. The sinks and `seatflow db migrate` connect with nothing but
SEATFLOW_POSTGRES_SSL_ROOTCERT / SEATFLOW_REDIS_SSL_CA_CERTS and a `rediss://` URL set;
without the CA they refuse the servers' certificates.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.exceptions
from pydantic import SecretStr

from tests.integration.harness import run_cli
from tests.integration.private_kafka import make_certificates
from tests.integration.private_services import PrivatePostgres, PrivateRedis, _answers, _wait
from workers.settings import Settings
from workers.sinks.postgres_sink import PostgresSink
from workers.sinks.redis_sink import RedisSink

pytestmark = pytest.mark.integration

REDIS_PASSWORD = "redis-tls-secret-Vb2"


class TlsRedis(PrivateRedis):
    """Redis with no plain port at all: a client that is not speaking TLS gets nowhere."""

    def __init__(self, certs: Path) -> None:
        super().__init__()
        self.certs = certs

    @property
    def url(self) -> str:
        return f"rediss://:{REDIS_PASSWORD}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
             "--tls-cert-file", str(self.certs / "broker.crt"),
             "--tls-key-file", str(self.certs / "broker.key"),
             "--tls-ca-cert-file", str(self.certs / "ca.pem"), "--tls-auth-clients", "no",
             "--requirepass", REDIS_PASSWORD, "--dir", str(self.dir), "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait(lambda: _answers(self.port), f"tls redis on {self.port}")


class TlsPostgres(PrivatePostgres):
    def __init__(self, certs: Path) -> None:
        super().__init__()
        for name in ("broker.crt", "broker.key"):  # postgres wants its own, private key
            target = self.dir / name
            shutil.copy(certs / name, target)
            shutil.chown(target, "postgres", "postgres")
            target.chmod(0o600)

    def start(self) -> None:
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-w",
            "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c ssl=on "
            f"-c ssl_cert_file={self.dir / 'broker.crt'} "
            f"-c ssl_key_file={self.dir / 'broker.key'}",
            "start",
        )  # fmt: skip
        _wait(lambda: _answers(self.port), f"tls postgres on {self.port}")


@pytest.fixture
def certs() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="seatflow-certs-", dir="/var/tmp"))
    make_certificates(directory)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def tls_servers(certs: Path) -> Iterator[tuple[TlsPostgres, TlsRedis]]:
    postgres, redis_server = TlsPostgres(certs), TlsRedis(certs)
    try:
        postgres.start()
        redis_server.start()
        yield postgres, redis_server
    finally:
        redis_server.close()
        postgres.close()


async def test_sinks_and_migrations_connect_over_tls_from_settings(
    tls_servers: tuple[TlsPostgres, TlsRedis], certs: Path, unique_id: str
) -> None:
    postgres, redis_server = tls_servers
    settings = Settings(
        postgres_dsn=SecretStr(postgres.dsn),
        postgres_ssl_rootcert=certs / "ca.pem",  # alone: sslmode=verify-full
        redis_url=SecretStr(redis_server.url),
        redis_ssl_ca_certs=certs / "ca.pem",
        pg_schema=f"rm_{unique_id}",
        redis_prefix=f"{unique_id}:",
    )

    migrated = run_cli(settings, "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr

    sink = await PostgresSink.connect(settings)
    try:
        async with sink.pool.acquire() as conn:
            in_tls = await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert in_tls is True
        assert await sink.positions("any-topic") == {}
    finally:
        await sink.close()

    redis_sink = await RedisSink.connect(settings)  # pings: TLS and the password worked
    try:
        assert await redis_sink.positions("any-topic") == {}
    finally:
        await redis_sink.close()

    # with another CA, the certificates are refused: TLS is really verified
    other = Path(tempfile.mkdtemp(prefix="seatflow-other-ca-", dir="/var/tmp"))
    try:
        make_certificates(other)
        untrusted = Settings(
            postgres_dsn=SecretStr(postgres.dsn),
            postgres_ssl_rootcert=other / "ca.pem",
            redis_url=SecretStr(redis_server.url),
            redis_ssl_ca_certs=other / "ca.pem",
        )
        with pytest.raises(ssl.SSLCertVerificationError):
            await PostgresSink.connect(untrusted)
        with pytest.raises(redis.exceptions.ConnectionError, match="certificate verify failed"):
            await RedisSink.connect(untrusted)
    finally:
        shutil.rmtree(other, ignore_errors=True)
