"""HubSpot API routes: auth, rate limiting and rate-limit headers around every handler, then the
objects, properties, pipelines, associations, events and consent endpoints the sync uses."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.common import ASGIApp, FastJSONResponse, FaultInjector, RequestLog, control_routes, tag_endpoint

from .associations import check_type, default_type, type_json, types_for
from .control import sandbox_routes
from .crm import MAX_BATCH, Crm
from .errors import ApiError, error_dict, make_error_body, not_found, rate_limit_body, unauthorized, validation
from .objecttypes import ObjectType, lookup, resolve
from .search import search
from .state import Sandbox
from .values import as_int, iso, now_ms

log = logging.getLogger("sandbox.hubspot")
Handler = Callable[[Request, str], Awaitable[Response]]
ASSOC_CREATE_MAX, ASSOC_READ_MAX, ASSOC_PAGE_MAX = 2_000, 1_000, 500
_TYPE_PARAMS = ("objectType", "fromType", "toType")


async def read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return orjson.loads(raw)
    except ValueError as exc:
        raise validation(f"Invalid input JSON on line {getattr(exc, 'lineno', 1)}: {exc}") from None


def _list_param(request: Request, name: str) -> list[str] | None:
    values = [v for raw in request.query_params.getlist(name) for v in raw.split(",") if v]
    return values or None


def _query_int(request: Request, name: str, default: int) -> int:
    try:
        return as_int(request.query_params.get(name) or default, name)
    except ValueError as exc:
        raise validation(str(exc)) from None


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


def batch_body(results: list[dict[str, Any]], errors: list[dict[str, Any]], started: int) -> dict[str, Any]:
    stamp = iso(now_ms())
    body: dict[str, Any] = {"status": "COMPLETE", "results": results, "requestedAt": iso(started),
                            "startedAt": iso(started), "completedAt": stamp}
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = errors
    return body


class HubSpotApi:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox
        self.crm: Crm = sandbox.crm

    # ---- plumbing --------------------------------------------------------------------------------

    def route(self, path: str, handler: Handler, methods: list[str], bucket: str = "general") -> Route:
        async def endpoint(request: Request) -> Response:
            tag = path
            for param in _TYPE_PARAMS:
                segment = request.path_params.get(param)
                found = lookup(segment) if segment else None
                if found is not None:
                    tag = tag.replace("{" + param + "}", found.name)
            tag_endpoint(request, tag)
            token = self._token(request)
            if token is None:
                return FastJSONResponse(unauthorized(), status_code=401)
            verdict = self.sb.limiter.check(token, bucket)
            if not verdict.allowed:
                assert verdict.policy is not None
                body = rate_limit_body(verdict.policy, self.sb.config.portal_id, verdict.group)
                return FastJSONResponse(body, status_code=429, headers=verdict.headers)
            try:
                response = await handler(request, token)
            except ApiError as exc:
                response = exc.response()
            except Exception:  # a sandbox bug: answer like HubSpot's 500 and keep serving
                log.exception("unhandled error in %s", path)
                response = FastJSONResponse(error_dict("INTERNAL_ERROR", "internal error"), status_code=500)
            response.headers.update(verdict.headers)
            return response

        return Route(path, endpoint, methods=methods)

    def _token(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token.strip() not in self.sb.config.tokens:
            return None
        return token.strip()

    def source(self, token: str) -> tuple[str, str]:
        return "INTEGRATION", self.sb.app_id(token)

    def routes(self) -> list[Route]:
        r = self.route
        o = "/crm/v3/objects/{objectType}"
        p = "/crm/v3/properties/{objectType}"
        a = "/crm/v4/associations/{fromType}/{toType}"
        return [
            r(f"{o}/batch/create", self.batch_create, ["POST"]),
            r(f"{o}/batch/read", self.batch_read, ["POST"]),
            r(f"{o}/batch/update", self.batch_update, ["POST"]),
            r(f"{o}/batch/upsert", self.batch_upsert, ["POST"]),
            r(f"{o}/batch/archive", self.batch_archive, ["POST"]),
            r(f"{o}/search", self.search, ["POST"], bucket="search"),
            r(f"{o}/merge", self.merge, ["POST"]),
            r(o, self.create, ["POST"]),
            r(o, self.list_objects, ["GET"]),
            r(f"{o}/{{objectId}}", self.get_object, ["GET"]),
            r(f"{o}/{{objectId}}", self.update_object, ["PATCH"]),
            r(f"{o}/{{objectId}}", self.archive_object, ["DELETE"]),
            r(f"{p}/groups", self.list_groups, ["GET"]),
            r(f"{p}/groups", self.create_group, ["POST"]),
            r(f"{p}/groups/{{groupName}}", self.get_group, ["GET"]),
            r(f"{p}/batch/create", self.batch_create_properties, ["POST"]),
            r(f"{p}/batch/read", self.batch_read_properties, ["POST"]),
            r(p, self.list_properties, ["GET"]),
            r(p, self.create_property, ["POST"]),
            r(f"{p}/{{propertyName}}", self.get_property, ["GET"]),
            r(f"{p}/{{propertyName}}", self.update_property, ["PATCH"]),
            r(f"{p}/{{propertyName}}", self.archive_property, ["DELETE"]),
            r("/crm/v3/pipelines/{objectType}", self.list_pipelines, ["GET"]),
            r("/crm/v3/pipelines/{objectType}", self.create_pipeline, ["POST"]),
            r("/crm/v3/pipelines/{objectType}/{pipelineId}", self.get_pipeline, ["GET"]),
            r(f"{a}/batch/create", self.assoc_create, ["POST"], bucket="associations"),
            r(f"{a}/batch/associate/default", self.assoc_default, ["POST"], bucket="associations"),
            r(f"{a}/batch/read", self.assoc_read, ["POST"], bucket="associations"),
            r(f"{a}/batch/archive", self.assoc_archive, ["POST"], bucket="associations"),
            r(f"{a}/labels", self.assoc_labels, ["GET"], bucket="associations"),
            r("/crm/v4/objects/{fromType}/{objectId}/associations/{toType}", self.assoc_list, ["GET"],
              bucket="associations"),
            r("/crm/v4/objects/{fromType}/{objectId}/associations/default/{toType}/{toObjectId}",
              self.assoc_put_default, ["PUT"], bucket="associations"),
            r("/events/v3/event-definitions", self.list_event_definitions, ["GET"], bucket="exempt"),
            r("/events/v3/event-definitions", self.create_event_definition, ["POST"], bucket="exempt"),
            r("/events/v3/event-definitions/{eventName}", self.get_event_definition, ["GET"], bucket="exempt"),
            r("/events/v3/send", self.send_event, ["POST"], bucket="exempt"),
            r("/events/v3/send/batch", self.send_event_batch, ["POST"], bucket="exempt"),
            r("/communication-preferences/v4/definitions", self.consent_definitions, ["GET"]),
            r("/communication-preferences/v4/statuses/{email}", self.consent_get, ["GET"]),
            r("/communication-preferences/v4/statuses/{email}", self.consent_set, ["POST"]),
            r("/communication-preferences/v4/statuses/{email}/unsubscribe-all", self.consent_unsubscribe_all,
              ["POST"]),
            r("/account-info/v3/api-usage/daily/private-apps", self.api_usage, ["GET"], bucket="exempt"),
        ]

    @staticmethod
    def ot(request: Request, param: str = "objectType") -> ObjectType:
        return resolve(request.path_params[param])

    # ---- objects ---------------------------------------------------------------------------------

    async def _batch_write(self, request: Request, token: str, kind: str, ok_status: int) -> Response:
        ot = self.ot(request)
        started = now_ms()
        plans, errors = self.crm.batch_write(ot, kind, await read_json(request), self.source(token))
        results = []
        for plan in plans:
            assert plan.record is not None
            result = self.crm.result(ot, plan.record, extra=plan.written)
            if kind == "upsert":
                result["new"] = plan.new
            if plan.trace_id is not None:
                result["objectWriteTraceId"] = plan.trace_id
            results.append(result)
        return FastJSONResponse(batch_body(results, errors, started), status_code=207 if errors else ok_status)

    async def batch_create(self, request: Request, token: str) -> Response:
        return await self._batch_write(request, token, "create", 201)

    async def batch_update(self, request: Request, token: str) -> Response:
        return await self._batch_write(request, token, "update", 200)

    async def batch_upsert(self, request: Request, token: str) -> Response:
        return await self._batch_write(request, token, "upsert", 200)

    async def batch_read(self, request: Request, token: str) -> Response:
        ot = self.ot(request)
        started = now_ms()
        results, missing = self.crm.batch_read(ot, await read_json(request), _flag(request, "archived"))
        errors = []
        if missing:
            errors.append({"status": "error", "category": "OBJECT_NOT_FOUND",
                           "message": f"Could not get some {ot.upper} objects, they may be deleted or not exist. "
                                      "Check that ids are valid.", "context": {"ids": missing}})
        return FastJSONResponse(batch_body(results, errors, started), status_code=207 if errors else 200)

    async def batch_archive(self, request: Request, token: str) -> Response:
        ot = self.ot(request)
        body = await read_json(request)
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list):
            raise validation("inputs must be a list of {id} objects")
        if len(inputs) > MAX_BATCH:
            raise validation(f"Batch input size {len(inputs)} exceeds the limit of {MAX_BATCH}")
        for item in inputs:
            self.crm.archive(ot, str((item or {}).get("id", "")))
        return Response(status_code=204)

    async def search(self, request: Request, token: str) -> Response:
        raw = await request.body()
        body = await read_json(request)
        return FastJSONResponse(search(self.crm, self.ot(request), body, len(raw)))

    async def merge(self, request: Request, token: str) -> Response:
        ot = self.ot(request)
        if ot.name not in ("contacts", "companies"):
            raise validation(f"Merging is not supported for {ot.name}")
        body = await read_json(request)
        primary, other = body.get("primaryObjectId"), body.get("objectIdToMerge")
        if not primary or not other:
            raise validation("primaryObjectId and objectIdToMerge are required")
        record = self.crm.merge(ot, str(primary), str(other), self.source(token))
        return FastJSONResponse(self.crm.result(ot, record, extra=["hs_merged_object_ids"]))

    async def create(self, request: Request, token: str) -> Response:
        ot = self.ot(request)
        body = await read_json(request)
        if not isinstance(body, dict):
            raise validation("Body must be an object")
        item = {k: v for k, v in body.items() if k != "objectWriteTraceId"}
        plans, _ = self.crm.batch_write(ot, "create", {"inputs": [item]}, self.source(token))
        record = plans[0].record
        assert record is not None
        return FastJSONResponse(self.crm.result(ot, record, extra=plans[0].written), status_code=201)

    async def list_objects(self, request: Request, token: str) -> Response:
        ot = self.ot(request)
        limit = _query_int(request, "limit", 10)
        if not 0 < limit <= 100:
            raise validation("limit must be between 1 and 100")
        after = _query_int(request, "after", 0)
        archived = _flag(request, "archived")
        props, history = _list_param(request, "properties"), _list_param(request, "propertiesWithHistory")
        page: list[Any] = []
        more = False
        for record in self.crm.store(ot).records.values():
            if record.archived != archived or int(record.id) <= after:
                continue
            if len(page) == limit:
                more = True
                break
            page.append(record)
        body: dict[str, Any] = {"results": [self.crm.result(ot, rec, props, history) for rec in page]}
        if more:
            body["paging"] = {"next": {"after": page[-1].id}}
        return FastJSONResponse(body)

    async def get_object(self, request: Request, token: str) -> Response:
        ot = self.ot(request)
        key = request.path_params["objectId"]
        id_property = self.crm.check_id_property(ot, request.query_params.get("idProperty"), "read")
        record = self.crm.find(ot, key, id_property, _flag(request, "archived"))
        if record is None:
            raise not_found("Object not found.  objectId are usually numeric.", {"id": [key]})
        return FastJSONResponse(self.crm.result(ot, record, _list_param(request, "properties"),
                                            _list_param(request, "propertiesWithHistory")))

    async def update_object(self, request: Request, token: str) -> Response:
        ot = self.ot(request)
        body = await read_json(request)
        if not isinstance(body, dict):
            raise validation("Body must be an object")
        record = self.crm.update_one(ot, request.path_params["objectId"], request.query_params.get("idProperty"),
                                     body.get("properties"), self.source(token))
        return FastJSONResponse(self.crm.result(ot, record, extra=list(body.get("properties") or {})))

    async def archive_object(self, request: Request, token: str) -> Response:
        self.crm.archive(self.ot(request), request.path_params["objectId"])
        return Response(status_code=204)

    # ---- properties ------------------------------------------------------------------------------

    async def list_properties(self, request: Request, token: str) -> Response:
        ot = self.ot(request)
        return FastJSONResponse({"results": list(self.sb.registry.props[ot.name].values())})

    async def create_property(self, request: Request, token: str) -> Response:
        ot = self.ot(request)
        prop = self.sb.registry.create(ot, await read_json(request))
        if prop["hasUniqueValue"]:
            self.crm.store(ot).ensure_index(prop["name"])
        return FastJSONResponse(prop, status_code=201)

    async def get_property(self, request: Request, token: str) -> Response:
        return FastJSONResponse(self.sb.registry.require(self.ot(request), request.path_params["propertyName"]))

    async def update_property(self, request: Request, token: str) -> Response:
        ot = self.ot(request)
        body = await read_json(request)
        if not isinstance(body, dict):
            raise validation("Body must be an object")
        return FastJSONResponse(self.sb.registry.update(ot, request.path_params["propertyName"], body))

    async def archive_property(self, request: Request, token: str) -> Response:
        ot = self.ot(request)
        name = request.path_params["propertyName"]
        self.sb.registry.archive(ot, name)
        self.crm.store(ot).unique.pop(name, None)
        return Response(status_code=204)

    async def batch_create_properties(self, request: Request, token: str) -> Response:
        ot = self.ot(request)
        started = now_ms()
        body = await read_json(request)
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list):
            raise validation("inputs must be a list of property definitions")
        results, errors, first = [], [], None
        for item in inputs:
            try:
                prop = self.sb.registry.create(ot, item)
            except ApiError as exc:
                first = first or exc
                errors.append(exc.batch_error())
                continue
            if prop["hasUniqueValue"]:
                self.crm.store(ot).ensure_index(prop["name"])
            results.append(prop)
        if first is not None and not results:
            raise first
        return FastJSONResponse(batch_body(results, errors, started), status_code=207 if errors else 201)

    async def batch_read_properties(self, request: Request, token: str) -> Response:
        ot = self.ot(request)
        started = now_ms()
        body = await read_json(request)
        names = [str((i or {}).get("name")) for i in (body.get("inputs") or [])]
        results = [self.sb.registry.props[ot.name][n] for n in names if n in self.sb.registry.props[ot.name]]
        missing = [n for n in names if n not in self.sb.registry.props[ot.name]]
        errors = [{"status": "error", "category": "OBJECT_NOT_FOUND", "message": f"Property {n} does not exist",
                   "context": {"propertyName": [n]}} for n in missing]
        return FastJSONResponse(batch_body(results, errors, started), status_code=207 if errors else 200)

    async def list_groups(self, request: Request, token: str) -> Response:
        return FastJSONResponse({"results": list(self.sb.registry.groups[self.ot(request).name].values())})

    async def create_group(self, request: Request, token: str) -> Response:
        return FastJSONResponse(self.sb.registry.create_group(self.ot(request), await read_json(request)),
                            status_code=201)

    async def get_group(self, request: Request, token: str) -> Response:
        return FastJSONResponse(self.sb.registry.get_group(self.ot(request), request.path_params["groupName"]))

    # ---- pipelines -------------------------------------------------------------------------------

    async def list_pipelines(self, request: Request, token: str) -> Response:
        return FastJSONResponse({"results": self.sb.pipelines.all(self.ot(request))})

    async def create_pipeline(self, request: Request, token: str) -> Response:
        return FastJSONResponse(self.sb.pipelines.create(self.ot(request), await read_json(request)), status_code=201)

    async def get_pipeline(self, request: Request, token: str) -> Response:
        return FastJSONResponse(self.sb.pipelines.get(self.ot(request), request.path_params["pipelineId"]))

    # ---- associations v4 -------------------------------------------------------------------------

    def _pair(self, request: Request) -> tuple[ObjectType, ObjectType]:
        return self.ot(request, "fromType"), self.ot(request, "toType")

    @staticmethod
    def _inputs(body: Any, maximum: int) -> list[dict[str, Any]]:
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
            raise validation("inputs must be a list of objects")
        if len(inputs) > maximum:
            raise validation(f"Batch input size {len(inputs)} exceeds the limit of {maximum}")
        return inputs

    def _existing(self, ot: ObjectType, key: Any, side: str) -> str:
        record = self.crm.find(ot, str(key), None)
        if record is None:
            raise ApiError(400, "VALIDATION_ERROR", f"No {ot.singular} with ID {key} exists",
                           {f"{side}ObjectId": [str(key)]}, sub_category="crm.associations.INVALID_OBJECT_IDS")
        return record.id

    async def _associate(self, request: Request, default: bool) -> Response:
        src, dst = self._pair(request)
        started = now_ms()
        inputs = self._inputs(await read_json(request), ASSOC_CREATE_MAX)
        planned = []
        for item in inputs:  # type ids are validated for the whole request first: a bad one fails it
            if default:
                planned.append([default_type(src, dst)])
            else:
                types = item.get("types")
                if not isinstance(types, list) or not types:
                    raise validation("Every input needs types[]")
                planned.append([check_type(src, dst, t.get("associationTypeId"), t.get("associationCategory"))
                                for t in types])
        results: list[dict[str, Any]] = []
        errors: list[ApiError] = []
        for item, types in zip(inputs, planned, strict=True):
            try:
                src_id = self._existing(src, (item.get("from") or {}).get("id"), "from")
                dst_id = self._existing(dst, (item.get("to") or {}).get("id"), "to")
                for at in types:
                    self.sb.associations.add(src, src_id, dst, dst_id, at)
            except ApiError as exc:
                errors.append(exc)
                continue
            if default:
                results.append({"from": {"id": src_id}, "to": {"id": dst_id},
                                "associationSpec": {"associationCategory": "HUBSPOT_DEFINED",
                                                    "associationTypeId": types[0].type_id}})
            else:
                results.append({"fromObjectTypeId": src.type_id, "fromObjectId": int(src_id),
                                "toObjectTypeId": dst.type_id, "toObjectId": int(dst_id),
                                "labels": [at.label for at in types if at.label]})
        if errors and not results:
            raise errors[0]
        body = batch_body(results, [e.batch_error() for e in errors], started)
        return FastJSONResponse(body, status_code=207 if errors else (200 if default else 201))

    async def assoc_create(self, request: Request, token: str) -> Response:
        return await self._associate(request, default=False)

    async def assoc_default(self, request: Request, token: str) -> Response:
        return await self._associate(request, default=True)

    def _targets(self, src: ObjectType, src_id: str, dst: ObjectType) -> list[dict[str, Any]]:
        by_id = {at.type_id: at for at in types_for(src, dst)}
        return [{"toObjectId": int(to_id), "associationTypes": [type_json(by_id[t]) for t in sorted(ids) if t in by_id]}
                for to_id, ids in sorted(self.sb.associations.targets(src, src_id, dst).items(),
                                         key=lambda kv: int(kv[0]))]

    async def assoc_read(self, request: Request, token: str) -> Response:
        src, dst = self._pair(request)
        started = now_ms()
        inputs = self._inputs(await read_json(request), ASSOC_READ_MAX)
        results, missing = [], []
        for item in inputs:
            key = str(item.get("id", ""))
            record = self.crm.find(src, key, None)
            if record is None:
                missing.append(key)
                continue
            results.append({"from": {"id": record.id}, "to": self._targets(src, record.id, dst)})
        errors = [{"status": "error", "category": "OBJECT_NOT_FOUND",
                   "message": f"No {src.singular} with ID {key} exists", "context": {"fromObjectId": [key]}}
                  for key in missing]
        return FastJSONResponse(batch_body(results, errors, started), status_code=207 if errors else 200)

    async def assoc_archive(self, request: Request, token: str) -> Response:
        src, dst = self._pair(request)
        for item in self._inputs(await read_json(request), ASSOC_CREATE_MAX):
            src_id = str((item.get("from") or {}).get("id", ""))
            record = self.crm.find(src, src_id, None)
            for target in item.get("to") or []:
                dst_rec = self.crm.find(dst, str((target or {}).get("id", "")), None)
                if record is not None and dst_rec is not None:
                    self.sb.associations.remove(src, record.id, dst, dst_rec.id)
        return Response(status_code=204)

    async def assoc_labels(self, request: Request, token: str) -> Response:
        src, dst = self._pair(request)
        return FastJSONResponse({"results": [type_json(at) for at in types_for(src, dst)]})

    async def assoc_list(self, request: Request, token: str) -> Response:
        src, dst = self._pair(request)
        limit = _query_int(request, "limit", ASSOC_PAGE_MAX)
        if not 0 < limit <= ASSOC_PAGE_MAX:
            raise validation(f"limit must be between 1 and {ASSOC_PAGE_MAX}")
        after = _query_int(request, "after", 0)
        record = self.crm.find(src, request.path_params["objectId"], None)
        if record is None:
            raise not_found(f"No {src.singular} with ID {request.path_params['objectId']} exists")
        targets = self._targets(src, record.id, dst)
        page = targets[after:after + limit]
        body: dict[str, Any] = {"results": page}
        if after + limit < len(targets):
            body["paging"] = {"next": {"after": str(after + limit)}}
        return FastJSONResponse(body)

    async def assoc_put_default(self, request: Request, token: str) -> Response:
        src, dst = self._pair(request)
        started = now_ms()
        src_id = self._existing(src, request.path_params["objectId"], "from")
        dst_id = self._existing(dst, request.path_params["toObjectId"], "to")
        at = default_type(src, dst)
        self.sb.associations.add(src, src_id, dst, dst_id, at)
        spec = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": at.type_id}
        return FastJSONResponse(batch_body([{"from": {"id": src_id}, "to": {"id": dst_id}, "associationSpec": spec}],
                                       [], started))

    # ---- events ----------------------------------------------------------------------------------

    async def list_event_definitions(self, request: Request, token: str) -> Response:
        defs = list(self.sb.events.definitions.values())
        return FastJSONResponse({"total": len(defs), "results": defs})

    async def create_event_definition(self, request: Request, token: str) -> Response:
        return FastJSONResponse(self.sb.events.define(await read_json(request)), status_code=201)

    async def get_event_definition(self, request: Request, token: str) -> Response:
        name = request.path_params["eventName"]
        events = self.sb.events
        found = events.definitions.get(name) or events.definitions.get(f"pe{self.sb.config.portal_id}_{name}")
        if found is None:
            raise not_found(f"Event definition {name} does not exist")
        return FastJSONResponse(found)

    async def send_event(self, request: Request, token: str) -> Response:
        self.sb.events.send(await read_json(request))
        return Response(status_code=204)

    async def send_event_batch(self, request: Request, token: str) -> Response:
        duplicates = self.sb.events.send_batch(await read_json(request))
        if duplicates:
            raise ApiError(409, "CONFLICT", f"{len(duplicates)} event(s) had a uuid already sent for their event "
                                            "type and were rejected; the others were accepted",
                           {"uuid": duplicates})
        return Response(status_code=204)

    # ---- communication preferences ---------------------------------------------------------------

    async def consent_definitions(self, request: Request, token: str) -> Response:
        return FastJSONResponse({"results": self.sb.consent.definitions})

    async def consent_get(self, request: Request, token: str) -> Response:
        started = now_ms()
        results = self.sb.consent.get(request.path_params["email"], request.query_params.get("channel"))
        return FastJSONResponse(batch_body(results, [], started))

    async def consent_set(self, request: Request, token: str) -> Response:
        return FastJSONResponse(self.sb.consent.set(request.path_params["email"], await read_json(request)))

    async def consent_unsubscribe_all(self, request: Request, token: str) -> Response:
        started = now_ms()
        results = self.sb.consent.unsubscribe_all(request.path_params["email"], request.query_params.get("channel"))
        return FastJSONResponse(batch_body(results, [], started))

    async def api_usage(self, request: Request, token: str) -> Response:
        limiter = self.sb.limiter
        now = now_ms()
        return FastJSONResponse({"results": [{
            "name": "private-apps-api-calls-daily", "usageLimit": self.sb.limits.daily_limit,
            "currentUsage": limiter.daily_used, "collectedAt": iso(now), "fetchStatus": "SUCCESS",
            "resetsAt": iso(now + int(limiter.seconds_to_midnight() * 1000))}]})


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    category = "OBJECT_NOT_FOUND" if status == 404 else "VALIDATION_ERROR" if status < 500 else "INTERNAL_ERROR"
    return FastJSONResponse(error_dict(category, f"{request.method} {request.url.path}: "
                                             f"{getattr(exc, 'detail', 'error')}"), status_code=status)


def build_app(sandbox: Sandbox) -> ASGIApp:
    """Starlette routes wrapped in the shared fault injector and request log (outermost)."""
    holder: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        saved = sandbox.save()
        if saved:
            log.warning("state saved to %s", saved)

    api = HubSpotApi(sandbox)
    routes = [*control_routes(sandbox.config.faults, lambda: holder["log"], lambda: holder["injector"]),
              *sandbox_routes(sandbox, lambda: holder["log"], lambda: holder["injector"]),
              *api.routes()]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={404: _http_error, 405: _http_error})
    injector = FaultInjector(app, sandbox.config.faults, make_error_body(sandbox.config.portal_id))
    request_log = RequestLog(injector, capacity=sandbox.config.log_capacity)
    holder.update(log=request_log, injector=injector)
    return request_log
