"""`kubemu logs`, `exec`, `attach` (and `cp`, kubemu/cli/cp.py) and `top`: what a
node's kubelet serves, through the apiserver (which proxies pods/log,
pods/exec, pods/attach and node stats).

- logs [-f] [-c C] [-p] [--tail N] [--limit-bytes N] POD [CONTAINER] | -l SELECTOR:
  the container's output, raw, on stdout; -f follows it until the container
  ends. --all-containers takes every container (init ones first), -l every
  pod the selector matches (then --tail defaults to 10, as kubectl's); with
  several sources and -f they are followed at once (at most
  --max-log-requests, default 5) and whole lines interleave. --prefix puts
  `[pod/NAME/CONTAINER] ` before each line. (--since and --timestamps need
  per-line times the kubelet does not keep yet: not offered.)
- exec POD [-c C] [-i] [-t] [-q] -- CMD [ARG...]: runs the command in the
  container (kubemu.cli.streaming): its stdout and stderr as they come, with
  -i this process's stdin, with -i -t on a terminal (the local one in raw
  mode, resizes followed); exits with the command's exit code ("command
  terminated with exit code N" on stderr, as kubectl says it). --timeout
  (kubemu's own) kills the command after so long.
- attach POD [-c C] [-i] [-t] [-q]: the container's output from now on and,
  with -i, its stdin (a container created with `stdin: true`; with
  `tty: true` a terminal); ends when the container ends.
- top pod [NAME] [-A] [-l SEL] [--containers] [--sort-by=cpu|memory] [--no-headers]
  / top node [NAME] [--sort-by=...]: CPU in millicores and memory in Mi with
  kubectl's columns and order, read from the metrics API (metrics.k8s.io
  NodeMetrics / PodMetrics, which the apiserver builds from the kubelets' stats
  as metrics-server does).
Without -c, a pod with several containers uses its
`kubectl.kubernetes.io/default-container` annotation, else its first
container, and says so on stderr ("Defaulted container ...").
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from kubemu.cli import common, cp
from kubemu.cli.common import CliError

DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
CALL_TIMEOUT_S = 30.0


class _Proxy:
    """The apiserver's pods/log, pods/exec and node-stats calls (kubemu.api.v1.Resources)."""

    def __init__(self, address: str):
        import grpc.aio

        from kubemu.api.v1 import resources_pb2_grpc

        self.channel = grpc.aio.insecure_channel(address, options=[
            ("grpc.max_receive_message_length", 64 << 20)])
        self.stub = resources_pb2_grpc.ResourcesStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()


def _error(err: Any):
    from kubemu.api import errors

    return errors.from_rpc_error(err)


def _pod_name(word: str) -> str:
    kind, sep, name = word.partition("/")
    if not sep:
        return word
    if kind.lower() not in ("pod", "pods", "po"):
        raise CliError(f"only pods are supported here, not {kind!r}")
    return name


def default_container(pod: Any, *, quiet: bool = False, out: Any = None) -> str:
    """kubectl's choice of container when none is named: the default-container
    annotation, else the first, saying so on stderr (or `out`) when there was a choice."""
    out = out or sys.stderr
    names = [c.name for c in pod.spec.containers]
    wanted = pod.metadata.annotations.get(DEFAULT_CONTAINER_ANNOTATION, "")
    if wanted:
        if wanted in names or wanted in [c.name for c in pod.spec.init_containers]:
            return wanted
        print(f'Default container name "{wanted}" not found in pod {pod.metadata.name}',
              file=out)
    if not names:
        return ""
    if (len(names) > 1 or pod.spec.init_containers) and not quiet:
        every = names + [f"{c.name} (init)" for c in pod.spec.init_containers]
        print(f'Defaulted container "{names[0]}" out of: {", ".join(every)}', file=out)
    return names[0]


async def _proxy_for(args: argparse.Namespace) -> tuple[Any, _Proxy]:
    from kubemu.client.config import load_cluster_config

    client = common.client_for(args)
    return client, _Proxy(load_cluster_config(args.home).apiserver)


