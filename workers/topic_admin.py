"""Make the broker match the topic catalog: create what is missing, report the rest.

Nothing here deletes a topic or removes partitions: both lose data, and a read model can
only be rebuilt from what the topics still hold. Changing an existing topic is opt-in:

- `grow` adds partitions to topics that have fewer than declared. For a keyed topic that
  moves keys to other partitions: per-key ordering breaks across the change, and state
  keyed by partition (Faust tables and their changelogs) no longer lines up with the data,
  so stop the workers and rebuild the read models after growing.
- `fix_config` sets the declared config values. aiokafka 0.14 only speaks the legacy
  AlterConfigs API, which *replaces* a topic's whole set of overrides, so we send the
  topic's current overrides merged with the catalog's; an override someone adds between our
  describe and our alter would be lost.

Planning and applying are separate so `--dry-run` runs exactly the planning code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, for_code

from workers.topic_catalog import TopicCatalog, TopicSpec

BROKER_DEFAULT_REPLICATION = -1
"""CreateTopics' "use the broker's default.replication.factor" (KIP-464)."""

_VISIBLE_TIMEOUT_S = 15.0


class _ConfigSource(IntEnum):
    """DescribeConfigs' config_source; only a topic's own overrides matter to us."""

    DYNAMIC_TOPIC_CONFIG = 1
    DEFAULT_CONFIG = 5


class ActionKind(StrEnum):
    CREATE = "create"
    OK = "ok"
    DRIFT = "drift"


class DriftKind(StrEnum):
    FEWER_PARTITIONS = "fewer-partitions"
    """Fixable with grow, at the cost described in the module docstring."""
    MORE_PARTITIONS = "more-partitions"
    """Never fixed: Kafka cannot remove partitions."""
    CONFIG = "config"
    """Fixable with fix_config."""


class Outcome(StrEnum):
    CREATED = "created"
    OK = "ok"
    FIXED = "fixed"
    """Drift existed and grow / fix_config repaired all of it."""
    DRIFT = "drift"
    """Drift remains (not asked to fix it, or it cannot be fixed)."""
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Drift:
    """One way an existing topic differs from its declaration."""

    kind: DriftKind
    key: str
    """"partitions" or the config name."""
    declared: str
    actual: str

    def fixable_by(self, *, grow: bool, fix_config: bool) -> bool:
        return (self.kind is DriftKind.FEWER_PARTITIONS and grow) or (
            self.kind is DriftKind.CONFIG and fix_config
        )


@dataclass(frozen=True, slots=True)
class TopicAction:
    spec: TopicSpec
    kind: ActionKind
    drifts: tuple[Drift, ...] = ()
    overrides: Mapping[str, str | None] = field(default_factory=dict, hash=False)
    """The existing topic's own config overrides (None: sensitive, value hidden)."""


@dataclass(frozen=True, slots=True)
class Plan:
    actions: tuple[TopicAction, ...]

    def of_kind(self, kind: ActionKind) -> tuple[TopicAction, ...]:
        return tuple(a for a in self.actions if a.kind is kind)


