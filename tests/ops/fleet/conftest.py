"""The whole Procfile under `honcho start`, as an operator runs it: both sandboxes, a sync worker and a
push worker, beat, Flower and the metrics exporter, all real processes, with Sentry pointed at a
loopback collector. Started once for this package.

It uses the unit-test Redis database, not the end-to-end one: the end-to-end fleet (session-scoped,
consuming every queue) would otherwise take this fleet's tasks. Unit tests flush that database only
per test and never while this package runs (pytest runs one test at a time).
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from sandbox.process import free_port
from sync_tasks.constants import Keys
from tests.conftest import UNIT_DB, redis_url

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts" / "ops"
SHOP_SIZE = 60
FLOWER_USER, FLOWER_PASSWORD = "operator", "flower-secret-pw"


def parse_envelope(raw: bytes) -> list[tuple[dict[str, Any], bytes]]:
    """Sentry envelope → [(item header, payload)]."""
    items = []
    _, _, rest = raw.partition(b"\n")
    while rest.strip():
        header_line, _, rest = rest.partition(b"\n")
        header = json.loads(header_line)
        if "length" in header:
            payload, rest = rest[:header["length"]], rest[header["length"]:]
            rest = rest[1:] if rest.startswith(b"\n") else rest
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((header, payload))
    return items


@dataclass
class SentryCollector:
    """A loopback Sentry: the fleet's real HTTP transport posts envelopes here."""

    raw: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def items(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            envelopes = list(self.raw)
        return [json.loads(p) for raw in envelopes for h, p in parse_envelope(raw) if h.get("type") == kind]

    def all_bytes(self) -> bytes:
        with self.lock:
            return b"\n".join(self.raw)


def start_collector(collector: SentryCollector) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            encoding = self.headers.get("Content-Encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            elif encoding == "br":
                import brotli  # type: ignore[import-not-found]

                body = brotli.decompress(body)
            with collector.lock:
                collector.raw.append(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class OpsFleet:
    env: dict[str, str]
    redis: redis.Redis
    sentry: SentryCollector
    log_path: Path
    ct_url: str
    hubspot_url: str
    flower_url: str
    metrics_url: str

    @property
    def auth(self) -> tuple[str, str]:
        return FLOWER_USER, FLOWER_PASSWORD

    def flower(self, path: str, **kwargs: Any) -> Any:
        response = requests.get(f"{self.flower_url}{path}", auth=self.auth, timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def run(self, *argv: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        """A command as an operator types it, with the fleet's environment."""
        done = subprocess.run(list(argv), env={**self.env, **env}, cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout, check=False)
        assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        return done

    def log_lines(self, role: str) -> list[str]:
        """Lines honcho printed for one Procfile role (prefix stripped)."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            head, sep, text = line.partition(" | ")
            if sep and head.split()[-1].startswith(f"{role}."):
                out.append(text)
        return out


def wait_until(predicate: Any, timeout: float = 60.0, interval: float = 0.3, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (requests.RequestException, OSError):
            value = None
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} not met within {timeout}s")


@pytest.fixture(scope="package")
def ops_fleet() -> Iterator[OpsFleet]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    collector = SentryCollector()
    server = start_collector(collector)
    ct_port, hs_port, flower_port, metrics_port = free_port(), free_port(), free_port(), free_port()
    url = redis_url(UNIT_DB)
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CT_", "HUBSPOT_", "SENTRY_", "FLOWER_"))}
    env.update({
        "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "REDIS_URL": url,
        "CT_SANDBOX_PORT": str(ct_port), "HUBSPOT_SANDBOX_PORT": str(hs_port), "CT_SANDBOX_SIZE": str(SHOP_SIZE),
        "CT_API_URL": f"http://127.0.0.1:{ct_port}", "CT_AUTH_URL": f"http://127.0.0.1:{ct_port}",
        "HUBSPOT_BASE_URL": f"http://127.0.0.1:{hs_port}",
        "FLOWER_PORT": str(flower_port), "FLOWER_BASIC_AUTH": f"{FLOWER_USER}:{FLOWER_PASSWORD}",
        "METRICS_PORT": str(metrics_port),
        "SENTRY_DSN": f"http://publickey@127.0.0.1:{server.server_address[1]}/1",
        "SYNC_INTERVAL": "3600", "SYNC_CONCURRENCY": "1", "PUSH_CONCURRENCY": "1",
        "EXTRACT_OVERLAP_SECONDS": "1", "LOG_JSON": "true", "LOG_PII": "false", "PYTHONUNBUFFERED": "1",
    })
    log_path = ARTIFACTS / "honcho.log"
    log = open(log_path, "wb")  # noqa: SIM115 - lives with honcho
    honcho = subprocess.Popen([str(ROOT / ".venv" / "bin" / "honcho"), "start", "-f", "Procfile", "--no-colour"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    fleet = OpsFleet(env=env, redis=client, sentry=collector, log_path=log_path,
                     ct_url=env["CT_API_URL"], hubspot_url=env["HUBSPOT_BASE_URL"],
                     flower_url=f"http://127.0.0.1:{flower_port}", metrics_url=f"http://127.0.0.1:{metrics_port}/metrics")
    def alive() -> None:
        if honcho.poll() is not None:  # honcho stops every role when one exits
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])
            pytest.fail(f"honcho exited {honcho.returncode}; the end of {log_path}:\n{tail}")

    try:
        wait_until(lambda: requests.get(f"{fleet.hubspot_url}/_sandbox/health", timeout=1).ok, 60,
                   interval=0.05, what="HubSpot sandbox")
        time.sleep(1.0)
        alive()
        fleet.run(str(ROOT / ".venv" / "bin" / "ctsync"), "setup")
        wait_until(lambda: alive() or len(fleet.flower("/api/workers", params={"refresh": "1"})) >= 2, 90,
                   interval=1.0, what="both workers in Flower")
        # The first delta sync (RedBeat's first tick comes one SYNC_INTERVAL after start): sent by hand,
        # from a watermark before the whole shop (delta sync otherwise starts at the first backfill).
        fleet.redis.set(Keys.watermark("customers"), "2000-01-01T00:00:00.000Z")
        fleet.run(str(ROOT / ".venv" / "bin" / "celery"), "-A", "workers", "call", "ctsync.extract",
                  "--args", '["customers"]', "--queue", "ctsync.extract")
        yield fleet
    finally:
        if honcho.poll() is None:
            os.killpg(honcho.pid, signal.SIGTERM)
            try:
                honcho.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(honcho.pid, signal.SIGKILL)
                honcho.wait()
        log.close()
        server.shutdown()
        client.flushdb()
