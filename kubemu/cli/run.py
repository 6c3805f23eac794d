"""`kubemu run NAME --image=IMAGE [flags] [-- ARGS...]`: start one pod, as kubectl run does.

The pod is kubectl's (generator run-pod/v1): label `run=NAME` unless --labels,
one container named NAME, restartPolicy from --restart (Always by default),
dnsPolicy ClusterFirst; words after NAME (or after `--`) become the
container's args, or its command with --command. --dry-run=client prints the
pod without sending it (with -o yaml|json exactly as kubectl prints it);
otherwise the pod is created and `pod/NAME created` printed. kubectl's
attach options (-i, -t, --attach, --rm) and --expose are not offered.
"""
from __future__ import annotations

import argparse

from kubemu.cli import common
from kubemu.cli.common import CliError


async def run_run(args: argparse.Namespace) -> int:
    from kubemu.cli import apply, generate

    if not args.name:
        raise CliError("NAME is required for run")
    data = generate.run_pod(
        args.name, args.namespace, image=args.image, restart=args.restart, env=args.env,
        port=args.port, labels=args.labels, command=args.command,
        args=list(args.args) + list(args.trailing), annotations=args.annotations,
        image_pull_policy=args.image_pull_policy, privileged=args.privileged)
    return await apply.create_generated(args, data)


def register(subparsers: argparse._SubParsersAction) -> None:
    from kubemu.cli import apply

    p = subparsers.add_parser(
        "run", help="run a particular image in a pod",
        description="Create a pod running one image, like kubectl run: "
                    "kubemu run NAME --image=IMAGE [--env=K=V] [--port=P] [--labels=k=v,...] "
                    "[--restart=Always|OnFailure|Never] [--command] [-- ARGS...]")
    p.add_argument("name", nargs="?", default="", metavar="NAME")
    p.add_argument("args", nargs="*", metavar="ARG", help="the container's args (or command)")
    p.add_argument("--image", default="", help="the container's image")
    p.add_argument("--restart", default="Always", metavar="Always|OnFailure|Never",
                   help="the pod's restart policy (default Always)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="an environment variable; repeatable")
    p.add_argument("--port", default="", help="the port the container exposes")
    p.add_argument("-l", "--labels", default="", metavar="KEY=VALUE,...",
                   help="the pod's labels (default run=NAME)")
    p.add_argument("--annotations", action="append", default=[], metavar="KEY=VALUE",
                   help="an annotation; repeatable")
    p.add_argument("--command", action="store_true",
                   help="the extra words are the container's command, not its args")
    p.add_argument("--image-pull-policy", default="", metavar="Always|IfNotPresent|Never")
    p.add_argument("--privileged", action="store_true",
                   help="run the container in privileged mode")
    common.add_namespace_arg(p)
    apply.add_object_output_arg(p)
    apply.add_dry_run_arg(p)
    p.set_defaults(func=run_run, accepts_trailing=True)
