"""docker/ checked without a Docker engine (none runs here).

What runs: hadolint on the Dockerfile; the docker-compose v2 binary's own `config`, which
parses, interpolates and validates the compose file exactly as `docker compose up` would
before it needs an engine; the compose-spec JSON schema (check-jsonschema's vendored
copy). Then the structure the deployment relies on, from the resolved compose model. All
three tools come from the dev extras of pyproject.toml; a missing one fails, never skips.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from workers.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "compose.yaml"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} is missing: install the dev extras (scripts/dev-env)"
    return str(path)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The resolved compose model, every profile included."""
    done = run(tool("docker-compose"), "-f", str(COMPOSE), "--profile", "replay", "config",
               "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_hadolint_passes() -> None:
    done = run(tool("hadolint"), "--failure-threshold", "info", str(DOCKERFILE))
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_config_validates_with_and_without_the_replay_profile() -> None:
    for profile in ([], ["--profile", "replay"]):
        done = run(tool("docker-compose"), "-f", str(COMPOSE), *profile, "config", "--quiet")
        assert done.returncode == 0, done.stderr


def test_compose_file_matches_the_compose_spec_schema() -> None:
    done = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_is_multi_stage_slim_non_root_with_a_healthz_check() -> None:
    text = DOCKERFILE.read_text()
    instructions = [
        line.split(None, 1) for line in re.sub(r"\\\n", " ", text).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]  # fmt: skip
    stages = [i for i, (op, *_rest) in enumerate(instructions) if op == "FROM"]
    assert len(stages) >= 2, "multi-stage: a builder and a runtime"
    runtime = instructions[stages[-1] :]
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    assert any(op == "COPY" and "--from=builder" in rest[0] for op, *rest in runtime)
    users = [rest[0].strip() for op, *rest in runtime if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    healthchecks = [rest[0] for op, *rest in runtime if op == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "/healthz" in healthchecks[0]
    # the check's own Python is valid (it runs inside the image, where no test can run it)
    command = json.loads(healthchecks[0].split("CMD", 1)[1])
    assert command[:2] == ["python", "-c"]
    compile(command[2], "HEALTHCHECK", "exec")
    env = " ".join(rest[0] for op, *rest in runtime if op == "ENV")
    for variable in ("SEATFLOW_SCHEMAS_DIR", "SEATFLOW_TOPICS_DIR", "SEATFLOW_METRICS_PORT"):
        assert variable in env
    copied = " ".join(rest[0] for op, *rest in runtime if op == "COPY")
    assert "schemas " in copied and "topics " in copied
    entrypoint = [rest[0] for op, *rest in runtime if op == "ENTRYPOINT"]
    assert entrypoint == ['["seatflow"]']


def test_dockerignore_sends_what_the_dockerfile_copies() -> None:
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    for needed in ("pyproject.toml", "README.md", "workers/", "schemas/", "topics/"):
        assert f"!{needed}" in ignore


def test_compose_services_and_their_roles(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {
        "kafka", "postgres", "redis", "prometheus", "grafana", "seatflow-init", "worker",
        "replay",
    }  # fmt: skip
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper

    init = services["seatflow-init"]
    assert "topics apply" in " ".join(init["command"]) and "db migrate" in " ".join(init["command"])
    assert init["restart"] == "no"

    worker = services["worker"]
    assert worker["deploy"]["replicas"] == 2
    assert worker["depends_on"]["seatflow-init"]["condition"] == "service_completed_successfully"
    assert worker["build"]["dockerfile"] == "docker/Dockerfile"
    grace = _seconds(worker["stop_grace_period"])
    assert grace > float(worker["environment"]["SEATFLOW_SHUTDOWN_TIMEOUT_S"])

    replay = services["replay"]
    assert replay["profiles"] == ["replay"]
    assert replay["entrypoint"] == ["seatflow", "replay"]


def test_compose_environment_names_only_real_settings(compose: dict[str, Any]) -> None:
    known = {f"SEATFLOW_{name.upper()}" for name in Settings.model_fields}
    known |= {"SEATFLOW_SCHEMAS_DIR", "SEATFLOW_TOPICS_DIR", "SEATFLOW_CONFIG_FILE"}
    for name, service in compose["services"].items():
        for variable in service.get("environment") or {}:
            if variable.startswith("SEATFLOW_"):
                assert variable in known, f"{name}: {variable} is no seatflow setting"


def test_monitoring_files_are_mounted_and_exist(compose: dict[str, Any]) -> None:
    mounts = {
        (name, volume["target"]): volume.get("source")
        for name, service in compose["services"].items()
        for volume in service.get("volumes", [])
    }
    expected = {
        ("prometheus", "/etc/prometheus/prometheus.yml"): DOCKER / "prometheus/prometheus.yml",
        ("prometheus", "/etc/prometheus/alerts.yml"): DOCKER / "prometheus/alerts.yml",
        ("grafana", "/etc/grafana/provisioning"): DOCKER / "grafana/provisioning",
        ("grafana", "/var/lib/grafana/dashboards"): DOCKER / "grafana/dashboards",
    }
    for key, path in expected.items():
        assert Path(mounts[key]) == path and path.exists(), key
    # Prometheus finds the workers through the compose service name
    assert "names: [worker]" in (DOCKER / "prometheus/prometheus.yml").read_text()


def _seconds(duration: str | int | float) -> float:
    if isinstance(duration, int | float):
        return float(duration) / 1e9 if duration > 1e6 else float(duration)  # nanoseconds
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", duration)
    assert match, duration
    value, unit = float(match[1]), match[2]
    return value / 1000 if unit == "ms" else value * 60 if unit == "m" else value
