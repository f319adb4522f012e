"""The /_sandbox/ inspection and control API, the request log, persistence and the CLI."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import requests

from sandbox.process import SandboxProcess

from .conftest import LAG, TOKEN, Client, set_limits

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_objects_listing_and_count(hs: Client, control: Client) -> None:
    ids = [hs.create("contacts", {"email": f"c{i}@x.com", "city": "Rome"})["id"] for i in range(4)]
    hs.delete(f"/crm/v3/objects/contacts/{ids[0]}")
    listing = control.get("/_sandbox/objects/contacts").json()
    assert listing["total"] == 4
    first = listing["results"][0]
    assert first["archived"] is True and first["properties"]["city"] == "Rome"  # every property
    assert first["properties"]["hs_object_id"] == ids[0]
    paged = control.get("/_sandbox/objects/0-1", params={"offset": 1, "limit": 2}).json()
    assert [r["id"] for r in paged["results"]] == ids[1:3]
    assert control.get("/_sandbox/objects/contacts/count").json() == {"total": 4, "active": 3, "archived": 1}
    one = control.get(f"/_sandbox/objects/contacts/{ids[1]}").json()
    assert one["propertiesWithHistory"]["city"][0]["value"] == "Rome"


def test_seed_and_ui_edit(hs: Client, control: Client) -> None:
    seeded = control.post("/_sandbox/objects/contacts", {
        "properties": {"email": "Form@x.com", "firstname": "Web", "hs_marketable_status": "true"},
        "sourceType": "FORM", "sourceId": "form-1"})
    assert seeded.status_code == 201
    cid = seeded.json()["id"]
    history = hs.get(f"/crm/v3/objects/contacts/{cid}", params={"propertiesWithHistory": "firstname"}).json()
    assert history["propertiesWithHistory"]["firstname"][0]["sourceType"] == "FORM"
    assert hs.get(f"/crm/v3/objects/contacts/{cid}", params={"properties": "hs_marketable_status"}).json()[
        "properties"]["hs_marketable_status"] == "true"
    # Seeded records are searchable at once; UI edits go through the index lag.
    search = {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": "form@x.com"}]}],
              "properties": ["firstname"]}
    assert hs.post("/crm/v3/objects/contacts/search", search).json()["results"][0]["properties"]["firstname"] == "Web"
    edited = control.patch(f"/_sandbox/objects/contacts/{cid}", {"properties": {"firstname": "Edited"}})
    assert edited.status_code == 200
    assert edited.json()["propertiesWithHistory"]["firstname"][0]["sourceType"] == "CRM_UI"
    assert hs.post("/crm/v3/objects/contacts/search", search).json()["results"][0]["properties"]["firstname"] == "Web"
    time.sleep(LAG + 0.1)
    assert hs.post("/crm/v3/objects/contacts/search", search).json()["results"][0]["properties"][
        "firstname"] == "Edited"
    dup = control.post("/_sandbox/objects/contacts", {"properties": {"email": "form@X.com"}})
    assert dup.status_code == 409
    assert control.patch("/_sandbox/objects/contacts/999999", {"properties": {}}).status_code == 404
    bulk = control.post("/_sandbox/objects/orders", {"inputs": [{"properties": {"hs_order_name": "a"}},
                                                                {"properties": {"hs_order_name": "b"}}]})
    assert len(bulk.json()["results"]) == 2


def test_request_log_counts_by_endpoint(hs: Client, control: Client) -> None:
    hs.upsert_contacts(["a@x.com"])
    hs.post("/crm/v3/objects/0-1/batch/upsert", {"inputs": [{"id": "b@x.com", "idProperty": "email",
                                                             "properties": {}}]})
    hs.post("/crm/v3/objects/contact/batch/upsert", {"inputs": [{"id": "c", "idProperty": "email",
                                                                 "properties": {"email": "bad"}}]})
    hs.get("/crm/v3/objects/orders/12345")
    log = control.get("/_sandbox/requests").json()
    by_endpoint = log["by_endpoint"]
    assert by_endpoint["POST /crm/v3/objects/contacts/batch/upsert"] == {"200": 2, "400": 1}
    assert by_endpoint["GET /crm/v3/objects/orders/{objectId}"] == {"404": 1}
    assert log["total"] == 4
    assert log["entries"][0]["body"]["inputs"][0]["id"] == "a@x.com"


def test_reset_keeps_limits_and_clears_everything_else(hs: Client, control: Client, base: str) -> None:
    hs.post("/crm/v3/properties/orders", {"name": "ct_x", "label": "x", "type": "string", "fieldType": "text",
                                          "groupName": "orderinformation"})
    order = hs.create("orders", {"ct_x": "1"})["id"]
    contact = hs.create("contacts", {"email": "a@x.com"})["id"]
    hs.put(f"/crm/v4/objects/orders/{order}/associations/default/contacts/{contact}")
    hs.post("/events/v3/event-definitions", {"name": "e", "label": "E"})
    hs.post("/events/v3/send", {"eventName": "e", "objectId": contact, "uuid": "1"})
    set_limits(base, burst_limit=77)
    assert control.post("/_sandbox/reset").json() == {"ok": True}
    assert control.get("/_sandbox/objects/contacts/count").json()["total"] == 0
    assert control.get("/_sandbox/associations/orders/contacts").json()["total"] == 0
    assert control.get("/_sandbox/events").json()["total"] == 0
    assert control.get("/_sandbox/requests").json()["total"] == 0
    assert hs.get("/crm/v3/properties/orders/ct_x").status_code == 404
    assert hs.get("/crm/v3/properties/orders/hs_order_name").status_code == 200
    assert control.get("/_sandbox/limits").json()["settings"]["burst_limit"] == 77
    assert hs.get("/crm/v3/objects/contacts").headers["X-HubSpot-RateLimit-Max"] == "77"


def test_save_without_state_file_is_refused(control: Client) -> None:
    assert control.post("/_sandbox/save").status_code == 400


def test_persistence_round_trip(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    args = ["--state-file", str(state), "--search-lag", "0"]
    with SandboxProcess("sandbox.hubspot", args, log_path=tmp_path / "a.log") as first:
        hs = Client(first.url)
        hs.post("/crm/v3/properties/orders", {"name": "ct_order_id", "label": "id", "type": "string",
                                              "fieldType": "text", "groupName": "orderinformation",
                                              "hasUniqueValue": True})
        order = hs.create("orders", {"ct_order_id": "o-1"})["id"]
        a = hs.create("contacts", {"email": "a@x.com", "firstname": "v1"})["id"]
        hs.patch(f"/crm/v3/objects/contacts/{a}", {"properties": {"firstname": "v2"}})
        b = hs.create("contacts", {"email": "b@x.com"})["id"]
        merged = hs.post("/crm/v3/objects/contacts/merge", {"primaryObjectId": a, "objectIdToMerge": b}).json()["id"]
        hs.put(f"/crm/v4/objects/orders/{order}/associations/default/contacts/{merged}")
        hs.post("/events/v3/event-definitions", {"name": "e", "label": "E"})
        hs.post("/events/v3/send", {"eventName": "e", "objectId": merged, "uuid": "1"})
        saved = requests.post(f"{first.url}/_sandbox/save", timeout=5)
        assert saved.status_code == 200 and state.exists()
        late = hs.create("products", {"name": "saved on shutdown"})["id"]
    assert first.proc is not None and first.proc.returncode == 0  # clean exit on SIGTERM
    with SandboxProcess("sandbox.hubspot", args, log_path=tmp_path / "b.log") as second:
        hs = Client(second.url)
        assert hs.get(f"/crm/v3/objects/products/{late}").status_code == 200
        assert hs.get(f"/crm/v3/objects/contacts/{a}").json()["id"] == merged  # alias survived
        history = hs.get(f"/crm/v3/objects/contacts/{merged}", params={"propertiesWithHistory": "firstname"}).json()
        assert [h["value"] for h in history["propertiesWithHistory"]["firstname"]] == ["v2", "v1"]
        assert hs.post("/crm/v3/objects/orders", {"properties": {"ct_order_id": "o-1"}}).status_code == 409
        assert hs.post("/crm/v3/objects/contacts", {"properties": {"email": "B@x.com"}}).status_code == 409
        assert hs.get(f"/crm/v4/objects/contacts/{merged}/associations/orders").json()["results"][0][
            "toObjectId"] == int(order)
        assert hs.post("/events/v3/send", {"eventName": "e", "objectId": merged, "uuid": "1"}).status_code == 409
        new_id = hs.create("contacts", {"email": "c@x.com"})["id"]
        assert int(new_id) > int(merged)
        search = hs.post("/crm/v3/objects/orders/search", {}).json()
        assert search["total"] == 1


def test_cli_defaults(tmp_path: Path) -> None:
    with SandboxProcess("sandbox.hubspot", [], log_path=tmp_path / "d.log") as proc:
        response = requests.get(f"{proc.url}/crm/v3/objects/contacts", headers=AUTH, timeout=5)
        assert response.status_code == 200
        assert response.headers["X-HubSpot-RateLimit-Max"] == "190"
        assert response.headers["X-HubSpot-RateLimit-Daily"] == "1000000"
        settings = requests.get(f"{proc.url}/_sandbox/limits", timeout=5).json()["settings"]
        assert settings == {"burst_limit": 190, "daily_limit": 1_000_000, "search_limit": 5,
                            "associations_limit": 150, "search_lag": 2.0, "retry_after": False,
                            "daily_reset_utc_offset_hours": 0.0}
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=10) == 0


def test_cli_flags(tmp_path: Path) -> None:
    args = ["--token", "t-one", "--token", "t-two", "--portal-id", "99", "--burst-limit", "2",
            "--daily-limit", "50", "--search-limit", "7", "--associations-limit", "9", "--search-lag", "0.5",
            "--retry-after", "--error-rate", "0", "--locked-rate", "0", "--drop-rate", "0", "--slow-rate", "0",
            "--slow-seconds", "0.1", "--timeout-rate", "0", "--rate-limit-rate", "0", "--fault-seed", "1",
            "--log-capacity", "5"]
    with SandboxProcess("sandbox.hubspot", args, log_path=tmp_path / "f.log") as proc:
        url = f"{proc.url}/crm/v3/objects/contacts"
        assert requests.get(url, headers=AUTH, timeout=5).status_code == 401  # default token not accepted
        for token in ("t-one", "t-two"):
            assert requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code == 200
        one = {"Authorization": "Bearer t-one"}
        requests.get(url, headers=one, timeout=5)
        refused = requests.get(url, headers=one, timeout=5)
        assert refused.status_code == 429
        assert refused.json()["groupName"].endswith(":99")
        assert "Retry-After" in refused.headers
        settings = requests.get(f"{proc.url}/_sandbox/limits", timeout=5).json()["settings"]
        assert settings["daily_limit"] == 50 and settings["search_limit"] == 7
        assert settings["associations_limit"] == 9 and settings["search_lag"] == 0.5
        faults = requests.get(f"{proc.url}/_sandbox/faults", timeout=5).json()["config"]
        assert faults["slow_seconds"] == 0.1 and faults["seed"] == 1
        for _ in range(8):
            requests.get(url, headers={"Authorization": "Bearer t-two"}, timeout=5)
        assert len(requests.get(f"{proc.url}/_sandbox/requests", timeout=5).json()["entries"]) == 5


def test_cli_fault_flags(tmp_path: Path) -> None:
    with SandboxProcess("sandbox.hubspot", ["--locked-rate", "1"], log_path=tmp_path / "l.log") as proc:
        response = requests.get(f"{proc.url}/crm/v3/objects/contacts", headers=AUTH, timeout=5)
        assert response.status_code == 423
