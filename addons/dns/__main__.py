"""python -m addons.dns: the cluster DNS server (the coredns image runs this).

Takes CoreDNS's `-conf FILE` (kubeadm's Corefile from the ConfigMap volume:
port, cluster zone, ttl, health/ready/prometheus addresses, forward
upstreams; see corefile.py) and flags of our own that override it. Listens
on $POD_IP (the kubelet sets it), else 127.0.0.1. Reaches the apiserver as an
in-cluster client (KUBERNETES_SERVICE_HOST/PORT) unless --apiserver or
--home says where.
"""
from __future__ import annotations

import argparse
import os
import sys

from addons.dns import corefile
from addons.dns.server import DnsServer, Options, default_upstreams, upstream_address
from kubemu import aio
from kubemu import log as kubemu_log
from kubemu.client.config import ClusterNotFound, in_cluster_config, load_cluster_config
from kubemu.server import stop_requested

DEFAULT_METRICS = ":9153"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m addons.dns", description=__doc__.split("\n")[0])
    p.add_argument("-conf", "--conf", dest="conf", default="",
                   help="a CoreDNS Corefile (kubeadm's ConfigMap coredns)")
    p.add_argument("--listen", default="",
                   help="host:port for DNS over UDP and TCP (default: $POD_IP, else 127.0.0.1, "
                        "and the Corefile's port, else 53)")
    p.add_argument("--cluster-domain", default="", help="the cluster zone (default cluster.local)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--apiserver", default="", help="the apiserver's host:port")
    where.add_argument("--home", default=None,
                       help="find the apiserver in this cluster home's kubeconfig.json")
    p.add_argument("--upstream", action="append", default=[], metavar="IP",
                   help="forward names outside the zone here (default: the Corefile's forward, "
                        "else /etc/resolv.conf's nameservers)")
    p.add_argument("--forward-timeout-s", type=float, default=2.0)
    p.add_argument("--health", default=None, help="host:port of /health (default :8080)")
    p.add_argument("--ready", default=None, help="host:port of /ready (default :8181)")
    p.add_argument("--metrics", default=None, help="host:port of /metrics (default :9153)")
    p.add_argument("--log-file", default=None)
    p.add_argument("--log-level", default="info")
    # CoreDNS's other flags (-dns.port, -quiet, ...) are accepted for images' args.
    args, unknown = p.parse_known_args(argv)
    args.ignored = unknown
    if args.forward_timeout_s <= 0:
        p.error("--forward-timeout-s must be > 0")
    for upstream in args.upstream:
        try:
            upstream_address(upstream)
        except ValueError as err:
            p.error(f"--upstream: {err}")
    return args


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read(corefile.CORE_FILE_BYTES_MAX + 1)


def upstreams_of(forward: list[str], own: set[str]) -> list[str]:
    """The forward plugin's TO list: addresses, or resolv.conf files to read."""
    found: list[str] = []
    for target in forward:
        target = target.removeprefix("dns://")
        if target.startswith("/"):
            try:
                found.extend(corefile.resolv_conf_nameservers(_read(target)))
            except OSError:
                continue
        else:
            found.append(target)
    return default_upstreams(found, own)


def options_from(args: argparse.Namespace) -> Options:
    if args.conf:
        try:
            cfg = corefile.parse(_read(args.conf))
        except OSError as err:
            raise SystemExit(f"error: -conf {args.conf}: {err.strerror}") from None
        except corefile.CorefileError as err:
            raise SystemExit(f"error: {err}") from None
    else:
        cfg = corefile.Config(health=corefile.DEFAULT_HEALTH, ready=corefile.DEFAULT_READY,
                              prometheus=DEFAULT_METRICS, forward=["/etc/resolv.conf"])
    host = os.environ.get("POD_IP") or "127.0.0.1"
    port = cfg.port
    if args.listen:
        listen_host, _, text = args.listen.rpartition(":")
        if not text.isdigit():
            raise SystemExit(f"error: --listen {args.listen!r}: expected host:port")
        host, port = listen_host.strip("[]") or host, int(text)
    if args.apiserver:
        apiserver = args.apiserver
    else:
        try:
            apiserver = (load_cluster_config(args.home).apiserver if args.home is not None
                         else in_cluster_config().apiserver)
        except ClusterNotFound as err:
            raise SystemExit(f"error: {err}") from None
    upstreams = args.upstream or upstreams_of(cfg.forward, {host})
    return Options(
        apiserver=apiserver, listen_host=host, port=port,
        cluster_domain=(args.cluster_domain or cfg.cluster_domain).strip("."), ttl_s=cfg.ttl_s,
        upstreams=upstreams, forward_timeout_s=args.forward_timeout_s,
        health=cfg.health if args.health is None else args.health,
        ready=cfg.ready if args.ready is None else args.ready,
        metrics=cfg.prometheus if args.metrics is None else args.metrics)


async def run(options: Options) -> None:
    stop = stop_requested()
    server = DnsServer(options)
    try:
        await server.start()
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = kubemu_log.configure("dns", log_file=args.log_file, level=args.log_level)
    options = options_from(args)
    if args.ignored:
        log.info("flags ignored", flags=args.ignored)
    try:
        aio.run(run(options))
    except OSError as err:
        # Most often: port 53 without the privilege to bind it.
        print(f"error: listen {options.listen_host}:{options.port}: {err.strerror or err}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
