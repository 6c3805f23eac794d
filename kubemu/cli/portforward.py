"""`kubemu port-forward TYPE/NAME [LOCAL:]REMOTE [...]`: local ports forwarded to a pod,
as kubectl forwards them, through the apiserver and the pod's kubelet.

- TYPE/NAME: a pod (`pod/NAME`, `po/NAME` or a bare NAME), or an object whose
  selector picks one (`svc/`, `deploy/`, `rs/`, `sts/`, `ds/`, `job/`): the
  first running pod, ready ones first, waited for up to --pod-running-timeout.
- Ports as kubectl parses them: `8080:80`, `80` (the same number locally),
  `:80` or `0:80` (a free local port). A name (`8443:https`) is the pod's
  named container port, or, for a Service, its named service port; a Service's
  port is translated to its targetPort in the chosen pod (kubectl's
  translateServicePortToTargetPort), and a bare service port keeps its own
  number locally (`svc/web 80` listens on 80, forwards to the targetPort).
- --address (default `localhost`: 127.0.0.1 and ::1, failing only when
  neither can be bound); prints "Forwarding from 127.0.0.1:8080 -> 80" per
  listener and "Handling connection for 8080" per connection.
- Each local connection is one PodPortForward call (a kubemu.streams session
  whose stdin/stdout carry the bytes): the kubelet connects to the pod's IP at
  the remote port. A connection the pod refuses is reported on stderr and
  closed; the forwarder goes on. Ctrl-C or SIGTERM ends it (exit status 0);
  the pod ending (deleted, replaced, no longer running: checked every second)
  ends it with "error: lost connection to pod", as kubectl's session ends.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import sys
from typing import Any

from kubemu.cli import common
from kubemu.cli.common import CliError

DEFAULT_POD_RUNNING_TIMEOUT_S = 60.0
# Connections served at once; more wait their turn, up to CONNECTIONS_WAITING_MAX,
# and the ones after that are closed at once.
CONNECTIONS_MAX = 256
CONNECTIONS_WAITING_MAX = 1024

POD_KINDS = ("pod", "pods", "po")
SELECTOR_KINDS = {
    "service": "services", "services": "services", "svc": "services",
    "deployment": "deployments", "deployments": "deployments", "deploy": "deployments",
    "replicaset": "replicasets", "replicasets": "replicasets", "rs": "replicasets",
    "statefulset": "statefulsets", "statefulsets": "statefulsets", "sts": "statefulsets",
    "daemonset": "daemonsets", "daemonsets": "daemonsets", "ds": "daemonsets",
    "job": "jobs", "jobs": "jobs",
    "replicationcontroller": "replicationcontrollers", "rc": "replicationcontrollers",
}


@dataclasses.dataclass(frozen=True)
class PortPair:
    local: int    # 0: a free port
    remote: int


# ---------------------------------------------------------------- decisions (pure)

def split_port(text: str) -> tuple[str, str]:
    """kubectl's splitPort: `L:R` -> (L, R); `R` -> (R, R)."""
    parts = text.split(":")
    if len(parts) == 2:
        return parts[0], parts[1]
    return parts[0], parts[0]


def _container_port_by_name(pod: dict[str, Any], name: str) -> int:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == name:
                return int(port.get("containerPort") or 0)
    pod_name = (pod.get("metadata") or {}).get("name", "")
    raise CliError(f"Pod '{pod_name}' does not have a named port '{name}'")


def pod_ports(words: list[str], pod: dict[str, Any]) -> list[str]:
    """kubectl's convertPodNamedPortToNumber: container port names to numbers."""
    out = []
    for word in words:
        local, remote = split_port(word)
        if remote.isdigit():
            out.append(word)
            continue
        number = _container_port_by_name(pod, remote)
        out.append(str(number) if local == remote else f"{local}:{number}")
    return out


