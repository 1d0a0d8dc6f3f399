"""Portal settings: where the APIs are, the cookie-signing secret, whether cookies are Secure."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from shared.settings import CommonSettings

__all__ = ["PortalSettings", "DEV_SESSION_KEY", "ROOT"]

ROOT = Path(__file__).resolve().parents[2]
# Known development secret: refused when APP_ENV is "production".
DEV_SESSION_KEY = "dev-only-portal-session-key-change-me-in-production"


class PortalSettings(CommonSettings):
    partners_url: str = Field("http://127.0.0.1:8001", alias="PORTAL_PARTNERS_URL")
    workshops_url: str = Field("http://127.0.0.1:8002", alias="PORTAL_WORKSHOPS_URL")
    metrics_url: str = Field("http://127.0.0.1:8004", alias="PORTAL_METRICS_URL")
    session_key: str = Field(DEV_SESSION_KEY, alias="PORTAL_SESSION_KEY", min_length=32)
    # None: Secure when the request came over https (always in production); true/false forces it.
    secure_cookies: bool | None = Field(None, alias="PORTAL_SECURE_COOKIES")
    assets_dir: Path = Field(ROOT / "node_modules" / "@gouvfr" / "dsfr" / "dist", alias="PORTAL_ASSETS_DIR")
    api_timeout_s: float = Field(15.0, alias="PORTAL_API_TIMEOUT_S", gt=0)

    @field_validator("session_key")
    @classmethod
    def _no_dev_key_in_production(cls, value: str, info) -> str:  # type: ignore[no-untyped-def]
        if info.data.get("app_env") == "production" and value == DEV_SESSION_KEY:
            raise ValueError("PORTAL_SESSION_KEY must be set to a real secret in production")
        return value

    def cookie_secure(self, scheme: str) -> bool:
        if self.secure_cookies is not None:
            return self.secure_cookies
        return self.app_env == "production" or scheme == "https"
