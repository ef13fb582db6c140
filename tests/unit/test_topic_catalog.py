"""The topic catalog: the real file loads and resolves; bad files fail naming entry and field."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from workers.settings import Settings
from workers.topic_catalog import (
    CatalogError,
    TopicRole,
    catalog_path,
    load_catalog,
    parse_catalog,
)

SOURCES = ("seats-generated", "reservation-created", "order-placed", "reservation-expired")

MINIMAL = """
[topics."order-placed"]
role = "source"
description = "Orders."
partitions = 4
dead_letter = "order-placed.dlq"
config = { "cleanup.policy" = "delete", "retention.ms" = -1 }

[topics."order-placed.dlq"]
role = "dead-letter"
description = "Rejected orders."
partitions = 1
config = { "cleanup.policy" = "delete", "retention.ms" = 2592000000 }

[topics."{group}-seats-changelog"]
role = "changelog"
description = "Seats table changelog."
partitions = 4
copartitioned_with = "order-placed"
config = { "cleanup.policy" = "compact" }
"""


def settings(prefix: str = "", group: str = "seatflow") -> Settings:
    # Explicit values: a developer's exported SEATFLOW_* must not change these tests.
    return Settings(topic_prefix=prefix, consumer_group=group)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(text)
    return path


def test_default_location_is_the_repository_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEATFLOW_TOPICS_DIR", raising=False)
    repo = Path(__file__).resolve().parents[2]
    # the package's link to the repository's topics/ (a copy in an installed wheel)
    assert catalog_path().resolve() == repo / "topics" / "catalog.toml"


def test_real_catalog_declares_every_topic_the_workers_use() -> None:
    catalog = load_catalog(settings())
    assert [s.logical for s in catalog.sources()] == list(SOURCES)
    for source in SOURCES:
        spec = catalog.get(source)
        assert (spec.partitions, spec.config["cleanup.policy"]) == (4, "delete")
        assert spec.config["retention.ms"] == "-1"
        dlq = catalog.dead_letter_for(source)
        assert (dlq.logical, dlq.role) == (f"{source}.dlq", TopicRole.DEAD_LETTER)
        assert dlq.config["retention.ms"] == str(30 * 24 * 3600 * 1000)

    facts = catalog.get("seatflow.seat-facts")
    assert facts.role is TopicRole.INTERNAL
    assert catalog.dead_letter_for(facts.logical).logical == "seatflow.seat-facts.dlq"
    changelog = catalog.get("{group}-seats-changelog")
    assert changelog.role is TopicRole.CHANGELOG
    assert changelog.config["cleanup.policy"] == "compact"
    assert changelog.partitions == facts.partitions
    assert len(catalog) == 11
    assert all(spec.replication_factor is None for spec in catalog)
    assert all(isinstance(v, str) for spec in catalog for v in spec.config.values())


def test_names_resolve_with_prefix_and_group() -> None:
    catalog = load_catalog(settings(prefix="t1.", group="seatflow-t1"))
    assert catalog.get("order-placed").name == "t1.order-placed"
    assert catalog.dead_letter_for("order-placed").name == "t1.order-placed.dlq"
    assert catalog.get("{group}-seats-changelog").name == "t1.seatflow-t1-seats-changelog"
    assert all(spec.name.startswith("t1.") for spec in catalog)


def test_without_prefix_names_are_logical() -> None:
    catalog = load_catalog(settings())
    assert catalog.get("reservation-expired").name == "reservation-expired"
    assert catalog.get("{group}-seats-changelog").name == "seatflow-seats-changelog"


def test_topics_dir_env_selects_another_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, MINIMAL)
    monkeypatch.setenv("SEATFLOW_TOPICS_DIR", str(tmp_path))
    catalog = load_catalog(settings(group="g"))
    assert catalog.source == tmp_path / "catalog.toml"
    assert [s.name for s in catalog.all()] == [
        "order-placed",
        "order-placed.dlq",
        "g-seats-changelog",
    ]


def test_specs_are_immutable() -> None:
    spec = load_catalog(settings()).get("order-placed")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.partitions = 8  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.config["retention.ms"] = "1"  # type: ignore[index]


def test_lookups_of_unknown_topics_fail() -> None:
    catalog = parse_catalog({"topics": _minimal_data()}, prefix="", group="g")
    with pytest.raises(KeyError, match="no topic 'nope'"):
        catalog.get("nope")
    with pytest.raises(KeyError, match="no dead-letter topic"):
        catalog.dead_letter_for("order-placed.dlq")
    assert "order-placed" in catalog
    assert "nope" not in catalog


def test_missing_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="SEATFLOW_TOPICS_DIR"):
        load_catalog(settings(), tmp_path / "catalog.toml")


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[topics\n")
    with pytest.raises(CatalogError, match="not valid TOML") as e:
        load_catalog(settings(), path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        (
            "partitions = 4\ndead",
            "partitions = 0\ndead",
            'topics."order-placed".partitions: must be',
        ),
        (
            "partitions = 4\ndead",
            'partitions = "4"\ndead',
            'topics."order-placed".partitions: must be',
        ),
        (
            "partitions = 4\ndead",
            "partitions = true\ndead",
            'topics."order-placed".partitions: must be',
        ),
        ("partitions = 4\ndead", "partiton = 4\ndead", "unknown keys ['partiton']"),
        ('role = "source"\n', "", 'topics."order-placed".role: is required'),
        ('role = "source"', 'role = "upstream"', 'topics."order-placed".role: must be one of'),
        ('description = "Orders."', 'description = ""', ".description: must be a non-empty"),
        (
            'description = "Orders."',
            'description = """two\nlines"""',
            'topics."order-placed".description',
        ),
        (
            'partitions = 4\ndead_letter = "order-placed.dlq"',
            'partitions = 4\nreplication_factor = 0\ndead_letter = "order-placed.dlq"',
            'topics."order-placed".replication_factor: must be an integer >= 1',
        ),
        (
            '"cleanup.policy" = "delete", "retention.ms" = -1',
            '"retention.ms" = -1',
            'topics."order-placed".config."cleanup.policy": is required',
        ),
        (
            '"cleanup.policy" = "delete", "retention.ms" = -1',
            '"cleanup.policy" = "purge", "retention.ms" = -1',
            "must be delete, compact or both",
        ),
        (
            '"cleanup.policy" = "delete", "retention.ms" = -1',
            '"cleanup.policy" = "delete"',
            'topics."order-placed".config."retention.ms": is required',
        ),
        (
            '"retention.ms" = -1 }',
            '"retention.ms" = -1, "x" = [1] }',
            'topics."order-placed".config."x": must be a string',
        ),
        (
            '"cleanup.policy" = "compact" }',
            '"cleanup.policy" = "delete", "retention.ms" = 1 }',
            'topics."{group}-seats-changelog".config."cleanup.policy": a changelog must be',
        ),
        ('dead_letter = "order-placed.dlq"\n', "", '"order-placed".dead_letter: is required'),
        (
            'dead_letter = "order-placed.dlq"',
            'dead_letter = "{group}-seats-changelog"',
            "is not a dead-letter topic",
        ),
        (
            'copartitioned_with = "order-placed"',
            'copartitioned_with = "orders"',
            "copartitioned_with: no topic 'orders'",
        ),
        (
            "partitions = 4\ncopartitioned_with",
            "partitions = 8\ncopartitioned_with",
            'topics."{group}-seats-changelog".partitions: 8 differs from',
        ),
        ('[topics."order-placed.dlq"]', '[topics."order placed.dlq"]', "logical name may only use"),
        ('[topics."order-placed"]', "owner = 'x'\n[topics.\"order-placed\"]", "unknown top-level"),
    ],
)
def test_bad_catalogs_fail_naming_entry_and_field(
    tmp_path: Path, old: str, new: str, error: str
) -> None:
    assert old in MINIMAL
    path = write(tmp_path, MINIMAL.replace(old, new, 1))
    with pytest.raises(CatalogError) as e:
        load_catalog(settings(), path)
    assert error in str(e.value)
    assert str(path) in str(e.value)


def test_resolved_name_must_be_legal(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    with pytest.raises(CatalogError, match="SEATFLOW_CONSUMER_GROUP") as e:
        load_catalog(settings(group="has space"), path)
    assert "'has space-seats-changelog'" in str(e.value)


def test_two_entries_may_not_resolve_to_one_topic(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('"{group}-seats-changelog"', '"g-seats-changelog"'))
    text = path.read_text() + MINIMAL[MINIMAL.index('[topics."{group}') :]
    path.write_text(text)
    with pytest.raises(CatalogError, match="resolves to 'g-seats-changelog'"):
        load_catalog(settings(group="g"), path)


def test_values_are_normalised_to_broker_strings() -> None:
    data = _minimal_data()
    data["order-placed"]["config"] = {
        "cleanup.policy": "compact, delete",
        "retention.ms": 1000,
        "min.cleanable.dirty.ratio": 0.5,
        "preallocate": False,
    }
    spec = parse_catalog({"topics": data}, prefix="", group="g").get("order-placed")
    assert dict(spec.config) == {
        "cleanup.policy": "compact,delete",
        "retention.ms": "1000",
        "min.cleanable.dirty.ratio": "0.5",
        "preallocate": "false",
    }


def _minimal_data() -> dict[str, dict[str, object]]:
    return tomllib.loads(MINIMAL)["topics"]
