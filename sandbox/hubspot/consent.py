"""Communication preferences v4: subscription definitions and per-email statuses, with a timestamped
history of every change."""

from __future__ import annotations

from typing import Any

from .errors import validation
from .values import iso, now_ms

LEGAL_BASES = frozenset({"CONSENT_WITH_NOTICE", "LEGITIMATE_INTEREST_CLIENT", "LEGITIMATE_INTEREST_OTHER",
                         "LEGITIMATE_INTEREST_PQL", "NON_GDPR", "PERFORMANCE_OF_CONTRACT", "PROCESS_AND_STORE"})
STATES = frozenset({"SUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED"})
_DEFINITIONS = [("101", "Newsletter", "Our monthly newsletter", "Marketing"),
                ("102", "Product updates", "News about new products and features", "Marketing"),
                ("103", "One to one", "One to one emails", "Sales")]


class Consent:
    def __init__(self) -> None:
        stamp = iso(now_ms())
        self.definitions: list[dict[str, Any]] = [
            {"id": sid, "name": name, "description": desc, "purpose": purpose, "communicationMethod": "Email",
             "isActive": True, "isDefault": sid == "103", "isInternal": False, "createdAt": stamp,
             "updatedAt": stamp, "businessUnitId": 0}
            for sid, name, desc, purpose in _DEFINITIONS]
        self.statuses: dict[str, dict[str, dict[str, Any]]] = {}  # email -> subscriptionId -> status
        self.history: list[dict[str, Any]] = []

    def reset(self) -> None:
        self.statuses.clear()
        self.history.clear()

    def _status(self, email: str, sub_id: str) -> dict[str, Any]:
        return self.statuses.get(email, {}).get(sub_id) or {
            "subscriberIdString": email, "subscriptionId": int(sub_id), "channel": "EMAIL",
            "status": "NOT_SPECIFIED", "source": "DEFAULT", "legalBasis": None, "legalBasisExplanation": None,
            "setStatusSuccessReason": None, "timestamp": None, "subscriptionName": self._name(sub_id)}

    def _name(self, sub_id: str) -> str:
        return next(str(d["name"]) for d in self.definitions if d["id"] == sub_id)

    @staticmethod
    def _channel(channel: Any) -> None:
        if channel not in (None, "EMAIL"):
            raise validation(f"channel {channel!r} is not supported; use EMAIL", {"channel": [str(channel)]})

    def get(self, email: str, channel: str | None) -> list[dict[str, Any]]:
        self._channel(channel)
        email = email.strip().lower()
        return [self._status(email, d["id"]) for d in self.definitions]

    def set(self, email: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise validation("Body must be an object")
        self._channel(body.get("channel", "EMAIL"))
        if not body.get("channel"):
            raise validation("channel is required", {"channel": []})
        sub_id = str(body.get("subscriptionId", ""))
        if sub_id not in {d["id"] for d in self.definitions}:
            raise validation(f"Subscription {sub_id} does not exist", {"subscriptionId": [sub_id]})
        state = body.get("statusState")
        if state not in STATES:
            raise validation(f"statusState must be one of {sorted(STATES)}", {"statusState": [str(state)]})
        basis = body.get("legalBasis")
        if basis is not None and basis not in LEGAL_BASES:
            raise validation(f"legalBasis {basis!r} is not valid; use one of {sorted(LEGAL_BASES)}",
                             {"legalBasis": [str(basis)]})
        return self._write(email.strip().lower(), sub_id, str(state), basis, body.get("legalBasisExplanation"),
                           "API")

    def _write(self, email: str, sub_id: str, state: str, basis: Any, explanation: Any, source: str) -> dict[str, Any]:
        status = {"subscriberIdString": email, "subscriptionId": int(sub_id), "channel": "EMAIL",
                  "status": state, "source": source, "legalBasis": basis, "legalBasisExplanation": explanation,
                  "setStatusSuccessReason": "REQUESTED_CHANGE", "timestamp": iso(now_ms()),
                  "subscriptionName": self._name(sub_id)}
        self.statuses.setdefault(email, {})[sub_id] = status
        self.history.append(dict(status))
        return status

    def unsubscribe_all(self, email: str, channel: str | None) -> list[dict[str, Any]]:
        self._channel(channel)
        email = email.strip().lower()
        return [self._write(email, d["id"], "UNSUBSCRIBED", None, None, "API_UNSUBSCRIBE_ALL")
                for d in self.definitions]

    def to_json(self) -> dict[str, Any]:
        return {"statuses": self.statuses, "history": self.history}

    def load(self, data: dict[str, Any]) -> None:
        self.statuses = data["statuses"]
        self.history = data["history"]
