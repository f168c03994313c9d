"""
``python -m airflow_provider_fluents_tines.sandbox``: serve the sandbox until interrupted.

It binds loopback only unless ``--allow-non-loopback`` is given: a ``--host`` outside
``127.0.0.0/8``, ``::1`` and ``localhost`` is refused (exit status 2) before anything is bound.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from airflow_provider_fluents_tines.sandbox import (
    SandboxServer,
    connection_env,
    is_loopback,
    non_loopback_refusal,
)
from airflow_provider_fluents_tines.sandbox.models import NUMBER_SHAPES
from airflow_provider_fluents_tines.sandbox.state import (
    DEFAULT_FLUENTS_TOKEN,
    DEFAULT_TINES_TOKEN,
    RateLimit,
    SandboxState,
)

FLUENTS_TOKEN_ENV = "FLUENTS_TINES_SANDBOX_FLUENTS_TOKEN"
TINES_TOKEN_ENV = "FLUENTS_TINES_SANDBOX_TINES_TOKEN"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_fluents_tines.sandbox",
        description="Serve a local emulator of the Fluents and Tines APIs.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to bind (default 127.0.0.1); one that is not loopback needs --allow-non-loopback",
    )
    parser.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="allow a --host that is not loopback (127.0.0.0/8, ::1, localhost): anyone who reaches "
        "it can use the default keys and the unauthenticated admin API",
    )
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
    parser.add_argument(
        "--fluents-number-shape",
        choices=NUMBER_SHAPES,
        default="embedded",
        help="GET /v1/numbers shows the agent and the telephony account connection as objects "
        "(embedded, the default) or as ids (normalized)",
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.allow_non_loopback and not is_loopback(args.host):
        parser.error(non_loopback_refusal(args.host, "--allow-non-loopback"))
    try:
        seed = json.loads(args.seed.read_text(encoding="utf-8")) if args.seed else None
        state = SandboxState(
            seed,
            fluents_token=args.fluents_token,
            tines_token=args.tines_token,
            visibility_lag=args.visibility_lag,
            rate_limit=RateLimit(args.rate_limit, args.rate_limit_max, args.rate_limit_window),
            fluents_number_shape=args.fluents_number_shape,
        )
    except (OSError, ValueError) as err:
        parser.error(str(err))
    if not is_loopback(args.host):
        print(f"warning: the sandbox is reachable on {args.host}, with no authentication", file=sys.stderr)
    server = SandboxServer(
        args.host, args.port, state=state, allow_non_loopback=args.allow_non_loopback
    ).start()
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
