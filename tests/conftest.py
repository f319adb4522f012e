"""Shared fixtures. Tests use the real Redis on 127.0.0.1:6379, one database per purpose, flushed
before each test that asks for it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

UNIT_DB = int(os.environ.get("CTSYNC_TEST_UNIT_DB", "14"))
E2E_DB = int(os.environ.get("CTSYNC_TEST_E2E_DB", "13"))
REDIS_HOST = "127.0.0.1"


def redis_url(db: int) -> str:
    return f"redis://{REDIS_HOST}:6379/{db}"


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url(UNIT_DB), decode_responses=True)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail("tests need a Redis on 127.0.0.1:6379 (bash .ci/run starts one)")
    client.flushdb()
    yield client
    client.flushdb()
