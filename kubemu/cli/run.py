"""`kubemu run NAME --image=IMAGE [flags] [-- ARGS...]`: start one pod, as kubectl run does.

The pod is kubectl's (generator run-pod/v1): label `run=NAME` unless --labels,
one container named NAME, restartPolicy from --restart (Always by default;
`--restart=` with -i means OnFailure), dnsPolicy ClusterFirst; words after
NAME (or after `--`) become the container's args, or its command with
--command. --dry-run=client prints the pod without sending it (with -o
yaml|json exactly as kubectl prints it); otherwise the pod is created and
`pod/NAME created` printed.

Attached (`--attach`, or -i/--stdin, which implies it unless --attach=false),
as kubectl's RunOptions.Run:
- the container gets `stdin: true` (with -i; `stdinOnce: true` unless
  --leave-stdin-open) and `tty: true` (with -t, which needs -i); nothing is
  printed about the creation;
- the command waits (--pod-running-timeout, default 1m0s) for the pod to be
  Running and Ready, then attaches to it as `kubemu attach` does
  (kubemu/cli/pods.py: attach_session; the same prompt hint on stderr unless
  -q). A pod that has already completed is shown by its log instead, and so
  is one whose attach fails (after kubectl's warning);
- with --restart=Never or OnFailure (and without --leave-stdin-open) it then
  waits for the pod to complete (Never) or succeed (OnFailure) and exits 0,
  or with the container's exit code after `pod NS/NAME terminated (REASON)`;
- with --rm the pod is deleted at the end, however it ended, and
  `pod "NAME" deleted` printed (unless -q).
--expose is not offered.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from kubemu.cli import common
from kubemu.cli.common import CliError

DEFAULT_POD_RUNNING_TIMEOUT_S = 60.0
TIMED_OUT = "timed out waiting for the condition"


async def run_run(args: argparse.Namespace) -> int:
    from kubemu.cli import apply, generate

    if not args.name:
        raise CliError("NAME is required for run")
    attach = args.attach if args.attach is not None else args.stdin
    if args.image and args.tty and not args.stdin:
        raise _usage("-i/--stdin is required for containers with -t/--tty=true")
    restart = args.restart or ("OnFailure" if args.stdin else "Always")
    data = generate.run_pod(
        args.name, args.namespace, image=args.image, restart=restart, env=args.env,
        port=args.port, labels=args.labels, command=args.command,
        args=list(args.args) + list(args.trailing), annotations=args.annotations,
        image_pull_policy=args.image_pull_policy, privileged=args.privileged,
        stdin=args.stdin, tty=args.tty, leave_stdin_open=args.leave_stdin_open)
    if args.rm and not attach:
        raise _usage("--rm should only be used for attached containers")
    if attach and (args.dry_run or "none") != "none":
        raise _usage("--dry-run=[server|client] can't be used with attached containers "
                     "options (--attach, --stdin, or --tty)")
    if args.pod_running_timeout_s <= 0:
        raise _usage("--pod-running-timeout must be higher than zero")
    if not attach:
        return await apply.create_generated(args, data)
    return await _run_attached(args, data, restart)


async def _run_attached(args: argparse.Namespace, data: dict[str, Any], restart: str) -> int:
    from kubemu.api import codec, errors
    from kubemu.api.kinds import REGISTRY
    from kubemu.cli import generate, pods

    namespace = common.namespace_of(args)
    body = generate.prune_nulls(data)
    body["metadata"]["namespace"] = namespace
    kind = REGISTRY.by_gvk("v1", "Pod")
    try:
        pod = codec.from_dict(kind.message, body, kind=kind.kind)
    except errors.Invalid as exc:
        raise CliError(exc.message) from None
    client, proxy = await pods._proxy_for(args)
    try:
        created = await client.create(pod)
        try:
            return await _attach_and_wait(args, client, proxy, created, restart)
        finally:
            if args.rm:
                await _remove(args, client, created)
    finally:
        await client.close()
        await proxy.close()


async def _attach_and_wait(args: argparse.Namespace, client: Any, proxy: Any, created: Any,
                           restart: str) -> int:
    """kubectl's handleAttachPod, then its wait for the exit code."""
    from kubemu.api import errors
    from kubemu.cli import pods, streaming

    name, namespace = created.metadata.name, created.metadata.namespace
    timeout_s = args.pod_running_timeout_s
    doc = await _wait_pod(client, namespace, name, timeout_s, _running_and_ready)
    if _phase(doc) in ("Succeeded", "Failed"):
        await _print_log(proxy, namespace, name, name)
    else:
        pod = await client.get("pods", name, namespace)
        try:
            await pods.attach_session(proxy, pod, container="", stdin=args.stdin,
                                      tty=args.tty, quiet=args.quiet)
        except streaming.EndedBySignal as stopped:
            return 128 + stopped.signum
        except (errors.ApiError, CliError) as err:
            print(f"warning: couldn't attach to pod/{name}, falling back to streaming logs: "
                  f"{_message(err)}", file=sys.stderr)
            await _print_log(proxy, namespace, name, name)
    if args.leave_stdin_open or restart == "Always":
        return 0  # not interested in the exit code
    done = _succeeded if restart == "OnFailure" else _completed
    doc = await _wait_pod(client, namespace, name, timeout_s, done)
    phase = _phase(doc)
    if phase == "Succeeded":
        return 0
    if phase != "Failed":
        raise CliError(f"pod {namespace}/{name} left in phase {phase}")
    statuses = (doc.get("status") or {}).get("containerStatuses") or []
    terminated = ((statuses[0].get("state") or {}).get("terminated") if statuses else None)
    code = (terminated or {}).get("exitCode", 0)
    if not code:
        raise CliError(f"pod {namespace}/{name} failed with unknown exit code")
    # kubectl's CodeExitError: its text as it is (no `error: `), the container's code.
    text = (f"pod {namespace}/{name} terminated ({terminated.get('reason', '')})\n"
            f"{terminated.get('message', '')}")
    sys.stdout.flush()
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.stderr.flush()
    return int(code)


