"""The conflict log (real Redis) and the HubSpot read that feeds the policies."""

from __future__ import annotations

from typing import Any

import redis

from sync_tasks import conflicts
from sync_tasks.constants import Keys
from sync_tasks.mapping_file import ObjectSection
from sync_tasks.ownership import KEPT, Conflict, HubSpotValue


def _conflict(hs_value: str = "Annie") -> Conflict:
    return Conflict("firstname", hs_value, "Ann", "Anna", "shared:hubspot_wins", KEPT,
                    "2026-05-01T11:00:00.000Z", "2026-05-01T10:00:00.000Z", "CRM_UI")


def test_a_conflict_is_recorded_once_with_both_values_and_the_rule(redis_client: redis.Redis) -> None:
    first = conflicts.record(redis_client, "101", ["c1"], _conflict(), retention_days=30, task="ctsync.map")
    again = conflicts.record(redis_client, "101", ["c1"], _conflict(), retention_days=30)
    changed = conflicts.record(redis_client, "101", ["c1"], _conflict("Anny"), retention_days=30)
    assert first and again is None and changed
    items = conflicts.entries(redis_client)
    assert [i["id"] for i in items] == [first, changed]
    assert items[0] | {"at": None} == {
        "id": first, "at": None, "hs_id": "101", "record_ids": ["c1"], "task": "ctsync.map",
        "property": "firstname", "hubspot_value": "Annie", "commercetools_value": "Ann", "last_written": "Anna",
        "rule": "shared:hubspot_wins", "outcome": "kept", "hubspot_modified_at": "2026-05-01T11:00:00.000Z",
        "commercetools_modified_at": "2026-05-01T10:00:00.000Z", "hubspot_source": "CRM_UI"}


def test_conflicts_older_than_the_retention_are_trimmed_and_since_filters(redis_client: redis.Redis) -> None:
    redis_client.xadd(Keys.conflicts(), {"property": "old"}, id="1000-0")
    new = conflicts.record(redis_client, "101", ["c1"], _conflict(), retention_days=1)
    assert [i["id"] for i in conflicts.entries(redis_client)] == [new]
    assert conflicts.entries(redis_client, since=float(str(new).split("-")[0]) / 1000 + 1) == []


class Poster:
    def __init__(self) -> None:
        self.bodies: list[Any] = []

    def post(self, path: str, body: Any) -> Any:
        self.bodies.append((path, body))
        return {"results": [{"id": "101", "properties": {"firstname": "Annie", "lastname": "Mayer"},
                             "propertiesWithHistory": {"lastname": [
                                 {"value": "Mayer", "timestamp": "2026-05-01T11:00:00.000Z", "sourceType": "CRM_UI"},
                                 {"value": "Maier", "timestamp": "2026-04-01T11:00:00.000Z",
                                  "sourceType": "INTEGRATION"}]}}]}


SECTION = ObjectSection.model_validate({
    "object": "contacts", "id_property": "ct_customer_id",
    "properties": {"city": {"transform": "address", "part": "city"},
                   "firstname": {"source": "firstName", "owner": "shared", "policy": "hubspot_wins"},
                   "lastname": {"source": "lastName", "owner": "shared", "policy": "most_recent"}}})


def test_one_batch_read_of_the_shared_properties_with_their_history() -> None:
    poster = Poster()
    view = conflicts.hubspot_view(poster, SECTION, ["101", "102"], always=False)
    [(path, body)] = poster.bodies
    assert path == "/crm/v3/objects/contacts/batch/read"
    assert body == {"inputs": [{"id": "101"}, {"id": "102"}], "properties": ["firstname", "lastname"],
                    "propertiesWithHistory": ["firstname", "lastname"]}
    assert view == {"101": {"firstname": HubSpotValue("Annie"),
                            "lastname": HubSpotValue("Mayer", "2026-05-01T11:00:00.000Z", "CRM_UI")}}


def test_no_read_without_shared_properties_or_updates() -> None:
    poster = Poster()
    owned = ObjectSection.model_validate({"object": "contacts", "id_property": "ct_customer_id",
                                          "properties": {"city": {"transform": "address", "part": "city"}}})
    assert conflicts.hubspot_view(poster, owned, ["101"], always=False) is None
    assert conflicts.hubspot_view(poster, SECTION, [], always=False) is None
    assert conflicts.hubspot_view(None, SECTION, ["101"], always=False) is None
    assert poster.bodies == []
    conflicts.hubspot_view(poster, owned, ["101"], always=True)
    assert poster.bodies[0][1]["properties"] == ["city"]
