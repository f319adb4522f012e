"""Custom events (definitions, sends, uuid de-duplication) and communication preferences v4."""

from __future__ import annotations

import requests

from .conftest import Client

DEF = {"label": "Order placed", "name": "order_placed", "primaryObject": "CONTACT",
       "propertyDefinitions": [{"name": "order_number", "label": "Order number", "type": "string"}]}


def test_event_definitions(hs: Client) -> None:
    created = hs.post("/events/v3/event-definitions", DEF)
    assert created.status_code == 201
    assert created.json()["fullyQualifiedName"] == "pe4242_order_placed"
    assert hs.post("/events/v3/event-definitions", DEF).status_code == 409
    listed = hs.get("/events/v3/event-definitions").json()
    assert [d["name"] for d in listed["results"]] == ["order_placed"]
    assert hs.get("/events/v3/event-definitions/order_placed").status_code == 200
    bad = hs.post("/events/v3/event-definitions", {**DEF, "name": "x", "primaryObject": "ORDER"})
    assert bad.status_code == 400
    assert hs.post("/events/v3/event-definitions", {"name": "Bad Name", "label": "x"}).status_code == 400


def test_send_and_uuid_dedupe(hs: Client, base: str) -> None:
    hs.post("/events/v3/event-definitions", DEF)
    event = {"eventName": "pe4242_order_placed", "email": "a@x.com", "occurredAt": "2024-05-01T10:00:00Z",
             "properties": {"order_number": "1001"}, "uuid": "7d3f1c58-0c6e-4b9e-9d43-3f4d1d0f0001"}
    assert hs.post("/events/v3/send", event).status_code == 204
    duplicate = hs.post("/events/v3/send", {**event, "properties": {"order_number": "changed"}})
    assert duplicate.status_code == 409
    assert duplicate.json()["category"] == "CONFLICT" and "already" in duplicate.json()["message"]
    unknown = hs.post("/events/v3/send", {**event, "eventName": "pe4242_nope", "uuid": "x"})
    assert unknown.status_code == 400
    assert hs.post("/events/v3/send", {**event, "uuid": "u2", "properties": {"bogus": 1}}).status_code == 400
    assert hs.post("/events/v3/send", {"eventName": "pe4242_order_placed", "uuid": "u3"}).status_code == 400
    sent = requests.get(f"{base}/_sandbox/events", timeout=5).json()
    assert sent["total"] == 1 and sent["duplicatesRejected"] == 1
    assert sent["results"][0]["properties"] == {"order_number": "1001"}  # the first one won
    assert sent["results"][0]["occurredAt"] == "2024-05-01T10:00:00.000Z"


def test_send_batch(hs: Client, base: str) -> None:
    hs.post("/events/v3/event-definitions", DEF)
    inputs = [{"eventName": "order_placed", "objectId": "1", "uuid": f"u{i}"} for i in range(3)]
    assert hs.post("/events/v3/send/batch", {"inputs": inputs}).status_code == 204
    again = hs.post("/events/v3/send/batch", {"inputs": [*inputs[:1], {**inputs[0], "uuid": "u9"}]})
    assert again.status_code == 409 and again.json()["context"]["uuid"] == ["u0"]
    assert requests.get(f"{base}/_sandbox/events", timeout=5).json()["total"] == 4
    too_many = hs.post("/events/v3/send/batch", {"inputs": [inputs[0]] * 501})
    assert too_many.status_code == 400
    invalid = hs.post("/events/v3/send/batch", {"inputs": [{**inputs[0], "uuid": "u10"},
                                                           {"eventName": "nope", "objectId": "1"}]})
    assert invalid.status_code == 400
    assert requests.get(f"{base}/_sandbox/events", timeout=5).json()["total"] == 4


def test_consent(hs: Client, base: str) -> None:
    definitions = hs.get("/communication-preferences/v4/definitions").json()["results"]
    assert {d["name"] for d in definitions} >= {"Newsletter", "Product updates"}
    newsletter = next(d["id"] for d in definitions if d["name"] == "Newsletter")
    path = "/communication-preferences/v4/statuses/Anna@x.com"
    initial = hs.get(path, params={"channel": "EMAIL"}).json()
    assert initial["status"] == "COMPLETE"
    assert {r["status"] for r in initial["results"]} == {"NOT_SPECIFIED"}
    body = {"subscriptionId": newsletter, "statusState": "SUBSCRIBED", "legalBasis": "CONSENT_WITH_NOTICE",
            "legalBasisExplanation": "Ticked the box at checkout", "channel": "EMAIL"}
    response = hs.post(path, body)
    assert response.status_code == 200
    assert response.json()["status"] == "SUBSCRIBED" and response.json()["timestamp"]
    statuses = {r["subscriptionId"]: r for r in hs.get(path, params={"channel": "EMAIL"}).json()["results"]}
    assert statuses[int(newsletter)]["status"] == "SUBSCRIBED"
    assert statuses[int(newsletter)]["legalBasis"] == "CONSENT_WITH_NOTICE"
    for bad in ({**body, "legalBasis": "BECAUSE"}, {**body, "statusState": "MAYBE"},
                {**body, "subscriptionId": "999"}, {**body, "channel": "SMS"}):
        assert hs.post(path, bad).status_code == 400
    for basis in ("LEGITIMATE_INTEREST_CLIENT", "LEGITIMATE_INTEREST_OTHER", "LEGITIMATE_INTEREST_PQL",
                  "NON_GDPR", "PERFORMANCE_OF_CONTRACT", "PROCESS_AND_STORE"):
        assert hs.post(path, {**body, "legalBasis": basis}).status_code == 200
    unsub = hs.post(f"{path}/unsubscribe-all", params={"channel": "EMAIL"})
    assert unsub.status_code == 200
    assert {r["status"] for r in unsub.json()["results"]} == {"UNSUBSCRIBED"}
    resub = hs.post(path, {**body, "statusState": "SUBSCRIBED"})
    assert resub.status_code == 200  # v4 can re-subscribe
    inspected = requests.get(f"{base}/_sandbox/consent", timeout=5).json()
    assert inspected["statuses"]["anna@x.com"][newsletter]["status"] == "SUBSCRIBED"
    assert len(inspected["history"]) == 1 + 6 + len(definitions) + 1
    assert all(h["timestamp"] for h in inspected["history"])
