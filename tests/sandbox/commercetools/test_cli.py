"""The CLI: one ready line, flags applied, clean exit on SIGTERM."""

from __future__ import annotations

import pytest

from .conftest import Api, start


def test_ready_line_flags_and_sigterm(tmp_path_factory: pytest.TempPathFactory) -> None:
    proc = start(tmp_path_factory, "ct-cli", ["--size", "25", "--seed", "9", "--project-key", "other-shop"])
    try:
        stats = Api.__new__(Api)
        stats.url = proc.url
        body = stats.control("/stats", method="GET").json()
        assert body["size"] == 25 and body["seed"] == 9 and body["projectKey"] == "other-shop"
    finally:
        proc.stop()
    assert proc.proc is not None and proc.proc.returncode == 0
    assert proc.log_path is not None
    lines = proc.log_path.read_text().splitlines()
    assert sum("commercetools sandbox ready on" in line for line in lines) == 1