# ---------------------------------------------------------------- logs

# A line longer than this is written out in pieces (each with the prefix).
LOG_LINE_BYTES_MAX = 1 << 20
SELECTOR_TAIL_LINES = 10


def _log_sources(pod: Any, args: argparse.Namespace) -> list[tuple[Any, str]]:
    """(pod, container) pairs to read for one pod, in kubectl's order."""
    if args.all_containers:
        return [(pod, c.name) for c in [*pod.spec.init_containers, *pod.spec.containers]]
    container = args.container or default_container(pod)
    known = {c.name for c in [*pod.spec.containers, *pod.spec.init_containers]}
    if container not in known:
        raise CliError(f"container {container} is not valid for pod {pod.metadata.name}")
    return [(pod, container)]


async def _consume(call: Any, prefix: bytes, out: Any) -> None:
    """Copy one log stream to `out`, whole lines at a time, each after `prefix`."""
    pending = b""
    async for chunk in call:
        pending += chunk.data
        while True:
            cut = pending.find(b"\n")
            if cut < 0:
                if len(pending) > LOG_LINE_BYTES_MAX:
                    out.write(prefix + pending)
                    out.flush()
                    pending = b""
                break
            out.write(prefix + pending[:cut + 1])
            pending = pending[cut + 1:]
        out.flush()
    if pending:
        out.write(prefix + pending)
        out.flush()


async def run_logs(args: argparse.Namespace) -> int:
    if args.component:
        from kubemu.cli import faults

        return await faults.run_component_logs(args)
    import asyncio

    import grpc.aio

    from kubemu.api import errors
    from kubemu.api.v1 import resources_pb2

    namespace = common.namespace_of(args)
    words = list(args.pod)
    if not words and not args.selector:
        raise CliError("expected POD or TYPE/NAME is a required argument for the logs command")
    if words and args.selector:
        raise CliError("only a selector (-l) or a POD name is allowed")
    if len(words) > 2:
        raise CliError("expected POD or TYPE/NAME is a required argument for the logs command")
    if len(words) == 2:
        if args.container:
            raise CliError("only one of -c or an inline [CONTAINER] arg is allowed")
        args.container = words[1]
    if args.all_containers and args.container:
        raise CliError(f"--all-containers=true should not be specified with container name "
                       f"{args.container}")
    if args.tail is not None and args.tail < -1:
        raise CliError("--tail must be greater than or equal to -1")
    if args.limit_bytes < 0:
        raise CliError("--limit-bytes must be greater than 0")
    tail = args.tail
    if tail is None and args.selector:
        tail = SELECTOR_TAIL_LINES
    client, proxy = await _proxy_for(args)
    try:
        if args.selector:
            pods = (await client.list_all("pods", namespace, label_selector=args.selector)).items
            if not pods:
                print(f"No resources found in {namespace} namespace.", file=sys.stderr)
        else:
            name = _pod_name(words[0])
            try:
                pods = [await client.get("pods", name, namespace)]
            except errors.NotFound as exc:
                raise CliError(f'error from server (NotFound): {exc.message} in namespace '
                               f'"{namespace}"') from None
        sources = [src for pod in pods for src in _log_sources(pod, args)]
        if args.follow and len(sources) > 1 and len(sources) > args.max_log_requests:
            raise CliError(f"you are attempting to follow {len(sources)} log streams, but "
                           f"maximum allowed concurrency is {args.max_log_requests}, use "
                           "--max-log-requests to increase the limit")
        out = sys.stdout.buffer

        async def one(pod: Any, container: str) -> None:
            request = resources_pb2.PodLogsRequest(
                namespace=pod.metadata.namespace, name=pod.metadata.name, container=container,
                follow=args.follow, previous=args.previous)
            if tail is not None and tail >= 0:
                request.tail_lines = tail
            if args.limit_bytes:
                request.limit_bytes = args.limit_bytes
            prefix = f"[pod/{pod.metadata.name}/{container}] ".encode() if args.prefix else b""
            call = proxy.stub.PodLogs(request, timeout=None if args.follow else CALL_TIMEOUT_S)
            try:
                await _consume(call, prefix, out)
            except grpc.aio.AioRpcError as err:
                raise _error(err) from None
            finally:
                call.cancel()

        if args.follow and len(sources) > 1:
            try:
                async with asyncio.TaskGroup() as group:
                    for pod, container in sources:
                        group.create_task(one(pod, container))
            except BaseExceptionGroup as failed:
                raise failed.exceptions[0] from None  # the first stream that failed
        else:
            for pod, container in sources:
                await one(pod, container)
    finally:
        await client.close()
        await proxy.close()
    return 0


