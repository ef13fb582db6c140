"""One typed settings object, read from `SEATFLOW_*` environment variables.

Defaults point at the local harness (`scripts/services up`), so a developer needs no
configuration at all. Validation happens at start: a bad value stops the process with a
message naming the setting.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class StoreKind(StrEnum):
    """Where Faust keeps table state between restarts."""

    ROCKSDB = "rocksdb"
    """On local disk (rocksdict); survives restarts, recovers only the changelog tail."""
    MEMORY = "memory"
    """In process memory; rebuilt from the changelog at every start. For tests."""


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
    topic_prefix: str = Field("", description="Prefix of every topic name (isolates tests)")
    consumer_group: str = Field("seatflow", description="Kafka consumer group / Faust app id")
    pg_schema: str = Field("read_model", description="PostgreSQL schema of the read models")
    redis_prefix: str = Field("sf:", description="Key prefix of the Redis read models")
    batch_max_events: int = Field(1000, ge=1, description="Flush a batch at this many events")
    batch_max_ms: int = Field(100, ge=1, description="Flush a batch after this many ms")
    seat_batch_max_messages: int = Field(
        20, ge=1, description="Seat-facts messages per seat-stage batch (each holds many facts)"
    )
    session_timeout_s: float = Field(
        15.0,
        gt=1,
        description="Kafka group session timeout: how soon a dead worker's "
        "partitions move to the others",
    )
    standby_replicas: int = Field(1, ge=0, description="Faust table standby replicas")
    store: StoreKind = Field(StoreKind.ROCKSDB, description="Faust table store")
    data_dir: Path = Field(Path("./data"), description="Faust table data directory")


def load_settings() -> Settings:
    return Settings()
