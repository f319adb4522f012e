"""Pieces both sandboxes share: fault injection, the request log, the `/_sandbox/` control routes,
and the uvicorn runner.

Both are plain ASGI middlewares so that they cost almost nothing per request: the benchmarks must
measure the sync, not the sandbox.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import orjson
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


class FastJSONResponse(JSONResponse):
    """Responses rendered by orjson: the same compact JSON as Starlette's, several times faster (pages
    of 500 orders, batch answers of 100 records), so the sandboxes take less of a bench's CPU."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CONTROL_PREFIX = "/_sandbox"


class DroppedConnection(Exception):
    """Raised after the response has started, so the server closes the socket mid-response."""


@dataclass
class FaultConfig:
    """Shares of requests that fail, set at start (CLI) or at run time (`POST /_sandbox/faults`).

    Each share is a probability in [0, 1], drawn independently per request in the order listed.
    `drop_rate` drops the connection; half of the drops happen *after* the request was processed, as
    on a real network, so a client cannot know whether a write landed.
    """

    error_rate: float = 0.0
    error_statuses: list[int] = field(default_factory=lambda: [502, 503])
    rate_limit_rate: float = 0.0  # HubSpot only: a share of spurious 429 TEN_SECONDLY_ROLLING
    locked_rate: float = 0.0  # HubSpot only: a share of 423 Locked
    timeout_rate: float = 0.0  # a 504 after `slow_seconds`
    drop_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 0.5
    seed: int | None = None

    def update(self, changes: dict[str, Any]) -> None:
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        for name, value in changes.items():
            if name.endswith("_rate") and not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
            setattr(self, name, value)

    def any_active(self) -> bool:
        return any(
            getattr(self, f.name) > 0 for f in fields(self) if f.name.endswith("_rate")
        )


ErrorBody = Callable[[int], dict[str, Any]]


class FaultInjector:
    """ASGI middleware that injects the configured faults on API paths (never on `/_sandbox/`)."""

    def __init__(self, app: ASGIApp, config: FaultConfig, error_body: ErrorBody) -> None:
        self.app = app
        self.config = config
        self.error_body = error_body
        self.random = random.Random(config.seed)
        self.injected: collections.Counter[str] = collections.Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cfg = self.config
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX) or not cfg.any_active():
            await self.app(scope, receive, send)
            return
        rnd = self.random.random
        if cfg.slow_rate and rnd() < cfg.slow_rate:
            self.injected["slow"] += 1
            await asyncio.sleep(cfg.slow_seconds)
        if cfg.error_rate and rnd() < cfg.error_rate:
            status = self.random.choice(cfg.error_statuses)
            self.injected[str(status)] += 1
            await _send_json(send, status, self.error_body(status))
            return
        if cfg.rate_limit_rate and rnd() < cfg.rate_limit_rate:
            self.injected["429"] += 1
            await _send_json(send, 429, self.error_body(429))
            return
        if cfg.locked_rate and rnd() < cfg.locked_rate:
            self.injected["423"] += 1
            await _send_json(send, 423, self.error_body(423))
            return
        if cfg.timeout_rate and rnd() < cfg.timeout_rate:
            self.injected["504"] += 1
            await asyncio.sleep(cfg.slow_seconds)
            await _send_json(send, 504, self.error_body(504))
            return
        if cfg.drop_rate and rnd() < cfg.drop_rate:
            self.injected["drop"] += 1
            if rnd() < 0.5:
                # Drop after processing: the write lands, the client never hears of it.
                await self.app(scope, receive, _swallow)
            scope["sandbox.dropped"] = True
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
            raise DroppedConnection("sandbox fault: connection dropped")
        await self.app(scope, receive, send)


async def _swallow(message: Message) -> None:
    return None


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": raw})


@dataclass
class LogEntry:
    ts: float  # when the request arrived, as a rolling rate window counts it (not when it was answered)
    method: str
    path: str
    endpoint: str
    status: int
    body: Any = None


