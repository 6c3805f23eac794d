"""python -m kube_proxy: kubemu's kube-proxy (one per node).

Finds the apiserver through --apiserver, else the cluster home's
kubeconfig.json (--kubeconfig-home, else $KUBEMU_HOME, else ~/.kubemu).
Serves Services' ClusterIPs, LoadBalancer ingress IPs and externalIPs (with
SO_REUSEPORT, shared with every other node's kube-proxy) and NodePorts on
--node-ip. Serves grpc.health.v1 (SERVING once the first sync is applied)
and the metrics method (see kube_proxy.app) on --health-listen. Stops
gracefully on SIGTERM/SIGINT: listeners close, connections drain. Exit
status 2: bad flags.
"""
from __future__ import annotations

import argparse
import ipaddress
import sys

from kubemu import aio
from kubemu import log as kubemu_log
from kubemu import server as grpc_server
from kubemu.client.config import apiserver_or_exit

from kube_proxy.app import KubeProxyApp, Options
from kube_proxy.balancer import MODES
from kube_proxy.proxy import Limits



def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = Options(apiserver="-", node_name="-", node_ip="-")
    lim = d.limits
    p = argparse.ArgumentParser(prog="python -m kube_proxy", description=__doc__.split("\n")[0])
    where = p.add_mutually_exclusive_group()
    where.add_argument("--apiserver", metavar="ADDRESS", help="the apiserver's host:port")
    where.add_argument("--kubeconfig-home", metavar="HOME",
                       help="find the apiserver in HOME/kubeconfig.json (default: $KUBEMU_HOME, "
                            "else ~/.kubemu)")
    p.add_argument("--node-name", required=True, help="this node's name (externalTrafficPolicy "
                   "and internalTrafficPolicy Local keep endpoints whose nodeName is this)")
    p.add_argument("--node-ip", required=True, help="this node's address: NodePorts listen here")
    p.add_argument("--balance", choices=MODES, default=d.balance,
                   help="how a new connection picks among ready endpoints")
    p.add_argument("--seed", type=int, default=None, help="seed of the random choice")
    p.add_argument("--connections-max", type=int, default=lim.connections_max,
                   help="TCP connections at once per listener; more are reset")
    p.add_argument("--connect-timeout-s", type=float, default=lim.connect_timeout_s,
                   help="one connect try to an endpoint")
    p.add_argument("--connect-tries-max", type=int, default=lim.connect_tries_max,
                   help="endpoints tried for one connection")
    p.add_argument("--udp-sessions-max", type=int, default=lim.udp_sessions_max,
                   help="UDP client sessions per listener; the least recently used goes")
    p.add_argument("--udp-timeout-s", type=float, default=lim.udp_idle_timeout_s,
                   help="an idle UDP session ends after this")
    p.add_argument("--min-sync-period-s", type=float, default=d.min_sync_period_s)
    p.add_argument("--sync-period-s", type=float, default=d.resync_s,
                   help="full resync (and retry of failed listeners) at least this often")
    p.add_argument("--drain-s", type=float, default=d.drain_s,
                   help="at stop, connections get this long to end")
    p.add_argument("--rpc-timeout-s", type=float, default=d.rpc_timeout_s)
    p.add_argument("--health-listen", default=d.health_listen, metavar="HOST:PORT",
                   help="grpc.health.v1 and metrics address (port 0 picks one)")
    p.add_argument("--address-file", default="", help="write the health address here")
    p.add_argument("--log-file", default=None)
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    try:
        ipaddress.IPv4Address(args.node_ip)
    except ValueError:
        p.error(f"--node-ip: not an IPv4 address: {args.node_ip!r}")
    for name in ("connections_max", "connect_tries_max", "udp_sessions_max"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be > 0")
    for name in ("connect_timeout_s", "udp_timeout_s", "sync_period_s", "rpc_timeout_s"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be > 0")
    if args.min_sync_period_s < 0 or args.drain_s < 0:
        p.error("--min-sync-period-s and --drain-s must be >= 0")
    return args


def options_from(args: argparse.Namespace, apiserver: str) -> Options:
    return Options(
        apiserver=apiserver, node_name=args.node_name, node_ip=args.node_ip,
        health_listen=args.health_listen, address_file=args.address_file,
        rpc_timeout_s=args.rpc_timeout_s, balance=args.balance, seed=args.seed,
        limits=Limits(connections_max=args.connections_max,
                      connect_timeout_s=args.connect_timeout_s,
                      connect_tries_max=args.connect_tries_max,
                      udp_sessions_max=args.udp_sessions_max,
                      udp_idle_timeout_s=args.udp_timeout_s),
        min_sync_period_s=args.min_sync_period_s, resync_s=args.sync_period_s,
        drain_s=args.drain_s)


async def run(options: Options) -> None:
    stop = grpc_server.stop_requested()
    await KubeProxyApp(options).run(stop)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    apiserver = apiserver_or_exit(args.apiserver, args.kubeconfig_home)
    kubemu_log.configure("kube-proxy", log_file=args.log_file, level=args.log_level,
                         node=args.node_name)
    aio.run(run(options_from(args, apiserver)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
