"""`python -m sandbox.hubspot`: run the HubSpot sandbox server (see README.md for the options)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from types import FrameType

from sandbox.common import FaultConfig, serve

from .app import build_app
from .ratelimit import LimitSettings
from .state import Config, Sandbox

DEFAULT_TOKEN = "pat-na1-sandbox-token"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sandbox.hubspot", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8482)
    p.add_argument("--token", action="append", help="private-app token (repeatable: one per app); "
                   f"default {DEFAULT_TOKEN}")
    p.add_argument("--portal-id", type=int, default=12345678)
    p.add_argument("--burst-limit", type=int, default=190, help="requests per rolling 10 s per token")
    p.add_argument("--daily-limit", type=int, default=1_000_000, help="requests per day per account")
    p.add_argument("--daily-reset-utc-offset", type=float, default=0.0,
                   help="hours from UTC of the account time zone (the daily limit resets at its midnight)")
    p.add_argument("--search-limit", type=int, default=5, help="search requests per second per account")
    p.add_argument("--associations-limit", type=int, default=150, help="association requests per 10 s per token")
    p.add_argument("--search-lag", type=float, default=2.0, help="seconds before writes show in search")
    p.add_argument("--retry-after", action="store_true", help="add Retry-After to 429s (unverified in HubSpot)")
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--rate-limit-rate", type=float, default=0.0)
    p.add_argument("--locked-rate", type=float, default=0.0)
    p.add_argument("--drop-rate", type=float, default=0.0)
    p.add_argument("--slow-rate", type=float, default=0.0)
    p.add_argument("--slow-seconds", type=float, default=0.5)
    p.add_argument("--timeout-rate", type=float, default=0.0)
    p.add_argument("--fault-seed", type=int, default=None)
    p.add_argument("--state-file", type=Path, default=None, help="load at start, save on shutdown and on "
                   "POST /_sandbox/save")
    p.add_argument("--log-capacity", type=int, default=20_000, help="requests kept by /_sandbox/requests")
    p.add_argument("--log-level", default="warning")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> Config:
    faults = FaultConfig(error_rate=args.error_rate, rate_limit_rate=args.rate_limit_rate,
                         locked_rate=args.locked_rate, drop_rate=args.drop_rate, slow_rate=args.slow_rate,
                         slow_seconds=args.slow_seconds, timeout_rate=args.timeout_rate, seed=args.fault_seed)
    faults.update({"error_rate": args.error_rate})  # FaultConfig.update validates the 0..1 range
    for name in ("rate_limit_rate", "locked_rate", "drop_rate", "slow_rate", "timeout_rate"):
        faults.update({name: getattr(args, name)})
    limits = LimitSettings(burst_limit=args.burst_limit, daily_limit=args.daily_limit,
                           search_limit=args.search_limit, associations_limit=args.associations_limit,
                           search_lag=args.search_lag, retry_after=args.retry_after,
                           daily_reset_utc_offset_hours=args.daily_reset_utc_offset)
    return Config(tokens=args.token or [DEFAULT_TOKEN], portal_id=args.portal_id, state_file=args.state_file,
                  log_capacity=args.log_capacity, limits=limits, faults=faults)


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    sandbox = Sandbox(config_from_args(args))
    if sandbox.load():
        logging.getLogger("sandbox.hubspot").warning("state loaded from %s", args.state_file)
    # uvicorn shuts down gracefully (running the lifespan save) and then re-raises SIGTERM/SIGINT to
    # the handler that was installed before it: this one, so the process exits with status 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    serve(build_app(sandbox), args.host, args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
