"""The one typed, validated settings object. Values come from the environment and `.env`.

With no commercetools or HubSpot settings given, everything points at the local sandboxes, so
`make demo` works on a fresh machine. A bad value fails at start-up with a message naming the setting.
"""

from __future__ import annotations

import functools
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync_tasks.constants import ASSOCIATION_BATCH_LIMIT

SANDBOX_CT_PORT = 8481
SANDBOX_HUBSPOT_PORT = 8482
SANDBOX_CT_CLIENT_ID = "ctsync-sandbox"
SANDBOX_CT_CLIENT_SECRET = "ctsync-sandbox-secret"
SANDBOX_HUBSPOT_TOKEN = "pat-na1-sandbox-token"


class EventTarget(StrEnum):
    PROPERTIES = "properties"
    STAGE = "stage"
    CUSTOM_EVENT = "custom_event"


# Lifecycle event kinds (sync_tasks/lifecycle.py); their property and custom event names are settings.
FIRST_PURCHASE = "first_purchase"
REPEAT_PURCHASE = "repeat_purchase"
CHURN_RISK = "churn_risk"
SUBSCRIPTION_MILESTONE = "subscription_milestone"
LIFECYCLE_EVENTS = (FIRST_PURCHASE, REPEAT_PURCHASE, CHURN_RISK, SUBSCRIPTION_MILESTONE)


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
    hubspot_budget_wait_s: float = Field(
        1.5, ge=0.0, le=30.0, description="a worker refused budget for at most this long waits in the task")
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
    # Delivery: a killed worker's task comes back after the visibility timeout; every countdown stays
    # below half of it, so a waiting task is never redelivered while it waits.
    broker_visibility_timeout: int = Field(3600, ge=20, description="seconds before an unacked task is redelivered")
    dlq_maxlen: int = Field(100_000, ge=100, description="dead-letter entries kept (oldest trimmed)")

    # Orders, carts and events
    # A chain per page of orders, not per HubSpot batch: its writes go in batches of 100
    # (only the last of each kind part-full), and each association kind in one call of up to 2,000
    # inputs. Associations have their own, smaller budget (150/10 s on Pro): with a chain per 100
    # orders, three association calls per chain made it the order sync's bottleneck.
    order_chunk_size: int = Field(500, ge=1, le=500, description="orders per chain (carts: CHUNK_SIZE)")
    # One order→line-item association call per chain. An order with more goes in a chunk of its own.
    order_chunk_line_items: int = Field(ASSOCIATION_BATCH_LIMIT, ge=1, le=ASSOCIATION_BATCH_LIMIT,
                                        description="line items per order (or cart) chain at most")
    backfill_max_chains: int = Field(
        20, ge=1, description="chains of an entity in flight before a backfill waits to page on")
    order_stage_rules: list[str] = Field(
        default_factory=lambda: ["orderState=Cancelled->Cancelled", "paymentState=CreditOwed->Refunded",
                                 "orderState=Complete->Complete", "paymentState=Paid->Paid",
                                 "orderState=Confirmed->Confirmed"],
        description="first match wins: field=value->stage label; otherwise ORDER_DEFAULT_STAGE")
    order_default_stage: str = "Open"
    order_closed_stages: list[str] = Field(default_factory=lambda: ["Cancelled", "Refunded", "Complete"])
    order_pipeline_label: str = "commercetools orders"
    line_item_attributes: list[str] = Field(default_factory=list, description="variant attributes to copy")
    reporting_currency: str = Field("EUR", min_length=3, max_length=3)
    exchange_rates: dict[str, float] = Field(
        default_factory=lambda: {"EUR": 1.0, "USD": 0.92, "GBP": 1.17, "JPY": 0.0062},
        description="units of REPORTING_CURRENCY per unit of each currency")
    cart_abandoned_after_hours: float = Field(24.0, gt=0)
    cart_recovery_url_template: str = "https://shop.example.com/cart/recover?cart={id}"
    orders_as_deals: bool = False
    deal_pipeline: str = "default"
    deal_stage: str = "closedwon"
    products_by_sku: bool = False
    event_targets: list[EventTarget] = Field(
        default_factory=lambda: [EventTarget.PROPERTIES, EventTarget.STAGE],
        description="how commercetools messages land: properties, stage, custom_event")
    custom_event_name: str = "ct_order_event"

    # Lifecycle events (docs/lifecycle.md)
    lifecycle_repeat_every: int = Field(5, ge=2, description="repeat_purchase on the 2nd order and every nth")
    lifecycle_churn_days: int = Field(90, ge=1, description="churn_risk after this many days without an order")
    lifecycle_churn_days_by_store: dict[str, int] = Field(default_factory=dict, description="store key -> days")
    lifecycle_churn_hour: int = Field(3, ge=0, le=23, description="UTC hour of the daily churn pass")
    lifecycle_subscription_field: str = Field("subscriptionId", min_length=1,
                                              description="order custom field naming its subscription")
    lifecycle_milestones: list[int] = Field(default_factory=lambda: [3, 6, 12],
                                            description="nth order of a subscription that fires a milestone")
    lifecycle_custom_events: bool = Field(False, description="also send each live event as a HubSpot custom event")
    lifecycle_property_names: dict[str, str] = Field(
        default_factory=dict, validate_default=True,
        description="event -> contact property base name (flag; _date, _historical, _number beside it)")
    lifecycle_event_names: dict[str, str] = Field(default_factory=dict, validate_default=True,
                                                  description="event -> HubSpot custom event name")

    # Mapping, filters and consent (docs/mapping.md)
    mapping_file: Path | None = Field(None, validate_default=True,
                                      description="TOML field mapping; unset: sync_tasks/mapping.default.toml")
    sync_stores: list[str] = Field(default_factory=list, description="store keys to sync; empty: every store")
    sync_channels: list[str] = Field(default_factory=list, description="distribution channels to sync; empty: all")
    require_email: bool = Field(True, description="no e-mail, no contact")

    # Ownership, conflicts, write-back and the rejected-update log (docs/ownership.md)
    conflict_reads: Literal["shared", "always"] = Field(
        "shared", description="read HubSpot before an update (one batch read per chunk): only when the mapping "
                              "has shared properties, or always (also records overwritten edits of owned ones)")
    writeback_interval: int = Field(60, ge=5, description="seconds between write-back polls of HubSpot")
    writeback_search_lag: float = Field(
        120.0, ge=0.0, description="seconds re-read before the write-back watermark: HubSpot search lags writes")
    writeback_max_pages: int = Field(20, ge=1, le=1000, description="search pages (100 contacts) per poll")
    rejected_retention_days: float = Field(14.0, gt=0, description="rejected-update entries older are trimmed")
    conflicts_retention_days: float = Field(30.0, gt=0, description="conflict entries older are trimmed")

    # Observability
    sentry_dsn: SecretStr | None = None
    log_pii: bool = False
    log_json: bool = True

    # Operations: Flower (never an open dashboard) and the Prometheus exporter
    flower_basic_auth: SecretStr | None = Field(
        None, description="user:password[,user2:password2]; `ctsync flower` refuses to start without it")
    flower_address: str = "127.0.0.1"
    flower_port: int = Field(5555, ge=1, le=65535)
    metrics_address: str = "127.0.0.1"
    metrics_port: int = Field(9808, ge=1, le=65535)

    @field_validator("mapping_file")
    @classmethod
    def _mapping_valid(cls, value: Path | None) -> Path | None:
        # Validated at start-up: a bad mapping stops every process with the line and field named.
        from sync_tasks.mapping_file import MappingError, read_mapping

        try:
            read_mapping(value)
        except MappingError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("lifecycle_churn_days_by_store")
    @classmethod
    def _churn_days(cls, value: dict[str, int]) -> dict[str, int]:
        bad = [store for store, days in value.items() if days < 1]
        if bad:
            raise ValueError(f"days must be at least 1 (stores {bad})")
        return value

    @field_validator("lifecycle_milestones")
    @classmethod
    def _milestones(cls, value: list[int]) -> list[int]:
        if any(n < 1 for n in value):
            raise ValueError("milestones are order numbers, 1 or more")
        return sorted(set(value))

    @field_validator("lifecycle_property_names", "lifecycle_event_names")
    @classmethod
    def _lifecycle_names(cls, value: dict[str, str]) -> dict[str, str]:
        # Partial maps are fine: unnamed events keep the default name.
        unknown = sorted(set(value) - set(LIFECYCLE_EVENTS))
        if unknown:
            raise ValueError(f"unknown lifecycle events {unknown}; known: {list(LIFECYCLE_EVENTS)}")
        bad = [n for n in value.values() if not n or not n.replace("_", "").isalnum() or not n[0].isalpha()
               or n != n.lower()]
        if bad:
            raise ValueError(f"names must be lower-case letters, digits and '_', starting with a letter: {bad}")
        names = {kind: value.get(kind, f"ct_{kind}") for kind in LIFECYCLE_EVENTS}
        if len(set(names.values())) != len(names):
            raise ValueError("two lifecycle events share a name")
        return names

    @field_validator("push_rate_limit")
    @classmethod
    def _rate_limit_shape(cls, value: str) -> str:
        number, _, unit = value.partition("/")
        if not number.replace(".", "", 1).isdigit() or unit not in {"s", "m", "h"}:
            raise ValueError("must look like '20/s', '600/m' or '10000/h'")
        return value

    @field_validator("order_stage_rules")
    @classmethod
    def _stage_rules(cls, rules: list[str]) -> list[str]:
        for rule in rules:
            condition, arrow, stage = rule.partition("->")
            field, eq, value = condition.partition("=")
            if not (arrow and eq and field.strip() and value.strip() and stage.strip()):
                raise ValueError(f"rule {rule!r} must look like 'orderState=Cancelled->Cancelled'")
        return rules

    @field_validator("cart_recovery_url_template")
    @classmethod
    def _template(cls, value: str) -> str:
        if "{id}" not in value:
            raise ValueError("must contain {id}, the commercetools cart id")
        return value

    @field_validator("flower_basic_auth")
    @classmethod
    def _basic_auth_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            pairs = value.get_secret_value().split(",")
            if not all(user and password for user, _, password in (p.partition(":") for p in pairs)):
                raise ValueError("must look like 'user:password' (several separated by commas)")
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
