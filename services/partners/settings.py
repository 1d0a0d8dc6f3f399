"""Partners service settings."""

from __future__ import annotations

from pydantic import Field, field_validator

from shared.ratelimit import check_rules
from shared.settings import CommonSettings

__all__ = ["PartnersSettings", "DEV_BOOTSTRAP_ADMIN_PASSWORD"]

# Known development password of the bootstrap admin: refused when APP_ENV is "production".
DEV_BOOTSTRAP_ADMIN_PASSWORD = "dev-only-admin-password-change-me"


class PartnersSettings(CommonSettings):
    mongodb_database: str = Field("partners", alias="PARTNERS_DB")
    outbox_interval_s: float = Field(1.0, alias="PARTNERS_OUTBOX_INTERVAL_S", gt=0)
    token_ttl_minutes: int = Field(8 * 60, alias="PARTNERS_TOKEN_TTL_MINUTES", ge=1, le=7 * 24 * 60)
    bootstrap_admin_username: str = Field("admin", alias="PARTNERS_BOOTSTRAP_ADMIN_USERNAME", min_length=3)
    bootstrap_admin_password: str = Field(
        DEV_BOOTSTRAP_ADMIN_PASSWORD, alias="PARTNERS_BOOTSTRAP_ADMIN_PASSWORD", min_length=12
    )
    # Sign-in: requests per client address, and failed sign-ins per account after which the account is refused
    # (even with the right password) until the oldest failure leaves the window (`limits` notation).
    auth_rate_limit: str = Field("60/minute", alias="PARTNERS_AUTH_RATE_LIMIT")
    login_failure_limit: str = Field("10 per 15 minutes", alias="PARTNERS_LOGIN_FAILURE_LIMIT")
    # Fault injection for the crash test only: die right after the database write, before publishing.
    fault_exit_before_publish: bool = Field(False, alias="PARTNERS_FAULT_EXIT_BEFORE_PUBLISH")

    @field_validator("bootstrap_admin_password")
    @classmethod
    def _no_dev_password_in_production(cls, value: str, info) -> str:  # type: ignore[no-untyped-def]
        if info.data.get("app_env") == "production" and value == DEV_BOOTSTRAP_ADMIN_PASSWORD:
            raise ValueError("PARTNERS_BOOTSTRAP_ADMIN_PASSWORD must be set to a real secret in production")
        return value

    _rules = field_validator("auth_rate_limit", "login_failure_limit")(check_rules)

    @field_validator("fault_exit_before_publish")
    @classmethod
    def _no_fault_injection_in_production(cls, value: bool, info) -> bool:  # type: ignore[no-untyped-def]
        if value and info.data.get("app_env") == "production":
            raise ValueError("fault injection is for tests only")
        return value
