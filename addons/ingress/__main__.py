"""python -m addons.ingress: kubemu's ingress controller (the ingress-nginx image's
stand-in: an HTTP reverse proxy of ours, no nginx).

Takes ingress-nginx's own flags (`/nginx-ingress-controller --publish-service=...
--election-id=... --controller-class=... --ingress-class=...`); flags of the real
controller that mean nothing here (--configmap, --validating-webhook*, ...) are
accepted and ignored with a warning, so ingress-nginx's manifests run as written.
Finds the apiserver through --apiserver-host, else in-cluster
(KUBERNETES_SERVICE_HOST/PORT, which the kubelet sets in every pod), else the
cluster home's kubeconfig.json (--kubeconfig-home, $KUBEMU_HOME) for runs by
hand. Listens on --bind-address (default $POD_IP, else 127.0.0.1): the proxy on
--http-port (80), /healthz on --healthz-port (10254). Stops on SIGTERM/SIGINT.
Exit status 2: bad flags, no apiserver to be found, or a port it cannot bind.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys

import structlog

from kubemu import log as kubemu_log
from kubemu import server as grpc_server
from kubemu.client.clientset import Client
from kubemu.client.config import (BadClusterConfig, ClusterNotFound, in_cluster_config,
                                  load_cluster_config)

from addons.ingress.app import IngressController, ListenError, Options
from addons.ingress.routing import ClassConfig

EXIT_USAGE = 2
LAUNCHER_WORDS = ("--", "/nginx-ingress-controller", "nginx-ingress-controller")
# Flags of the real controller that take a value and mean nothing here.
IGNORED_WITH_VALUE = ("--election-id", "--configmap", "--tcp-services-configmap",
                      "--udp-services-configmap", "--validating-webhook",
                      "--validating-webhook-certificate", "--validating-webhook-key",
                      "--default-ssl-certificate", "--annotations-prefix", "--v",
                      "--enable-metrics", "--metrics-per-host", "--ingress-class-by-name",
                      "--enable-ssl-passthrough", "--status-port", "--stream-port",
                      "--profiler-port", "--default-server-port", "--shutdown-grace-period",
                      "--post-shutdown-grace-period", "--ssl-passthrough-proxy-port")


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "t", "yes"):
        return True
    if lowered in ("false", "0", "f", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is not in 0..65535")
    return value


def _namespaced(text: str) -> str:
    namespace, _, name = text.partition("/")
    if not namespace or not name or "/" in name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected namespace/name")
    return text


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    d = Options(apiserver="-")
    p = argparse.ArgumentParser(prog="nginx-ingress-controller",
                                description=__doc__.split("\n")[0])
    p.add_argument("--apiserver-host", default="",
                   help="the apiserver's host:port (default: in-cluster, else the cluster home)")
    p.add_argument("--kubeconfig-home", default=None, metavar="HOME",
                   help="outside a pod: find the apiserver in HOME/kubeconfig.json")
    p.add_argument("--ingress-class", default=d.classes.ingress_class,
                   help="the class name of the kubernetes.io/ingress.class annotation")
    p.add_argument("--controller-class", default=d.classes.controller,
                   help="IngressClasses whose spec.controller is this are ours")
    p.add_argument("--watch-ingress-without-class", type=_bool, nargs="?", const=True,
                   default=d.classes.watch_without_class,
                   help="serve Ingresses that name no class")
    p.add_argument("--watch-namespace", default="", help="watch one namespace (default: all)")
    p.add_argument("--publish-service", type=_namespaced, default=None,
                   help="namespace/name of the Service whose address goes into Ingress status")
    p.add_argument("--publish-status-address", default="",
                   help="comma-separated addresses for Ingress status (wins over "
                        "--publish-service)")
    p.add_argument("--update-status", type=_bool, nargs="?", const=True, default=True)
    p.add_argument("--default-backend-service", type=_namespaced, default=None,
                   help="namespace/name of the Service that answers unmatched requests "
                        "(default: a 404 'default backend - 404')")
    p.add_argument("--bind-address", default=os.environ.get("POD_IP") or "127.0.0.1")
    p.add_argument("--http-port", type=_port, default=d.http_port)
    p.add_argument("--https-port", type=_port, default=443,
                   help="accepted; HTTPS is not served")
    p.add_argument("--healthz-host", default="")
    p.add_argument("--healthz-port", type=_port, default=d.healthz_port)
    p.add_argument("--upstream-connect-timeout-s", type=float, default=d.connect_timeout_s)
    p.add_argument("--upstream-read-timeout-s", type=float, default=d.read_timeout_s)
    p.add_argument("--upstream-tries", type=int, default=d.tries_max)
    p.add_argument("--log-file", default=None)
    p.add_argument("--log-level", default="info")
    for flag in IGNORED_WITH_VALUE:
        p.add_argument(flag, default=None, help=argparse.SUPPRESS)
    args, unknown = p.parse_known_args(argv)
    if args.upstream_tries < 1:
        p.error("--upstream-tries must be >= 1")
    if args.upstream_connect_timeout_s <= 0 or args.upstream_read_timeout_s <= 0:
        p.error("--upstream-connect-timeout-s and --upstream-read-timeout-s must be > 0")
    ignored = [f for f in IGNORED_WITH_VALUE
               if getattr(args, f[2:].replace("-", "_")) is not None]
    return args, [*ignored, *unknown]


def options_from(args: argparse.Namespace, apiserver: str) -> Options:
    return Options(
        apiserver=apiserver,
        classes=ClassConfig(ingress_class=args.ingress_class, controller=args.controller_class,
                            watch_without_class=args.watch_ingress_without_class),
        watch_namespace=args.watch_namespace, publish_service=args.publish_service or "",
        publish_status_address=args.publish_status_address, update_status=args.update_status,
        default_backend_service=args.default_backend_service or "", bind_address=args.bind_address,
        http_port=args.http_port, healthz_host=args.healthz_host,
        healthz_port=args.healthz_port, connect_timeout_s=args.upstream_connect_timeout_s,
        read_timeout_s=args.upstream_read_timeout_s, tries_max=args.upstream_tries,
        pod_name=os.environ.get("POD_NAME", ""))


def find_apiserver(args: argparse.Namespace) -> str:
    if args.apiserver_host:
        return args.apiserver_host.removeprefix("http://").removeprefix("https://")
    try:
        return in_cluster_config().apiserver
    except ClusterNotFound:
        if args.kubeconfig_home is None and not os.environ.get("KUBEMU_HOME"):
            raise
    return load_cluster_config(args.kubeconfig_home).apiserver


async def run(options: Options) -> None:
    stop = grpc_server.stop_requested()
    client = Client(options.apiserver, timeout_s=options.rpc_timeout_s,
                    user_agent="nginx-ingress-controller")
    try:
        await IngressController(client, options).run(stop)
    finally:
        await client.close()


def strip_launcher(argv: list[str]) -> list[str]:
    """Drop what the image's entrypoint and cmd put before the flags: dumb-init's
    "--" and the controller's own path."""
    while argv and argv[0] in LAUNCHER_WORDS:
        argv = argv[1:]
    return argv


def main(argv: list[str] | None = None) -> int:
    args, ignored = parse_args(strip_launcher(sys.argv[1:] if argv is None else argv))
    try:
        apiserver = find_apiserver(args)
    except (ClusterNotFound, BadClusterConfig) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logger = kubemu_log.configure("ingress-nginx", log_file=args.log_file, level=args.log_level)
    if ignored:
        logger.warning("ingress: flags of ingress-nginx without meaning here, ignored",
                       flags=ignored)
    options = options_from(args, apiserver)
    try:
        asyncio.run(run(options))
    except ListenError as exc:
        structlog.get_logger().error("ingress: cannot listen", error=str(exc))
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