# ---------------------------------------------------------------- exec and attach

CANNOT_EXEC_PHASES = ("Succeeded", "Failed")
ATTACH_PROMPT_HINT = "If you don't see a command prompt, try pressing enter."


async def _runnable_pod(client: Any, namespace: str, name: str, verb: str) -> Any:
    pod = await client.get("pods", name, namespace)
    if pod.status.phase in CANNOT_EXEC_PHASES:
        what = "exec into a container" if verb == "exec" else "attach a container"
        raise CliError(f"cannot {what} in a completed pod; current phase is {pod.status.phase}")
    return pod


def _print_exit(ended: Any) -> int:
    if ended.exit_code:
        print(ended.message or f"command terminated with exit code {ended.exit_code}",
              file=sys.stderr)
    return ended.exit_code


async def run_exec(args: argparse.Namespace) -> int:
    from kubemu.api.v1 import resources_pb2
    from kubemu.cli import streaming

    if args.command_words:
        raise CliError("exec [POD] [COMMAND] is not supported anymore. Use exec [POD] -- "
                       "[COMMAND] instead\nSee 'kubemu exec -h' for help and examples",
                       verbatim=True)
    command = list(args.trailing)
    if not command:
        raise CliError("you must specify at least one command for the container")
    namespace = common.namespace_of(args)
    name = _pod_name(args.pod)
    raw, warning = streaming.plan_tty(
        stdin=args.stdin, tty=args.tty, quiet=args.quiet,
        stdin_is_terminal=streaming.is_terminal(streaming.stdin_fd()))
    client, proxy = await _proxy_for(args)
    try:
        pod = await _runnable_pod(client, namespace, name, "exec")
        container = args.container or default_container(pod, quiet=args.quiet)
        if warning:
            print(warning, file=sys.stderr)
        target = resources_pb2.PodStreamTarget(
            namespace=namespace, name=name, container=container, command=command,
            stdin=args.stdin, tty=raw, timeout_s=args.timeout_s)
        try:
            ended = await streaming.run_interactive(proxy.stub.PodExecStream, target,
                                                    stdin=args.stdin, raw=raw)
        except streaming.EndedBySignal as stopped:
            return 128 + stopped.signum
    finally:
        await client.close()
        await proxy.close()
    return _print_exit(ended)


async def run_attach(args: argparse.Namespace) -> int:
    from kubemu.cli import streaming

    words = list(args.pod)
    if not words:
        raise CliError("at least 1 argument is required for attach")
    if len(words) > 2:
        raise CliError(f"expected POD, TYPE/NAME, or TYPE NAME, (at most 2 arguments) saw "
                       f"{len(words)}: [{' '.join(words)}]")
    name = _pod_name(words[0] if len(words) == 1 else f"{words[0]}/{words[1]}")
    namespace = common.namespace_of(args)
    client, proxy = await _proxy_for(args)
    try:
        pod = await _runnable_pod(client, namespace, name, "attach")
        try:
            ended = await attach_session(proxy, pod, container=args.container,
                                         stdin=args.stdin, tty=args.tty, quiet=args.quiet)
        except streaming.EndedBySignal as stopped:
            return 128 + stopped.signum
    finally:
        await client.close()
        await proxy.close()
    return _print_exit(ended)


