"""python -m controller_manager: kubemu's kube-controller-manager (several may run; one leads).

Finds the apiserver through --apiserver, else the cluster home's
kubeconfig.json (--kubeconfig-home, else $KUBEMU_HOME, else ~/.kubemu). Serves
grpc.health.v1 on --health-listen (SERVING once its informers have synced,
leader or standby). Stops gracefully on SIGTERM/SIGINT: the workers stop, the
Lease is released so a standby takes over at once. Exit status 2: bad flags.

Hidden flag, for tests: `--clock-offset-file PATH` makes the controllers'
clock the wall clock plus the float seconds PATH holds (re-read when it
changes; missing = 0), so an e2e test moves CronJob schedules on by writing a
number instead of waiting minutes. Leader election keeps the real clock.
"""
from __future__ import annotations

import argparse
import asyncio
import sys

from kubemu import log as kubemu_log
from kubemu import server as grpc_server
from kubemu.client import leaderelection
from kubemu.cli.common import parse_duration_s
from kubemu.client.config import apiserver_or_exit

from controller_manager import registry, service_lb
from controller_manager.app import ControllerManagerApp
from controller_manager.base import Options


# kube-controller-manager's --concurrent-*-syncs flags, by controller name.
CONCURRENCY_FLAGS = {
    "replicaset-controller": "concurrent-replicaset-syncs",
    "deployment-controller": "concurrent-deployment-syncs",
    "statefulset-controller": "concurrent-statefulset-syncs",
    "daemonset-controller": "concurrent-daemonset-syncs",
    "job-controller": "concurrent-job-syncs",
    "cronjob-controller": "concurrent-cron-job-syncs",
    "garbage-collector-controller": "concurrent-gc-syncs",
    "ttl-after-finished-controller": "concurrent-ttl-after-finished-syncs",
    "persistentvolume-binder-controller": "concurrent-pv-binder-syncs",
    "endpoints-controller": "concurrent-endpoint-syncs",
    "endpointslice-controller": "concurrent-service-endpoint-syncs",
    "service-lb-controller": "concurrent-service-syncs",
    "resourcequota-controller": "concurrent-resource-quota-syncs",
    "horizontal-pod-autoscaler-controller": "concurrent-horizontal-pod-autoscaler-syncs",
    "namespace-controller": "concurrent-namespace-syncs",
}




