"""`python -m sandbox.commercetools`: seed a shop and serve the commercetools sandbox over HTTP."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

from sandbox.common import FaultConfig, serve

from .app import Settings, build_app
from .store import parse_ms


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sandbox.commercetools", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8481)
    p.add_argument("--project-key", default="sandbox-shop")
    p.add_argument("--client-id", default="ctsync-sandbox")
    p.add_argument("--client-secret", default="ctsync-sandbox-secret")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--size", type=int, default=2000, help="number of customers to seed")
    p.add_argument("--anchor", default=None,
                   help="ISO instant all seeded timestamps precede (default: today 00:00 UTC)")
    p.add_argument("--token-lifetime", type=int, default=172_800, help="access token lifetime in seconds")
    p.add_argument("--messages-disabled", action="store_true", help="answer GET /messages with 400")
    p.add_argument("--message-retention-days", type=int, default=15,
                   help="seeded messages older than this are not kept (0 = keep all)")
    p.add_argument("--log-capacity", type=int, default=20_000)
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--error-statuses", default="502,503")
    p.add_argument("--slow-rate", type=float, default=0.0)
    p.add_argument("--slow-seconds", type=float, default=0.5)
    p.add_argument("--timeout-rate", type=float, default=0.0, help="share of 504s (after --slow-seconds)")
    p.add_argument("--drop-rate", type=float, default=0.0)
    p.add_argument("--fault-seed", type=int, default=None)
    p.add_argument("--log-level", default="warning")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    faults = FaultConfig(error_rate=args.error_rate,
                         error_statuses=[int(s) for s in args.error_statuses.split(",") if s.strip()],
                         slow_rate=args.slow_rate, slow_seconds=args.slow_seconds, timeout_rate=args.timeout_rate,
                         drop_rate=args.drop_rate, seed=args.fault_seed)
    settings = Settings(project_key=args.project_key, client_id=args.client_id, client_secret=args.client_secret,
                        seed=args.seed, size=args.size, token_lifetime=args.token_lifetime,
                        messages_enabled=not args.messages_disabled,
                        message_retention_days=args.message_retention_days,
                        anchor_ms=parse_ms(args.anchor) if args.anchor else None,
                        log_capacity=args.log_capacity, faults=faults)
    started = time.perf_counter()
    app, sandbox = build_app(settings)
    counts = {name: len(col) for name, col in sandbox.store.collections.items()}
    print(f"commercetools sandbox ready on http://{args.host}:{args.port} project={args.project_key} "
          f"seed={args.seed} size={args.size} seeded in {time.perf_counter() - started:.1f}s {counts}",
          flush=True)
    # uvicorn handles SIGTERM itself (graceful shutdown), then re-raises it to the handler that was
    # installed before: make that one a plain exit 0, so a stopped sandbox is not reported as killed.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    serve(app, args.host, args.port, log_level=args.log_level)
    sys.exit(0)


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


if __name__ == "__main__":
    main()
