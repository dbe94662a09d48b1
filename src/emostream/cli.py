"""The ``emostream`` command: run the local stack, generate reactions, listen to a stream, mint
sender and viewer tokens."""

import argparse
import os
import shutil
import sys

from emostream.common import endpoints
from emostream.common.errors import EmostreamError
from emostream.common.events import DEFAULT_STREAM_ID
from emostream.common.logging import configure_logging


def _stack(args: argparse.Namespace) -> int:
    from emostream.localstack.stack import LocalStack  # noqa: PLC0415 - keeps `listen` light

    stack = LocalStack()
    if args.action == "up":
        print("Starting the Emostream stack (first run fetches jars from Maven Central) ...")
        stack.up(print)
        s = stack.settings
        print(
            f"\nEmostream is up.\n"
            f"  ingest   POST http://127.0.0.1:{s.ingest_port}/v1/streams/<stream>/reactions\n"
            f"  swarms   curl -N http://127.0.0.1:{s.fanout_port}/v1/streams/default/events\n"
            f"  viewer   http://127.0.0.1:{s.fanout_port}/watch/default\n"
            f"  metrics  http://127.0.0.1:{s.ingest_metrics_port}/metrics (ingest)\n"
            f"           http://127.0.0.1:{s.fanout_metrics_port}/metrics (fanout)\n"
            f"           http://127.0.0.1:{s.aggregate_metrics_port}/metrics (aggregation)\n"
            f"  logs     {stack.procs.log_dir}/"
        )
    elif args.action == "down":
        stack.down(print)
    elif args.action == "status":
        for name, pid, ready, url, metrics_url in stack.status():
            state = "ready" if ready else ("starting/unhealthy" if pid else "stopped")
            print(f"{name:<10} {state:<18} pid={pid or '-':<8} {url}")
            if metrics_url and metrics_url != url:
                print(f"{'':<10} {'':<18} {'':<12} metrics {metrics_url}")
    elif args.action == "logs":
        files = [str(p) for p in stack.log_files() if p.exists()]
        if not files:
            print("no logs yet: run `emostream stack up`")
            return 1
        tail = shutil.which("tail") or "/usr/bin/tail"
        follow = ["-F"] if args.follow else []
        os.execv(tail, [tail, "-n", str(args.lines), *follow, *files])  # noqa: S606
    return 0


def _generate(args: argparse.Namespace) -> int:
    from emostream.loadgen.generator import run_generator  # noqa: PLC0415
    from emostream.loadgen.settings import LoadSettings  # noqa: PLC0415

    settings = LoadSettings()
    run_generator(
        args.ingest_url,
        args.streams,
        args.rate,
        args.duration,
        token=settings.token(),
        admin_token=settings.admin_token(),
    )
    return 0


def _listen(args: argparse.Namespace) -> int:
    from emostream.client import listen  # noqa: PLC0415

    listen(args.stream, args.fanout_url)
    return 0


def _token(args: argparse.Namespace) -> int:
    from emostream.common.settings import ServerSettings  # noqa: PLC0415
    from emostream.common.tokens import mint, mint_legacy_viewer_token  # noqa: PLC0415
    from emostream.fanout.settings import FanoutSettings  # noqa: PLC0415

    if args.legacy:
        legacy = FanoutSettings().viewer_token_secret
        if legacy is None or args.sender or len(args.streams) != 1:
            print(
                "emostream: error: --legacy makes a viewer token of one stream and needs "
                "EMOSTREAM_VIEWER_TOKEN_SECRET",
                file=sys.stderr,
            )
            return 1
        secret = legacy.get_secret_value().encode()
        print(mint_legacy_viewer_token(secret, args.streams[0], ttl_s=args.ttl))
        return 0
    key = ServerSettings().token_secret
    if key is None:
        print("emostream: error: set EMOSTREAM_TOKEN_SECRET (HS256)", file=sys.stderr)
        return 1
    if args.sender:
        token = mint(key.get_secret_value(), subject=args.sender, send=args.streams, ttl_s=args.ttl)
    else:
        token = mint(key.get_secret_value(), view=args.streams, ttl_s=args.ttl)
    print(token)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emostream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    stack = sub.add_parser("stack", help="run Kafka, Redis, Spark, ingest and fanout locally")
    stack.add_argument("action", choices=["up", "down", "status", "logs"])
    stack.add_argument("-f", "--follow", action="store_true", help="logs: keep following")
    stack.add_argument("-n", "--lines", type=int, default=40, help="logs: lines per part")
    stack.set_defaults(func=_stack)

    gen = sub.add_parser(
        "generate",
        help="send simulated viewers' reactions (a token: EMOSTREAM_LOAD_TOKEN or "
        "EMOSTREAM_LOAD_TOKEN_SECRET; a closed registry's streams are opened with "
        "EMOSTREAM_LOAD_ADMIN_TOKEN)",
    )
    gen.add_argument("--ingest-url", default=endpoints.INGEST_URL)
    gen.add_argument("--streams", default=DEFAULT_STREAM_ID, help="comma-separated stream ids")
    gen.add_argument("--rate", type=float, default=200.0, help="reactions per second")
    gen.add_argument("--duration", type=float, default=0.0, help="seconds; 0 runs until Ctrl-C")
    gen.set_defaults(func=_generate)

    listen = sub.add_parser("listen", help="print a stream's swarms as they arrive")
    listen.add_argument("stream")
    listen.add_argument("--fanout-url", default=endpoints.FANOUT_URL)
    listen.set_defaults(func=_listen)

    token = sub.add_parser(
        "token",
        help="print a signed token (HS256 JWT, secret: EMOSTREAM_TOKEN_SECRET): a viewer token "
        "of the streams, or with --sender a sender token",
    )
    token.add_argument("streams", nargs="+", metavar="stream", help='stream ids ("*": any)')
    token.add_argument("--sender", metavar="USER_ID", help="a sender token for this user id")
    token.add_argument("--ttl", type=int, default=3600, help="seconds the token stays valid")
    token.add_argument(
        "--legacy",
        action="store_true",
        help="an earlier release's <expiry>.<mac> viewer token (EMOSTREAM_VIEWER_TOKEN_SECRET)",
    )
    token.set_defaults(func=_token)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``emostream`` console script."""
    args = _parser().parse_args(argv)
    configure_logging("WARNING" if args.command == "stack" else "INFO")
    try:
        return int(args.func(args))
    except EmostreamError as exc:
        print(f"emostream: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
