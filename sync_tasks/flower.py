"""How `ctsync flower` starts Flower: always behind basic auth, from our settings.

The credentials go to Flower through its own FLOWER_BASIC_AUTH environment variable, never on the
command line (where `ps` would show them). An open dashboard is refused: without FLOWER_BASIC_AUTH
there is no Flower, and FLOWER_UNAUTHENTICATED_API is removed from Flower's environment.
"""

from __future__ import annotations

import os
import sys

from sync_tasks.settings import ConfigError, Settings

# Workers that stopped answering leave the dashboard after this many seconds.
PURGE_OFFLINE_AFTER = 60


def flower_command(settings: Settings, environ: dict[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """The argv and environment to run Flower with; ConfigError when no credentials are set."""
    if settings.flower_basic_auth is None:
        raise ConfigError("FLOWER_BASIC_AUTH: required to start Flower (user:password); "
                          "ctsync never serves an open dashboard")
    env = dict(os.environ if environ is None else environ)
    env.pop("FLOWER_UNAUTHENTICATED_API", None)
    env["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth.get_secret_value()
    argv = [sys.executable, "-m", "celery", "-A", "workers", "flower",
            f"--address={settings.flower_address}", f"--port={settings.flower_port}",
            "--enable_events",  # ask workers for task events even if one started without -E
            f"--purge_offline_workers={PURGE_OFFLINE_AFTER}"]
    return argv, env


def exec_flower(settings: Settings) -> None:
    """Replace this process with Flower, so signals from honcho or systemd reach it directly."""
    argv, env = flower_command(settings)
    os.execve(argv[0], argv, env)
