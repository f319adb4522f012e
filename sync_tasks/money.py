"""commercetools Money → exact decimals. Never floats: JPY has 0 fraction digits, high-precision
prices carry up to 20."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def to_decimal(money: dict[str, Any] | None) -> Decimal | None:
    """centAmount / 10**fractionDigits, or preciseAmount for highPrecision money."""
    if not money:
        return None
    digits = int(money.get("fractionDigits", 2))
    if money.get("type") == "highPrecision" and money.get("preciseAmount") is not None:
        return Decimal(int(money["preciseAmount"])).scaleb(-digits)
    return Decimal(int(money.get("centAmount", 0))).scaleb(-digits)


def as_text(value: Decimal | None) -> str:
    """HubSpot number properties take plain decimal strings (no exponent)."""
    if value is None:
        return ""
    return format(value.normalize(), "f") if value != 0 else "0"


def text(money: dict[str, Any] | None) -> str:
    return as_text(to_decimal(money))


def currency(money: dict[str, Any] | None) -> str:
    return str((money or {}).get("currencyCode") or "")
