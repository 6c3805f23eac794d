"""python -m scheduler: kubemu's kube-scheduler (one process; several may run, one leads).

Finds the apiserver through --apiserver, else the cluster home's kubeconfig.json
(--kubeconfig-home, else $KUBEMU_HOME, else ~/.kubemu). Serves grpc.health.v1 on
--health-listen (SERVING once its caches are synced, leader or standby). Stops
gracefully on SIGTERM/SIGINT: scheduling stops, the lease is released so a
standby takes over at once. Exit status 2: bad flags or --config.
"""
from __future__ import annotations

import argparse
import asyncio
import sys

from kubemu import log as kubemu_log
from kubemu import server as grpc_server
from kubemu.client import leaderelection
from kubemu.client.config import apiserver_or_exit

from scheduler.app import LEASE_NAME, LEASE_NAMESPACE, Options, SchedulerApp
from scheduler.config import load_framework
from scheduler.framework import DEFAULT_SCHEDULER_NAME, ConfigError

EXIT_USAGE = 2




def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = Options(apiserver="-", identity="-")
    p = argparse.ArgumentParser(prog="python -m scheduler", description=__doc__.split("\n")[0])
    where = p.add_mutually_exclusive_group()
    where.add_argument("--apiserver", metavar="ADDRESS", help="the apiserver's host:port")
    where.add_argument("--kubeconfig-home", metavar="HOME",
                       help="find the apiserver in HOME/kubeconfig.json (default: $KUBEMU_HOME, "
                            "else ~/.kubemu)")
    p.add_argument("--scheduler-name", default=DEFAULT_SCHEDULER_NAME,
                   help="schedule pods whose spec.schedulerName is this")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="a KubeSchedulerConfiguration (or one profile) in YAML: plugins, "
                        "weights, pluginConfig")
    leaderelection.add_flags(p, namespace=LEASE_NAMESPACE, name=LEASE_NAME,
                             lease_duration_s=d.lease_duration_s,
                             renew_deadline_s=d.renew_deadline_s,
                             retry_period_s=d.retry_period_s, leader_elect=d.leader_elect)
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the tie-breaking random generator (default: random)")
    p.add_argument("--pod-initial-backoff-s", type=float, default=d.pod_initial_backoff_s)
    p.add_argument("--pod-max-backoff-s", type=float, default=d.pod_max_backoff_s)
    p.add_argument("--bind-concurrency", type=int, default=d.bind_concurrency,
                   help="binds in flight at once")
    p.add_argument("--rpc-timeout-s", type=float, default=d.rpc_timeout_s)
    p.add_argument("--event-series-heartbeat-s", type=float,
                   default=d.event_series_heartbeat_s,
                   help="write a repeated event's series count at most this often "
                        "(client-go's 30 minutes)")
    p.add_argument("--health-listen", default=d.health_listen, metavar="HOST:PORT",
                   help="grpc.health.v1 address (port 0 picks one)")
    p.add_argument("--address-file", default="", help="write the health address here")
    p.add_argument("--log-file", default=None)
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    leaderelection.check_flags(p, args)
    if not 0 < args.pod_initial_backoff_s <= args.pod_max_backoff_s:
        p.error("need 0 < --pod-initial-backoff-s <= --pod-max-backoff-s")
    if args.bind_concurrency <= 0 or args.rpc_timeout_s <= 0 or \
            args.event_series_heartbeat_s <= 0:
        p.error("--bind-concurrency, --rpc-timeout-s and --event-series-heartbeat-s "
                "must be > 0")
    return args


def options_from(args: argparse.Namespace, apiserver: str) -> Options:
    return Options(
        apiserver=apiserver, scheduler_name=args.scheduler_name,
        leader_elect=args.leader_elect, lease_namespace=args.leader_elect_resource_namespace,
        lease_name=args.leader_elect_resource_name, lease_duration_s=args.lease_duration_s,
        renew_deadline_s=args.renew_deadline_s, retry_period_s=args.retry_period_s,
        identity=args.identity, seed=args.seed,
        pod_initial_backoff_s=args.pod_initial_backoff_s,
        pod_max_backoff_s=args.pod_max_backoff_s, health_listen=args.health_listen,
        address_file=args.address_file, rpc_timeout_s=args.rpc_timeout_s,
        bind_concurrency=args.bind_concurrency,
        event_series_heartbeat_s=args.event_series_heartbeat_s)


async def run(options: Options, framework) -> None:
    stop = grpc_server.stop_requested()
    await SchedulerApp(options, framework).run(stop)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        framework = load_framework(args.config, args.scheduler_name)
    except ConfigError as exc:
        print(f"error: --config: {exc}", file=sys.stderr)
        return EXIT_USAGE
    apiserver = apiserver_or_exit(args.apiserver, args.kubeconfig_home)
    kubemu_log.configure("scheduler", log_file=args.log_file, level=args.log_level)
    asyncio.run(run(options_from(args, apiserver), framework))
    return 0


if __name__ == "__main__":
    sys.exit(main())
