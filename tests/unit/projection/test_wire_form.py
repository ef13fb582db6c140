"""The replay's shortcut from events to wire lists against the facts' own wire form."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.projection.test_convergence_property import event_sets
from workers.events import EventType
from workers.projection.facts import (
    fact_from_wire,
    fact_to_wire,
    facts_from_event,
    wires_from_event,
)


@settings(max_examples=200, deadline=None)
@given(events=event_sets(), partition=st.integers(0, 11), offset=st.integers(0, 2**40))
def test_wires_from_an_event_are_the_wire_forms_of_its_facts(
    events: list[tuple[EventType, object]], partition: int, offset: int
) -> None:
    for kind, event in events:
        facts = facts_from_event(event, kind.value, partition, offset)  # type: ignore[arg-type]
        wires = wires_from_event(event, kind.value, partition, offset)  # type: ignore[arg-type]
        assert wires == [fact_to_wire(fact) for fact in facts]
        assert [fact_from_wire(wire) for wire in wires] == facts


def test_every_event_kind_is_covered() -> None:
    """The property above is only as good as the kinds its events cover."""
    seen: set[EventType] = set()

    @settings(max_examples=50, deadline=None)
    @given(events=event_sets())
    def collect(events: list[tuple[EventType, object]]) -> None:
        seen.update(kind for kind, _ in events)

    collect()
    assert seen == set(EventType)


def test_something_that_is_not_an_event_is_refused() -> None:
    with pytest.raises(TypeError, match="not an event"):
        wires_from_event("not an event", "t", 0, 0)  # type: ignore[arg-type]
