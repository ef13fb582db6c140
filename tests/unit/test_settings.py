"""Settings: validation with one line per problem, the TOML file, TLS merged into URLs,
`config show` redaction, and the Kafka client arguments built from them."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from pydantic import SecretStr

from workers.commands.config import redact_url, redacted
from workers.kafka_clients import client_kwargs, faust_credentials, security_kwargs
from workers.settings import (
    KafkaSecurityProtocol,
    PostgresSslMode,
    SaslMechanism,
    Settings,
    SettingsError,
    load_settings,
)

SEATFLOW = str(Path(sys.executable).with_name("seatflow"))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SEATFLOW_* of the machine's environment leaks into these tests."""
    import os

    for name in list(os.environ):
        if name.startswith("SEATFLOW_"):
            monkeypatch.delenv(name)


def problems(monkeypatch: pytest.MonkeyPatch, **env: str) -> list[str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    return caught.value.problems


def test_a_bad_value_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert problems(monkeypatch, SEATFLOW_BATCH_MAX_EVENTS="0") == [
        "SEATFLOW_BATCH_MAX_EVENTS: must be >= 1, got 0"
    ]
    monkeypatch.delenv("SEATFLOW_BATCH_MAX_EVENTS")
    assert problems(monkeypatch, SEATFLOW_SESSION_TIMEOUT_S="soon") == [
        "SEATFLOW_SESSION_TIMEOUT_S: must be a number, got soon"
    ]


def test_every_problem_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    found = problems(monkeypatch, SEATFLOW_STORE="disk", SEATFLOW_SHUTDOWN_TIMEOUT_S="0")
    assert found == [
        "SEATFLOW_SHUTDOWN_TIMEOUT_S: must be > 0, got 0",
        "SEATFLOW_STORE: must be one of 'rocksdb' or 'memory', got disk",
    ]


def test_secrets_are_not_echoed_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    found = problems(monkeypatch, SEATFLOW_KAFKA_SASL_PASSWORD="hunter2")
    assert len(found) == 1 and "SEATFLOW_KAFKA_SASL_PASSWORD: set, but" in found[0]
    assert "hunter2" not in found[0]


def test_sasl_needs_user_and_password(monkeypatch: pytest.MonkeyPatch) -> None:
    assert problems(monkeypatch, SEATFLOW_KAFKA_SECURITY_PROTOCOL="sasl_ssl") == [
        "SEATFLOW_KAFKA_SASL_USERNAME: required when SEATFLOW_KAFKA_SECURITY_PROTOCOL is SASL_SSL",
        "SEATFLOW_KAFKA_SASL_PASSWORD: required when SEATFLOW_KAFKA_SECURITY_PROTOCOL is SASL_SSL",
    ]


def test_tls_files_must_exist_and_need_tls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert problems(
        monkeypatch,
        SEATFLOW_KAFKA_SECURITY_PROTOCOL="SSL",
        SEATFLOW_KAFKA_SSL_CAFILE=str(tmp_path / "missing.pem"),
    ) == [f"SEATFLOW_KAFKA_SSL_CAFILE: no such file, got {tmp_path / 'missing.pem'}"]
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    monkeypatch.setenv("SEATFLOW_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    assert problems(monkeypatch, SEATFLOW_KAFKA_SSL_CAFILE=str(ca)) == [
        "SEATFLOW_KAFKA_SSL_CAFILE: set, but SEATFLOW_KAFKA_SECURITY_PROTOCOL is PLAINTEXT "
        "(SSL or SASL_SSL would use it)"
    ]


def test_values_are_accepted_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEATFLOW_KAFKA_SECURITY_PROTOCOL", "sasl_plaintext")
    monkeypatch.setenv("SEATFLOW_KAFKA_SASL_MECHANISM", "scram_sha_256")
    monkeypatch.setenv("SEATFLOW_KAFKA_SASL_USERNAME", "u")
    monkeypatch.setenv("SEATFLOW_KAFKA_SASL_PASSWORD", "p")
    settings = load_settings()
    assert settings.kafka_security_protocol is KafkaSecurityProtocol.SASL_PLAINTEXT
    assert settings.kafka_sasl_mechanism is SaslMechanism.SCRAM_SHA_256


def test_config_file_with_environment_overrides(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "seatflow.toml"
    config.write_text('kafka_bootstrap = "kafka:9092"\nbatch_max_events = 50\nstore = "memory"\n')
    monkeypatch.setenv("SEATFLOW_CONFIG_FILE", str(config))
    monkeypatch.setenv("SEATFLOW_BATCH_MAX_EVENTS", "70")
    settings = load_settings()
    assert settings.kafka_bootstrap == "kafka:9092"
    assert settings.batch_max_events == 70  # the environment wins over the file
    assert settings.store == "memory"


def test_config_file_problems_name_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "seatflow.toml"
    config.write_text("batch_max_events = 0\n")
    assert problems(monkeypatch, SEATFLOW_CONFIG_FILE=str(config)) == [
        f"SEATFLOW_BATCH_MAX_EVENTS: must be >= 1, got 0 (in {config})"
    ]
    config.write_text("batch_max_event = 5\n")
    assert problems(monkeypatch) == [f"SEATFLOW_CONFIG_FILE: {config}: unknown setting "
                                     "'batch_max_event'"]  # fmt: skip
    config.write_text("batch_max_events = \n")
    (line,) = problems(monkeypatch)
    assert line.startswith(f"SEATFLOW_CONFIG_FILE: {config} is not valid TOML")
    assert problems(monkeypatch, SEATFLOW_CONFIG_FILE=str(tmp_path / "nope.toml")) == [
        f"SEATFLOW_CONFIG_FILE: {tmp_path / 'nope.toml'}: no such file"
    ]


def test_postgres_and_redis_tls_settings_go_into_the_urls(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    settings = Settings(
        postgres_dsn=SecretStr("postgresql://u:p@db:5432/sf?sslmode=disable&application_name=x"),
        postgres_ssl_rootcert=ca,
        redis_url=SecretStr("rediss://:pw@cache:6380/0"),
        redis_ssl_ca_certs=ca,
        redis_ssl_check_hostname=False,
    )
    # rootcert alone means verify-full (libpq's strictest), replacing the DSN's sslmode
    dsn = urlsplit(settings.postgres_dsn.get_secret_value())
    assert dsn.netloc == "u:p@db:5432"
    assert dict(parse_qsl(dsn.query)) == {
        "application_name": "x", "sslmode": "verify-full", "sslrootcert": str(ca)
    }  # fmt: skip
    url = urlsplit(settings.redis_url.get_secret_value())
    assert dict(parse_qsl(url.query)) == {
        "ssl_ca_certs": str(ca), "ssl_check_hostname": "false"
    }  # fmt: skip
    explicit = Settings(postgres_sslmode=PostgresSslMode.REQUIRE)
    assert explicit.postgres_dsn.get_secret_value().endswith("?sslmode=require")
    assert Settings(redis_ssl_check_hostname=False).redis_url.get_secret_value() == (
        "redis://127.0.0.1:6379/0"  # no TLS, nothing to merge
    )


def test_asyncpg_and_redis_read_the_merged_parameters(tmp_path: Path) -> None:
    """The clients themselves understand what `_merge_tls` writes (no connection made)."""
    from asyncpg.connect_utils import _parse_connect_dsn_and_args
    from redis.asyncio.connection import parse_url

    ca = tmp_path / "ca.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout",
         str(tmp_path / "ca.key"), "-out", str(ca), "-subj", "/CN=test"],
        check=True, capture_output=True,
    )  # fmt: skip
    settings = Settings(postgres_ssl_rootcert=ca, redis_url=SecretStr("rediss://h:1/0"),
                        redis_ssl_ca_certs=ca)  # fmt: skip
    _addrs, params = _parse_connect_dsn_and_args(
        dsn=settings.postgres_dsn.get_secret_value(), host=None, port=None, user=None,
        password=None, passfile=None, database=None, ssl=None, direct_tls=None,
        server_settings=None, target_session_attrs=None, krbsrvname=None, gsslib=None,
        service=None, servicefile=None,
    )  # fmt: skip
    assert isinstance(params.ssl, ssl.SSLContext)
    assert params.ssl.verify_mode is ssl.CERT_REQUIRED and params.ssl.check_hostname
    assert parse_url(settings.redis_url.get_secret_value())["ssl_ca_certs"] == str(ca)


def test_kafka_client_arguments_follow_the_protocol(tmp_path: Path) -> None:
    plain = Settings()
    assert client_kwargs(plain) == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "PLAINTEXT",
    }
    assert faust_credentials(plain) is None

    sasl_ssl = Settings(
        kafka_security_protocol=KafkaSecurityProtocol.SASL_SSL,
        kafka_sasl_mechanism=SaslMechanism.SCRAM_SHA_512,
        kafka_sasl_username="seatflow",
        kafka_sasl_password=SecretStr("s3cret"),
        kafka_ssl_check_hostname=False,
    )
    kwargs = security_kwargs(sasl_ssl)
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("seatflow", "s3cret")
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED and not context.check_hostname

    credentials = faust_credentials(sasl_ssl)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert "s3cret" not in repr(credentials)

    sasl_plaintext = sasl_ssl.model_copy(
        update={"kafka_security_protocol": KafkaSecurityProtocol.SASL_PLAINTEXT}
    )
    assert "ssl_context" not in security_kwargs(sasl_plaintext)
    assert faust_credentials(sasl_plaintext).protocol.value == "SASL_PLAINTEXT"

    tls = Settings(kafka_security_protocol=KafkaSecurityProtocol.SSL)
    assert set(security_kwargs(tls)) == {"security_protocol", "ssl_context"}
    assert faust_credentials(tls).protocol.value == "SSL"


