"""commercetools Money → exact decimals, for the commerce mappings. Never floats: JPY has 0 fraction
digits, high-precision prices carry up to 20. The arithmetic lives in `transforms` (shared with the
mapping file's money transform); here malformed money reads as absent instead of rejecting."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sync_tasks.transforms import Rejected, decimal_text, money_amount


def to_decimal(money: dict[str, Any] | None) -> Decimal | None:
    try:
        return money_amount(money)
    except Rejected:
        return None


def as_text(value: Decimal | None) -> str:
    """HubSpot number properties take plain decimal strings (no exponent)."""
    return decimal_text(value) or ""


def text(money: dict[str, Any] | None) -> str:
    return as_text(to_decimal(money))


def currency(money: dict[str, Any] | None) -> str:
    return str((money or {}).get("currencyCode") or "")