def _phase(doc: dict[str, Any] | None) -> str:
    return ((doc or {}).get("status") or {}).get("phase", "")


def _running_and_ready(doc: dict[str, Any]) -> bool:
    """kubectl's podRunningAndReady; a completed pod ends the wait too (ErrPodCompleted)."""
    phase = _phase(doc)
    if phase in ("Succeeded", "Failed"):
        return True
    conditions = (doc.get("status") or {}).get("conditions") or []
    return phase == "Running" and any(c.get("type") == "Ready" and c.get("status") == "True"
                                      for c in conditions)


def _completed(doc: dict[str, Any]) -> bool:
    return _phase(doc) in ("Succeeded", "Failed")


def _succeeded(doc: dict[str, Any]) -> bool:
    return _phase(doc) == "Succeeded"


async def _wait_pod(client: Any, namespace: str, name: str, timeout_s: float,
                    condition: Any) -> dict[str, Any]:
    """kubectl's waitForPod: the pod once `condition` holds; its deletion is NotFound."""
    from kubemu.api.kinds import REGISTRY

    kind = REGISTRY.by_gvk("v1", "Pod")
    seen: list[dict[str, Any]] = []

    def check(doc: dict[str, Any] | None) -> bool:
        if doc is None:
            raise CliError(f'pods "{name}" not found')
        if condition(doc):
            seen.append(doc)
            return True
        return False

    try:
        await asyncio.wait_for(common.watch_object(client, kind, namespace, name, check),
                               timeout_s)
    except TimeoutError:
        raise CliError(TIMED_OUT) from None
    return seen[-1]


async def _print_log(proxy: Any, namespace: str, name: str, container: str) -> None:
    """The container's whole log on stdout (kubectl's logOpts)."""
    import grpc.aio

    from kubemu.api.v1 import resources_pb2
    from kubemu.cli import pods

    request = resources_pb2.PodLogsRequest(namespace=namespace, name=name, container=container)
    call = proxy.stub.PodLogs(request, timeout=pods.CALL_TIMEOUT_S)
    try:
        await pods._consume(call, b"", sys.stdout.buffer)
    except grpc.aio.AioRpcError as err:
        raise pods._error(err) from None
    finally:
        call.cancel()


async def _remove(args: argparse.Namespace, client: Any, created: Any) -> None:
    """--rm: delete the pod (its own grace period, not waiting), as kubectl's
    removeCreatedObjects; already gone is no error."""
    from kubemu.api import errors

    name = created.metadata.name
    try:
        await client.delete("pods", name, created.metadata.namespace,
                            propagation_policy="Background")
    except errors.NotFound:
        return
    if not args.quiet:
        print(f'pod "{name}" deleted', flush=True)


def _usage(message: str) -> CliError:
    """kubectl's UsageErrorf: the message, then where help is."""
    return CliError(f"{message}\nSee 'kubemu run -h' for help and examples", verbatim=True)


def _message(err: BaseException) -> str:
    return getattr(err, "message", "") or str(err)


def register(subparsers: argparse._SubParsersAction) -> None:
    from kubemu.cli import apply

    p = subparsers.add_parser(
        "run", help="run a particular image in a pod",
        description="Create a pod running one image, like kubectl run: "
                    "kubemu run NAME --image=IMAGE [--env=K=V] [--port=P] [--labels=k=v,...] "
                    "[--restart=Always|OnFailure|Never] [--command] [-i [-t]] [--rm] "
                    "[-- ARGS...]")
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
    p.add_argument("-i", "--stdin", action="store_true",
                   help="keep stdin open on the container, and attach (unless --attach=false)")
    p.add_argument("-t", "--tty", action="store_true",
                   help="allocate a TTY for the container (needs -i)")
    p.add_argument("--attach", action="store_true", default=None,
                   help="wait for the pod to run, then attach to it as `kubemu attach` "
                        "(default: true with -i)")
    p.add_argument("--rm", action="store_true",
                   help="delete the pod when the attached session ends")
    p.add_argument("--leave-stdin-open", action="store_true",
                   help="leave the container's stdin open after the first attach ends")
    p.add_argument("-q", "--quiet", action="store_true", help="suppress prompt messages")
    p.add_argument("--pod-running-timeout", type=common.parse_duration_s,
                   default=DEFAULT_POD_RUNNING_TIMEOUT_S, dest="pod_running_timeout_s",
                   metavar="DURATION",
                   help="how long to wait for the pod to run (and to end), e.g. 5s, 1m "
                        "(default 1m0s)")
    common.add_namespace_arg(p)
    apply.add_object_output_arg(p)
    apply.add_dry_run_arg(p)
    p.set_defaults(func=run_run, accepts_trailing=True)