def test_redaction_of_secrets_and_url_passwords() -> None:
    assert redact_url("postgresql://sf:s3cr3t@db:5432/sf?sslmode=require&sslpassword=k") == (
        "postgresql://sf:**********@db:5432/sf?sslmode=require&sslpassword=**********"
    )
    assert redact_url("redis://:pw@cache:6379/0") == "redis://:**********@cache:6379/0"
    assert redact_url("redis://cache:6379/0") == "redis://cache:6379/0"
    shown = redacted(
        Settings(
            kafka_security_protocol=KafkaSecurityProtocol.SASL_SSL,
            kafka_sasl_username="seatflow",
            kafka_sasl_password=SecretStr("s3cret"),
        )
    )
    assert shown["kafka_sasl_password"] == "**********"
    assert shown["kafka_sasl_username"] == "seatflow"
    assert "s3cret" not in repr(shown) and "seatflow:seatflow@" not in repr(shown)


def test_cli_bad_setting_exits_2_with_one_line_and_no_traceback() -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("SEATFLOW_")}
    for command in (["worker"], ["config", "show"], ["topics", "list"]):
        done = subprocess.run(
            [SEATFLOW, *command], env={**env, "SEATFLOW_BATCH_MAX_EVENTS": "0"},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 2, (command, done.stderr)
        assert done.stderr == "seatflow: SEATFLOW_BATCH_MAX_EVENTS: must be >= 1, got 0\n"


def test_cli_config_show_redacts(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("SEATFLOW_")}
    env.update(
        SEATFLOW_POSTGRES_DSN="postgresql://sf:pg-s3cret@db/sf",
        SEATFLOW_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        SEATFLOW_KAFKA_SASL_USERNAME="seatflow",
        SEATFLOW_KAFKA_SASL_PASSWORD="kafka-s3cret",
    )
    done = subprocess.run(
        [SEATFLOW, "config", "show"], env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "s3cret" not in done.stdout
    assert 'kafka_sasl_password = "**********"  # env SEATFLOW_KAFKA_SASL_PASSWORD' in done.stdout
    assert 'postgres_dsn = "postgresql://sf:**********@db/sf"' in done.stdout
    assert "batch_max_events = 1000  # default" in done.stdout
