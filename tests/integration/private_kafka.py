"""A Kafka broker of a test's own: SASL_SSL (TLS plus SCRAM and PLAIN users) or plaintext.

The shared broker of `scripts/services` speaks PLAINTEXT and other tests use it, so the
secured-connection tests start a second, private one from the same Maven jars
(`.cache/kafka/lib`, or SEATFLOW_KAFKA_LIB), single-node KRaft on free loopback ports:

- a CA and a broker certificate (SAN 127.0.0.1 and localhost) made with the `openssl`
  CLI, handed to the broker as PEM (`ssl.keystore.type=PEM`), so no keytool is needed;
- SCRAM users created at format time with the storage tool's `--add-scram` (SCRAM
  credentials live in the cluster metadata), a PLAIN user in the listener's JAAS config;
- clients on `SASL_SSL`; the broker talks to itself on a PLAINTEXT listener bound to
  127.0.0.1 that no client is told about (simpler than SASL between broker and itself).

The plaintext variant (`secured=False`) is for the Kafka outage test: `stop` kills the
broker, `start` runs it again on the same ports and data.

Everything lives in a temporary directory that `close` removes.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from tests.integration.private_services import _answers, free_port

ROOT = Path(__file__).resolve().parents[2]
KAFKA_LIB = Path(os.environ.get("SEATFLOW_KAFKA_LIB", ROOT / ".cache" / "kafka" / "lib"))


def new_cluster_id(random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding, as Kafka's
    own `Uuid.randomUuid()` makes them, which also never starts with "-": the storage
    tool would read such an id as an option ("argument --cluster-id/-t: expected one
    argument", one format in 64)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(random_bytes(16)).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _run(*args: str, cwd: Path) -> None:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def make_certificates(directory: Path) -> tuple[Path, Path]:
    """A test CA and a broker certificate signed by it; returns (ca.pem, broker.pem).

    broker.pem holds the broker's PKCS#8 private key followed by its certificate: the
    layout Kafka's PEM keystore reads from `ssl.keystore.location`.
    """
    days = "2"
    _run(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", days,
        "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=seatflow test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    _run(
        "openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key",
        "-out", "broker.csr", "-subj", "/CN=localhost", cwd=directory,
    )  # fmt: skip
    (directory / "broker.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "extendedKeyUsage=serverAuth\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
    )
    _run(
        "openssl", "x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "broker.crt", "-days", days, "-extfile", "broker.ext",
        cwd=directory,
    )  # fmt: skip
    # openssl 3 writes "-----BEGIN PRIVATE KEY-----" (PKCS#8, unencrypted) with -nodes
    key = (directory / "broker.key").read_text()
    cert = (directory / "broker.crt").read_text()
    (directory / "broker.pem").write_text(key + cert)
    return directory / "ca.pem", directory / "broker.pem"


class PrivateKafka:
    """Single-node KRaft broker; clients connect to `bootstrap` with SASL_SSL, or with
    PLAINTEXT if not `secured`."""

    USERS = {
        "SCRAM-SHA-512": ("seatflow", "scram-512-secret-Qx7v"),
        "SCRAM-SHA-256": ("seatflow256", "scram-256-secret-Lm3k"),
        "PLAIN": ("seatflowplain", "plain-secret-Zr8w"),
    }
    """mechanism -> (user, password): one user per mechanism, so each test proves its own."""

    def __init__(self, *, secured: bool = True) -> None:
        self.secured = secured
        if not any(KAFKA_LIB.glob("kafka_2.13-*.jar")):
            raise RuntimeError(f"no Kafka jars in {KAFKA_LIB}: run scripts/services up")
        self.dir = Path(tempfile.mkdtemp(prefix="seatflow-kafka-", dir="/var/tmp"))
        self.port = free_port()
        self.internal_port = free_port()
        self.controller_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._starts = 0
        if secured:
            self.ca_file, self.keystore = make_certificates(self.dir)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.dir / "server.log"

    def _properties(self) -> str:
        common = [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=INTERNAL",
            f"log.dirs={self.dir / 'data'}",
            "num.partitions=4",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
        ]
        client = "SASL_SSL" if self.secured else "CLIENT"
        listeners = [
            f"listeners={client}://127.0.0.1:{self.port},"
            f"INTERNAL://127.0.0.1:{self.internal_port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners={client}://127.0.0.1:{self.port},"
            f"INTERNAL://127.0.0.1:{self.internal_port}",
        ]
        if not self.secured:
            protocols = "listener.security.protocol.map=" + ",".join(
                f"{name}:PLAINTEXT" for name in ("CONTROLLER", "INTERNAL", "CLIENT")
            )
            return "\n".join([*common, *listeners, protocols, ""])
        plain_user, plain_password = self.USERS["PLAIN"]
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        return "\n".join(
            [
                *common,
                *listeners,
                "listener.security.protocol.map="
                "CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL",
                "sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
                f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={scram}",
                f"listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={scram}",
                "listener.name.sasl_ssl.plain.sasl.jaas.config="
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'user_{plain_user}="{plain_password}";',
                "ssl.keystore.type=PEM",
                f"ssl.keystore.location={self.keystore}",
                "ssl.client.auth=none",
                "",
            ]
        )

    def _java(self) -> list[str]:
        tmp = self.dir / "tmp"
        tmp.mkdir(exist_ok=True)
        (self.dir / "log4j2.properties").write_text(
            "status = warn\n"
            "appender.file.type = File\nappender.file.name = FILE\n"
            f"appender.file.fileName = {self.log_path}\n"
            "appender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\nrootLogger.appenderRef.file.ref = FILE\n"
        )
        return [
            "java", "-Xms128m", "-Xmx512m", "-XX:+ExitOnOutOfMemoryError",
            "-XX:TieredStopAtLevel=1",  # starts faster; a test broker does little work
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.dir}", f"-DZstdTempFolder={tmp}",
            f"-Dorg.xerial.snappy.tempdir={tmp}", "-cp", f"{KAFKA_LIB}/*",
        ]  # fmt: skip

    def start(self, within: float = 120) -> None:
        """Format the storage (the first time) and run the broker until it serves."""
        props = self.dir / "server.properties"
        if not props.exists():
            props.write_text(self._properties())
            self._format(props)
        with (self.dir / "stdout.log").open("ab") as out:
            self.proc = subprocess.Popen(
                [*self._java(), "kafka.Kafka", str(props)], stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"private kafka exited:\n{self.tail()}")
            if _answers(self.port) and self._log().count("Kafka Server started") > self._starts:
                asyncio.run(self._create_offsets_topic(deadline))
                self._starts += 1
                return
            time.sleep(0.3)
        raise RuntimeError(f"private kafka not ready in {within}s:\n{self.tail()}")

    def _format(self, props: Path) -> None:
        cluster_id = new_cluster_id()
        scram = [
            arg
            for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256")
            for arg in (
                "--add-scram",
                f"{mechanism}=[name={self.USERS[mechanism][0]},"
                f"password={self.USERS[mechanism][1]}]",
            )
            if self.secured
        ]
        _run(
            *self._java(), "kafka.tools.StorageTool", "format", "-t", cluster_id,
            "-c", str(props), *scram, cwd=self.dir,
        )  # fmt: skip

    def stop(self) -> None:
        """Kill the broker (SIGKILL: a crash, nothing flushed or handed over); `start`
        runs it again on the same ports and data."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    async def _create_offsets_topic(self, deadline: float) -> None:
        """Ask for a group coordinator until there is one, as on a broker long in use.

        A new broker creates __consumer_offsets at the first FindCoordinator; until then
        group requests fail (GroupCoordinatorNotAvailable), which would fail the first
        lag reading of a test rather than anything under test. Asked on the internal
        PLAINTEXT listener: this is the broker's set-up, not a client under test.
        """
        admin = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{self.internal_port}")
        await admin.start()
        try:
            while True:
                try:
                    await admin.list_consumer_group_offsets("seatflow-warm-up")
                    return
                except KafkaError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.3)
        finally:
            await admin.close()

    def _log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        out = (self.dir / "stdout.log").read_text(errors="replace")
        return "\n".join((self._log() + out).splitlines()[-lines:])

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)