@dataclass(frozen=True, slots=True)
class TopicResult:
    action: TopicAction
    outcome: Outcome
    fixed: tuple[Drift, ...] = ()
    remaining: tuple[Drift, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ApplyReport:
    results: tuple[TopicResult, ...]

    @property
    def as_declared(self) -> bool:
        """True when every topic now matches the catalog (the CLI's exit code 0)."""
        return all(r.outcome in (Outcome.CREATED, Outcome.OK, Outcome.FIXED) for r in self.results)


class TopicAdminError(KafkaError):
    """The broker refused a request that planning depends on (not a per-topic failure)."""


async def plan(catalog: TopicCatalog, admin: AIOKafkaAdminClient) -> Plan:
    """Compare the catalog with the broker; reads only."""
    partitions = await _partition_counts(admin)
    existing = [spec for spec in catalog if spec.name in partitions]
    configs = await _topic_configs(admin, [spec.name for spec in existing])
    actions = []
    for spec in catalog:
        if spec.name not in partitions:
            actions.append(TopicAction(spec, ActionKind.CREATE))
            continue
        entries = configs[spec.name]
        drifts = _drifts(spec, partitions[spec.name], entries)
        overrides = {
            key: value
            for key, (value, source) in entries.items()
            if source == _ConfigSource.DYNAMIC_TOPIC_CONFIG
        }
        kind = ActionKind.DRIFT if drifts else ActionKind.OK
        actions.append(TopicAction(spec, kind, drifts, overrides))
    return Plan(tuple(actions))


async def apply(
    catalog: TopicCatalog,
    admin: AIOKafkaAdminClient,
    *,
    grow: bool = False,
    fix_config: bool = False,
) -> ApplyReport:
    """Create missing topics, and (only when asked) grow partitions or fix configs."""
    current = await plan(catalog, admin)
    created = await _create(admin, current.of_kind(ActionKind.CREATE))
    results = []
    for action in current.actions:
        if action.kind is ActionKind.CREATE:
            results.append(created[action.spec.name])
        elif action.kind is ActionKind.OK:
            results.append(TopicResult(action, Outcome.OK))
        else:
            results.append(await _repair(admin, action, grow=grow, fix_config=fix_config))
    return ApplyReport(tuple(results))


def predict(current: Plan, *, grow: bool = False, fix_config: bool = False) -> ApplyReport:
    """What `apply` would report, assuming the broker accepts every request (--dry-run)."""
    results = []
    for action in current.actions:
        if action.kind is ActionKind.CREATE:
            results.append(TopicResult(action, Outcome.CREATED))
        elif action.kind is ActionKind.OK:
            results.append(TopicResult(action, Outcome.OK))
        else:
            fixed = tuple(
                d for d in action.drifts if d.fixable_by(grow=grow, fix_config=fix_config)
            )
            remaining = tuple(d for d in action.drifts if d not in fixed)
            outcome = Outcome.DRIFT if remaining else Outcome.FIXED
            results.append(TopicResult(action, outcome, fixed, remaining))
    return ApplyReport(tuple(results))


def new_topic(spec: TopicSpec) -> NewTopic:
    """A CreateTopics entry for `spec`, leaving the replication factor to the broker if unset.

    aiokafka's NewTopic refuses -1 without explicit replica assignments, although brokers
    accept it (KIP-464; verified against Kafka 4.1 with aiokafka 0.14's CreateTopics v3), so
    the placeholder is replaced after construction. -1 rather than reading the broker's
    default.replication.factor because under KRaft the controller applies its own value.
    """
    rf = spec.replication_factor
    topic = NewTopic(spec.name, spec.partitions, rf or 1, topic_configs=dict(spec.config))
    if rf is None:
        topic.replication_factor = BROKER_DEFAULT_REPLICATION
    return topic


async def _partition_counts(admin: AIOKafkaAdminClient) -> dict[str, int]:
    # Metadata for all topics, never for named ones: aiokafka asks for named topics with
    # allow_auto_topic_creation=True, which would create them with broker defaults.
    return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics()}


async def _topic_configs(
    admin: AIOKafkaAdminClient, names: Sequence[str]
) -> dict[str, dict[str, tuple[str | None, int]]]:
    """Every config of each topic as (value, source)."""
    if not names:
        return {}
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    configs: dict[str, dict[str, tuple[str | None, int]]] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.to_object()["resources"]:
            name = resource["resource_name"]
            if resource["error_code"]:
                error = for_code(resource["error_code"])
                raise TopicAdminError(
                    f"cannot describe configs of {name}: {error.__name__} "
                    f"{resource['error_message'] or ''}".rstrip()
                )
            configs[name] = {
                e["config_names"]: _value_and_source(e) for e in resource["config_entries"]
            }
    return configs


def _value_and_source(entry: Mapping[str, Any]) -> tuple[str | None, int]:
    source = entry.get("config_source")
    if source is None:  # DescribeConfigs v0 (pre-1.1 brokers) has only is_default
        source = _ConfigSource.DEFAULT_CONFIG if entry["is_default"] else 1
    return entry["config_value"], int(source)


def _drifts(
    spec: TopicSpec, partitions: int, entries: Mapping[str, tuple[str | None, int]]
) -> tuple[Drift, ...]:
    drifts = []
    if partitions != spec.partitions:
        kind = (
            DriftKind.FEWER_PARTITIONS
            if partitions < spec.partitions
            else DriftKind.MORE_PARTITIONS
        )
        drifts.append(Drift(kind, "partitions", str(spec.partitions), str(partitions)))
    for key, declared in spec.config.items():
        actual = entries.get(key, (None, 0))[0]
        if not _same_value(declared, actual):
            drifts.append(
                Drift(DriftKind.CONFIG, key, declared, "<unset>" if actual is None else actual)
            )
    return tuple(drifts)


