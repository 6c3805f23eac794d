"""`kubemu logs`, `kubemu exec` and `kubemu top`: what a node's kubelet serves,
through the apiserver (which proxies pods/log, pods/exec and node stats).

- logs [-f] [-c C] [-p] [--tail N] [--limit-bytes N] POD: the container's output,
  raw, on stdout; -f follows it until the container ends.
- exec POD [-c C] -- CMD [ARG...]: runs the command in the container to its
  end (not interactive: no -i/-t), prints its stdout and stderr, and exits
  with its exit code ("command terminated with exit code N" on stderr, as
  kubectl says it).
- top pods [-A] / top nodes: CPU in millicores and memory in Mi, as
  `kubectl top` shows them (from the runtimes' psutil samples).
Without -c, a pod with several containers uses its
`kubectl.kubernetes.io/default-container` annotation, else its first
container, and says so on stderr ("Defaulted container ...").
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from kubemu.cli import common
from kubemu.cli.common import CliError

DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
CALL_TIMEOUT_S = 30.0
EXEC_TIMEOUT_S = 300.0


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


async def _container_for(client: Any, namespace: str, pod_name: str, wanted: str) -> str:
    if wanted:
        return wanted
    pod = await client.get("pods", pod_name, namespace)
    names = [c.name for c in pod.spec.containers]
    if len(names) <= 1:
        return names[0] if names else ""
    chosen = pod.metadata.annotations.get(DEFAULT_CONTAINER_ANNOTATION) or names[0]
    print(f'Defaulted container "{chosen}" out of: {", ".join(names)}', file=sys.stderr)
    return chosen


async def _proxy_for(args: argparse.Namespace) -> tuple[Any, _Proxy]:
    from kubemu.client.config import load_cluster_config

    client = common.client_for(args)
    return client, _Proxy(load_cluster_config(args.home).apiserver)


# ---------------------------------------------------------------- logs

async def run_logs(args: argparse.Namespace) -> int:
    import grpc.aio

    from kubemu.api.v1 import resources_pb2

    namespace = common.namespace_of(args)
    name = _pod_name(args.pod)
    if args.tail is not None and args.tail < -1:
        raise CliError(f"--tail must be -1 or more, got {args.tail}")
    client, proxy = await _proxy_for(args)
    try:
        container = await _container_for(client, namespace, name, args.container)
        request = resources_pb2.PodLogsRequest(namespace=namespace, name=name,
                                               container=container, follow=args.follow,
                                               previous=args.previous)
        if args.tail is not None and args.tail >= 0:
            request.tail_lines = args.tail
        if args.limit_bytes:
            request.limit_bytes = args.limit_bytes
        call = proxy.stub.PodLogs(request, timeout=None if args.follow else CALL_TIMEOUT_S)
        out = sys.stdout.buffer
        try:
            async for chunk in call:
                out.write(chunk.data)
                out.flush()
        except grpc.aio.AioRpcError as err:
            raise _error(err) from None
        finally:
            call.cancel()
    finally:
        await client.close()
        await proxy.close()
    return 0


# ---------------------------------------------------------------- exec

async def run_exec(args: argparse.Namespace) -> int:
    import grpc.aio

    from kubemu.api.v1 import resources_pb2

    command = list(args.command_words) + list(args.trailing)
    if not command:
        raise CliError("you must specify at least one command for the container")
    namespace = common.namespace_of(args)
    name = _pod_name(args.pod)
    client, proxy = await _proxy_for(args)
    try:
        container = await _container_for(client, namespace, name, args.container)
        request = resources_pb2.PodExecRequest(namespace=namespace, name=name,
                                               container=container, command=command,
                                               timeout_s=args.timeout_s)
        try:
            response = await proxy.stub.PodExec(
                request, timeout=(args.timeout_s + 10.0) if args.timeout_s else EXEC_TIMEOUT_S)
        except grpc.aio.AioRpcError as err:
            raise _error(err) from None
    finally:
        await client.close()
        await proxy.close()
    sys.stdout.buffer.write(response.stdout)
    sys.stdout.flush()
    sys.stderr.buffer.write(response.stderr)
    sys.stderr.flush()
    if response.exit_code != 0:
        print(f"command terminated with exit code {response.exit_code}", file=sys.stderr)
    return response.exit_code


# ---------------------------------------------------------------- top

def format_cpu(nano_cores: int) -> str:
    return f"{nano_cores // 1_000_000}m"


def format_memory(count: int) -> str:
    return f"{count // (1 << 20)}Mi"


async def _stats(proxy: _Proxy, nodes: list[Any]) -> list[Any]:
    import grpc.aio

    from kubemu.api.v1 import resources_pb2

    out = []
    for node in nodes:
        try:
            out.append(await proxy.stub.NodeStats(
                resources_pb2.NodeStatsRequest(node=node.metadata.name), timeout=CALL_TIMEOUT_S))
        except grpc.aio.AioRpcError as err:
            print(f"warning: no metrics for node {node.metadata.name}: {_error(err)}",
                  file=sys.stderr)
    return out


async def run_top(args: argparse.Namespace) -> int:
    from kubemu.api import quantity
    from kubemu.cli import printers

    client, proxy = await _proxy_for(args)
    try:
        nodes = (await client.list_all("nodes")).items
        stats = await _stats(proxy, nodes)
    finally:
        await client.close()
        await proxy.close()
    if args.what in ("node", "nodes", "no"):
        by_name = {n.metadata.name: n for n in nodes}
        rows = [["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"]]
        for s in sorted(stats, key=lambda s: s.node):
            alloc = by_name[s.node].status.allocatable if s.node in by_name else {}
            cpu_m = s.cpu_nano_cores // 1_000_000
            cpu_alloc = quantity.to_milli(alloc.get("cpu", "0"))
            mem_alloc = quantity.to_int(alloc.get("memory", "0"))
            rows.append([s.node, f"{cpu_m}m",
                         f"{cpu_m * 100 // cpu_alloc}%" if cpu_alloc else "<unknown>",
                         format_memory(s.memory_working_set_bytes),
                         f"{s.memory_working_set_bytes * 100 // mem_alloc}%"
                         if mem_alloc else "<unknown>"])
        if len(rows) == 1:
            raise CliError("metrics not available yet")
        sys.stdout.write(printers.render_table(rows))
        return 0
    namespace = None if args.all_namespaces else common.namespace_of(args)
    pods = [p for s in stats for p in s.pods if namespace is None or p.namespace == namespace]
    if not pods:
        where = "" if namespace is None else f" in {namespace} namespace"
        print(f"No resources found{where}.", file=sys.stderr)
        return 0
    header = (["NAMESPACE"] if namespace is None else []) + ["NAME", "CPU(cores)",
                                                             "MEMORY(bytes)"]
    rows = [header]
    for p in sorted(pods, key=lambda p: (p.namespace, p.name)):
        cpu = sum(c.cpu_nano_cores for c in p.containers)
        memory = sum(c.memory_working_set_bytes for c in p.containers)
        rows.append(([p.namespace] if namespace is None else []) +
                    [p.name, format_cpu(cpu), format_memory(memory)])
    sys.stdout.write(printers.render_table(rows))
    return 0


# ---------------------------------------------------------------- registration

def register(subparsers: argparse._SubParsersAction) -> None:
    logs = subparsers.add_parser("logs", help="print a container's log",
                                 description="Print the log of a container of a pod.")
    logs.add_argument("pod", metavar="POD | pod/POD")
    common.add_namespace_arg(logs)
    logs.add_argument("-c", "--container", default="")
    logs.add_argument("-f", "--follow", action="store_true", help="stream new output")
    logs.add_argument("-p", "--previous", action="store_true",
                      help="the previous instance of the container")
    logs.add_argument("--tail", type=int, default=None, metavar="N",
                      help="the last N lines (-1: all)")
    logs.add_argument("--limit-bytes", type=int, default=0, metavar="N")
    logs.set_defaults(func=run_logs)

    ex = subparsers.add_parser("exec", help="run a command in a container",
                               description="Run a command in a container: kubemu exec POD "
                                           "[-c CONTAINER] -- COMMAND [ARGS...]")
    ex.add_argument("pod", metavar="POD | pod/POD")
    ex.add_argument("command_words", nargs="*", help=argparse.SUPPRESS)
    common.add_namespace_arg(ex)
    ex.add_argument("-c", "--container", default="")
    ex.add_argument("--timeout", type=float, default=0.0, dest="timeout_s", metavar="SECONDS",
                    help="kill the command after this long (0: no limit of its own)")
    ex.set_defaults(func=run_exec, accepts_trailing=True)

    top = subparsers.add_parser("top", help="CPU and memory of pods or nodes",
                                description="Show the CPU and memory use of pods or nodes.")
    top.add_argument("what", choices=("pods", "pod", "po", "nodes", "node", "no"))
    common.add_namespace_arg(top, all_namespaces=True)
    top.set_defaults(func=run_top)
