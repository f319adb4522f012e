from __future__ import annotations

import pytest

from sync_tasks.settings import ConfigError, load_settings


def test_defaults_point_at_the_sandboxes(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CT_API_URL", "HUBSPOT_BASE_URL", "HUBSPOT_TOKEN", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.ct_base.startswith("http://127.0.0.1:")
    assert settings.hubspot_base.startswith("http://127.0.0.1:")
    assert "pat-" not in repr(settings) and "**********" in repr(settings.hubspot_token)


def test_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNC_INTERVAL", "0")
    with pytest.raises(ConfigError, match="SYNC_INTERVAL"):
        load_settings()


def test_bad_url_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBSPOT_BASE_URL", "not a url")
    with pytest.raises(ConfigError, match="HUBSPOT_BASE_URL"):
        load_settings()
