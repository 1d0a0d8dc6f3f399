"""Settings read from the environment; every service's settings class derives from this one."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["CommonSettings", "DEV_PERSON_REF_KEY", "DEV_PLATFORM_TOKEN_KEY"]

# Known development key: accepted only when APP_ENV is not "production".
DEV_PERSON_REF_KEY = "dev-only-person-ref-key-change-me-in-production"
DEV_PLATFORM_TOKEN_KEY = "dev-only-platform-token-key-change-me-in-production"


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    app_env: str = Field("development", alias="APP_ENV")
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", alias="KAFKA_BOOTSTRAP_SERVERS")
    mongodb_uri: str = Field("mongodb://127.0.0.1:27017/?directConnection=true", alias="MONGODB_URI")
    person_ref_key: str = Field(DEV_PERSON_REF_KEY, alias="PERSON_REF_KEY", min_length=16)
    platform_token_key: str = Field(DEV_PLATFORM_TOKEN_KEY, alias="PLATFORM_TOKEN_KEY", min_length=32)
    log_level: str = Field("INFO", alias="LOG_LEVEL")

    @field_validator("person_ref_key", "platform_token_key")
    @classmethod
    def _no_placeholder_in_production(cls, value: str, info) -> str:  # type: ignore[no-untyped-def]
        if info.data.get("app_env") == "production" and value in (DEV_PERSON_REF_KEY, DEV_PLATFORM_TOKEN_KEY):
            raise ValueError(f"{info.field_name} must be set to a real secret in production")
        return value

    @property
    def person_ref_key_bytes(self) -> bytes:
        return self.person_ref_key.encode("utf-8")
