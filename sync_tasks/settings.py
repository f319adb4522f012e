"""The one typed, validated settings object. Values come from the environment and `.env`.

With no commercetools or HubSpot settings given, everything points at the local sandboxes, so
`make demo` works on a fresh machine. A bad value fails at start-up with a message naming the setting.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SANDBOX_CT_PORT = 8481
SANDBOX_HUBSPOT_PORT = 8482
SANDBOX_CT_CLIENT_ID = "ctsync-sandbox"
SANDBOX_CT_CLIENT_SECRET = "ctsync-sandbox-secret"
SANDBOX_HUBSPOT_TOKEN = "pat-na1-sandbox-token"


class ConfigError(Exception):
    """A setting is missing or invalid; the message names it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # commercetools
    ct_project_key: str = Field("sandbox-shop", min_length=1)
    ct_api_url: AnyHttpUrl = AnyHttpUrl(f"http://127.0.0.1:{SANDBOX_CT_PORT}")
    ct_auth_url: AnyHttpUrl = AnyHttpUrl(f"http://127.0.0.1:{SANDBOX_CT_PORT}")
    ct_client_id: str = SANDBOX_CT_CLIENT_ID
    ct_client_secret: SecretStr = SecretStr(SANDBOX_CT_CLIENT_SECRET)
    ct_scopes: str = ""  # empty: all of the API client's scopes

    # HubSpot
    hubspot_base_url: AnyHttpUrl = AnyHttpUrl(f"http://127.0.0.1:{SANDBOX_HUBSPOT_PORT}")
    hubspot_token: SecretStr = SecretStr(SANDBOX_HUBSPOT_TOKEN)
    hubspot_burst_limit: int = Field(190, ge=1, description="requests per 10 s for this private app")
    hubspot_burst_headroom: float = Field(0.95, gt=0.1, le=1.0)
    hubspot_daily_limit: int = Field(1_000_000, ge=1)
    hubspot_search_limit: int = Field(5, ge=1, description="search requests per second")
    hubspot_associations_limit: int = Field(150, ge=1, description="association calls per 10 s")
    hubspot_backfill_reserve: float = Field(
        0.2, ge=0.0, lt=1.0, description="share of the burst budget kept for live traffic")

    # Redis: REDIS_URL, else 127.0.0.1:6379 when it answers, else an embedded Redis.
    redis_url: str | None = None
    embedded_redis_dir: Path = Path("var/redis")

    # Sync behaviour
    sync_interval: int = Field(30, ge=1, description="seconds between delta extractions")
    extract_overlap_seconds: float = Field(60.0, ge=0.0)
    extract_page_size: int = Field(500, ge=1, le=500)
    chunk_size: int = Field(100, ge=1, le=100)
    shared_fields_rule: Literal["most_recently_modified", "first_created"] = "most_recently_modified"
    company_field: str = "companyName"
    external_id_properties: dict[str, str] = Field(
        default_factory=dict, description="commercetools field -> unique HubSpot contact property")
    max_error_retries: int = Field(8, ge=0)
    http_timeout: float = Field(30.0, gt=0)
    push_rate_limit: str = "20/s"  # Celery's per-worker cap; the fleet-wide budget is in Redis

    # Observability
    sentry_dsn: SecretStr | None = None
    log_pii: bool = False
    log_json: bool = True

    @field_validator("push_rate_limit")
    @classmethod
    def _rate_limit_shape(cls, value: str) -> str:
        number, _, unit = value.partition("/")
        if not number.replace(".", "", 1).isdigit() or unit not in {"s", "m", "h"}:
            raise ValueError("must look like '20/s', '600/m' or '10000/h'")
        return value

    @property
    def ct_base(self) -> str:
        return str(self.ct_api_url).rstrip("/")

    @property
    def ct_auth_base(self) -> str:
        return str(self.ct_auth_url).rstrip("/")

    @property
    def hubspot_base(self) -> str:
        return str(self.hubspot_base_url).rstrip("/")


def load_settings() -> Settings:
    """Build the settings, turning pydantic's error into one that names the bad setting(s)."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]).upper() or "SETTINGS"
            problems.append(f"{name}: {err['msg']}")
        raise ConfigError("invalid setting(s): " + "; ".join(problems)) from None


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once."""
    return load_settings()
