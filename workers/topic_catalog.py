"""The topic catalog (`topics/catalog.toml`): the one place topic names and shapes live.

Workers, the DLQ router and `seatflow topics apply` all resolve names through this module,
so a test's `SEATFLOW_TOPIC_PREFIX` isolates every topic at once and a typo in a topic name
is a load-time error instead of a consumer silently waiting on a topic nobody writes.

Everything here is pure apart from reading the file: validation fails fast with a message
naming the file, the entry and the field.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from workers.contracts import TOPICS_DIR
from workers.settings import Settings

CATALOG_FILE = "catalog.toml"
TOPICS_DIR_ENV = "SEATFLOW_TOPICS_DIR"
GROUP_PLACEHOLDER = "{group}"
GEN_PLACEHOLDER = "{gen}"
"""Replaced by `generation_suffix(generation)` in physical names and dropped from logical
names, so code names a per-generation topic (seat-facts) the same way in every generation
(see workers/generation.py)."""


def generation_suffix(generation: int) -> str:
    """What names of a projection generation carry: "" for generation 1 (the names before
    generations existed), ".g<N>" from 2 on; appended to the consumer group too."""
    if generation < 1:
        raise ValueError(f"generation must be >= 1, got {generation}")
    return "" if generation == 1 else f".g{generation}"


# Kafka's own limits (kafka.common.internals.Topic): legal characters and length.
_LEGAL_NAME = re.compile(r"[A-Za-z0-9._-]+")
_MAX_NAME_LENGTH = 249
_ENTRY_KEYS = frozenset(
    {
        "role",
        "description",
        "partitions",
        "replication_factor",
        "dead_letter",
        "copartitioned_with",
        "config",
    }
)
_REQUIRED_KEYS = ("role", "description", "partitions", "config")


class TopicRole(StrEnum):
    """Why a topic exists; decides who may create it and what its config must be."""

    SOURCE = "source"
    """Upstream's events; created by us only locally and in tests."""
    DEAD_LETTER = "dead-letter"
    """Records a worker rejected, kept for inspection and re-drive."""
    INTERNAL = "internal"
    """Written and read by the workers themselves (e.g. repartitioning)."""
    CHANGELOG = "changelog"
    """Backs a Faust table; must be compacted and co-partitioned with its source."""


class CatalogError(ValueError):
    """The catalog cannot be used; the message names the file, entry and field."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One declared topic, resolved for the current settings."""

    logical: str
    """Name in the catalog (may contain `{group}`); stable across environments."""
    name: str
    """Physical Kafka topic name: prefix + logical, `{group}` substituted."""
    partitions: int
    config: Mapping[str, str] = field(hash=False)
    """Topic-level Kafka configs, values as the broker reports them (strings)."""
    role: TopicRole
    replication_factor: int | None
    """None: let the broker apply its default.replication.factor."""
    description: str
    dead_letter: str | None = None
    """Logical name of this topic's dead-letter topic."""
    copartitioned_with: str | None = None


class TopicCatalog:
    """The validated catalog; lookups are by logical name, as code refers to topics."""

    def __init__(self, specs: tuple[TopicSpec, ...], source: Path | str) -> None:
        self._specs = specs
        self._by_logical = {spec.logical: spec for spec in specs}
        self.source = source
        """Where the catalog was read from, for messages."""

    def get(self, logical: str) -> TopicSpec:
        try:
            return self._by_logical[logical]
        except KeyError:
            raise KeyError(f"no topic {logical!r} in the catalog {self.source}") from None

    def all(self) -> tuple[TopicSpec, ...]:
        """Every topic, in catalog order (stable output for `seatflow topics`)."""
        return self._specs

    def by_role(self, role: TopicRole) -> tuple[TopicSpec, ...]:
        return tuple(spec for spec in self._specs if spec.role is role)

    def sources(self) -> tuple[TopicSpec, ...]:
        return self.by_role(TopicRole.SOURCE)

    def dead_letter_for(self, logical: str) -> TopicSpec:
        spec = self.get(logical)
        if spec.dead_letter is None:
            raise KeyError(f"topic {logical!r} has no dead-letter topic in {self.source}")
        return self.get(spec.dead_letter)

    def __iter__(self) -> Iterator[TopicSpec]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, logical: object) -> bool:
        return logical in self._by_logical


