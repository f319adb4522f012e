"""Fixtures of the in-process tests (no broker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sync_tasks.sandboxes import sandbox_pair


@pytest.fixture(scope="module")
def sandboxes(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(commercetools URL, HubSpot URL) for the module: a shop of its `SIZE` customers, an empty portal."""
    with sandbox_pair(int(request.module.SIZE)) as urls:
        yield urls
