"""python -m kubelet.runtime: the node's container runtime (gRPC on a unix socket)."""
from __future__ import annotations

import argparse
import os
import pathlib
import sys

from kubelet.runtime import images
from kubelet.runtime import isolation as iso
from kubelet.runtime.app import Options, RootInUse, RuntimeServer
from kubemu import aio
from kubemu import log as kubemu_log
from kubemu import server as grpc_server


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = Options(root=pathlib.Path("."), socket=pathlib.Path("."))
    p = argparse.ArgumentParser(prog="python -m kubelet.runtime", description=__doc__)
    p.add_argument("--root", type=pathlib.Path, required=True,
                   help="state, pod and container directories live here")
    p.add_argument("--socket", type=pathlib.Path, default=None,
                   help="unix socket to serve on (default: <root>/runtime.sock)")
    p.add_argument("--images-file", default=None,
                   help="extra image catalog entries (default: $KUBEMU_HOME/images.yaml)")
    p.add_argument("--monitor-period-s", type=float, default=d.monitor_period_s,
                   help="how often process trees are sampled (memory limits, stats)")
    p.add_argument("--cpu-window-s", type=float, default=d.cpu_window_s,
                   help="CPU usage rates are averaged over this window")
    p.add_argument("--kill-wait-s", type=float, default=d.kill_wait_s,
                   help="after SIGKILL, how long to wait for a container to end")
    p.add_argument("--shutdown-grace-s", type=float, default=d.shutdown_grace_s)
    p.add_argument("--isolation", choices=iso.MODES,
                   default=os.environ.get(iso.ENV) or iso.AUTO,
                   help="how containers are isolated: namespaces (user, mount, PID, UTS, IPC "
                        "namespaces), plain (host processes), or auto: namespaces when this "
                        f"machine allows it (default: ${iso.ENV}, else auto)")
    p.add_argument("--cgroups", choices=("auto", "none"), default=d.cgroups,
                   help="auto: use the cgroups this runtime can write (v2, else v1) for "
                        "limits, usage and finding every process of a container; none: "
                        "no cgroups (memory by RSS watch, CPU by a duty-cycle throttler)")
    p.add_argument("--cgroup-fs", type=pathlib.Path, default=d.cgroup_fs,
                   help="where cgroupfs is mounted: a v2 mount, or the directory of the v1 "
                        "hierarchies")
    p.add_argument("--fault-dir", default="",
                   help="fault points: while DIR/<name> exists, the point <name> fails "
                        "(runtime-monitor)")
    p.add_argument("--node", default="", help="node name, for logs")
    p.add_argument("--log-file", default=None)
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    if args.monitor_period_s <= 0 or args.cpu_window_s <= 0 or args.kill_wait_s <= 0:
        p.error("--monitor-period-s, --cpu-window-s and --kill-wait-s must be > 0")
    return args


async def run(args: argparse.Namespace) -> None:
    images_file = args.images_file or str(images.default_images_file())
    options = Options(root=args.root, socket=args.socket or args.root / "runtime.sock",
                      images_file=images_file, monitor_period_s=args.monitor_period_s,
                      cpu_window_s=args.cpu_window_s, kill_wait_s=args.kill_wait_s,
                      shutdown_grace_s=args.shutdown_grace_s, fault_dir=args.fault_dir,
                      isolation=args.isolation, cgroups=args.cgroups,
                      cgroup_fs=args.cgroup_fs)
    asked = grpc_server.stop_requested()
    try:
        server = RuntimeServer(options)
        await server.start()
    except (RootInUse, ValueError, images.ImagesFileError, iso.Unavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1)
    await asked.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    kubemu_log.configure("runtime", log_file=args.log_file, level=args.log_level,
                         node=args.node or None)
    aio.run(run(args))


if __name__ == "__main__":
    main()