async def attach_session(proxy: _Proxy, pod: Any, *, container: str, stdin: bool, tty: bool,
                         quiet: bool) -> Any:
    """kubectl's AttachOptions.Run on a pod already fetched (`attach`, `run -i`):
    picks the container, settles the terminal (the container's `tty` decides),
    prints the prompt hint, runs the session on this process's streams and,
    after a terminal session, the resume hint. Returns its PodStreamExit;
    raises streaming.EndedBySignal (SIGTERM/SIGHUP) and the call's ApiError."""
    from kubemu.api.v1 import resources_pb2
    from kubemu.cli import streaming

    name = pod.metadata.name
    container = container or default_container(pod, quiet=quiet)
    spec = next((c for c in [*pod.spec.containers, *pod.spec.init_containers]
                 if c.name == container), None)
    if spec is None:
        raise CliError(f"cannot attach to the container: container {container} not found "
                       f"in pod {name}")
    tty, warning = streaming.plan_attach_tty(tty=tty, container_tty=spec.tty,
                                             container=container, quiet=quiet)
    if warning:
        print(warning, file=sys.stderr)
    raw, warning = streaming.plan_tty(
        stdin=stdin, tty=tty, quiet=quiet,
        stdin_is_terminal=streaming.is_terminal(streaming.stdin_fd()))
    if warning:
        print(warning, file=sys.stderr)
    if not quiet:
        print(ATTACH_PROMPT_HINT, file=sys.stderr)
    target = resources_pb2.PodStreamTarget(namespace=pod.metadata.namespace, name=name,
                                           container=container, stdin=stdin, tty=raw)
    ended = await streaming.run_interactive(proxy.stub.PodAttach, target, stdin=stdin, raw=raw)
    if not quiet and stdin and raw:
        print(f"Session ended, resume using 'kubemu attach {name} -c {container} -i -t' "
              f"command when the pod is running")
    return ended


# ---------------------------------------------------------------- top

NODE_COLUMNS = ("NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)")
POD_COLUMNS = ("NAME", "CPU(cores)", "MEMORY(bytes)")