def catalog_path() -> Path:
    """The catalog file: `$SEATFLOW_TOPICS_DIR/catalog.toml`, else the package's
    (`workers.contracts`: the repository's `topics/`, or its copy in an installed wheel)."""
    directory = os.environ.get(TOPICS_DIR_ENV)
    if directory:
        return Path(directory) / CATALOG_FILE
    return TOPICS_DIR / CATALOG_FILE


def load_catalog(
    settings: Settings, path: Path | None = None, *, generation: int = 1
) -> TopicCatalog:
    """Read, validate and resolve the catalog for `settings` (prefix and group).

    `generation` selects a projection generation's own topics: `{gen}` and the group in
    `{group}` get `generation_suffix(generation)`; pass the base settings, not a
    generation's (workers.generation.pipeline_for does both)."""
    path = path or catalog_path()
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise CatalogError(
            f"{path}: topic catalog not found (set {TOPICS_DIR_ENV} to its directory)"
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise CatalogError(f"{path}: not valid TOML: {e}") from None
    suffix = generation_suffix(generation)
    return parse_catalog(
        data, prefix=settings.topic_prefix, group=settings.consumer_group + suffix,
        source=path, gen=suffix,
    )  # fmt: skip


def parse_catalog(
    data: Mapping[str, Any],
    *,
    prefix: str,
    group: str,
    source: Path | str = "<catalog>",
    gen: str = "",
) -> TopicCatalog:
    """Validate already-parsed catalog data; separate from I/O so tests need no files."""
    unknown = set(data) - {"topics"}
    if unknown:
        raise CatalogError(f"{source}: unknown top-level keys {sorted(unknown)}; expected [topics]")
    entries = data.get("topics")
    if not isinstance(entries, dict) or not entries:
        raise CatalogError(f'{source}: no [topics."<name>"] entries')
    specs = tuple(
        _parse_entry(logical, entry, prefix=prefix, group=group, source=source, gen=gen)
        for logical, entry in entries.items()
    )
    _check_references(specs, source)
    return TopicCatalog(specs, source)


def _parse_entry(
    declared: str, entry: object, *, prefix: str, group: str, source: Path | str, gen: str = ""
) -> TopicSpec:
    logical = declared.replace(GEN_PLACEHOLDER, "")

    def fail(fld: str | None, problem: str) -> CatalogError:
        where = f'topics."{declared}"' + (f".{fld}" if fld else "")
        return CatalogError(f"{source}: {where}: {problem}")

    if not isinstance(entry, dict):
        raise fail(None, "must be a table")
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise fail(None, f"unknown keys {sorted(unknown)}; allowed: {sorted(_ENTRY_KEYS)}")
    for key in _REQUIRED_KEYS:
        if key not in entry:
            raise fail(key, "is required")

    unresolved = logical.replace(GROUP_PLACEHOLDER, "")
    if not _LEGAL_NAME.fullmatch(unresolved):
        raise fail(None, "logical name may only use A-Z a-z 0-9 . _ - and {group} {gen}")
    name = prefix + declared.replace(GROUP_PLACEHOLDER, group).replace(GEN_PLACEHOLDER, gen)
    if not _LEGAL_NAME.fullmatch(name) or len(name) > _MAX_NAME_LENGTH:
        raise fail(
            None,
            f"resolved name {name!r} is not a legal Kafka topic name (A-Z a-z 0-9 . _ -, "
            f"at most {_MAX_NAME_LENGTH} characters); check SEATFLOW_TOPIC_PREFIX and "
            "SEATFLOW_CONSUMER_GROUP",
        )

    try:
        role = TopicRole(entry["role"])
    except ValueError:
        raise fail("role", f"must be one of {[r.value for r in TopicRole]}") from None

    description = entry["description"]
    if not isinstance(description, str) or not description.strip() or "\n" in description:
        raise fail("description", "must be a non-empty single-line string")

    partitions = _positive_int(entry["partitions"], lambda p: fail("partitions", p))
    replication_factor = None
    if "replication_factor" in entry:
        replication_factor = _positive_int(
            entry["replication_factor"], lambda p: fail("replication_factor", p)
        )

    config = _parse_config(entry["config"], fail)
    policies = set(config["cleanup.policy"].split(","))
    if role is TopicRole.CHANGELOG and "compact" not in policies:
        raise fail('config."cleanup.policy"', 'a changelog must be compacted ("compact")')
    if "delete" in policies and "retention.ms" not in config:
        raise fail('config."retention.ms"', "is required when cleanup.policy includes delete")

    refs: dict[str, str | None] = {}
    for key in ("dead_letter", "copartitioned_with"):
        value = entry.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise fail(key, "must be the logical name of another catalog topic")
        refs[key] = value.replace(GEN_PLACEHOLDER, "") if value is not None else None
    if role is TopicRole.SOURCE and refs["dead_letter"] is None:
        raise fail("dead_letter", "is required for a source topic")

    return TopicSpec(
        logical=logical,
        name=name,
        partitions=partitions,
        config=MappingProxyType(config),
        role=role,
        replication_factor=replication_factor,
        description=description.strip(),
        dead_letter=refs["dead_letter"],
        copartitioned_with=refs["copartitioned_with"],
    )


def _positive_int(value: object, fail: Callable[[str], CatalogError]) -> int:
    # bool is an int subclass: `partitions = true` must not mean 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise fail(f"must be an integer >= 1, got {value!r}")
    return value


def _parse_config(value: object, fail: Callable[[str | None, str], CatalogError]) -> dict[str, str]:
    """Normalise values to the strings the broker reports, so drift is a string compare."""
    if not isinstance(value, dict):
        raise fail("config", "must be a table of Kafka topic configs")
    config: dict[str, str] = {}
    for key, raw in value.items():
        if isinstance(raw, bool):
            config[key] = "true" if raw else "false"
        elif isinstance(raw, int | float | str):
            config[key] = str(raw)
        else:
            raise fail(f'config."{key}"', f"must be a string, number or boolean, got {raw!r}")
    policy = config.get("cleanup.policy")
    if policy is None:
        raise fail('config."cleanup.policy"', "is required (delete, compact or both)")
    parts = [p.strip() for p in policy.split(",")]
    if not parts or any(p not in ("delete", "compact") for p in parts):
        raise fail('config."cleanup.policy"', f"must be delete, compact or both, got {policy!r}")
    config["cleanup.policy"] = ",".join(parts)
    return config


def _check_references(specs: tuple[TopicSpec, ...], source: Path | str) -> None:
    by_logical = {spec.logical: spec for spec in specs}
    names: dict[str, str] = {}
    for spec in specs:
        where = f'{source}: topics."{spec.logical}"'
        if spec.name in names:
            raise CatalogError(f"{where}: resolves to {spec.name!r}, as does {names[spec.name]!r}")
        names[spec.name] = spec.logical
        if spec.dead_letter is not None:
            target = by_logical.get(spec.dead_letter)
            if target is None or target.role is not TopicRole.DEAD_LETTER:
                raise CatalogError(
                    f"{where}.dead_letter: {spec.dead_letter!r} is not a dead-letter topic "
                    "of this catalog"
                )
        if spec.copartitioned_with is not None:
            other = by_logical.get(spec.copartitioned_with)
            if other is None:
                raise CatalogError(
                    f"{where}.copartitioned_with: no topic {spec.copartitioned_with!r} in "
                    "this catalog"
                )
            if other.partitions != spec.partitions:
                raise CatalogError(
                    f"{where}.partitions: {spec.partitions} differs from "
                    f"{other.logical!r} ({other.partitions}); co-partitioned topics must "
                    "have equal partition counts"
                )
    if not any(spec.role is TopicRole.SOURCE for spec in specs):
        raise CatalogError(f"{source}: declares no source topic")
