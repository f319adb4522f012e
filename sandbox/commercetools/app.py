"""The Starlette app: auth, Query API, creates/updates/deletes, and the `/_sandbox/` control API,
wrapped in the shared FaultInjector and (outermost) RequestLog middlewares."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.common import (
    ASGIApp,
    FastJSONResponse,
    FaultConfig,
    FaultInjector,
    RequestLog,
    control_routes,
    tag_endpoint,
)

from .actions import Mutator
from .auth import TokenIssuer
from .errors import ApiError, fault_body, invalid_input, invalid_operation, not_found
from .predicates import Compare, Nested
from .query import QueryStats, expand_all, parse_params, run_query
from .seed import CUSTOMER_TYPE_ID, seed_store
from .store import RESOURCE_PATHS, Resource, Store

KEYED = {"customers", "customer-groups", "stores", "payments", "carts"}
CREATABLE = {"customers", "carts", "payments"}
UPDATABLE = {"customers", "orders", "carts", "payments"}
IN_STORE = {"customers", "orders", "carts"}


@dataclass
class Settings:
    project_key: str = "sandbox-shop"
    client_id: str = "ctsync-sandbox"
    client_secret: str = "ctsync-sandbox-secret"
    seed: int = 42
    size: int = 2000
    token_lifetime: int = 172_800
    messages_enabled: bool = True
    message_retention_days: int = 15
    anchor_ms: int | None = None
    log_capacity: int = 20_000
    faults: FaultConfig = field(default_factory=FaultConfig)


class Sandbox:
    """Everything one running sandbox holds; reset() swaps in a freshly seeded shop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.issuer = TokenIssuer(settings.project_key, settings.client_id, settings.client_secret,
                                  settings.token_lifetime)
        self.messages_enabled = settings.messages_enabled
        self.touches = 0
        self.last_query: dict[str, Any] = {}
        self.reset(settings.size, settings.seed)

    def reset(self, size: int, seed: int) -> None:
        started = time.perf_counter()
        self.store = Store()
        seed_store(self.store, size, seed, self.settings.anchor_ms, self.settings.message_retention_days)
        self.mutator = Mutator(self.store)
        self.size, self.seed = size, seed
        self.seed_seconds = time.perf_counter() - started

    def record(self, resource: str, stats: QueryStats) -> None:
        self.last_query = {"resource": resource, **asdict(stats)}


def _json_error(exc: ApiError) -> Response:
    return exc.response()


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw or b"null")
    except ValueError as exc:
        message = f"Request body does not contain valid JSON: {exc}"
        raise ApiError(400, message, [{"code": "InvalidJsonInput", "message": message}]) from exc


Handler = Callable[[Request], Awaitable[Response]]


def _api(handler: Handler) -> Handler:
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as exc:
            return _json_error(exc)
    return wrapped


