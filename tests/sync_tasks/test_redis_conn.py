from __future__ import annotations

from pathlib import Path

import pytest
import redis

from sync_tasks.redis_conn import ensure_embedded_redis, resolve_redis_url, stop_embedded_redis
from sync_tasks.settings import Settings


def test_redis_url_setting_wins() -> None:
    url, how = resolve_redis_url(Settings(redis_url="redis://127.0.0.1:6399/3"))  # type: ignore[call-arg]
    assert (url, how) == ("redis://127.0.0.1:6399/3", "REDIS_URL")


def test_local_redis_is_used_when_it_answers() -> None:
    url, how = resolve_redis_url(Settings(redis_url=None))  # type: ignore[call-arg]
    assert url == "redis://127.0.0.1:6379/0" and "6379" in how


def test_embedded_redis_starts_once_with_appendonly(tmp_path: Path) -> None:
    try:
        url = ensure_embedded_redis(tmp_path)
        client = redis.Redis.from_url(url)
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.config_get("dir")["dir"] == str(tmp_path.resolve())
        client.set("k", "v")
        # a second process finds the same server instead of starting another
        assert ensure_embedded_redis(tmp_path) == url
    finally:
        stop_embedded_redis(tmp_path)


def test_embedded_redis_needs_the_bundled_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sync_tasks.redis_conn as rc

    monkeypatch.setattr(rc, "embedded_redis_binary", lambda: str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError):
        ensure_embedded_redis(tmp_path / "d")


def test_hgetall_many_reads_each_hash_in_one_round_trip(redis_client: redis.Redis) -> None:
    from sync_tasks.redis_conn import hgetall_many

    redis_client.hset("h:a", mapping={"x": "1"})
    redis_client.hset("h:b", mapping={"y": "2", "z": "3"})
    assert hgetall_many(redis_client, ["h:a", "h:missing", "h:b"]) == [{"x": "1"}, {}, {"y": "2", "z": "3"}]
    assert hgetall_many(redis_client, []) == []