def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _duration_s(text: str) -> float:
    """kube-controller-manager's duration flags: a Go duration (`40s`, `1m0s`,
    `500ms`); a bare number is seconds, as this process's other flags."""
    try:
        return float(text)
    except ValueError:
        return parse_duration_s(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = Options(apiserver="-")
    p = argparse.ArgumentParser(prog="python -m controller_manager",
                                description=__doc__.split("\n")[0])
    where = p.add_mutually_exclusive_group()
    where.add_argument("--apiserver", metavar="ADDRESS", help="the apiserver's host:port")
    where.add_argument("--kubeconfig-home", metavar="HOME",
                       help="find the apiserver in HOME/kubeconfig.json (default: $KUBEMU_HOME, "
                            "else ~/.kubemu)")
    p.add_argument("--controllers", default="*",
                   help="controllers to enable: '*' all on by default, 'foo' enables foo, "
                        "'-foo' disables foo (comma-separated). Known: "
                        + ", ".join(c.name for c in registry.CONTROLLERS))
    for flag in CONCURRENCY_FLAGS.values():
        p.add_argument(f"--{flag}", type=_positive_int, default=None, metavar="N",
                       help="workers of that controller (default: Kubernetes')")
    leaderelection.add_flags(p, namespace=d.lease_namespace, name=d.lease_name,
                             lease_duration_s=d.lease_duration_s,
                             renew_deadline_s=d.renew_deadline_s,
                             retry_period_s=d.retry_period_s, leader_elect=d.leader_elect)
    p.add_argument("--job-backoff-base-s", type=float, default=d.job_backoff_base_s,
                   help="a failed Job pod's first retry delay, doubling (default 10)")
    p.add_argument("--job-backoff-max-s", type=float, default=d.job_backoff_max_s,
                   help="the cap of that delay (default 360)")
    p.add_argument("--daemonset-failed-pod-backoff-base-s", type=float,
                   default=d.daemonset_failed_pod_backoff_base_s,
                   help="first delay before a failed daemon pod on a node is deleted again, "
                        "doubling (default 1)")
    p.add_argument("--daemonset-failed-pod-backoff-max-s", type=float,
                   default=d.daemonset_failed_pod_backoff_max_s,
                   help="the cap of that delay (default 900)")
    p.add_argument("--cronjob-resync-s", type=float, default=d.cronjob_resync_s)
    p.add_argument("--gc-resync-s", type=float, default=d.gc_resync_s)
    p.add_argument("--pvclaimbinder-sync-period-s", type=float, default=d.pv_sync_period_s)
    p.add_argument("--endpoint-updates-batch-period-s", type=float,
                   default=d.endpoint_updates_batch_period_s,
                   help="the delay that batches a Service's pod changes into one Endpoints "
                        "update (default 0: none)")
    p.add_argument("--endpointslice-updates-batch-period-s", type=float,
                   default=d.endpointslice_updates_batch_period_s,
                   help="the same for EndpointSlices (default 0: none)")
    p.add_argument("--max-endpoints-per-slice", type=_positive_int,
                   default=d.max_endpoints_per_slice, metavar="N",
                   help="endpoints of one EndpointSlice (default 100; Kubernetes allows "
                        "at most 1000)")
    p.add_argument("--load-balancer-ip-range", default=d.load_balancer_ip_range, metavar="CIDR",
                   help="the pool of LoadBalancer Service addresses (default 127.1.1.0/24)")
    p.add_argument("--horizontal-pod-autoscaler-sync-period", type=parse_duration_s,
                   default=d.hpa_sync_period_s, metavar="DURATION",
                   help="how often each HPA is reconciled (default 15s)")
    p.add_argument("--horizontal-pod-autoscaler-tolerance", type=float,
                   default=d.hpa_tolerance,
                   help="the usage ratio's distance from 1.0 within which an HPA does not "
                        "scale (default 0.1)")
    p.add_argument("--horizontal-pod-autoscaler-downscale-stabilization",
                   type=parse_duration_s, default=d.hpa_downscale_stabilization_s,
                   metavar="DURATION",
                   help="the window of recommendations a scale down takes the highest of "
                        "(default 5m0s)")
    p.add_argument("--horizontal-pod-autoscaler-cpu-initialization-period",
                   type=parse_duration_s, default=d.hpa_cpu_initialization_period_s,
                   metavar="DURATION",
                   help="the time after a pod's start when its CPU samples may be skipped "
                        "(default 5m0s)")
    p.add_argument("--horizontal-pod-autoscaler-initial-readiness-delay",
                   type=parse_duration_s, default=d.hpa_initial_readiness_delay_s,
                   metavar="DURATION",
                   help="the time after a pod's start within which its readiness changes "
                        "are taken as its initial readiness (default 30s)")
    p.add_argument("--volumes-dir", default=d.volumes_dir,
                   help="where the local-path provisioner makes volume directories")
    p.add_argument("--resource-quota-sync-period-s", type=float,
                   default=d.resource_quota_sync_period_s,
                   help="how often every quota's usage is recomputed (default 300)")
    p.add_argument("--node-monitor-period", type=_duration_s, default=d.node_monitor_period_s,
                   metavar="DURATION", help="how often every node's health is checked "
                   "(Go duration or seconds; default 5s)")
    p.add_argument("--node-monitor-grace-period", type=_duration_s,
                   default=d.node_monitor_grace_s, metavar="DURATION",
                   help="how long a node may post no status and renew no lease before its "
                        "conditions become Unknown (default 50s)")
    p.add_argument("--node-startup-grace-period", type=_duration_s,
                   default=d.node_startup_grace_s, metavar="DURATION",
                   help="the same for a node that never posted Ready (default 1m0s)")
    p.add_argument("--node-eviction-rate", type=float, default=d.node_eviction_rate,
                   metavar="RATE", help="nodes per second that may get a NoExecute taint "
                   "while the zone is healthy (default 0.1)")
    p.add_argument("--secondary-node-eviction-rate", type=float,
                   default=d.secondary_node_eviction_rate, metavar="RATE",
                   help="the same while it is unhealthy (default 0.01; 0 in clusters of at "
                        "most --large-cluster-size-threshold nodes)")
    p.add_argument("--unhealthy-zone-threshold", type=float,
                   default=d.unhealthy_zone_threshold, metavar="FRACTION",
                   help="the fraction of nodes (more than 2) not Ready that makes a zone "
                        "unhealthy (default 0.55)")
    p.add_argument("--large-cluster-size-threshold", type=_positive_int,
                   default=d.large_cluster_size_threshold, metavar="N",
                   help="the nodes above which a cluster is large (default 50)")
    p.add_argument("--pod-gc-period", type=_duration_s, default=d.pod_gc_period_s,
                   metavar="DURATION", help="how often the pod garbage collector looks at "
                   "every pod (Go duration or seconds; default 20s, Kubernetes' constant)")
    p.add_argument("--pod-gc-quarantine", type=_duration_s, default=d.pod_gc_quarantine_s,
                   metavar="DURATION", help="how long a node must be missing before the pods "
                   "bound to it are deleted (default 40s, Kubernetes' constant)")
    p.add_argument("--terminated-pod-gc-threshold", type=int,
                   default=d.terminated_pod_gc_threshold, metavar="N",
                   help="terminated pods that can exist before the pod garbage collector "
                        "starts deleting them; 0: no limit (default 12500)")
    # Hidden, for tests: see controller_manager.base.FileOffsetClock.
    p.add_argument("--clock-offset-file", default="", help=argparse.SUPPRESS)
    p.add_argument("--rpc-timeout-s", type=float, default=d.rpc_timeout_s)
    p.add_argument("--health-listen", default=d.health_listen, metavar="HOST:PORT",
                   help="grpc.health.v1 address (port 0 picks one)")
    p.add_argument("--address-file", default="", help="write the health address here")
    p.add_argument("--log-file", default=None)
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    leaderelection.check_flags(p, args)
    for name in ("job_backoff_base_s", "job_backoff_max_s", "daemonset_failed_pod_backoff_base_s",
                 "daemonset_failed_pod_backoff_max_s", "cronjob_resync_s", "gc_resync_s",
                 "pvclaimbinder_sync_period_s", "rpc_timeout_s",
                 "resource_quota_sync_period_s", "node_monitor_period",
                 "node_monitor_grace_period", "node_startup_grace_period", "pod_gc_period"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be > 0")
    if args.horizontal_pod_autoscaler_sync_period <= 0:
        p.error("--horizontal-pod-autoscaler-sync-period must be > 0")
    for name in ("horizontal_pod_autoscaler_tolerance",
                 "horizontal_pod_autoscaler_downscale_stabilization",
                 "horizontal_pod_autoscaler_cpu_initialization_period",
                 "horizontal_pod_autoscaler_initial_readiness_delay"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0")
    for name in ("endpoint_updates_batch_period_s", "endpointslice_updates_batch_period_s",
                 "node_eviction_rate", "secondary_node_eviction_rate", "pod_gc_quarantine",
                 "terminated_pod_gc_threshold"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0")
    if not 0 < args.unhealthy_zone_threshold <= 1:
        p.error("--unhealthy-zone-threshold must be in (0, 1]")
    if args.max_endpoints_per_slice > 1000:
        p.error("--max-endpoints-per-slice must be <= 1000")
    try:
        service_lb.parse_pool(args.load_balancer_ip_range)
    except service_lb.PoolError as exc:
        p.error(f"--load-balancer-ip-range: {exc}")
    try:
        registry.select(args.controllers.split(","))
    except registry.UnknownController as exc:
        p.error(f"--controllers: {exc}")
    return args


def options_from(args: argparse.Namespace, apiserver: str) -> Options:
    concurrency = {}
    for name, flag in CONCURRENCY_FLAGS.items():
        value = getattr(args, flag.replace("-", "_"))
        if value is not None:
            concurrency[name] = value
    return Options(
        apiserver=apiserver, identity=args.identity, leader_elect=args.leader_elect,
        lease_namespace=args.leader_elect_resource_namespace,
        lease_name=args.leader_elect_resource_name, lease_duration_s=args.lease_duration_s,
        renew_deadline_s=args.renew_deadline_s, retry_period_s=args.retry_period_s,
        controllers=tuple(args.controllers.split(",")), concurrency=concurrency,
        health_listen=args.health_listen, address_file=args.address_file,
        rpc_timeout_s=args.rpc_timeout_s, job_backoff_base_s=args.job_backoff_base_s,
        job_backoff_max_s=args.job_backoff_max_s,
        daemonset_failed_pod_backoff_base_s=args.daemonset_failed_pod_backoff_base_s,
        daemonset_failed_pod_backoff_max_s=args.daemonset_failed_pod_backoff_max_s,
        cronjob_resync_s=args.cronjob_resync_s,
        gc_resync_s=args.gc_resync_s, pv_sync_period_s=args.pvclaimbinder_sync_period_s,
        volumes_dir=args.volumes_dir, clock_offset_file=args.clock_offset_file,
        endpoint_updates_batch_period_s=args.endpoint_updates_batch_period_s,
        endpointslice_updates_batch_period_s=args.endpointslice_updates_batch_period_s,
        max_endpoints_per_slice=args.max_endpoints_per_slice,
        load_balancer_ip_range=args.load_balancer_ip_range,
        resource_quota_sync_period_s=args.resource_quota_sync_period_s,
        hpa_sync_period_s=args.horizontal_pod_autoscaler_sync_period,
        hpa_tolerance=args.horizontal_pod_autoscaler_tolerance,
        hpa_downscale_stabilization_s=args.horizontal_pod_autoscaler_downscale_stabilization,
        hpa_cpu_initialization_period_s=args.horizontal_pod_autoscaler_cpu_initialization_period,
        hpa_initial_readiness_delay_s=args.horizontal_pod_autoscaler_initial_readiness_delay,
        node_monitor_period_s=args.node_monitor_period,
        node_monitor_grace_s=args.node_monitor_grace_period,
        node_startup_grace_s=args.node_startup_grace_period,
        node_eviction_rate=args.node_eviction_rate,
        secondary_node_eviction_rate=args.secondary_node_eviction_rate,
        unhealthy_zone_threshold=args.unhealthy_zone_threshold,
        large_cluster_size_threshold=args.large_cluster_size_threshold,
        pod_gc_period_s=args.pod_gc_period, pod_gc_quarantine_s=args.pod_gc_quarantine,
        terminated_pod_gc_threshold=args.terminated_pod_gc_threshold)


async def run(options: Options) -> None:
    stop = grpc_server.stop_requested()
    await ControllerManagerApp(options).run(stop)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    apiserver = apiserver_or_exit(args.apiserver, args.kubeconfig_home)
    kubemu_log.configure("controller-manager", log_file=args.log_file, level=args.log_level)
    asyncio.run(run(options_from(args, apiserver)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
