"""The hub's one settings object: typed, frozen, read once by the composition root.

Sources, highest precedence first: explicit keyword arguments, environment variables with the
``HUB_`` prefix (``HUB_DATA_DIR``, ``HUB_EVENT_LOG`` ...), a YAML file named by ``HUB_CONFIG_FILE``
(or passed to ``load_settings``), then the defaults below. Nothing outside ``hub.bootstrap`` and
the CLI's entry point reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.errors import ConfigError

EventLogKind = Literal["sqlite", "kafka"]
Compatibility = Literal[
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
]


class Settings(BaseSettings):
    """Every knob of the hub. Frozen: build a new one to change anything."""

    model_config = SettingsConfigDict(env_prefix="HUB_", frozen=True, extra="forbid")

    data_dir: Path = Field(
        default=Path(".hub"), description="Folder for the embedded log, keys and views."
    )
    event_log: EventLogKind = Field(default="sqlite", description="Which EventLog adapter runs.")
    sqlite_synchronous: Literal["FULL", "NORMAL", "OFF"] = Field(
        default="FULL", description="SQLite durability: FULL fsyncs each acknowledged append."
    )
    kafka_bootstrap_servers: str = Field(default="127.0.0.1:9092")

    http_host: str = Field(default="127.0.0.1")
    http_port: int = Field(default=8080, ge=1, le=65535)

    default_partitions: int = Field(default=3, ge=1, le=1024)
    max_record_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest single record value accepted."
    )
    max_request_bytes: int = Field(
        default=32 * 1_048_576, ge=1024, description="Largest HTTP request body accepted."
    )
    registry_compatibility: Compatibility = Field(
        default="BACKWARD", description="Global default compatibility level of the registry."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO")
    log_json: bool = Field(default=True, description="Structured (JSON) logs when true.")

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @property
    def log_path(self) -> Path:
        return self.data_dir / "log.sqlite"


def load_settings(
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Read settings once: overrides > ``HUB_*`` environment > YAML file > defaults.

    Raises ``ConfigError`` naming every invalid setting.
    """
    env = os.environ if environ is None else environ
    path = config_file or env.get("HUB_CONFIG_FILE")
    from_file: dict[str, Any] = {}
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"Cannot read the settings file {path!s}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"The settings file {path!s} must hold a mapping of setting names.")
        from_file = loaded
    from_env = {
        name: env[f"HUB_{name.upper()}"]
        for name in Settings.model_fields
        if f"HUB_{name.upper()}" in env
    }
    merged = {**from_file, **from_env, **overrides}
    try:
        # model_validate skips pydantic-settings' own environment reading, so `environ` rules.
        return Settings.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
            for e in exc.errors()
        )
        raise ConfigError(f"Invalid hub settings: {problems}.") from exc
