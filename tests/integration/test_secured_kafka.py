"""Kafka over SASL_SSL: a private broker with TLS and SCRAM/PLAIN users (`private_kafka`).

Every client seatflow makes (the worker's Faust app and admin client, `topics apply`, the
verifying fold, the test producer) goes through `workers.kafka_clients`, so one secured
broker exercises all of them. A wrong secret must stop a command at once with a line that
says so, not hang retrying as if Kafka were down.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.integration.conftest import SettingsFactory
from tests.integration.harness import (
    SEATFLOW,
    WorkerProcess,
    produce,
    read_models,
    run_cli,
    settings_env,
    wait_drained,
)
from tests.integration.private_kafka import PrivateKafka
from tests.integration.replay_support import replay, summary_of
from workers.loadgen.scenario import ScenarioShape, scenario
from workers.settings import KafkaSecurityProtocol, SaslMechanism, Settings
from workers.topic_catalog import load_catalog
from workers.verify.topics import fold_topics

pytestmark = pytest.mark.integration

FAIL_FAST_S = 30


def secured(
    factory: SettingsFactory, kafka: PrivateKafka, mechanism: str = "SCRAM-SHA-512"
) -> Settings:
    user, password = kafka.USERS[mechanism]
    return factory(
        kafka_bootstrap=kafka.bootstrap,
        kafka_security_protocol=KafkaSecurityProtocol.SASL_SSL,
        kafka_sasl_mechanism=SaslMechanism(mechanism),
        kafka_sasl_username=user,
        kafka_sasl_password=SecretStr(password),
        kafka_ssl_cafile=kafka.ca_file,
    )


async def test_worker_projects_through_sasl_ssl_with_scram(
    private_kafka: PrivateKafka, settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    settings = secured(settings_factory, private_kafka)
    applied = run_cli(settings, "topics", "apply")
    assert applied.returncode == 0, applied.stderr
    records = scenario(
        seed=21, shape=ScenarioShape(concert_events=2, seats_per_event=300, reservations=1500)
    )
    await produce(settings, records)

    worker = WorkerProcess(settings, tmp_path)
    worker.start()
    try:
        await wait_drained(settings, worker, within=240)
    finally:
        worker.stop()
    assert worker.proc is not None and worker.proc.returncode == 0, worker.log_tail()

    expected = await fold_topics(settings, load_catalog(settings))
    assert expected.tables["reservations"], "the scenario reached the fold"
    differences = (await read_models(settings)).differences(expected)
    assert not differences, "\n".join(differences)

    # the password reaches neither the worker's log (Faust prints its config) nor `config show`
    password = private_kafka.USERS["SCRAM-SHA-512"][1]
    log = worker.log_path.read_text()
    assert password not in log
    shown = run_cli(settings, "config", "show")
    assert shown.returncode == 0, shown.stderr
    assert password not in shown.stdout
    assert 'kafka_sasl_password = "**********"' in shown.stdout
    assert 'kafka_security_protocol = "SASL_SSL"' in shown.stdout


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "PLAIN"])
async def test_topics_apply_with_other_sasl_mechanisms(
    private_kafka: PrivateKafka, settings_factory: SettingsFactory, mechanism: str
) -> None:
    settings = secured(settings_factory, private_kafka, mechanism)
    applied = run_cli(settings, "topics", "apply")
    assert applied.returncode == 0, applied.stderr
    assert "created" in applied.stdout


def timed(settings: Settings, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [SEATFLOW, *args], env=settings_env(settings), capture_output=True, text=True,
        timeout=FAIL_FAST_S * 3, check=False,
    )  # fmt: skip
    return done, time.monotonic() - started


async def test_wrong_credentials_fail_fast_with_a_clear_error(
    private_kafka: PrivateKafka, settings_factory: SettingsFactory
) -> None:
    # copies of settings that work: the factory's clean-up must be able to log in
    good = secured(settings_factory, private_kafka)
    wrong = good.model_copy(update={"kafka_sasl_password": SecretStr("not-the-password")})

    worker, elapsed = timed(wrong, "worker")
    assert worker.returncode == 2, worker.stderr
    assert elapsed < FAIL_FAST_S
    errors = [line for line in worker.stderr.splitlines() if line.startswith("seatflow worker:")]
    assert len(errors) == 1, worker.stderr
    assert "Kafka authentication failed" in errors[0]
    assert "SaslAuthenticationFailed" in errors[0]
    assert "not-the-password" not in worker.stderr + worker.stdout

    topics, elapsed = timed(wrong, "topics", "apply")
    assert topics.returncode == 3, topics.stderr
    assert elapsed < FAIL_FAST_S
    assert "Kafka authentication failed" in topics.stderr

    # a broker certificate the client does not trust: the system CAs do not know our test CA
    untrusted = good.model_copy(update={"kafka_ssl_cafile": None})
    topics, elapsed = timed(untrusted, "topics", "apply")
    assert topics.returncode == 3, topics.stderr
    assert elapsed < FAIL_FAST_S
    assert "TLS certificate of Kafka" in topics.stderr and "not trusted" in topics.stderr


async def test_replay_decoding_processes_read_through_sasl_ssl(
    private_kafka: PrivateKafka, settings_factory: SettingsFactory
) -> None:
    """The replay's decoding processes build their own consumers from the settings they
    are sent: through TLS and SCRAM too, and the copy they build is exact."""
    settings = secured(settings_factory, private_kafka)
    assert run_cli(settings, "topics", "apply").returncode == 0
    await produce(
        settings, scenario(seed=22, shape=ScenarioShape(concert_events=2, reservations=800))
    )
    lines = await replay(settings, "--no-swap", "--decode-processes", "2", "--batch-events", "700")
    summary = summary_of(lines)
    assert summary["batches"] > 1 and summary["events_read"] > 1600, summary
    check = run_cli(settings, "verify", "--copy", "shadow", "--against", "topics")
    assert check.returncode == 0, check.stdout + check.stderr
