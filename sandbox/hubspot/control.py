"""The `/_sandbox/` inspection and control API (not a HubSpot path): see records with every property,
associations, sent events and consent; change limits at run time; seed records and simulate a
person editing one in HubSpot's UI; reset and save state. Never rate-limited, faulted or logged."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.common import CONTROL_PREFIX, FaultInjector, RequestLog

from .errors import ApiError
from .objecttypes import BY_NAME, resolve
from .state import Sandbox
from .values import iso


def _full(sandbox: Sandbox, type_name: str, record_id: str, with_history: bool) -> dict[str, Any]:
    ot = BY_NAME[type_name]
    record = sandbox.crm.store(ot).records[record_id]
    out: dict[str, Any] = {"id": record.id, "properties": dict(record.props), "createdAt": iso(record.created_ms),
                           "updatedAt": iso(record.updated_ms), "archived": record.archived}
    if with_history:
        out["propertiesWithHistory"] = {n: sandbox.crm.history(ot, record, n) for n in record.history}
    return out


def sandbox_routes(sandbox: Sandbox, log_getter: Callable[[], RequestLog],
                   injector_getter: Callable[[], FaultInjector]) -> list[Route]:
    def guarded(fn: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                response: Response = await fn(request)
                return response
            except ApiError as exc:
                return exc.response()
            except (ValueError, TypeError, KeyError) as exc:
                return JSONResponse({"message": str(exc)}, status_code=400)
        return endpoint

    async def body(request: Request) -> Any:
        raw = await request.body()
        return json.loads(raw) if raw else {}

    async def list_objects(request: Request) -> Response:
        ot = resolve(request.path_params["objectType"])
        store = sandbox.crm.store(ot)
        offset = int(request.query_params.get("offset", "0"))
        limit = request.query_params.get("limit")
        ids = list(store.records)
        picked = ids[offset:offset + int(limit)] if limit else ids[offset:]
        history = request.query_params.get("history", "false") == "true"
        return JSONResponse({"total": len(ids), "offset": offset,
                             "results": [_full(sandbox, ot.name, i, history) for i in picked],
                             "aliases": store.aliases})

    async def count(request: Request) -> Response:
        store = sandbox.crm.store(resolve(request.path_params["objectType"]))
        archived = sum(1 for r in store.records.values() if r.archived)
        return JSONResponse({"total": len(store.records), "active": len(store.records) - archived,
                             "archived": archived})

    async def get_object(request: Request) -> Response:
        ot = resolve(request.path_params["objectType"])
        record = sandbox.crm.store(ot).resolve(request.path_params["objectId"])
        if record is None:
            return JSONResponse({"message": "not found"}, status_code=404)
        return JSONResponse(_full(sandbox, ot.name, record.id, True))

    async def seed(request: Request) -> Response:
        """Create records directly (no auth, no limits): `{properties}` (answers the record) or
        `{inputs:[{properties}]}` (answers `{results}`).
        `sourceType` (default "CRM_UI"; e.g. "FORM") goes into property history; `indexed` (default
        true) makes them searchable at once."""
        ot = resolve(request.path_params["objectType"])
        data = await body(request)
        inputs = data.get("inputs", [data])
        source = (str(data.get("sourceType", "CRM_UI")), str(data.get("sourceId", "userId:1")))
        indexed = bool(data.get("indexed", True))
        created = [sandbox.crm.seed(ot, item.get("properties"), source, indexed) for item in inputs]
        results = [_full(sandbox, ot.name, r.id, False) for r in created]
        # One record in, one record out; a batch in, {results} out.
        return JSONResponse(results[0] if "inputs" not in data else {"results": results}, status_code=201)

    async def edit(request: Request) -> Response:
        """Simulate a person editing the record in HubSpot: history entries get sourceType CRM_UI."""
        ot = resolve(request.path_params["objectType"])
        data = await body(request)
        source = (str(data.get("sourceType", "CRM_UI")), str(data.get("sourceId", "userId:1")))
        record = sandbox.crm.edit(ot, request.path_params["objectId"], data.get("properties"), source)
        return JSONResponse(_full(sandbox, ot.name, record.id, True))

    async def associations(request: Request) -> Response:
        src, dst = resolve(request.path_params["fromType"]), resolve(request.path_params["toType"])
        pairs = sandbox.associations.pairs(src, dst)
        return JSONResponse({"total": len(pairs), "results": pairs})

    async def events(request: Request) -> Response:
        ev = sandbox.events
        return JSONResponse({"total": len(ev.sent), "results": ev.sent, "definitions": list(ev.definitions.values()),
                             "duplicatesRejected": ev.duplicates_rejected})

    async def consent(request: Request) -> Response:
        return JSONResponse({"statuses": sandbox.consent.statuses, "history": sandbox.consent.history})

    def limits_view() -> dict[str, Any]:
        from dataclasses import asdict
        return {"settings": asdict(sandbox.limits), "usage": sandbox.limiter.usage()}

    async def get_limits(request: Request) -> Response:
        return JSONResponse(limits_view())

    async def set_limits(request: Request) -> Response:
        """Change settings (`burst_limit`, `daily_limit`, `search_limit`, `associations_limit`,
        `search_lag`, `retry_after`, `daily_reset_utc_offset_hours`); also `daily_used: N` to fake
        usage and `reset_usage: true` to empty every bucket."""
        data = dict(await body(request))
        reset_usage = bool(data.pop("reset_usage", False))
        daily_used = data.pop("daily_used", None)
        sandbox.limits.update(data)
        sandbox.limiter.settings_changed()
        if reset_usage:
            sandbox.limiter.reset_usage()
        if daily_used is not None:
            sandbox.limiter.daily_used = int(daily_used)
        return JSONResponse(limits_view())

    async def reset(request: Request) -> Response:
        sandbox.reset()
        log_getter().reset()
        injector_getter().injected.clear()
        return JSONResponse({"ok": True})

    async def save(request: Request) -> Response:
        data = await body(request)
        from pathlib import Path
        path = Path(data["path"]) if data.get("path") else None
        saved = sandbox.save(path)
        if saved is None:
            return JSONResponse({"message": "no --state-file configured and no path given"}, status_code=400)
        return JSONResponse({"ok": True, "path": str(saved)})

    p = CONTROL_PREFIX
    return [
        Route(f"{p}/objects/{{objectType}}", guarded(list_objects), methods=["GET"]),
        Route(f"{p}/objects/{{objectType}}", guarded(seed), methods=["POST"]),
        Route(f"{p}/objects/{{objectType}}/count", guarded(count), methods=["GET"]),
        Route(f"{p}/objects/{{objectType}}/{{objectId}}", guarded(get_object), methods=["GET"]),
        Route(f"{p}/objects/{{objectType}}/{{objectId}}", guarded(edit), methods=["PATCH"]),
        Route(f"{p}/associations/{{fromType}}/{{toType}}", guarded(associations), methods=["GET"]),
        Route(f"{p}/events", guarded(events), methods=["GET"]),
        Route(f"{p}/consent", guarded(consent), methods=["GET"]),
        Route(f"{p}/limits", guarded(get_limits), methods=["GET"]),
        Route(f"{p}/limits", guarded(set_limits), methods=["POST"]),
        Route(f"{p}/reset", guarded(reset), methods=["POST"]),
        Route(f"{p}/save", guarded(save), methods=["POST"]),
    ]
