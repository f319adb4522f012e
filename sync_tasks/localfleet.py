"""A whole local fleet as real processes: both sandboxes, Celery workers and beat.

Used by `make demo`, the end-to-end tests and the benchmarks. Every child gets its settings through
the environment, exactly as a deployed fleet does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import redis

from sandbox.process import SandboxProcess
from sync_tasks.constants import Queue

ALL_QUEUES = ",".join(q.value for q in Queue if q is not Queue.DEADLETTER)


@dataclass
class LocalFleet:
    redis_url: str
    ct_size: int = 2000
    ct_seed: int = 42
    ct_args: list[str] = field(default_factory=list)
    hubspot_args: list[str] = field(default_factory=list)
    log_dir: Path = Path("var/log")
    extra_env: dict[str, str] = field(default_factory=dict)
    ct_port: int | None = None
    hubspot_port: int | None = None
    ct: SandboxProcess | None = None
    hubspot: SandboxProcess | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        assert self.ct and self.hubspot, "start the sandboxes first"
        env = os.environ.copy()
        env.update({
            "REDIS_URL": self.redis_url,
            "CT_API_URL": self.ct.url,
            "CT_AUTH_URL": self.ct.url,
            "HUBSPOT_BASE_URL": self.hubspot.url,
            **self.extra_env,
        })
        return env

    def apply_env(self) -> None:
        """Point this process's settings at the fleet too (for the CLI and test code)."""
        os.environ.update({k: v for k, v in self.env().items() if k in {
            "REDIS_URL", "CT_API_URL", "CT_AUTH_URL", "HUBSPOT_BASE_URL", *self.extra_env}})
        from sync_tasks.redis_conn import get_redis, redis_url
        from sync_tasks.settings import get_settings

        get_settings.cache_clear()
        redis_url.cache_clear()
        get_redis.cache_clear()

    def start_sandboxes(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.ct = SandboxProcess("sandbox.commercetools",
                                 ["--size", str(self.ct_size), "--seed", str(self.ct_seed), *self.ct_args],
                                 port=self.ct_port, log_path=self.log_dir / "commercetools.log").start()
        self.hubspot = SandboxProcess("sandbox.hubspot", list(self.hubspot_args), port=self.hubspot_port,
                                      log_path=self.log_dir / "hubspot.log").start()

    def start_worker(self, name: str, queues: str = ALL_QUEUES, concurrency: int = 2) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"worker-{name}.log", "ab")  # noqa: SIM115 - lives with the child
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers", "worker", "-n", f"{name}@%h", "-Q", queues,
             "-c", str(concurrency), "--loglevel", "INFO", "--without-mingle", "--without-gossip"],
            env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def start_beat(self) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / "beat.log", "ab")  # noqa: SIM115 - lives with the child
        proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers", "beat", "--loglevel", "INFO"],
                                env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def wait_for_workers(self, count: int, timeout: float = 60.0) -> None:
        from workers import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            replies = app.control.ping(timeout=1.0) or []
            if len(replies) >= count:
                return
            time.sleep(0.5)
        raise TimeoutError(f"only some of {count} workers answered within {timeout}s; see {self.log_dir}")

    def stop_processes(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()

    def stop(self) -> None:
        self.stop_processes()
        for sandbox in (self.ct, self.hubspot):
            if sandbox:
                sandbox.stop()

    def flush_redis(self) -> None:
        redis.Redis.from_url(self.redis_url).flushdb()

    def __enter__(self) -> LocalFleet:
        self.start_sandboxes()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