def cpu_milli(nano_cores: int) -> int:
    """Quantity.MilliValue() of a usage in nanocores: rounded up, as kubectl shows it."""
    return -(-nano_cores // 1_000_000)


def format_cpu(nano_cores: int) -> str:
    return f"{cpu_milli(nano_cores)}m"


def format_memory(count: int) -> str:
    return f"{count // (1 << 20)}Mi"


def top_table(rows: list[list[str]]) -> str:
    """kubectl top's table: every cell ends in a tab, so the last column is padded too."""
    from kubemu.cli import printers

    return printers.TabWriter().render([row + [""] for row in rows])


@dataclasses.dataclass
class PodTop:
    namespace: str
    name: str
    containers: list[tuple[str, int, int]]  # (name, nanocores, bytes)

    @property
    def cpu(self) -> int:
        return sum(c[1] for c in self.containers)

    @property
    def memory(self) -> int:
        return sum(c[2] for c in self.containers)


def pod_rows(pods: list[PodTop], *, containers: bool, all_namespaces: bool,
             sort_by: str) -> list[list[str]]:
    """kubectl's PrintPodMetrics rows (no header): sorted by namespace/name, or by cpu or
    memory, largest first; with `containers` one row per container."""
    def key(p: PodTop) -> Any:
        if sort_by == "cpu":
            return -cpu_milli(p.cpu)
        if sort_by == "memory":
            return -p.memory
        return (p.namespace if all_namespaces else "", p.name)

    rows = []
    for pod in sorted(pods, key=key):
        ns = [pod.namespace] if all_namespaces else []
        if not containers:
            rows.append(ns + [pod.name, format_cpu(pod.cpu), format_memory(pod.memory)])
            continue
        ctr_key = {"cpu": lambda c: -cpu_milli(c[1]), "memory": lambda c: -c[2]}.get(
            sort_by, lambda c: c[0])
        for name, cpu, memory in sorted(pod.containers, key=ctr_key):
            rows.append(ns + [pod.name, name, format_cpu(cpu), format_memory(memory)])
    return rows


def node_rows(allocatable: dict[str, dict[str, str]], samples: dict[str, tuple[int, int]],
              *, sort_by: str) -> list[list[str]]:
    """kubectl's PrintNodeMetrics rows (no header): `samples` maps a node to its
    (nanocores, bytes); nodes without a sample come last with <unknown>."""
    from kubemu.api import quantity

    def key(name: str) -> Any:
        cpu, memory = samples[name]
        return {"cpu": -cpu_milli(cpu), "memory": -memory}.get(sort_by, name)

    rows = []
    for name in sorted((n for n in samples if n in allocatable), key=key):
        cpu, memory = samples[name]
        alloc = allocatable[name]
        cpu_m = cpu_milli(cpu)
        cpu_alloc = quantity.to_milli(alloc.get("cpu", "0"))
        mem_alloc = quantity.to_int(alloc.get("memory", "0"))
        rows.append([name, f"{cpu_m}m",
                     f"{int(cpu_m / cpu_alloc * 100)}%" if cpu_alloc else "<unknown>",
                     format_memory(memory),
                     f"{int(memory / mem_alloc * 100)}%" if mem_alloc else "<unknown>"])
    for name in sorted(set(allocatable) - set(samples)):
        rows.append([name] + ["<unknown>"] * 4)
    return rows


def pod_header(*, containers: bool, all_namespaces: bool) -> list[str]:
    return ((["NAMESPACE"] if all_namespaces else []) + (["POD"] if containers else [])
            + list(POD_COLUMNS))


def _cpu_nano_cores(text: str) -> int:
    from kubemu.api import quantity

    return int(quantity.parse(text).value * 1_000_000_000) if text else 0


def _memory_bytes(text: str) -> int:
    from kubemu.api import quantity

    return quantity.to_int(text) if text else 0


async def run_top(args: argparse.Namespace) -> int:
    """kubectl top: the metrics API (metrics.k8s.io NodeMetrics / PodMetrics)."""
    if args.sort_by not in ("", "cpu", "memory"):
        raise CliError("--sort-by accepts only cpu or memory")
    if args.name and args.selector:
        raise CliError("only one of NAME or selector can be provided")
    nodes_wanted = args.what in ("node", "nodes", "no")
    namespace = "" if args.all_namespaces else common.namespace_of(args)
    client = common.client_for(args)
    pods_in_api: list[Any] = []
    try:
        if nodes_wanted:
            if args.name:
                metrics = [await client.get("nodemetrics", args.name)]
            else:
                metrics = (await client.list("nodemetrics",
                                             label_selector=args.selector)).items
            nodes = (await client.list_all("nodes")).items
        else:
            if args.name:
                metrics = [await client.get("podmetrics", args.name,
                                            common.namespace_of(args))]
            else:
                metrics = (await client.list("podmetrics", namespace,
                                             label_selector=args.selector)).items
                if not metrics:
                    pods_in_api = (await client.list_all(
                        "pods", namespace, label_selector=args.selector)).items
    finally:
        await client.close()
    if nodes_wanted:
        samples = {m.metadata.name: (_cpu_nano_cores(m.usage.get("cpu", "")),
                                     _memory_bytes(m.usage.get("memory", "")))
                   for m in metrics}
        allocatable = {n.metadata.name: dict(n.status.allocatable) for n in nodes
                       if not args.name or n.metadata.name == args.name}
        if args.selector:
            allocatable = {k: v for k, v in allocatable.items() if k in samples}
        if not set(samples) & set(allocatable):
            raise CliError("metrics not available yet")
        rows = [] if args.no_headers else [list(NODE_COLUMNS)]
        rows += node_rows(allocatable, samples, sort_by=args.sort_by)
        sys.stdout.write(top_table(rows))
        return 0
    pods = [PodTop(m.metadata.namespace, m.metadata.name,
                   [(c.name, _cpu_nano_cores(c.usage.get("cpu", "")),
                     _memory_bytes(c.usage.get("memory", ""))) for c in m.containers])
            for m in metrics]
    if not pods:
        if pods_in_api:
            raise CliError("metrics not available yet")
        print("No resources found" if args.all_namespaces
              else f"No resources found in {namespace} namespace.", file=sys.stderr)
        return 0
    rows = [] if args.no_headers else [pod_header(containers=args.containers,
                                                  all_namespaces=args.all_namespaces)]
    rows += pod_rows(pods, containers=args.containers, all_namespaces=args.all_namespaces,
                     sort_by=args.sort_by)
    sys.stdout.write(top_table(rows))
    return 0


# ---------------------------------------------------------------- registration

def _add_session_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--container", default="",
                        help="the container (default: the kubectl.kubernetes.io/"
                             "default-container annotation, else the first)")
    parser.add_argument("-i", "--stdin", action="store_true", help="pass stdin to the container")
    parser.add_argument("-t", "--tty", action="store_true", help="stdin is a TTY")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="only print output from the remote session")


