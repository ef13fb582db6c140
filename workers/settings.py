"""One typed settings object, read from `SEATFLOW_*` environment variables.

Defaults point at the local harness (`scripts/services up`), so a developer needs no
configuration at all. Validation happens at start: a bad value stops the process with a
message naming the setting.

An optional TOML file (`SEATFLOW_CONFIG_FILE`) holds the same settings by their lowercase
names without the prefix; environment variables override it, so a deployment can keep the
common values in a file and inject secrets through the environment. `load_settings`
turns every problem into one line naming the variable (`SettingsError`), which the CLI
prints without a traceback.
"""

from __future__ import annotations

import os
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, FilePath, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

CONFIG_FILE_ENV = "SEATFLOW_CONFIG_FILE"
ENV_PREFIX = "SEATFLOW_"


class StoreKind(StrEnum):
    """Where Faust keeps table state between restarts."""

    ROCKSDB = "rocksdb"
    """On local disk (rocksdict); survives restarts, recovers only the changelog tail."""
    MEMORY = "memory"
    """In process memory; rebuilt from the changelog at every start. For tests."""


class KafkaSecurityProtocol(StrEnum):
    """Kafka's security.protocol: TLS and/or SASL on the client connections."""

    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def uses_tls(self) -> bool:
        return self in (KafkaSecurityProtocol.SSL, KafkaSecurityProtocol.SASL_SSL)

    @property
    def uses_sasl(self) -> bool:
        return self in (KafkaSecurityProtocol.SASL_PLAINTEXT, KafkaSecurityProtocol.SASL_SSL)


class SaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class PostgresSslMode(StrEnum):
    """libpq's sslmode values, with libpq's meaning (asyncpg follows them)."""

    DISABLE = "disable"
    ALLOW = "allow"
    PREFER = "prefer"
    REQUIRE = "require"
    VERIFY_CA = "verify-ca"
    VERIFY_FULL = "verify-full"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEATFLOW_", extra="ignore")

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    postgres_dsn: SecretStr = Field(
        SecretStr("postgresql://seatflow:seatflow@127.0.0.1:5432/seatflow"),
        description="PostgreSQL DSN of the read-model database",
    )
    redis_url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:6379/0"), description="Redis URL of the read-model store"
    )
    kafka_security_protocol: KafkaSecurityProtocol = Field(
        KafkaSecurityProtocol.PLAINTEXT, description="Kafka security.protocol"
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        SaslMechanism.SCRAM_SHA_512, description="SASL mechanism (with SASL_* protocols)"
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password")
    kafka_ssl_cafile: FilePath | None = Field(
        None, description="PEM CA bundle for the brokers' certificates (else the system CAs)"
    )
    kafka_ssl_certfile: FilePath | None = Field(
        None, description="PEM client certificate (mutual TLS)"
    )
    kafka_ssl_keyfile: FilePath | None = Field(None, description="PEM client private key")
    kafka_ssl_key_password: SecretStr | None = Field(
        None, description="Password of an encrypted client private key"
    )
    kafka_ssl_check_hostname: bool = Field(
        True, description="Check that a broker's certificate names the host connected to"
    )
    # The PostgreSQL and Redis TLS settings are merged into the DSN / URL as the query
    # parameters asyncpg and redis-py read (`_merge_tls`), so every client made from
    # `postgres_dsn` / `redis_url` (sinks, migrations, tests) uses them.
    postgres_sslmode: PostgresSslMode | None = Field(
        None, description="TLS to PostgreSQL, libpq's sslmode (unset: the DSN decides)"
    )
    postgres_ssl_rootcert: FilePath | None = Field(
        None, description="PEM CA bundle for PostgreSQL's certificate"
    )
    redis_ssl_ca_certs: FilePath | None = Field(
        None, description="PEM CA bundle for Redis's certificate (with a rediss:// URL)"
    )
    redis_ssl_check_hostname: bool = Field(
        True, description="Check that Redis's certificate names the host (rediss://)"
    )
    topic_prefix: str = Field("", description="Prefix of every topic name (isolates tests)")
    consumer_group: str = Field("seatflow", description="Kafka consumer group / Faust app id")
    pg_schema: str = Field("read_model", description="PostgreSQL schema of the read models")
    redis_prefix: str = Field("sf:", description="Key prefix of the Redis read models")
    batch_max_events: int = Field(1000, ge=1, description="Flush a batch at this many events")
    batch_max_ms: int = Field(100, ge=1, description="Flush a batch after this many ms")
    seat_batch_max_messages: int = Field(
        200, ge=1, description="Seat-facts messages per seat-stage batch (each holds many facts)"
    )
    session_timeout_s: float = Field(
        15.0,
        gt=1,
        description="Kafka group session timeout: how soon a dead worker's "
        "partitions move to the others",
    )
    shutdown_timeout_s: float = Field(
        8.0,
        gt=0,
        le=600,
        description="After SIGTERM, the worker exits within this many seconds",
    )
    standby_replicas: int = Field(1, ge=0, description="Faust table standby replicas")
    store: StoreKind = Field(StoreKind.ROCKSDB, description="Faust table store")
    data_dir: Path = Field(Path("./data"), description="Faust table data directory")
    metrics_port: int = Field(
        9464, ge=0, le=65535,
        description="Port of /metrics, /healthz and /readyz (0: no HTTP server)",
    )  # fmt: skip
    metrics_host: str = Field("0.0.0.0", description="Address the metrics server binds to")
    lag_interval_s: float = Field(
        5.0, gt=0, description="How often consumer lag (messages and seconds) is measured"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment, then the TOML file, then the defaults."""
        file_values = read_config_file(set(cls.model_fields))
        file_source = InitSettingsSource(settings_cls, init_kwargs=file_values)
        return init_settings, env_settings, file_source, file_secret_settings

    @field_validator("kafka_security_protocol", mode="before")
    @classmethod
    def _protocol_upper(cls, value: Any) -> Any:
        """`sasl_ssl` means SASL_SSL: environment values are often written in lower case."""
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("kafka_sasl_mechanism", mode="before")
    @classmethod
    def _mechanism_upper(cls, value: Any) -> Any:
        return value.strip().upper().replace("_", "-") if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        """Settings that only make sense together: one line per problem, naming them."""
        problems: list[str] = []
        protocol = self.kafka_security_protocol
        named = f"{ENV_PREFIX}KAFKA_SECURITY_PROTOCOL is {protocol}"
        if protocol.uses_sasl:
            if not self.kafka_sasl_username:
                problems.append(f"{ENV_PREFIX}KAFKA_SASL_USERNAME: required when {named}")
            if self.kafka_sasl_password is None or not self.kafka_sasl_password.get_secret_value():
                problems.append(f"{ENV_PREFIX}KAFKA_SASL_PASSWORD: required when {named}")
        else:
            for name in ("kafka_sasl_username", "kafka_sasl_password"):
                if getattr(self, name) is not None:
                    problems.append(
                        f"{ENV_PREFIX}{name.upper()}: set, but {named} "
                        "(SASL_PLAINTEXT or SASL_SSL would use it)"
                    )
        if not protocol.uses_tls:
            for name in (
                "kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile",
                "kafka_ssl_key_password",
            ):  # fmt: skip
                if getattr(self, name) is not None:
                    problems.append(
                        f"{ENV_PREFIX}{name.upper()}: set, but {named} (SSL or SASL_SSL "
                        "would use it)"
                    )
        if self.kafka_ssl_keyfile is not None and self.kafka_ssl_certfile is None:
            problems.append(
                f"{ENV_PREFIX}KAFKA_SSL_KEYFILE: needs {ENV_PREFIX}KAFKA_SSL_CERTFILE too"
            )
        if (
            self.postgres_ssl_rootcert is not None
            and self.postgres_sslmode is PostgresSslMode.DISABLE
        ):
            problems.append(
                f"{ENV_PREFIX}POSTGRES_SSL_ROOTCERT: set, but {ENV_PREFIX}POSTGRES_SSLMODE "
                "is disable"
            )
        if self.redis_ssl_ca_certs is not None and not (
            self.redis_url.get_secret_value().startswith("rediss://")
        ):
            problems.append(
                f"{ENV_PREFIX}REDIS_SSL_CA_CERTS: set, but {ENV_PREFIX}REDIS_URL is not a "
                "rediss:// (TLS) URL"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self._merge_tls()

    def _merge_tls(self) -> Settings:
        pg: dict[str, str] = {}
        if self.postgres_sslmode is not None:
            pg["sslmode"] = self.postgres_sslmode.value
        if self.postgres_ssl_rootcert is not None:
            pg["sslrootcert"] = str(self.postgres_ssl_rootcert)
            pg.setdefault("sslmode", PostgresSslMode.VERIFY_FULL.value)
        if pg:
            self.postgres_dsn = SecretStr(with_query(self.postgres_dsn.get_secret_value(), pg))
        redis: dict[str, str] = {}
        if self.redis_ssl_ca_certs is not None:
            redis["ssl_ca_certs"] = str(self.redis_ssl_ca_certs)
        if not self.redis_ssl_check_hostname:
            redis["ssl_check_hostname"] = "false"
        if redis and self.redis_url.get_secret_value().startswith("rediss://"):
            self.redis_url = SecretStr(with_query(self.redis_url.get_secret_value(), redis))
        return self


def with_query(url: str, params: dict[str, str]) -> str:
    """`url` with `params` set in its query string (replacing values of the same name)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return urlunsplit(parts._replace(query=urlencode([*query, *params.items()])))


SECRET_FIELDS = frozenset(
    name for name, field in Settings.model_fields.items() if "SecretStr" in repr(field.annotation)
)
"""Settings whose values are never printed: not in errors, not in `config show`."""


class SettingsError(ValueError):
    """Settings that cannot be used; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def read_config_file(known: set[str]) -> dict[str, Any]:
    """The settings of the TOML file named by SEATFLOW_CONFIG_FILE (none when unset)."""
    raw = os.environ.get(CONFIG_FILE_ENV, "").strip()
    if not raw:
        return {}
    path = Path(raw)
    try:
        with path.open("rb") as f:
            values = tomllib.load(f)
    except FileNotFoundError:
        raise SettingsError([f"{CONFIG_FILE_ENV}: {path}: no such file"]) from None
    except OSError as e:
        raise SettingsError([f"{CONFIG_FILE_ENV}: {path}: {e.strerror}"]) from None
    except tomllib.TOMLDecodeError as e:
        raise SettingsError([f"{CONFIG_FILE_ENV}: {path} is not valid TOML: {e}"]) from None
    unknown = sorted(set(values) - known)
    if unknown:
        raise SettingsError(
            [f"{CONFIG_FILE_ENV}: {path}: unknown setting {name!r}" for name in unknown]
        )
    return values


_MESSAGES: dict[str, str] = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_parsing": "must be a number",
    "bool_parsing": "must be true or false",
    "enum": "must be one of {expected}",
    "path_not_file": "no such file",
    "missing": "is required",
}


def _plain(value: Any) -> str:
    """`0` rather than `'0'` or `0.0`; quotes only where a value would be ambiguous."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str) and value and value.strip() == value and " " not in value:
        return value
    return repr(value) if isinstance(value, str) else str(value)


def describe_errors(error: ValidationError) -> list[str]:
    """One line per error: `SEATFLOW_NAME: what is wrong, got VALUE` (secrets not echoed)."""
    from_file = set(read_config_file(set(Settings.model_fields))) - {
        name for name in Settings.model_fields if f"{ENV_PREFIX}{name.upper()}" in os.environ
    }
    lines: list[str] = []
    for detail in error.errors():
        loc = detail["loc"]
        if not loc:  # a model validator: its message already names the settings
            message = str(detail.get("ctx", {}).get("error", detail["msg"]))
            lines.extend(message.splitlines())
            continue
        name = str(loc[0])
        template = _MESSAGES.get(detail["type"])
        ctx = {
            k: _plain(v) if isinstance(v, int | float) else v
            for k, v in detail.get("ctx", {}).items()
        }
        msg = detail["msg"]
        what = template.format(**ctx) if template else msg[:1].lower() + msg[1:]
        where = f" (in {os.environ[CONFIG_FILE_ENV]})" if name in from_file else ""
        value = "" if name in SECRET_FIELDS else f", got {_plain(detail['input'])}"
        lines.append(f"{ENV_PREFIX}{name.upper()}: {what}{value}{where}")
    return lines


def load_settings() -> Settings:
    """The settings of this process, or `SettingsError` saying what is wrong, line by line."""
    try:
        return Settings()
    except ValidationError as e:
        raise SettingsError(describe_errors(e)) from None