def service_ports(words: list[str], svc: dict[str, Any], pod: dict[str, Any]) -> list[str]:
    """kubectl's translateServicePortToTargetPort: each service port (number or
    name) to the container port it targets in `pod`."""
    name = (svc.get("metadata") or {}).get("name", "")
    ports = (svc.get("spec") or {}).get("ports") or []
    out = []
    for word in words:
        local, remote = split_port(word)
        if remote.isdigit():
            number = int(remote)
        else:
            match = next((p for p in ports if p.get("name") == remote), None)
            if match is None:
                raise CliError(f"Service '{name}' does not have a named port '{remote}'")
            number = int(match.get("port") or 0)
            if local == remote:
                local = str(number)
        port = next((p for p in ports if int(p.get("port") or 0) == number), None)
        if port is None:
            raise CliError(f"Service {name} does not have a service port {number}")
        target = port.get("targetPort")
        if target in (None, "", 0):
            container_port = number
        elif isinstance(target, int) or str(target).isdigit():
            container_port = int(target)
        else:
            container_port = _container_port_by_name(pod, str(target))
        out.append(str(container_port) if local == str(container_port)
                   else f"{local}:{container_port}")
    return out


def parse_ports(words: list[str]) -> list[PortPair]:
    """client-go's parsePorts: `[LOCAL:]REMOTE` with numbers in 0..65535 (local 0
    or empty: a free port; the remote port is required and not 0)."""
    pairs = []
    for word in words:
        parts = word.split(":")
        if len(parts) > 2:
            raise CliError(f"invalid port format '{word}'")
        local_text, remote_text = (parts[0], parts[1]) if len(parts) == 2 else \
            (parts[0], parts[0])
        local = 0
        if local_text:
            if not local_text.isdigit() or int(local_text) > 65535:
                raise CliError(f"error parsing local port '{local_text}': strconv.ParseUint: "
                               f"parsing \"{local_text}\": invalid syntax")
            local = int(local_text)
        if not remote_text.isdigit() or int(remote_text) > 65535:
            raise CliError(f"error parsing remote port '{remote_text}': strconv.ParseUint: "
                           f"parsing \"{remote_text}\": invalid syntax")
        remote = int(remote_text)
        if remote == 0:
            raise CliError("remote port must be > 0")
        pairs.append(PortPair(local, remote))
    return pairs


def listen_addresses(text: str) -> list[tuple[str, bool]]:
    """--address as (host, required?): `localhost` is 127.0.0.1 and ::1, either of
    which may fail alone; an IP must bind."""
    out: list[tuple[str, bool]] = []
    for word in [w.strip() for w in text.split(",") if w.strip()]:
        if word == "localhost":
            out += [("127.0.0.1", False), ("::1", False)]
        else:
            import ipaddress

            try:
                ipaddress.ip_address(word)
            except ValueError:
                raise CliError(f"{word} is not a valid IP") from None
            out.append((word, True))
    return out


