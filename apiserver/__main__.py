"""python -m apiserver: the kubemu apiserver (gRPC over a real etcd)."""
from __future__ import annotations

import argparse
import asyncio

from apiserver.app import APIServer, Options
from kubemu import log as kubemu_log
from kubemu import server as grpc_server
from kubemu.cli.common import parse_duration_s


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m apiserver", description=__doc__)
    d = Options()
    p.add_argument("--listen", default=d.listen, help="host:port to serve on (port 0 picks one)")
    p.add_argument("--etcd-endpoints", default=d.etcd_endpoint,
                   help="etcd client endpoints, host:port[,host:port...]: every member of the "
                        "cluster; requests go to one that answers, another when it fails")
    p.add_argument("--etcd-timeout-s", type=float, default=d.etcd_timeout_s)
    p.add_argument("--watch-cache-size", type=int, default=d.watch_cache_size,
                   help="events kept per resource for watches from an older version")
    p.add_argument("--watch-backlog-max", type=int, default=d.watch_backlog_max,
                   help="events queued for one slow watcher before it is closed")
    p.add_argument("--bookmark-interval-s", type=float, default=d.bookmark_interval_s)
    p.add_argument("--compaction-interval-s", type=float, default=d.compaction_interval_s,
                   help="compact etcd this often (0: never)")
    p.add_argument("--shutdown-grace-s", type=float, default=d.shutdown_grace_s)
    p.add_argument("--default-not-ready-toleration-seconds", type=int,
                   default=d.default_toleration_s,
                   help="tolerationSeconds of the toleration for node.kubernetes.io/not-ready:"
                        "NoExecute added to every pod without one (default 300)")
    p.add_argument("--default-unreachable-toleration-seconds", type=int,
                   default=d.default_unreachable_toleration_s,
                   help="the same for node.kubernetes.io/unreachable:NoExecute (default 300)")
    p.add_argument("--service-cluster-ip-range", default=d.service_cluster_ip_range,
                   help="CIDR (inside 127.0.0.0/8) ClusterIPs are allocated from; its first "
                        "address is the `kubernetes` Service's")
    p.add_argument("--service-node-port-range", default=d.service_node_port_range,
                   help="ports NodePort Services are allocated from, as lo-hi")
    p.add_argument("--endpoint-reconcile-interval-s", type=float,
                   default=d.endpoint_reconcile_s,
                   help="how often this apiserver renews its lease and the kubernetes "
                        "Service's endpoints")
    p.add_argument("--metric-resolution", type=parse_duration_s, default=d.metric_resolution_s,
                   metavar="DURATION",
                   help="how long a node's metrics sample (the metrics API) is served before "
                        "the node is asked again, as metrics-server's flag (default 15s)")
    p.add_argument("--event-ttl", type=parse_duration_s, default=float(d.event_ttl_s),
                   metavar="DURATION",
                   help="how long an Event is kept after its last write, a Go duration "
                        "(default 1h; under 1s: forever)")
    p.add_argument("--address-file", default="", help="write the bound address here")
    p.add_argument("--fault-dir", default="",
                   help="fault points (kubemu.faults) fail while a file of their name is here, "
                        "e.g. etcd-watch-pods")
    p.add_argument("--log-file", default=None)
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    options = Options(
        listen=args.listen, etcd_endpoint=",".join(
            e.strip().removeprefix("http://") for e in args.etcd_endpoints.split(",") if e.strip()),
        etcd_timeout_s=args.etcd_timeout_s, watch_cache_size=args.watch_cache_size,
        watch_backlog_max=args.watch_backlog_max, bookmark_interval_s=args.bookmark_interval_s,
        compaction_interval_s=args.compaction_interval_s,
        shutdown_grace_s=args.shutdown_grace_s,
        address_file=args.address_file, fault_dir=args.fault_dir,
        default_toleration_s=args.default_not_ready_toleration_seconds,
        default_unreachable_toleration_s=args.default_unreachable_toleration_seconds,
        service_cluster_ip_range=args.service_cluster_ip_range,
        service_node_port_range=args.service_node_port_range,
        endpoint_reconcile_s=args.endpoint_reconcile_interval_s,
        metric_resolution_s=args.metric_resolution,
        event_ttl_s=max(0, int(args.event_ttl)))
    asked = grpc_server.stop_requested()
    try:
        server = APIServer(options)
    except ValueError as err:  # a flag out of bounds: refuse to start
        raise SystemExit(f"apiserver: {err}") from None
    await server.start()
    await asked.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    kubemu_log.configure("apiserver", log_file=args.log_file, level=args.log_level)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