def register(subparsers: argparse._SubParsersAction) -> None:
    logs = subparsers.add_parser("logs", help="print a container's log",
                                 description="Print the log of a container of a pod.")
    logs.add_argument("pod", nargs="*", metavar="POD [CONTAINER] | pod/POD")
    common.add_namespace_arg(logs)
    logs.add_argument("-c", "--container", default="")
    logs.add_argument("-l", "--selector", default="",
                      help="the pods this label selector matches (--tail then defaults to 10)")
    logs.add_argument("--all-containers", action="store_true",
                      help="every container of the pod(s), init containers first")
    logs.add_argument("--prefix", action="store_true",
                      help="start each line with its source: [pod/NAME/CONTAINER]")
    logs.add_argument("--max-log-requests", type=int, default=5, metavar="N",
                      help="how many streams -f may follow at once (default 5)")
    logs.add_argument("-f", "--follow", action="store_true", help="stream new output")
    logs.add_argument("-p", "--previous", action="store_true",
                      help="the previous instance of the container")
    logs.add_argument("--tail", type=int, default=None, metavar="N",
                      help="the last N lines (-1: all)")
    logs.add_argument("--limit-bytes", type=int, default=0, metavar="N")
    logs.add_argument("--component", default="", metavar="NAME",
                      help="a cluster process's own log instead (a name `kubemu status` shows)")
    logs.set_defaults(func=run_logs)

    ex = subparsers.add_parser("exec", help="execute a command in a container",
                               description="Execute a command in a container: kubemu exec "
                                           "POD [-c CONTAINER] [-i] [-t] -- COMMAND [ARGS...]")
    ex.add_argument("pod", metavar="POD | pod/POD")
    ex.add_argument("command_words", nargs="*", help=argparse.SUPPRESS)
    common.add_namespace_arg(ex)
    _add_session_args(ex)
    ex.add_argument("--timeout", type=float, default=0.0, dest="timeout_s", metavar="SECONDS",
                    help="kill the command after this long (0: no limit of its own)")
    ex.set_defaults(func=run_exec, accepts_trailing=True)

    at = subparsers.add_parser("attach", help="attach to a running container",
                               description="Attach to a process that is already running "
                                           "inside an existing container.")
    at.add_argument("pod", nargs="*", metavar="POD | pod/POD")
    common.add_namespace_arg(at)
    _add_session_args(at)
    at.set_defaults(func=run_attach)

    cp.register(subparsers)

    top = subparsers.add_parser("top", help="CPU and memory of pods or nodes",
                                description="Show the CPU and memory use of pods or nodes.")
    top.add_argument("what", choices=("pods", "pod", "po", "nodes", "node", "no"))
    top.add_argument("name", nargs="?", default="", metavar="NAME")
    common.add_namespace_arg(top, all_namespaces=True)
    top.add_argument("-l", "--selector", default="", help="label selector")
    top.add_argument("--containers", action="store_true",
                     help="one row per container (pods)")
    top.add_argument("--sort-by", default="", metavar="cpu|memory",
                     help="largest first by cpu or memory")
    top.add_argument("--no-headers", action="store_true")
    top.set_defaults(func=run_top)
