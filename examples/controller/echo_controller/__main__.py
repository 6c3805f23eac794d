"""`python -m echo_controller`: the echo controller as a process of its own.

It talks to `--apiserver HOST:PORT`, else to the cluster whose home is
`--home` (else $KUBEMU_HOME, else ~/.kubemu, as the kubemu command does). It
runs until SIGTERM or SIGINT, then stops its workers and its watch and exits 0.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from kubemu.client import Client
from kubemu.client.config import apiserver_or_exit

from echo_controller.controller import NAME, EchoController


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="echo_controller", description=(
        "Keep a ConfigMap <name>-echo, with the same data, for every ConfigMap "
        "labelled example.kubemu.dev/echo=true."))
    parser.add_argument("--apiserver", default="", metavar="HOST:PORT",
                        help="the apiserver's address (default: from the cluster's home)")
    parser.add_argument("--home", default=None, metavar="DIR",
                        help="a kubemu cluster's home (default: $KUBEMU_HOME, else ~/.kubemu)")
    parser.add_argument("--namespace", default="", help="watch only this namespace")
    parser.add_argument("--workers", type=int, default=2, help="syncs at once (default 2)")
    parser.add_argument("--timeout-s", type=float, default=10.0,
                        help="deadline of each API call (default 10)")
    return parser.parse_args(argv)


async def main_async(args: argparse.Namespace) -> None:
    address = apiserver_or_exit(args.apiserver, args.home)
    async with Client(address, timeout_s=args.timeout_s, user_agent=NAME) as client:
        controller = EchoController(client, namespace=args.namespace, workers=args.workers)
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await controller.run()
        except asyncio.CancelledError:
            logging.getLogger(NAME).info("stopped")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.workers <= 0:
        raise SystemExit(f"error: --workers must be > 0, got {args.workers}")
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