def shown_address(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def pick_pod(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A running pod, as kubectl's AttachablePodForObject picks one: not being
    deleted, ready before not ready, the older first."""
    def ready(pod: dict[str, Any]) -> bool:
        return any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in (pod.get("status") or {}).get("conditions") or [])
    running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"
               and not (p.get("metadata") or {}).get("deletionTimestamp")]
    running.sort(key=lambda p: (not ready(p), (p.get("metadata") or {}).get(
        "creationTimestamp", ""), (p.get("metadata") or {}).get("name", "")))
    return running[0] if running else None


def klog_error(message: str, now: datetime.datetime | None = None) -> str:
    """A klog error line, as kubectl's runtime.HandleError prints one."""
    now = now or datetime.datetime.now()
    return (f"E{now:%m%d %H:%M:%S}.{now.microsecond:06d} {os.getpid():7d} portforward.go:424] "
            f"{message}")


# ---------------------------------------------------------------- the pod

async def _find_pod(client: Any, namespace: str, word: str, timeout_s: float
                    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the pod, the Service it was chosen for or None)."""
    from kubemu.api import errors
    from kubemu.cli.printers import selector_string
    from kubemu.client.wait import WaitTimeout, wait_for

    kind, sep, name = word.partition("/")
    if not sep:
        kind, name = "pod", word
    kind = kind.lower()
    if not name:
        raise CliError("arguments in resource/name form must have a single resource and name")
    if kind in POD_KINDS:
        return common.to_json(await client.get("pods", name, namespace)), None
    resource = SELECTOR_KINDS.get(kind)
    if resource is None:
        kind_obj = common.resolve_kind(kind)
        raise CliError(f"cannot attach to {kind_obj.kind}: selector for {kind_obj.kind} "
                       f"not implemented")
    owner = common.to_json(await client.get(resource, name, namespace))
    spec = owner.get("spec") or {}
    if resource in ("services", "replicationcontrollers"):
        labels = spec.get("selector") or {}
        if not labels:
            raise CliError(f"invalid service '{name}': Service is defined without a selector")
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    else:
        selector = selector_string(spec.get("selector"))

    async def running() -> dict[str, Any] | None:
        try:
            found = await client.list_all("pods", namespace, label_selector=selector)
        except errors.ApiError:
            return None
        return pick_pod([common.to_json(p) for p in found.items])
    try:
        pod = await wait_for(running, timeout_s, interval_s=0.2,
                             message=f"a running pod for {word}")
    except WaitTimeout:
        raise CliError("timed out waiting for the condition") from None
    return pod, owner if resource == "services" else None


# ---------------------------------------------------------------- forwarding

# How often a running forwarder checks that its pod still runs.
POD_CHECK_PERIOD_S = 1.0


async def _pod_ends(client: Any, namespace: str, name: str, uid: str) -> None:
    """Return once the pod is gone, replaced (another uid) or no longer running:
    the forwarding session ends with its pod, as kubectl's does."""
    import asyncio

    from kubemu.api import errors

    while True:
        await asyncio.sleep(POD_CHECK_PERIOD_S)
        try:
            pod = await client.get("pods", name, namespace)
        except errors.NotFound:
            return
        except errors.ApiError:
            continue  # the apiserver is away for a moment: the connections may still work
        if (uid and pod.metadata.uid != uid) or pod.status.phase != "Running" or \
                pod.metadata.deletion_timestamp:
            return

class Forwarder:
    """The listeners of one port-forward and their connections."""

    def __init__(self, stub: Any, namespace: str, pod_name: str, *, out: Any = None,
                 err: Any = None):
        import asyncio

        self.stub = stub
        self.namespace = namespace
        self.pod_name = pod_name
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.servers: list[Any] = []
        self.slots = asyncio.Semaphore(CONNECTIONS_MAX)
        self.tasks: set[Any] = set()

    async def listen(self, pairs: list[PortPair], addresses: list[tuple[str, bool]]
                     ) -> list[tuple[str, int, int]]:
        """Bind every pair on every address; (host, local port, remote) per listener."""
        import asyncio

        bound = []
        for pair in pairs:
            local = pair.local
            any_bound = False
            for host, required in addresses:
                try:
                    server = await asyncio.start_server(
                        lambda r, w, p=pair: self._spawn(r, w, p), host, local)
                except OSError as exc:
                    if required:
                        raise CliError(f"unable to listen on port {local or pair.remote}: "
                                       f"Listeners failed to create with the following "
                                       f"errors: [unable to create listener: Error listen tcp4 "
                                       f"{host}:{local}: {exc.strerror}]") from None
                    continue
                port = server.sockets[0].getsockname()[1]
                if local == 0:
                    local = port  # client-go: the other addresses take the same port
                self.servers.append(server)
                bound.append((host, port, pair.remote))
                any_bound = True
                print(f"Forwarding from {shown_address(host)}:{port} -> {pair.remote}",
                      file=self.out, flush=True)
            if not any_bound:
                raise CliError(f"unable to listen on any of the requested ports: "
                               f"[{{{pair.local} {pair.remote}}}]")
        return bound

    def _spawn(self, reader: Any, writer: Any, pair: PortPair) -> None:
        import asyncio

        local = writer.get_extra_info("sockname")[1]
        if len(self.tasks) >= CONNECTIONS_MAX + CONNECTIONS_WAITING_MAX:
            writer.close()
            return
        task = asyncio.ensure_future(self._connection(reader, writer, local, pair.remote))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _connection(self, reader: Any, writer: Any, local: int, remote: int) -> None:
        from kubemu import streams
        from kubemu.api import errors
        from kubemu.api.v1 import resources_pb2
        from kubemu.cli import streaming

        async with self.slots:
            print(f"Handling connection for {local}", file=self.out, flush=True)

            async def to_local(data: bytes) -> None:
                writer.write(data)
                await writer.drain()

            async def dropped(data: bytes) -> None:
                return None

            target = resources_pb2.PodStreamTarget(namespace=self.namespace,
                                                   name=self.pod_name, port=remote)
            try:
                await streaming.run_session(self.stub.PodPortForward, target,
                                            stdin=streams.socket_chunks(reader),
                                            stdout=to_local, stderr=dropped)
            except (errors.ApiError, CliError) as exc:
                text = getattr(exc, "message", "") or str(exc)
                print(klog_error(f"an error occurred forwarding {local} -> {remote}: {text}"),
                      file=self.err, flush=True)
            except OSError:
                pass  # the local client went away
            finally:
                writer.close()

    async def close(self) -> None:
        import asyncio

        for server in self.servers:
            server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for server in self.servers:
            try:
                await asyncio.wait_for(server.wait_closed(), 1.0)
            except TimeoutError:
                pass


async def run_port_forward(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from kubemu.cli.pods import _Proxy
    from kubemu.client.config import load_cluster_config

    if len(args.words) < 2:
        raise CliError("TYPE/NAME and list of ports are required for port-forward")
    word, port_words = args.words[0], list(args.words[1:])
    namespace = common.namespace_of(args)
    timeout_s = common.parse_duration_s(args.pod_running_timeout)
    if timeout_s <= 0:
        raise CliError("--pod-running-timeout must be higher than zero")
    addresses = listen_addresses(args.address)
    async with common.client_for(args) as client:
        pod, svc = await _find_pod(client, namespace, word, timeout_s)
        port_words = service_ports(port_words, svc, pod) if svc is not None else \
            pod_ports(port_words, pod)
        pairs = parse_ports(port_words)
        phase = (pod.get("status") or {}).get("phase") or "Pending"
        if phase != "Running":
            raise CliError(f"unable to forward port because pod is not running. "
                           f"Current status={phase}")
        proxy = _Proxy(load_cluster_config(args.home).apiserver)
        forwarder = Forwarder(proxy.stub, namespace, pod["metadata"]["name"])
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        watch = None
        try:
            await forwarder.listen(pairs, addresses)
            watch = asyncio.ensure_future(_pod_ends(client, namespace, pod["metadata"]["name"],
                                                    pod["metadata"].get("uid", "")))
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait([watch, stopped], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if watch.done():
                raise CliError("lost connection to pod")
        finally:
            if watch is not None:
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            await forwarder.close()
            await proxy.close()
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "port-forward", help="forward one or more local ports to a pod",
        description="Forward local ports to a pod (TYPE/NAME, as kubectl port-forward).")
    p.add_argument("words", nargs="*", metavar="TYPE/NAME [LOCAL_PORT:]REMOTE_PORT")
    common.add_namespace_arg(p)
    p.add_argument("--address", default="localhost",
                   help="addresses to listen on (comma separated; IPs or localhost)")
    p.add_argument("--pod-running-timeout", default="1m0s",
                   help="how long to wait until at least one pod is running")
    p.set_defaults(func=run_port_forward)
