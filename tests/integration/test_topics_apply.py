"""`seatflow topics apply` against the real broker: creates, is idempotent, reports drift.

Most runs go through the installed console script in a subprocess, as operators and CI run
it; one goes through `workers.cli.main` in-process. Every assertion on output is backed by
one on what the broker actually holds.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from workers import cli
from workers.settings import Settings
from workers.topic_catalog import TopicCatalog, load_catalog

from .conftest import SettingsFactory

pytestmark = pytest.mark.integration

SEATFLOW = Path(sys.executable).parent / "seatflow"


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def statuses(self) -> dict[str, str]:
        """Topic name -> status text, from the per-topic lines (all but the summary)."""
        lines = self.stdout.splitlines()[:-1]
        return dict(line.split(maxsplit=1) for line in lines)

    @property
    def summary(self) -> str:
        return self.stdout.splitlines()[-1]


@dataclass(frozen=True)
class TopicState:
    partitions: int
    replication_factor: int
    overrides: Mapping[str, str]
    """The topic's own config overrides (DescribeConfigs source DYNAMIC_TOPIC_CONFIG)."""


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEATFLOW_")}
    env.update(
        SEATFLOW_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        SEATFLOW_TOPIC_PREFIX=settings.topic_prefix,
        SEATFLOW_CONSUMER_GROUP=settings.consumer_group,
    )
    env.update(extra)
    return env


async def seatflow(env: Mapping[str, str], *args: str) -> Run:
    proc = await asyncio.create_subprocess_exec(
        str(SEATFLOW),
        "topics",
        *args,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


async def broker_state(admin: AIOKafkaAdminClient, prefix: str) -> dict[str, TopicState]:
    topics = {t["topic"]: t for t in await admin.describe_topics() if t["topic"].startswith(prefix)}
    if not topics:
        return {}
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in topics]
    overrides: dict[str, dict[str, str]] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.to_object()["resources"]:
            assert resource["error_code"] == 0, resource
            overrides[resource["resource_name"]] = {
                e["config_names"]: e["config_value"]
                for e in resource["config_entries"]
                if e["config_source"] == 1
            }
    return {
        name: TopicState(
            partitions=len(t["partitions"]),
            replication_factor=len(t["partitions"][0]["replicas"]),
            overrides=overrides[name],
        )
        for name, t in topics.items()
    }


def assert_as_declared(state: Mapping[str, TopicState], catalog: TopicCatalog) -> None:
    assert set(state) == {spec.name for spec in catalog}
    for spec in catalog:
        topic = state[spec.name]
        assert topic.partitions == spec.partitions, spec.name
        assert topic.replication_factor == 1, spec.name  # the single broker's default
        for key, value in spec.config.items():
            assert topic.overrides[key] == value, (spec.name, key)


async def test_apply_creates_every_topic_then_changes_nothing(
    settings_factory: SettingsFactory, kafka_admin: AIOKafkaAdminClient
) -> None:
    settings = settings_factory()
    catalog = load_catalog(settings)
    env = env_for(settings)

    first = await seatflow(env, "apply")
    assert first.code == 0, first
    assert first.statuses == {spec.name: "created" for spec in catalog}
    assert first.summary == "11 topics: 11 created (all as declared)"
    assert f"{settings.topic_prefix}{settings.consumer_group}-seats-changelog" in first.statuses
    before = await broker_state(kafka_admin, settings.topic_prefix)
    assert_as_declared(before, catalog)

    second = await seatflow(env, "apply")
    assert second.code == 0, second
    assert second.statuses == {spec.name: "ok" for spec in catalog}
    assert second.summary == "11 topics: 11 ok (all as declared)"
    assert await broker_state(kafka_admin, settings.topic_prefix) == before


async def test_dry_run_creates_nothing(
    settings_factory: SettingsFactory, kafka_admin: AIOKafkaAdminClient
) -> None:
    settings = settings_factory()
    run = await seatflow(env_for(settings), "apply", "--dry-run")
    assert run.code == 0, run
    assert set(run.statuses.values()) == {"would create"}
    assert run.summary == "11 topics: 11 would create (dry run, nothing changed)"
    assert await broker_state(kafka_admin, settings.topic_prefix) == {}


async def precreate_drift(admin: AIOKafkaAdminClient, catalog: TopicCatalog) -> None:
    """Three topics as an operator might have left them, before the catalog is applied."""
    source = {"cleanup.policy": "delete", "retention.ms": "-1"}
    response = await admin.create_topics(
        [
            NewTopic(catalog.get("order-placed").name, 2, 1, topic_configs=source),
            NewTopic(catalog.get("seats-generated").name, 6, 1, topic_configs=source),
            NewTopic(
                catalog.get("reservation-expired").name,
                4,
                1,
                topic_configs={**source, "retention.ms": "1000", "segment.ms": "3600000"},
            ),
        ]
    )
    assert all(e[1] == 0 for e in response.topic_errors), response


