"""The whole sandbox state (schemas, records, associations, pipelines, events, consent, limits) and
its optional persistence to one JSON file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.common import FaultConfig

from .associations import AssociationStore
from .consent import Consent
from .crm import Crm
from .events import Events
from .pipelines import Pipelines
from .properties import PropertyRegistry
from .ratelimit import Limiter, LimitSettings

STATE_VERSION = 1


@dataclass
class Config:
    tokens: list[str] = field(default_factory=lambda: ["pat-na1-sandbox-token"])
    portal_id: int = 12345678
    state_file: Path | None = None
    log_capacity: int = 20_000
    limits: LimitSettings = field(default_factory=LimitSettings)
    faults: FaultConfig = field(default_factory=FaultConfig)


class Sandbox:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.limits = config.limits
        self.limiter = Limiter(self.limits)
        self.registry = PropertyRegistry()
        self.associations = AssociationStore()
        self.crm = Crm(self.registry, self.associations, lambda: self.limits.search_lag)
        self.pipelines = Pipelines(self.registry, config.portal_id)
        self.events = Events(config.portal_id)
        self.consent = Consent()

    def app_id(self, token: str) -> str:
        """A private app id per token: the `sourceId` of the history entries its writes create."""
        return str(1_000_000 + self.config.tokens.index(token))

    def reset(self) -> None:
        """Clear data and restore default schemas; tokens and limit settings stay."""
        self.registry.reset()
        self.associations.links.clear()
        self.crm.reset()
        self.pipelines.reset()
        self.events.reset()
        self.consent.reset()
        self.limiter.reset_usage()

    def to_json(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "portal_id": self.config.portal_id,
                "registry": self.registry.snapshot(), "pipelines": self.pipelines.snapshot(),
                "crm": self.crm.to_json(), "associations": self.associations.to_json(),
                "events": self.events.to_json(), "consent": self.consent.to_json()}

    def load_json(self, data: dict[str, Any]) -> None:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported state file version {data.get('version')!r}")
        self.registry.restore(data["registry"])
        self.pipelines.restore(data["pipelines"])
        self.crm.load(data["crm"])
        self.associations.load(data["associations"])
        self.events.load(data["events"])
        self.consent.load(data["consent"])

    def save(self, path: Path | None = None) -> Path | None:
        target = path or self.config.state_file
        if target is None:
            return None
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json()))
        os.replace(tmp, target)  # atomic: a crash mid-save never leaves half a file
        return target

    def load(self, path: Path | None = None) -> bool:
        source = path or self.config.state_file
        if source is None or not source.exists():
            return False
        self.load_json(json.loads(source.read_text()))
        return True
