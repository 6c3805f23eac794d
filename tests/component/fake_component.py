"""A stand-in component for supervisor tests: a gRPC server with grpc.health.v1 only.

Takes the apiserver's flags (--listen, --etcd-endpoints, --log-file) and a few
to misbehave on purpose:
  --exit-code N        print an error and exit with N at once
  --not-serving        listen, but answer health checks with NOT_SERVING
  --ignore-sigterm     keep running on SIGTERM (only SIGKILL stops it)
Run as `python tests/component/fake_component.py ...`.
"""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


async def serve(args: argparse.Namespace) -> int:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    try:
        server.add_insecure_port(args.listen)
    except RuntimeError as exc:  # grpc's way of saying the port is taken
        print(f"fake_component: cannot listen on {args.listen}: {exc}", file=sys.stderr, flush=True)
        return 1
    await server.start()
    status = (health_pb2.HealthCheckResponse.NOT_SERVING if args.not_serving
              else health_pb2.HealthCheckResponse.SERVING)
    await servicer.set("", status)
    print(f"fake_component: serving on {args.listen}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if args.ignore_sigterm:
        loop.add_signal_handler(signal.SIGTERM, lambda: None)
    else:
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(1.0)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    parser.add_argument("--etcd-endpoints", default="")
    parser.add_argument("--log-file", default="")
    parser.add_argument("--exit-code", type=int, default=None)
    parser.add_argument("--not-serving", action="store_true")
    parser.add_argument("--ignore-sigterm", action="store_true")
    args = parser.parse_args()
    if args.exit_code is not None:
        print(f"fake_component: failing on purpose with exit code {args.exit_code}",
              file=sys.stderr, flush=True)
        return args.exit_code
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
