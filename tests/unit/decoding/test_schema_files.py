"""The schema files: draft-07, one per known version, found via the env var or the repo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.decoding.upstream import RECORD_TS_MS, raw
from workers.decoding import (
    SCHEMAS_DIR_ENV,
    SchemasNotFoundError,
    decode,
    load_validators,
    schemas_dir,
    validators,
)
from workers.decoding.versions import KNOWN_VERSIONS
from workers.events import EventType

REPO_SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"


def test_the_default_directory_is_the_repositorys() -> None:
    assert schemas_dir().resolve() == REPO_SCHEMAS  # the package links to it


def test_every_file_is_a_draft_07_schema_with_no_stray_versions() -> None:
    expected = {
        f"{event_type.value}/v{version}.json"
        for event_type, versions in KNOWN_VERSIONS.items()
        for version in versions
    }
    found = {str(path.relative_to(REPO_SCHEMAS)) for path in REPO_SCHEMAS.glob("*/v*.json")}

    assert found == expected
    for name in found:
        schema = json.loads((REPO_SCHEMAS / name).read_text())
        assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
        assert schema["type"] == "object"


@pytest.fixture
def fresh_validators(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget compiled validators for this test only."""
    monkeypatch.setattr(validators, "_validators", None)


@pytest.mark.usefixtures("fresh_validators")
def test_the_env_var_points_elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for path in REPO_SCHEMAS.glob("*/v*.json"):
        target = tmp_path / path.parent.name / path.name
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(path.read_bytes())
    monkeypatch.setenv(SCHEMAS_DIR_ENV, str(tmp_path))

    assert schemas_dir() == tmp_path
    assert len(load_validators()) == 7


@pytest.mark.usefixtures("fresh_validators")
def test_a_missing_directory_is_a_deployment_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(SCHEMAS_DIR_ENV, str(tmp_path / "nowhere"))

    with pytest.raises(
        SchemasNotFoundError, match=r"nowhere does not exist \(\$SEATFLOW_SCHEMAS_DIR\)"
    ):
        decode(
            EventType.RESERVATION_CREATED,
            raw("reservation-created.v1.producer"),
            None,
            [],
            RECORD_TS_MS,
        )


@pytest.mark.usefixtures("fresh_validators")
def test_a_missing_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "seats-generated").mkdir()
    monkeypatch.setenv(SCHEMAS_DIR_ENV, str(tmp_path))

    with pytest.raises(SchemasNotFoundError, match=r"seats-generated/v1.json is missing"):
        load_validators()


@pytest.mark.usefixtures("fresh_validators")
def test_a_broken_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for path in REPO_SCHEMAS.glob("*/v*.json"):
        target = tmp_path / path.parent.name / path.name
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(path.read_bytes())
    (tmp_path / "order-placed" / "v1.json").write_text("{not json")
    monkeypatch.setenv(SCHEMAS_DIR_ENV, str(tmp_path))

    with pytest.raises(SchemasNotFoundError, match=r"order-placed/v1.json is unusable"):
        load_validators()
