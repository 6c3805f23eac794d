"""python -m kubelet: the node agent (registers the Node, runs the pods bound to it)."""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import pathlib
import sys

from kubelet import node, static_pods
from kubelet.app import Kubelet, Options
from kubemu import log as kubemu_log
from kubemu import server as grpc_server
from kubemu.api import quantity
from kubemu.client.config import ClusterNotFound, load_cluster_config


def _key_values(items: list[str], what: str, parser: argparse.ArgumentParser) -> dict[str, str]:
    out = {}
    for item in items:
        for part in filter(None, item.split(",")):
            key, sep, value = part.partition("=")
            if not sep or not key:
                parser.error(f"{what}: expected KEY=VALUE, got {part!r}")
            out[key] = value
    return out


def _taints(items: list[str], parser: argparse.ArgumentParser) -> list[tuple[str, str, str]]:
    out = []
    for item in items:
        for part in filter(None, item.split(",")):
            head, _, effect = part.partition(":")
            key, _, value = head.partition("=")
            if effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute") or not key:
                parser.error(f"--register-with-taints: expected key[=value]:Effect, got {part!r}")
            out.append((key, value, effect))
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = Options(node_name="", apiserver="", runtime_socket="", root=pathlib.Path("."))
    p = argparse.ArgumentParser(prog="python -m kubelet", description=__doc__)
    p.add_argument("--node-name", required=True)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--apiserver", help="the apiserver's host:port")
    where.add_argument("--home", help="find the apiserver in this cluster home's kubeconfig.json")
    p.add_argument("--runtime-socket", required=True, help="the node runtime's unix socket")
    p.add_argument("--root", type=pathlib.Path, required=True,
                   help="the kubelet's directory (pod volumes, logs, IP table)")
    p.add_argument("--node-ip", default=d.node_ip, help="the node's address (InternalIP)")
    p.add_argument("--port", type=int, default=d.port,
                   help="the kubelet API's port on --node-ip (0: any free one)")
    p.add_argument("--pod-cidr", default=d.pod_cidr, help="pod IPs come from this range")
    p.add_argument("--cpu", default=d.cpu, help="the node's cpu capacity (a quantity)")
    p.add_argument("--memory", default=d.memory, help="the node's memory capacity (a quantity)")
    p.add_argument("--pods", type=int, default=d.pods, help="the node's pod capacity")
    p.add_argument("--ephemeral-storage", default="",
                   help="ephemeral-storage capacity (default: the size of the root's disk)")
    p.add_argument("--node-labels", action="append", default=[], metavar="K=V[,K=V]")
    p.add_argument("--register-with-taints", action="append", default=[],
                   metavar="KEY[=VALUE]:EFFECT")
    p.add_argument("--volumes-dir", type=pathlib.Path, default=None,
                   help="persistentVolumeClaim directories (default: <root>/persistent-volumes)")
    p.add_argument("--pod-env", action="append", default=[], metavar="K=V",
                   help="a variable set in every container (the supervisor's marker by default)")
    p.add_argument("--container-log-max-size", default="10Mi",
                   help="a running container's log is rotated when it reaches this size "
                        "(a quantity)")
    p.add_argument("--container-log-max-files", type=int, default=d.container_log_max_files,
                   help="log files kept per container instance, the live one included (>= 2)")
    p.add_argument("--eviction-hard", default=d.eviction_hard, metavar="SIGNAL<VALUE[,...]",
                   help="hard eviction thresholds: the node reports Memory/Disk/PIDPressure "
                        "when one is crossed (memory.available, nodefs.available, "
                        "pid.available; a quantity or a percentage; setting it replaces "
                        "every default)")
    p.add_argument("--pod-manifest-path", type=pathlib.Path, default=None, metavar="DIR",
                   help="run the pods whose manifests are in this directory (static pods), "
                        "with a mirror pod each in the API (Kubernetes' flag)")
    p.add_argument("--file-check-frequency", default="20s", metavar="DURATION",
                   help="how often the manifest directory is read again (a duration: 20s, "
                        "500ms; Kubernetes' flag and default)")
    p.add_argument("--cluster-dns", default="", metavar="IP[,IP]",
                   help="the cluster DNS server(s): the nameserver of pods with dnsPolicy "
                        "ClusterFirst (Kubernetes' flag; empty: those pods get the Default "
                        "policy, with a MissingClusterDNS event)")
    p.add_argument("--cluster-domain", default=d.cluster_domain,
                   help="the cluster's DNS domain: pods' search list and hostname domain "
                        f"(default {d.cluster_domain})")
    p.add_argument("--resolv-conf", default=d.resolv_conf,
                   help="the resolver configuration pods with dnsPolicy Default start from "
                        "(empty: no DNS for them)")
    p.add_argument("--fault-dir", default="",
                   help="fault points: while DIR/<name> exists, the point <name> fails "
                        "(pleg-relist)")
    timing = p.add_argument_group("timing (Kubernetes defaults)")
    timing.add_argument("--node-status-update-s", type=float, default=d.node_status_update_s)
    timing.add_argument("--node-status-report-s", type=float, default=d.node_status_report_s)
    timing.add_argument("--node-lease-renew-s", type=float, default=d.node_lease_renew_s)
    timing.add_argument("--node-lease-duration-s", type=int, default=d.node_lease_duration_s)
    timing.add_argument("--sync-frequency-s", type=float, default=d.sync_frequency_s,
                        help="every pod is synced at least this often")
    timing.add_argument("--pleg-relist-s", type=float, default=d.pleg_relist_s,
                        help="how often container states are listed")
    timing.add_argument("--crash-backoff-initial-s", type=float,
                        default=d.crash_backoff_initial_s)
    timing.add_argument("--crash-backoff-max-s", type=float, default=d.crash_backoff_max_s)
    timing.add_argument("--crash-backoff-reset-s", type=float, default=d.crash_backoff_reset_s,
                        help="back-off starts over after this long without a restart")
    timing.add_argument("--image-backoff-initial-s", type=float,
                        default=d.image_backoff_initial_s)
    timing.add_argument("--image-backoff-max-s", type=float, default=d.image_backoff_max_s)
    timing.add_argument("--min-grace-s", type=float, default=d.min_grace_s,
                        help="a container always gets at least this long after SIGTERM")
    timing.add_argument("--hook-timeout-s", type=float, default=d.hook_timeout_s,
                        help="bound on a postStart hook")
    timing.add_argument("--log-follow-poll-s", type=float, default=d.log_follow_poll_s)
    timing.add_argument("--container-log-monitor-interval-s", type=float,
                        default=d.container_log_monitor_interval_s,
                        help="how often container logs are checked for rotation")
    timing.add_argument("--start-timeout-s", type=float, default=d.start_timeout_s)
    p.add_argument("--log-file", default=None)
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    try:
        ipaddress.ip_address(args.node_ip)
        ipaddress.ip_network(args.pod_cidr, strict=False)
    except ValueError as err:
        p.error(str(err))
    for name in ("node_status_update_s", "node_status_report_s", "node_lease_renew_s",
                 "sync_frequency_s", "pleg_relist_s", "crash_backoff_initial_s",
                 "crash_backoff_max_s", "crash_backoff_reset_s", "image_backoff_initial_s",
                 "image_backoff_max_s", "log_follow_poll_s", "start_timeout_s",
                 "container_log_monitor_interval_s"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be > 0")
    try:
        args.container_log_max_bytes = quantity.to_int(args.container_log_max_size)
    except ValueError as err:
        p.error(f"--container-log-max-size: {err}")
    if args.container_log_max_bytes <= 0:
        p.error("--container-log-max-size must be > 0")
    if args.container_log_max_files < 2:
        p.error("--container-log-max-files must be >= 2")
    try:
        node.parse_eviction_hard(args.eviction_hard)
    except ValueError as err:
        p.error(f"--eviction-hard: {err}")
    args.node_labels = _key_values(args.node_labels, "--node-labels", p)
    args.taints = _taints(args.register_with_taints, p)
    args.pod_env = _key_values(args.pod_env, "--pod-env", p)
    args.cluster_dns = [ip.strip() for ip in args.cluster_dns.split(",") if ip.strip()]
    for ip in args.cluster_dns:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            p.error(f"--cluster-dns: {ip!r} is not an IP address")
    args.cluster_domain = args.cluster_domain.strip(".")
    try:
        args.file_check_frequency_s = static_pods.parse_duration_s(args.file_check_frequency)
    except ValueError as err:
        p.error(f"--file-check-frequency: {err}")
    return args


def options_from(args: argparse.Namespace) -> Options:
    apiserver = args.apiserver
    if not apiserver:
        try:
            apiserver = load_cluster_config(args.home).apiserver
        except ClusterNotFound as err:
            raise SystemExit(f"error: {err}") from None
    return Options(
        node_name=args.node_name, apiserver=apiserver, runtime_socket=args.runtime_socket,
        root=args.root, node_ip=args.node_ip, port=args.port, pod_cidr=args.pod_cidr,
        cpu=args.cpu, memory=args.memory, pods=args.pods,
        ephemeral_storage=args.ephemeral_storage, node_labels=args.node_labels,
        taints=args.taints, volumes_dir=args.volumes_dir, pod_env=args.pod_env,
        node_status_update_s=args.node_status_update_s,
        node_status_report_s=args.node_status_report_s,
        node_lease_renew_s=args.node_lease_renew_s,
        node_lease_duration_s=args.node_lease_duration_s,
        sync_frequency_s=args.sync_frequency_s, pleg_relist_s=args.pleg_relist_s,
        crash_backoff_initial_s=args.crash_backoff_initial_s,
        crash_backoff_max_s=args.crash_backoff_max_s,
        crash_backoff_reset_s=args.crash_backoff_reset_s,
        image_backoff_initial_s=args.image_backoff_initial_s,
        image_backoff_max_s=args.image_backoff_max_s, min_grace_s=args.min_grace_s,
        hook_timeout_s=args.hook_timeout_s, log_follow_poll_s=args.log_follow_poll_s,
        start_timeout_s=args.start_timeout_s,
        container_log_max_bytes=args.container_log_max_bytes,
        container_log_max_files=args.container_log_max_files,
        container_log_monitor_interval_s=args.container_log_monitor_interval_s,
        fault_dir=args.fault_dir, eviction_hard=args.eviction_hard,
        cluster_dns=args.cluster_dns, cluster_domain=args.cluster_domain,
        resolv_conf=args.resolv_conf, pod_manifest_path=args.pod_manifest_path,
        file_check_frequency_s=args.file_check_frequency_s)


async def run(args: argparse.Namespace) -> None:
    asked = grpc_server.stop_requested()
    try:
        kubelet = Kubelet(options_from(args))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        await kubelet.start()
    except (RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        await kubelet.stop()
        raise SystemExit(1) from None
    await asked.wait()
    await kubelet.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    kubemu_log.configure("kubelet", log_file=args.log_file, level=args.log_level,
                         node=args.node_name)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