def build_app(settings: Settings) -> tuple[ASGIApp, Sandbox]:
    sandbox = Sandbox(settings)
    pk_default = settings.project_key

    def auth(request: Request, resource: str, write: bool = False) -> None:
        sandbox.issuer.check(request.headers.get("authorization"), request.path_params["projectKey"],
                             resource, write)

    def resource_name(request: Request) -> str:
        name = str(request.path_params["resource"])
        if name not in RESOURCE_PATHS:
            raise not_found(f"/{request.path_params['projectKey']}/{name}")
        return name

    def check_messages(name: str) -> None:
        if name == "messages" and not sandbox.messages_enabled:
            # Documented sandbox choice (see README): the real API's behaviour is unverified.
            raise invalid_operation("The Messages Query HTTP API is disabled for this project. Enable it with "
                                    "the 'changeMessagesConfiguration' update action on the project.")

    # --- auth -------------------------------------------------------------------------------------
    async def token(request: Request) -> Response:
        tag_endpoint(request, "/oauth/token")
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        for key, value in request.query_params.items():
            form.setdefault(key, value)
        body = sandbox.issuer.issue(request.headers.get("authorization"), form.get("grant_type"), form.get("scope"))
        return JSONResponse(body)

    # --- queries ----------------------------------------------------------------------------------
    def query(request: Request, name: str, extra: list[Any]) -> Response:
        qp = request.query_params
        variables: dict[str, list[str]] = {}
        for key, value in qp.multi_items():
            if key.startswith("var."):
                variables.setdefault(key[4:], []).append(value)
        params = parse_params(qp, qp.getlist, variables)
        col = sandbox.store.collections[name]
        page, total, stats = run_query(col, params, extra)
        sandbox.record(name, stats)
        if params.expand:
            page = [expand_all(r, params.expand, sandbox.store) for r in page]
        body: dict[str, Any] = {"limit": params.limit, "offset": params.offset, "count": len(page)}
        if total is not None:
            body["total"] = total
        body["results"] = page
        return FastJSONResponse(body, headers={"X-Sandbox-Examined": str(stats.examined),
                                               "X-Sandbox-Index": stats.index})

    async def query_resource(request: Request) -> Response:
        name = resource_name(request)
        tag_endpoint(request, f"/{{projectKey}}/{name}")
        auth(request, name)
        check_messages(name)
        return query(request, name, [])

    async def query_in_store(request: Request) -> Response:
        name = resource_name(request)
        tag_endpoint(request, f"/{{projectKey}}/in-store/key={{storeKey}}/{name}")
        if name not in IN_STORE:
            raise not_found(name)
        auth(request, name)
        store_key = request.path_params["storeKey"]
        field_name = "stores" if name == "customers" else "store"
        return query(request, name, [Nested(field_name, Compare("key", "=", store_key))])

    def expanded(request: Request, res: Resource) -> Response:
        paths = [[s.strip() for s in e.split(".")] for e in request.query_params.getlist("expand")]
        return JSONResponse(expand_all(res, paths, sandbox.store) if paths else res)

    async def get_by_id(request: Request) -> Response:
        name = resource_name(request)
        tag_endpoint(request, f"/{{projectKey}}/{name}/{{id}}")
        auth(request, name)
        check_messages(name)
        return expanded(request, sandbox.mutator.get_or_404(name, rid=request.path_params["id"]))

    async def get_by_key(request: Request) -> Response:
        name = resource_name(request)
        tag_endpoint(request, f"/{{projectKey}}/{name}/key={{key}}")
        auth(request, name)
        if name not in KEYED:
            raise not_found(f"key={request.path_params['key']}")
        return expanded(request, sandbox.mutator.get_or_404(name, key=request.path_params["key"]))

    async def get_by_order_number(request: Request) -> Response:
        tag_endpoint(request, "/{projectKey}/orders/order-number={orderNumber}")
        auth(request, "orders")
        return expanded(request, sandbox.mutator.get_or_404("orders", key=request.path_params["orderNumber"]))

    async def project(request: Request) -> Response:
        tag_endpoint(request, "/{projectKey}")
        auth(request, "project")
        return JSONResponse({
            "key": pk_default, "name": "ctsync sandbox shop", "version": 1,
            "countries": ["DE", "FR", "AT", "NL", "IT", "US", "GB", "JP"],
            "currencies": ["EUR", "USD", "GBP", "JPY"], "languages": ["en", "de-DE", "fr-FR", "en-US", "ja-JP"],
            "createdAt": "2020-01-01T00:00:00.000Z", "trialUntil": None,
            "messages": {"enabled": sandbox.messages_enabled,
                         "deleteDaysAfterCreation": settings.message_retention_days},
            "carts": {"countryTaxRateFallbackEnabled": False, "deleteDaysAfterLastModification": 90},
        })

    # --- writes -----------------------------------------------------------------------------------
    async def create(request: Request) -> Response:
        name = resource_name(request)
        tag_endpoint(request, f"/{{projectKey}}/{name}")
        auth(request, name, write=True)
        body = await _body(request)
        if not isinstance(body, dict):
            raise invalid_input("Request body does not contain valid JSON.")
        m = sandbox.mutator
        if name == "customers":
            return JSONResponse({"customer": m.create_customer(body)}, status_code=201)
        if name == "orders":
            return JSONResponse(m.create_order_from_cart(body), status_code=201)
        if name == "carts":
            return JSONResponse(m.create_cart(body), status_code=201)
        if name == "payments":
            return JSONResponse(m.create_payment(body), status_code=201)
        raise invalid_operation(f"Creating {name} is not supported by the sandbox.")

    async def import_order(request: Request) -> Response:
        tag_endpoint(request, "/{projectKey}/orders/import")
        auth(request, "orders", write=True)
        body = await _body(request)
        if not isinstance(body, dict):
            raise invalid_input("Request body does not contain valid JSON.")
        return JSONResponse(sandbox.mutator.create_order_import(body), status_code=201)

    async def update(request: Request) -> Response:
        name = resource_name(request)
        by_key = "key" in request.path_params
        tag_endpoint(request, f"/{{projectKey}}/{name}/" + ("key={key}" if by_key else "{id}"))
        if name not in UPDATABLE:
            raise invalid_operation(f"Updates of {name} are not supported by the sandbox.")
        auth(request, name, write=True)
        body = await _body(request)
        m = sandbox.mutator
        old = m.get_or_404(name, key=request.path_params["key"]) if by_key else \
            m.get_or_404(name, rid=request.path_params["id"])
        return JSONResponse(m.update(name, old, body))

    async def delete(request: Request) -> Response:
        name = resource_name(request)
        tag_endpoint(request, f"/{{projectKey}}/{name}/{{id}}")
        if name not in UPDATABLE:
            raise invalid_operation(f"Deleting {name} is not supported by the sandbox.")
        auth(request, name, write=True)
        raw = request.query_params.get("version")
        if raw is None or not raw.lstrip("-").isdigit():
            raise invalid_input("Missing or invalid query parameter 'version'.")
        old = sandbox.mutator.get_or_404(name, rid=request.path_params["id"])
        return JSONResponse(sandbox.mutator.delete(name, old, int(raw)))

    # --- control API ------------------------------------------------------------------------------
    async def stats(request: Request) -> Response:
        cols = sandbox.store.collections
        return JSONResponse({
            "projectKey": pk_default, "seed": sandbox.seed, "size": sandbox.size,
            "seedSeconds": round(sandbox.seed_seconds, 3), "messagesEnabled": sandbox.messages_enabled,
            "counts": {name: len(col) for name, col in cols.items()},
            "examined": {name: col.examined for name, col in cols.items()},
            "lastQuery": sandbox.last_query, "tokensIssued": sandbox.issuer.issued, "touches": sandbox.touches,
        })

    async def reset(request: Request) -> Response:
        qp = request.query_params
        try:
            size = int(qp.get("size", sandbox.size))
            seed = int(qp.get("seed", sandbox.seed))
        except ValueError:
            return JSONResponse({"message": "size and seed must be integers"}, status_code=400)
        sandbox.reset(size, seed)
        log.reset()
        return await stats(request)

    async def set_messages(request: Request) -> Response:
        try:
            body = await request.json()
            sandbox.messages_enabled = bool(body["enabled"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"message": "expected {\"enabled\": true|false}"}, status_code=400)
        return JSONResponse({"enabled": sandbox.messages_enabled})

    async def expire_tokens(request: Request) -> Response:
        return JSONResponse({"expired": sandbox.issuer.expire_all()})

    async def touch(request: Request) -> Response:
        """Apply a real update action to N customers, through the same path as the API."""
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return JSONResponse({"message": "expected a JSON object"}, status_code=400)
        col = sandbox.store.collections["customers"]
        sandbox.touches += 1
        rng = random.Random(f"{sandbox.seed}-{sandbox.touches}")
        if body.get("ids"):
            ids = [str(i) for i in body["ids"]]
        else:
            count = int(body.get("count", 1))
            ids = rng.sample(col.ids, min(count, len(col.ids)))
        action_name = str(body.get("action", "setFirstName"))
        touched = []
        try:
            for n, rid in enumerate(ids):
                old = sandbox.mutator.get_or_404("customers", rid=rid)
                action = _touch_action(action_name, old, sandbox.touches, n, body.get("value"))
                new = sandbox.mutator.update("customers", old, {"version": old["version"], "actions": [action]})
                touched.append({"id": rid, "version": new["version"], "lastModifiedAt": new["lastModifiedAt"]})
        except ApiError as exc:
            return JSONResponse({"touched": touched, "error": exc.body()}, status_code=exc.status)
        return JSONResponse({"touched": touched, "count": len(touched)})

    routes = [
        Route("/oauth/token", _api(token), methods=["POST"]),
        *control_routes(settings.faults, lambda: log, lambda: injector),
        Route("/_sandbox/stats", stats, methods=["GET"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/_sandbox/messages", set_messages, methods=["POST"]),
        Route("/_sandbox/tokens/expire", expire_tokens, methods=["POST"]),
        Route("/_sandbox/customers/touch", touch, methods=["POST"]),
        Route("/{projectKey}", _api(project), methods=["GET"]),
        Route("/{projectKey}/orders/import", _api(import_order), methods=["POST"]),
        Route("/{projectKey}/orders/order-number={orderNumber}", _api(get_by_order_number), methods=["GET"]),
        Route("/{projectKey}/in-store/key={storeKey}/{resource}", _api(query_in_store), methods=["GET"]),
        Route("/{projectKey}/{resource}", _api(query_resource), methods=["GET"]),
        Route("/{projectKey}/{resource}", _api(create), methods=["POST"]),
        Route("/{projectKey}/{resource}/key={key}", _api(get_by_key), methods=["GET"]),
        Route("/{projectKey}/{resource}/key={key}", _api(update), methods=["POST"]),
        Route("/{projectKey}/{resource}/{id}", _api(get_by_id), methods=["GET"]),
        Route("/{projectKey}/{resource}/{id}", _api(update), methods=["POST"]),
        Route("/{projectKey}/{resource}/{id}", _api(delete), methods=["DELETE"]),
    ]
    app = Starlette(routes=routes)
    # The log wraps the injector so that injected errors and dropped connections are counted too.
    injector = FaultInjector(app, settings.faults, fault_body)
    log = RequestLog(injector, capacity=settings.log_capacity)
    return log, sandbox


def _touch_action(name: str, old: Resource, round_no: int, n: int, value: Any) -> dict[str, Any]:
    if name == "setFirstName":
        return {"action": name, "firstName": value or f"Touched-{round_no}-{n}"}
    if name == "setLastName":
        return {"action": name, "lastName": value or f"Touched-{round_no}-{n}"}
    if name == "changeEmail":
        return {"action": name, "email": value or f"touched-{round_no}-{n}-{old['id'][:8]}@example.com"}
    if name == "setExternalId":
        return {"action": name, "externalId": value or f"EXT-{round_no}-{n}"}
    if name == "setCompanyName":
        return {"action": name, "companyName": value or f"Touched Co {round_no}"}
    if name == "setLocale":
        return {"action": name, "locale": value or "de-DE"}
    if name == "setCustomField":
        current = ((old.get("custom") or {}).get("fields") or {}).get("newsletter", False)
        if "custom" not in old:
            return {"action": "setCustomType", "type": {"typeId": "type", "id": CUSTOMER_TYPE_ID},
                    "fields": {"newsletter": True}}
        return {"action": name, "name": "newsletter", "value": (not current) if value is None else value}
    raise invalid_input(f"touch does not support action '{name}'.")