class RequestLog:
    """ASGI middleware counting every API request by endpoint and status, and keeping the last
    `capacity` requests (with JSON bodies of writes) for tests, the demo and the benchmarks.

    The endpoint is the matched route's path template (`/crm/v3/objects/{object_type}/batch/upsert`)
    with the object type filled in, so counts read naturally.
    """

    def __init__(self, app: ASGIApp, capacity: int = 20_000, keep_bodies: bool = True) -> None:
        self.app = app
        self.capacity = capacity
        self.keep_bodies = keep_bodies
        self.entries: collections.deque[LogEntry] = collections.deque(maxlen=capacity)
        self.counts: collections.Counter[tuple[str, int]] = collections.Counter()
        self.total = 0
        self.started = time.time()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        arrived = time.time()
        status_box = [0]
        chunks: list[bytes] = []

        async def logging_receive() -> Message:
            message = await receive()
            if self.keep_bodies and message.get("type") == "http.request":
                chunks.append(message.get("body", b""))
            return message

        async def logging_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, logging_receive, logging_send)
        finally:
            # 0 = the connection was dropped: the client got no answer.
            status = 0 if scope.get("sandbox.dropped") else (status_box[0] or 599)
            self._record(scope, status, b"".join(chunks), arrived)

    def _record(self, scope: Scope, status: int, raw: bytes, arrived: float) -> None:
        endpoint = scope.get("sandbox.endpoint") or scope["path"]
        method = scope["method"]
        key = f"{method} {endpoint}"
        body: Any = None
        if raw and self.keep_bodies:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")[:2000]
        self.entries.append(LogEntry(arrived, method, scope["path"], key, status, body))
        self.counts[(key, status)] += 1
        self.total += 1

    def reset(self) -> None:
        self.entries.clear()
        self.counts.clear()
        self.total = 0
        self.started = time.time()

    def summary(self) -> dict[str, Any]:
        by_endpoint: dict[str, dict[str, int]] = {}
        by_status: collections.Counter[str] = collections.Counter()
        for (endpoint, status), n in sorted(self.counts.items()):
            by_endpoint.setdefault(endpoint, {})[str(status)] = n
            by_status[str(status)] += n
        return {"total": self.total, "since": self.started, "by_endpoint": by_endpoint,
                "by_status": dict(by_status)}


def tag_endpoint(request: Request, template: str) -> None:
    """Let the request log count this request under `template` (a readable endpoint name)."""
    request.scope["sandbox.endpoint"] = template


def control_routes(faults: FaultConfig, log_getter: Callable[[], RequestLog],
                   injector_getter: Callable[[], FaultInjector]) -> list[Route]:
    """`/_sandbox/health`, `/_sandbox/faults` and `/_sandbox/requests`: not part of either real API."""

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def get_faults(request: Request) -> Response:
        return JSONResponse({"config": asdict(faults), "injected": dict(injector_getter().injected)})

    async def set_faults(request: Request) -> Response:
        try:
            faults.update(await request.json())
        except (ValueError, TypeError) as exc:
            return JSONResponse({"message": str(exc)}, status_code=400)
        injector_getter().random.seed(faults.seed)
        return JSONResponse({"config": asdict(faults)})

    async def requests_view(request: Request) -> Response:
        log = log_getter()
        summary = log.summary()
        limit = int(request.query_params.get("limit", "200"))
        since = float(request.query_params.get("since", "0"))
        endpoint = request.query_params.get("endpoint")
        picked = [e for e in log.entries if e.ts >= since and (endpoint is None or endpoint in e.endpoint)]
        summary["entries"] = [asdict(e) for e in picked[-limit:]] if limit > 0 else []
        return JSONResponse(summary)

    async def reset_requests(request: Request) -> Response:
        log_getter().reset()
        injector_getter().injected.clear()
        return JSONResponse({"ok": True})

    return [
        Route(f"{CONTROL_PREFIX}/health", health, methods=["GET"]),
        Route(f"{CONTROL_PREFIX}/faults", get_faults, methods=["GET"]),
        Route(f"{CONTROL_PREFIX}/faults", set_faults, methods=["POST", "PUT"]),
        Route(f"{CONTROL_PREFIX}/requests", requests_view, methods=["GET"]),
        Route(f"{CONTROL_PREFIX}/requests/reset", reset_requests, methods=["POST"]),
    ]


def serve(app: ASGIApp, host: str, port: int, log_level: str = "warning") -> None:
    """Run `app` in a real uvicorn server process (this call blocks)."""
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False,
                timeout_keep_alive=30, backlog=2048)


class ThreadedServer:
    """Runs an app in a uvicorn server on a background thread: for tools that need a sandbox in
    process (the test-suite and demo use `SandboxProcess` instead)."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)

    @property
    def port(self) -> int:
        sockets = self.server.servers[0].sockets
        return int(sockets[0].getsockname()[1])

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