async def test_apply_reports_drift_and_changes_no_existing_topic(
    settings_factory: SettingsFactory,
    kafka_admin: AIOKafkaAdminClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = settings_factory()
    catalog = load_catalog(settings)
    await precreate_drift(kafka_admin, catalog)
    for key, value in env_for(settings).items():
        monkeypatch.setenv(key, value)

    code = await asyncio.to_thread(cli.main, ["topics", "apply"])
    run = Run(code, *capsys.readouterr())

    assert run.code == 1, run
    p = settings.topic_prefix
    drifted = {
        f"{p}order-placed": "DRIFT: partitions 2, catalog 4 (--grow adds them; see --help first)",
        f"{p}seats-generated": "DRIFT: partitions 6, catalog 4 (partitions cannot be removed)",
        f"{p}reservation-expired": "DRIFT: retention.ms 1000, catalog -1 (--fix-config sets it)",
    }
    expected = {spec.name: drifted.get(spec.name, "created") for spec in catalog}
    assert run.statuses == expected
    assert run.summary == "11 topics: 8 created, 3 drift (drift remains)"

    state = await broker_state(kafka_admin, p)
    assert set(state) == {spec.name for spec in catalog}
    assert state[f"{p}order-placed"].partitions == 2
    assert state[f"{p}seats-generated"].partitions == 6
    assert state[f"{p}reservation-expired"].overrides == {
        "cleanup.policy": "delete",
        "retention.ms": "1000",
        "segment.ms": "3600000",
    }

    again = await seatflow(env_for(settings), "apply", "--dry-run", "--grow", "--fix-config")
    assert again.code == 1, again  # seats-generated keeps its extra partitions
    assert again.statuses[f"{p}order-placed"] == "would fix: partitions 2 -> 4"
    assert again.statuses[f"{p}reservation-expired"] == "would fix: retention.ms 1000 -> -1"
    assert await broker_state(kafka_admin, p) == state


async def test_grow_and_fix_config_repair_what_can_be_repaired(
    settings_factory: SettingsFactory, kafka_admin: AIOKafkaAdminClient
) -> None:
    settings = settings_factory()
    catalog = load_catalog(settings)
    await precreate_drift(kafka_admin, catalog)
    env = env_for(settings)
    assert (await seatflow(env, "apply")).code == 1

    run = await seatflow(env, "apply", "--grow", "--fix-config")

    p = settings.topic_prefix
    assert run.code == 1, run
    assert run.statuses[f"{p}order-placed"] == "fixed: partitions 2 -> 4"
    assert run.statuses[f"{p}reservation-expired"] == "fixed: retention.ms 1000 -> -1"
    assert run.statuses[f"{p}seats-generated"].startswith("DRIFT: partitions 6, catalog 4")
    assert run.summary == "11 topics: 8 ok, 2 fixed, 1 drift (drift remains)"
    state = await broker_state(kafka_admin, p)
    assert state[f"{p}order-placed"].partitions == 4
    assert state[f"{p}seats-generated"].partitions == 6
    # Legacy AlterConfigs replaces all overrides: the undeclared one must have been carried.
    assert state[f"{p}reservation-expired"].overrides == {
        "cleanup.policy": "delete",
        "retention.ms": "-1",
        "segment.ms": "3600000",
    }


async def test_explicit_replication_factor_and_per_topic_failure(
    settings_factory: SettingsFactory, kafka_admin: AIOKafkaAdminClient, tmp_path: Path
) -> None:
    (tmp_path / "catalog.toml").write_text(
        """
[topics."orders"]
role = "source"
description = "Orders."
partitions = 3
replication_factor = 1
dead_letter = "orders.dlq"
config = { "cleanup.policy" = "delete", "retention.ms" = 60000 }

[topics."orders.dlq"]
role = "dead-letter"
description = "Rejected orders; more replicas than the single test broker has."
partitions = 1
replication_factor = 2
config = { "cleanup.policy" = "delete", "retention.ms" = 60000 }
"""
    )
    settings = settings_factory()
    run = await seatflow(env_for(settings, SEATFLOW_TOPICS_DIR=str(tmp_path)), "apply")

    p = settings.topic_prefix
    assert run.code == 1, run
    assert run.statuses[f"{p}orders"] == "created"
    assert run.statuses[f"{p}orders.dlq"].startswith("FAILED: InvalidReplicationFactorError")
    assert run.summary == "2 topics: 1 created, 1 failed (some changes failed)"
    state = await broker_state(kafka_admin, p)
    assert set(state) == {f"{p}orders"}
    assert (state[f"{p}orders"].partitions, state[f"{p}orders"].replication_factor) == (3, 1)


async def test_unreachable_kafka_is_one_line_and_exit_3(base_settings: Settings) -> None:
    # Not from settings_factory: its cleanup would try the unreachable broker too.
    settings = base_settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:1"})
    run = await seatflow(env_for(settings), "apply")
    assert run.code == 3, run
    assert run.stdout == ""
    assert run.stderr.count("\n") == 1
    assert "cannot connect to Kafka at 127.0.0.1:1" in run.stderr


async def test_bad_catalog_is_a_usage_error(
    settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    (tmp_path / "catalog.toml").write_text('[topics."x"]\nrole = "source"\n')
    settings = settings_factory()
    for command in ("apply", "list"):
        run = await seatflow(env_for(settings, SEATFLOW_TOPICS_DIR=str(tmp_path)), command)
        assert run.code == 2, run
        assert 'topics."x".description: is required' in run.stderr
        assert "Traceback" not in run.stderr


async def test_list_prints_resolved_names_without_kafka(base_settings: Settings) -> None:
    settings = base_settings.model_copy(
        update={"topic_prefix": "p.", "consumer_group": "g", "kafka_bootstrap": "127.0.0.1:1"}
    )
    run = await seatflow(env_for(settings), "list")
    assert run.code == 0, run
    rows = [line.split() for line in run.stdout.splitlines()]
    assert rows[0][:5] == ["TOPIC", "ROLE", "PARTITIONS", "REPLICATION", "CONFIG"]
    by_name = {row[0]: row[1:4] for row in rows[1:]}
    assert by_name["p.order-placed"] == ["source", "4", "default"]
    assert by_name["p.order-placed.dlq"] == ["dead-letter", "1", "default"]
    assert by_name["p.g-seats-changelog"] == ["changelog", "4", "default"]
    assert len(by_name) == 11
