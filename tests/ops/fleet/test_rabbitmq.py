"""RabbitMQ as the broker for large fleets (docs/operations.md): a worker and a backfill through the
local RabbitMQ (127.0.0.1:5672, guest/guest), state still in Redis. Skipped when no RabbitMQ answers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess

import pytest

from sync_tasks.state import SyncState
from tests.ops.fleet.conftest import ARTIFACTS, ROOT, SHOP_SIZE, OpsFleet, wait_until

AMQP = "amqp://guest:guest@127.0.0.1:5672//"
CELERY = str(ROOT / ".venv" / "bin" / "celery")


def _rabbit_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _rabbit_up(), reason="no RabbitMQ on 127.0.0.1:5672")
def test_a_backfill_runs_through_a_rabbitmq_broker(ops_fleet: OpsFleet) -> None:
    log = open(ARTIFACTS / "worker-rabbitmq.log", "wb")  # noqa: SIM115 - lives with the worker
    worker = subprocess.Popen(
        [CELERY, "-A", "workers", "-b", AMQP, "worker", "-n", "rabbit@%h", "-Q",
         "ctsync.extract,ctsync.sync,ctsync.push,ctsync.push.backfill", "-c", "1", "--without-mingle",
         "--without-gossip"], cwd=ROOT, env=ops_fleet.env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        # A ping sent before the worker declared its control queue is lost: ask until it answers.
        ping = [CELERY, "-A", "workers", "-b", AMQP, "inspect", "ping", "-d", f"rabbit@{socket.gethostname()}",
                "--timeout", "2"]
        wait_until(lambda: subprocess.run(ping, cwd=ROOT, env=ops_fleet.env, capture_output=True,
                                          timeout=60).returncode == 0, 90, interval=0.5, what="the worker on RabbitMQ")
        state = SyncState(ops_fleet.redis)
        before = set(state.recent_runs("customers", 100))
        ops_fleet.run(CELERY, "-A", "workers", "-b", AMQP, "call", "ctsync.backfill",
                      "--args", '["customers", null, null, null]', "--queue", "ctsync.extract")
        run_id = next(iter(wait_until(lambda: set(state.recent_runs("customers", 100)) - before, 60,
                                      what="the backfill run")))
        wait_until(lambda: state.run_complete(run_id), 120, what="the backfill over RabbitMQ")
        assert state.run(run_id)["extracted"] == SHOP_SIZE and state.run(run_id)["failed"] == 0
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        log.close()
