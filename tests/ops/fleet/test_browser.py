"""Flower in a real browser: headless Debian chromium logs in (basic auth) and screenshots the workers
and broker pages. The screenshots are kept in test-artifacts/ops/. Skipped, saying why, when chromium
is not installed (`.ci/run` installs it)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from sync_tasks.constants import Queue
from tests.ops.fleet.conftest import ARTIFACTS, FLOWER_PASSWORD, FLOWER_USER, OpsFleet, wait_until

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                "(apt-get install -y chromium; .ci/run does it): no browser test of Flower")


def _chromium(*args: str, profile: str) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
         "--hide-scrollbars", f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args],
        capture_output=True, timeout=90, check=False)


def _page(fleet: OpsFleet, path: str, shot: Path) -> str:
    """Log in with the URL's credentials; screenshot the page and return its DOM after scripts ran."""
    url = fleet.flower_url.replace("http://", f"http://{FLOWER_USER}:{FLOWER_PASSWORD}@") + path
    with tempfile.TemporaryDirectory() as profile:
        dom = _chromium("--dump-dom", url, profile=profile).stdout.decode(errors="replace")
    with tempfile.TemporaryDirectory() as profile:
        _chromium(f"--screenshot={shot}", "--window-size=1400,900", url, profile=profile)
    return dom


def test_flower_workers_and_broker_pages_in_headless_chromium(ops_fleet: OpsFleet) -> None:
    wait_until(lambda: len(ops_fleet.flower("/api/workers")) >= 2, 60, what="workers in Flower")
    workers_png, broker_png = ARTIFACTS / "flower-workers.png", ARTIFACTS / "flower-broker.png"
    for png in (workers_png, broker_png):
        png.unlink(missing_ok=True)

    workers_dom = _page(ops_fleet, "/workers", workers_png)
    assert "sync@" in workers_dom and "push@" in workers_dom, workers_dom[:500]
    broker_dom = _page(ops_fleet, "/broker", broker_png)
    for queue in (Queue.EXTRACT, Queue.SYNC, Queue.PUSH, Queue.PUSH_BACKFILL):
        assert queue.value in broker_dom, broker_dom[:500]

    for png in (workers_png, broker_png):
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, png
