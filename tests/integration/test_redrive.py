"""Dead letters that a newer decoder accepts: the ordering rule, then redrive after the fix.

The story: the workers first ran a decoder that followed upstream's contract file, where
reservation-created's customerId is a UUID; the producers send free strings ("customer-7",
e-mails), so most creations were dead-lettered while their expiries and orders (other
topics, same seats and reservations) were applied. Then the fixed decoder is deployed and
`seatflow dlq redrive` sends the dead letters back.

Checked: before the redrive the read models equal the fold of the events that were NOT
dead-lettered (the documented rule: later events apply normally, the rejected one is
simply absent); after it they equal the fold of all events (as if nothing had been
rejected); each redriven creation is one fact in the seat table, named after its original
record; and a second redrive changes nothing.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests.integration.conftest import SettingsFactory
from tests.integration.dlq_support import (
    dead_letters,
    end_offsets,
    fatal_lines,
    read_topic,
    seat_states,
)
from tests.integration.harness import WorkerProcess, produce, read_models, run_cli, wait_drained
from workers.decoding import SCHEMAS_DIR_ENV, schemas_dir
from workers.loadgen.scenario import ScenarioShape, scenario
from workers.redrive import REDRIVE_ORIGIN
from workers.settings import Settings
from workers.topic_catalog import load_catalog
from workers.verify.reference import fold
from workers.verify.topics import fold_topics, read_sources

pytestmark = pytest.mark.integration

CREATED = "reservation-created"


def old_decoder_schemas(directory: Path) -> Path:
    """The schemas as the contract file has them: customerId must be a UUID."""
    shutil.copytree(schemas_dir(), directory)
    for version in ("v1", "v2"):
        path = directory / CREATED / f"{version}.json"
        schema = json.loads(path.read_text())
        schema["properties"]["customerId"] = {"$ref": "#/definitions/uuid"}
        path.write_text(json.dumps(schema))
    return directory


def assert_same(actual: object, expected: object, when: str) -> None:
    differences = actual.differences(expected)  # type: ignore[attr-defined]
    assert not differences, f"{when}:\n" + "\n".join(differences[:20])


async def redriven_fact_counts(settings: Settings, origins: set[tuple[int, int]]) -> Counter[str]:
    """How many facts of the seat table name each origin, or any redriven copy."""
    copies = {
        (partition, offset)
        for partition, offset, _k, _v, headers in await read_topic(
            settings, load_catalog(settings).get(CREATED).name
        )
        if any(name == REDRIVE_ORIGIN for name, _ in headers)
    }
    wanted = {f"{CREATED}/{p}/{o}/0": "origin" for p, o in origins}
    wanted |= {f"{CREATED}/{p}/{o}/0": "copy" for p, o in copies}
    counts: Counter[str] = Counter()
    for state in (await seat_states(settings)).values():
        for _, fact in state.facts:
            if fact.fact_id in wanted:
                counts[wanted[fact.fact_id] + ":" + fact.fact_id] += 1
    return counts


async def test_redrive_after_a_decoder_fix_applies_each_dead_letter_once(
    settings_factory: SettingsFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_factory()
    catalog = load_catalog(settings)
    assert run_cli(settings, "topics", "apply").returncode == 0
    shape = ScenarioShape(concert_events=2, seats_per_event=120, reservations=400)
    await produce(settings, scenario(seed=9, shape=shape))

    # ---- the old decoder: creations with free-string customer ids are dead-lettered
    monkeypatch.setenv(SCHEMAS_DIR_ENV, str(old_decoder_schemas(tmp_path / "old-schemas")))
    old = WorkerProcess(settings, tmp_path, name="old-decoder")
    old.start()
    monkeypatch.delenv(SCHEMAS_DIR_ENV)
    try:
        await wait_drained(settings, old, within=180)
    finally:
        old.stop()
    assert not fatal_lines(old)
    letters = await dead_letters(settings)
    assert letters and {d.dlq_topic for d in letters} == {catalog.dead_letter_for(CREATED).name}
    assert all("$.customerId: must be a UUID" in d.reason for d in letters)
    origins = {(d.origin_partition, d.origin_offset) for d in letters}
    assert len(origins) == len(letters)

    # Ordering rule: the read models are the fold of the events that were not rejected.
    sources = await read_sources(settings, catalog)
    applied = [
        r for r in sources if not (r.topic == CREATED and (r.partition, r.offset) in origins)
    ]
    assert len(applied) == len(sources) - len(letters)
    before = await read_models(settings)
    assert_same(before, fold(applied), "before the redrive")
    # ... and it is not vacuous: orders and expiries of rejected creations were applied.
    rejected = {orjson.loads(d.value or b"{}")["reservationId"].lower() for d in letters}
    ordered = {str(row[0]) for row in before.tables["order_items"].values()}  # reservation_id
    assert rejected & ordered, "no order of a rejected reservation was applied"
    assert not rejected & {str(k[0]) for k in before.tables["reservations"]}

    # ---- the fixed decoder is deployed; redrive
    fixed = WorkerProcess(settings, tmp_path, name="fixed-decoder")
    fixed.start()
    try:
        source_names = [s.name for s in catalog.sources()]
        ends = await end_offsets(settings, source_names)
        dry = run_cli(settings, "dlq", "redrive", "--dry-run")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert f"{len(letters)} selected: {len(letters)} would send" in dry.stdout
        assert await end_offsets(settings, source_names) == ends

        first = run_cli(settings, "dlq", "redrive", "--topic", CREATED, "--reason",
                        "schema_violation", "--since", "1h")  # fmt: skip
        assert first.returncode == 0, first.stdout + first.stderr
        assert f"{len(letters)} selected: {len(letters)} sent" in first.stdout
        await wait_drained(settings, fixed, within=180)
        after_first = await read_models(settings)
        assert_same(after_first, await fold_topics(settings, catalog), "after the redrive")
        assert rejected <= {str(k[0]) for k in after_first.tables["reservations"]}
        counts = await redriven_fact_counts(settings, origins)
        assert {k: v for k, v in counts.items() if k.startswith("copy:")} == {}
        assert sorted(counts.values()) == [1] * len(origins), counts.most_common(3)

        second = run_cli(settings, "dlq", "redrive", "--topic", CREATED)
        assert second.returncode == 0, second.stdout + second.stderr
        await wait_drained(settings, fixed, within=180)
        assert_same(await read_models(settings), after_first, "after the second redrive")
        assert await redriven_fact_counts(settings, origins) == counts
        assert len(await dead_letters(settings)) == len(letters)  # nothing rejected again
        assert fixed.alive()
    finally:
        fixed.stop()
    assert fixed.starts == 1 and not fatal_lines(fixed)
