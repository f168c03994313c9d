"""``python -m airflow_provider_fluents_tines.sandbox``: serve the sandbox until interrupted."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from airflow_provider_fluents_tines.sandbox import SandboxServer, connection_env
from airflow_provider_fluents_tines.sandbox.state import (
    DEFAULT_FLUENTS_TOKEN,
    DEFAULT_TINES_TOKEN,
    RateLimit,
    SandboxState,
)

FLUENTS_TOKEN_ENV = "FLUENTS_TINES_SANDBOX_FLUENTS_TOKEN"
TINES_TOKEN_ENV = "FLUENTS_TINES_SANDBOX_TINES_TOKEN"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_fluents_tines.sandbox",
        description="Serve a local emulator of the Fluents and Tines APIs.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    parser.add_argument("--seed", type=Path, help="JSON seed file (default: the packaged seed)")
    parser.add_argument(
        "--fluents-token",
        default=os.environ.get(FLUENTS_TOKEN_ENV, DEFAULT_FLUENTS_TOKEN),
        help=f"Fluents API key to accept (env {FLUENTS_TOKEN_ENV}; default {DEFAULT_FLUENTS_TOKEN})",
    )
    parser.add_argument(
        "--tines-token",
        default=os.environ.get(TINES_TOKEN_ENV, DEFAULT_TINES_TOKEN),
        help=f"Tines API key to accept (env {TINES_TOKEN_ENV}; default {DEFAULT_TINES_TOKEN})",
    )
    parser.add_argument(
        "--visibility-lag", type=float, default=0.0, help="seconds before a write shows in reads"
    )
    parser.add_argument("--rate-limit", action="store_true", help="enforce Tines' actions rate limit")
    parser.add_argument("--rate-limit-max", type=int, default=100, help="requests per window (default 100)")
    parser.add_argument(
        "--rate-limit-window", type=float, default=60.0, help="window in seconds (default 60)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    seed = json.loads(args.seed.read_text(encoding="utf-8")) if args.seed else None
    state = SandboxState(
        seed,
        fluents_token=args.fluents_token,
        tines_token=args.tines_token,
        visibility_lag=args.visibility_lag,
        rate_limit=RateLimit(args.rate_limit, args.rate_limit_max, args.rate_limit_window),
    )
    server = SandboxServer(args.host, args.port, state=state).start()
    print(f"Fluents and Tines API sandbox listening on {server.url}")
    print(f"Admin API and docs: {server.url}/_sandbox/docs")
    print("Point Airflow at it with:")
    for name, value in connection_env(
        server.url, fluents_token=args.fluents_token, tines_token=args.tines_token
    ).items():
        print(f"export {name}='{value}'")
    sys.stdout.flush()
    try:
        assert server._thread is not None
        server._thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