def _same_value(declared: str, actual: str | None) -> bool:
    # List-valued configs (cleanup.policy=compact,delete) compare as sets.
    if actual is None:
        return False
    return sorted(p.strip() for p in declared.split(",")) == sorted(
        p.strip() for p in actual.split(",")
    )


async def _create(
    admin: AIOKafkaAdminClient, actions: Sequence[TopicAction]
) -> dict[str, TopicResult]:
    if not actions:
        return {}
    response = await admin.create_topics([new_topic(a.spec) for a in actions])
    errors = {
        e["topic"]: (e["error_code"], e.get("error_message"))
        for e in response.to_object()["topic_errors"]
    }
    results = {}
    for action in actions:
        code, message = errors.get(action.spec.name, (0, None))
        if code:
            error = f"{for_code(code).__name__}: {message or 'no message'}"
            results[action.spec.name] = TopicResult(action, Outcome.FAILED, error=error)
        else:
            results[action.spec.name] = TopicResult(action, Outcome.CREATED)
    created = [name for name, r in results.items() if r.outcome is Outcome.CREATED]
    await _await_visible(admin, created)
    return results


async def _await_visible(admin: AIOKafkaAdminClient, names: Sequence[str]) -> None:
    """Wait until brokers serve metadata with leaders for the new topics.

    The controller answers CreateTopics once the topic is committed, before every broker
    has it; a worker or a second `apply` started right after would otherwise see it missing.
    """
    pending = set(names)
    deadline = asyncio.get_running_loop().time() + _VISIBLE_TIMEOUT_S
    while pending and asyncio.get_running_loop().time() < deadline:
        for topic in await admin.describe_topics():
            ready = topic["partitions"] and all(p["leader"] >= 0 for p in topic["partitions"])
            if topic["topic"] in pending and ready:
                pending.discard(topic["topic"])
        if pending:
            await asyncio.sleep(0.1)


async def _repair(
    admin: AIOKafkaAdminClient, action: TopicAction, *, grow: bool, fix_config: bool
) -> TopicResult:
    wanted = [d for d in action.drifts if d.fixable_by(grow=grow, fix_config=fix_config)]
    fixed: list[Drift] = []
    errors: list[str] = []
    if any(d.kind is DriftKind.FEWER_PARTITIONS for d in wanted):
        try:
            await admin.create_partitions({action.spec.name: NewPartitions(action.spec.partitions)})
            fixed += [d for d in wanted if d.kind is DriftKind.FEWER_PARTITIONS]
        except KafkaError as e:
            errors.append(f"adding partitions failed: {e}")
    config_drifts = [d for d in wanted if d.kind is DriftKind.CONFIG]
    if config_drifts:
        error = await _alter_config(admin, action, config_drifts)
        if error:
            errors.append(error)
        else:
            fixed += config_drifts
    remaining = tuple(d for d in action.drifts if d not in fixed)
    outcome = Outcome.FAILED if errors else Outcome.DRIFT if remaining else Outcome.FIXED
    return TopicResult(action, outcome, tuple(fixed), remaining, "; ".join(errors) or None)


async def _alter_config(
    admin: AIOKafkaAdminClient, action: TopicAction, drifts: Sequence[Drift]
) -> str | None:
    """Set the drifted keys, keeping every other override (legacy AlterConfigs replaces all)."""
    hidden = sorted(k for k, v in action.overrides.items() if v is None)
    if hidden:
        return f"not altering config: sensitive overrides {hidden} cannot be carried over"
    merged = {k: v for k, v in action.overrides.items() if v is not None}
    merged.update({d.key: d.declared for d in drifts})
    resource = ConfigResource(ConfigResourceType.TOPIC, action.spec.name, merged)
    try:
        responses = await admin.alter_configs([resource])
    except KafkaError as e:
        return f"altering config failed: {e}"
    for response in responses:
        for r in response.to_object()["resources"]:
            if r["error_code"]:
                name = for_code(r["error_code"]).__name__
                return f"altering config failed: {name}: {r['error_message'] or 'no message'}"
    return None
