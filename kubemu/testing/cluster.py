"""`kubemu.testing.Cluster`: a private cluster for a test run, with any subset of components.

A Cluster runs the same supervisor as `kubemu up` (`python -m deploy up`), as a
child process of the caller, in a home of its own (a new temporary directory
unless `home` is given) with free ports: clusters never meet each other or a
user's cluster. The caller talks to it the way a user does: kubemu.client for
the API, the supervisor's control API (kubemu.control) for faults and nodes.

Lifecycle: `with Cluster(...) as c:` / `async with Cluster(...) as c:`, or
up()/down() (aup()/adown() from a coroutine: the waits run in a thread).
Everything else is a coroutine, as kubemu.client is: `await c.apply(...)`,
`await c.kill("apiserver-0")`. status() and logs() are plain calls.

Nothing outlives the process that made the cluster: the supervisor gets a pipe
on its stdin (`--watch-stdin`) whose other end only this process holds; when it
ends in any way, SIGKILL included, the kernel closes it and the supervisor
stops the cluster. down() stops it at once and checks that no process of the
home is left.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from typing import Any, Callable, Iterable, Sequence

from kubemu import cluster_home, fileutil
from kubemu.client.clientset import Client
from kubemu.client.config import load_cluster_config
from kubemu.client.wait import wait_for as _wait_for
from kubemu.cluster_home import ClusterState
from kubemu.control import ProcessInfo, SupervisorClient

ETCD = "etcd"
APISERVER = "apiserver"
SCHEDULER = "scheduler"
CONTROLLER_MANAGER = "controller-manager"
RUNTIME = "runtime"
KUBELET = "kubelet"
KUBE_PROXY = "kube-proxy"
CONTROL_PLANE = (ETCD, APISERVER, SCHEDULER, CONTROLLER_MANAGER)
NODE_COMPONENTS = (RUNTIME, KUBELET, KUBE_PROXY)
COMPONENTS = CONTROL_PLANE + NODE_COMPONENTS
# What envtest starts: the API alone, no controller acts on what a test writes.
API_ONLY = (ETCD, APISERVER)
PROFILES = ("fast", "default")

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
CLIENT_TIMEOUT_S = 10.0
NODE_TIMEOUT_S = 60.0
POLL_S = 0.02
SUPERVISOR_OUT = "supervisor.out"
LEFT_WAIT_S = 10.0


class ClusterError(Exception):
    """The cluster could not be started or stopped as asked; the message says why."""


class ProcessesLeft(ClusterError):
    """down() found processes of the cluster's home still running (it killed them)."""


def _check_components(components: Iterable[str], nodes: int) -> tuple[str, ...]:
    chosen = tuple(components)
    unknown = sorted(set(chosen) - set(COMPONENTS))
    if unknown:
        raise ValueError(f"components: unknown {', '.join(map(repr, unknown))} "
                         f"(known: {', '.join(COMPONENTS)})")
    for needed in API_ONLY:
        if needed not in chosen:
            raise ValueError(f"components: {needed!r} is required (every cluster has "
                             f"{' and '.join(API_ONLY)})")
    if KUBELET in chosen and RUNTIME not in chosen:
        raise ValueError("components: 'kubelet' needs 'runtime' (it runs the pods)")
    if KUBE_PROXY in chosen and KUBELET not in chosen:
        raise ValueError("components: 'kube-proxy' needs 'kubelet' on its node")
    if nodes and KUBELET not in chosen:
        raise ValueError(f"nodes={nodes}: a node needs 'runtime' and 'kubelet' in components")
    return tuple(c for c in COMPONENTS if c in chosen)


class Cluster:
    """A cluster for tests: `Cluster(nodes=1)`, `Cluster(components=API_ONLY)`.

    nodes: how many nodes (node-1, node-2, ...), each with the node components
      chosen; 0 (the default) for none.
    components: the processes to run (COMPONENTS' names); the default is the
      control plane, plus the node components when nodes > 0. etcd and the
      apiserver are always needed.
    profile: "fast" (the default: short leases, grace periods and sync periods,
      as kubemu's own tests use) or "default" (Kubernetes' timings).
    home: the cluster's directory (logs, state, etcd data). None: a new
      temporary directory, removed by down(); a given one is kept.
    """

    def __init__(self, nodes: int = 0, components: Sequence[str] | None = None,
                 profile: str = "fast", home: str | os.PathLike[str] | None = None, *,
                 start_timeout_s: float = START_TIMEOUT_S,
                 stop_timeout_s: float = STOP_TIMEOUT_S, log_level: str = "info",
                 isolation: str | None = None, env: dict[str, str] | None = None):
        if nodes < 0:
            raise ValueError(f"nodes: must be >= 0, got {nodes}")
        if profile not in PROFILES:
            raise ValueError(f"profile: must be one of {', '.join(PROFILES)}, got {profile!r}")
        if components is None:
            components = COMPONENTS if nodes else CONTROL_PLANE
        self.components = _check_components(components, nodes)
        self.nodes = nodes
        self.profile = profile
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.log_level = log_level
        self.isolation = isolation
        self.env = env
        self._given_home = home is not None
        self._home: pathlib.Path | None = (
            pathlib.Path(home).expanduser().resolve() if home is not None else None)
        self._supervisor: subprocess.Popen[bytes] | None = None
        self._address = ""
        # One client per event loop that asked for `.client` (a gRPC channel is
        # bound to its loop); closed by adown() for the loop it runs on.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Client] = (
            weakref.WeakKeyDictionary())

    def __repr__(self) -> str:
        state = "up" if self.running else "down"
        return f"Cluster(nodes={self.nodes}, components={list(self.components)}, {state}, " \
               f"home={str(self._home) if self._home else None!r})"

    # --- lifecycle ------------------------------------------------------------

    @property
    def home(self) -> pathlib.Path:
        if self._home is None:
            raise ClusterError("the cluster is not up: it has no home yet")
        return self._home

    @property
    def running(self) -> bool:
        return self._supervisor is not None and self._supervisor.poll() is None

    @property
    def address(self) -> str:
        """The apiserver's address (host:port), as the cluster's kubeconfig names it."""
        if not self._address:
            raise ClusterError("the cluster is not up")
        return self._address

    def _argv(self) -> list[str]:
        count = {c: (1 if c in self.components else 0) for c in (SCHEDULER, CONTROLLER_MANAGER)}
        argv = [sys.executable, "-m", "deploy", "up", "--home", str(self.home),
                "--nodes", str(self.nodes), "--profile", self.profile,
                "--schedulers", str(count[SCHEDULER]),
                "--controller-managers", str(count[CONTROLLER_MANAGER]),
                "--start-timeout-s", str(self.start_timeout_s),
                "--stop-timeout-s", str(self.stop_timeout_s),
                "--log-level", self.log_level, "--no-addons", "--watch-stdin"]
        node_components = [c for c in NODE_COMPONENTS if c in self.components]
        if node_components:
            argv += ["--node-components", ",".join(node_components)]
        if self.isolation:
            argv += ["--isolation", self.isolation]
        return argv

    def up(self) -> Cluster:
        """Start the cluster and wait until every process is ready. Blocking."""
        if self._supervisor is not None:
            raise ClusterError("up: the cluster was started already (one up() per Cluster)")
        if self._home is None:
            self._home = pathlib.Path(tempfile.mkdtemp(prefix="kubemu-test-")).resolve()
        cluster_home.make_private_home(self.home)
        out_path = self.home / SUPERVISOR_OUT
        env = dict(os.environ if self.env is None else self.env)
        env.pop(cluster_home.HOME_ENV, None)  # --home says which; never a user's cluster
        with open(out_path, "ab") as out:
            # stdin: the pipe whose end of file tells the supervisor this process is
            # gone. Its own session: a Ctrl-C in a terminal reaches it through us.
            self._supervisor = subprocess.Popen(
                self._argv(), stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, env=env, close_fds=True)
        try:
            self._wait_ready(time.monotonic() + self.start_timeout_s + 10.0)
        except BaseException:
            self.down(check=False)
            raise
        self._address = load_cluster_config(self.home).apiserver
        return self

    def _wait_ready(self, deadline: float) -> None:
        assert self._supervisor is not None
        pid = self._supervisor.pid
        while True:
            state = cluster_home.read_state(self.home)
            if state and state.supervisor is not None and state.supervisor.pid == pid:
                if state.state == ClusterState.READY:
                    return
                if state.state in (ClusterState.FAILED, ClusterState.STOPPED):
                    raise ClusterError(f"the cluster in {self.home} failed to start: "
                                       f"{state.reason or state.state}\n{self._supervisor_tail()}")
            code = self._supervisor.poll()
            if code is not None:
                raise ClusterError(f"the supervisor exited ({code}) before the cluster in "
                                   f"{self.home} was ready:\n{self._supervisor_tail()}")
            if time.monotonic() >= deadline:
                raise ClusterError(f"the cluster in {self.home} was not ready after "
                                   f"{self.start_timeout_s:g} s:\n{self._supervisor_tail()}")
            time.sleep(POLL_S)  # poll interval of a bounded wait

    def _supervisor_tail(self) -> str:
        parts = []
        for path in (self.home / SUPERVISOR_OUT, cluster_home.supervisor_log(self.home)):
            text = fileutil.tail(path, 20)
            if text:
                parts.append(f"--- {path.name} (last lines)\n{text}")
        return "\n".join(parts)

    def down(self, *, check: bool = True) -> None:
        """Stop every process (SIGTERM to the supervisor, which stops the cluster),
        then make sure none of the home's processes is left. Blocking; idempotent.

        Raises ProcessesLeft (after killing them) when some were, unless check=False.
        """
        supervisor, self._supervisor = self._supervisor, None
        self._address = ""
        if supervisor is None:
            return
        left: list[Any] = []
        try:
            if supervisor.poll() is None:
                supervisor.send_signal(signal.SIGTERM)
                try:
                    supervisor.wait(self.stop_timeout_s + 15.0)
                except subprocess.TimeoutExpired:
                    supervisor.kill()  # its reaper stops what it leaves
                    supervisor.wait(LEFT_WAIT_S)
        finally:
            if supervisor.stdin is not None:
                with contextlib.suppress(OSError):
                    supervisor.stdin.close()
            left = self._leftovers()
        if not self._given_home and not left:
            shutil.rmtree(self.home, ignore_errors=True)
        if left and check:
            raise ProcessesLeft(f"processes of the cluster in {self.home} were left after "
                                f"down() and were killed: {left}")

    def _leftovers(self) -> list[str]:
        if self._home is None or not self._home.exists():
            return []
        found = cluster_home.find_home_processes(self._home)
        if not found:
            return []
        described = cluster_home.describe(found)
        cluster_home.terminate(found, grace_s=5.0)
        return [described]

    async def aup(self) -> Cluster:
        """up() from a coroutine: the wait runs in a thread, not on the event loop."""
        return await asyncio.to_thread(self.up)

    async def adown(self, *, check: bool = True) -> None:
        """down() from a coroutine; closes the client this loop got from `.client`."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()
        await asyncio.to_thread(self.down, check=check)

    def __enter__(self) -> Cluster:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down(check=exc[0] is None)

    async def __aenter__(self) -> Cluster:
        return await self.aup()

    async def __aexit__(self, *exc: object) -> None:
        await self.adown(check=exc[0] is None)

    # --- the API ----------------------------------------------------------------

    @property
    def client(self) -> Client:
        """A kubemu.client Client for the running event loop (one per loop, reused)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = Client(self.address, timeout_s=CLIENT_TIMEOUT_S)
        return client

    def new_client(self, **kwargs: Any) -> Client:
        """A Client of the caller's own (close it, or `async with`)."""
        kwargs.setdefault("timeout_s", CLIENT_TIMEOUT_S)
        return Client(self.address, **kwargs)

    async def apply(self, manifest: Any, *, namespace: str | None = None) -> list[Any]:
        """Create or update objects as `kubemu apply -f` does; the objects as applied.

        manifest: a dict (one object, or a List), a list of dicts, YAML or JSON
        text, or a path (pathlib.Path, or a str naming an existing file).
        namespace: for objects that name none (else "default").
        """
        from kubemu.cli.apply import apply_one
        from kubemu.cli.manifests import Document, decode, split_documents

        docs: list[Document]
        if isinstance(manifest, pathlib.Path) or (
                isinstance(manifest, str) and "\n" not in manifest and os.path.isfile(manifest)):
            path = pathlib.Path(manifest)
            text = await asyncio.to_thread(path.read_text)
            docs = split_documents(text, str(path))
        elif isinstance(manifest, str):
            docs = split_documents(manifest, "manifest")
        elif isinstance(manifest, dict):
            is_list = (isinstance(manifest.get("items"), list)
                       and str(manifest.get("kind", "")).endswith("List"))
            docs = [Document("manifest", item)
                    for item in (manifest["items"] if is_list else [manifest])]
        elif isinstance(manifest, (list, tuple)):
            docs = [Document("manifest", item) for item in manifest]
        else:
            raise TypeError(f"apply: a dict, list, YAML text or path, not {type(manifest).__name__}")
        manifests, problems = decode(docs, namespace=namespace)
        if problems:
            raise ValueError("apply: " + "; ".join(problems))
        applied = []
        for m in manifests:
            _operation, doc = await apply_one(self.client, m)
            applied.append(doc)
        return applied

    async def wait_for(self, predicate: Callable[[], Any], timeout_s: float, *,
                       interval_s: float = 0.05, message: str = "") -> Any:
        """The first truthy value of `predicate()` (sync or async); on timeout a
        WaitTimeout (an AssertionError) whose message gives the last value seen."""
        return await _wait_for(predicate, timeout_s, interval_s=interval_s, message=message)

    async def wait_for_nodes(self, count: int, timeout_s: float = NODE_TIMEOUT_S) -> list[str]:
        """Wait until exactly `count` Nodes exist and are Ready; their names."""
        async def ready() -> list[str] | None:
            nodes = (await self.client.list("nodes")).items
            names = [n.metadata.name for n in nodes if any(
                c.type == "Ready" and c.status == "True" for c in n.status.conditions)]
            return sorted(names) if len(names) == len(nodes) == count else None
        return await _wait_for(ready, timeout_s, interval_s=0.1,
                               message=f"{count} Ready node(s)")

    # --- processes: status, logs, faults, nodes ------------------------------------

    def status(self) -> list[ProcessInfo]:
        """Every process as `kubemu status` shows it (name, state, pid, restarts, ...)."""
        return self._control_sync(lambda c: c.status())

    def logs(self, component: str, *, lines: int | None = None) -> str:
        """A process's log by name (`apiserver-0`, `node-1/kubelet`), or the
        supervisor's (`supervisor`); the last `lines` lines when given."""
        path = cluster_home.logs_dir(self.home) / (component.replace("/", "-") + ".log")
        if not path.is_file():
            known = sorted(p.stem for p in cluster_home.logs_dir(self.home).glob("*.log"))
            raise KeyError(f"no log for {component!r} in {path.parent} (there are: "
                           f"{', '.join(known)})")
        if lines is not None:
            return fileutil.tail(path, lines)
        return path.read_text(errors="replace")

    def _control_sync(self, call: Callable[[SupervisorClient], Any]) -> Any:
        """Run one control call from sync code (on a loop of its own, in a thread)."""
        home = self.home

        async def run() -> Any:
            async with SupervisorClient(home) as control:
                return await call(control)

        result: list[Any] = []
        errors: list[BaseException] = []

        def target() -> None:
            try:
                result.append(asyncio.run(run()))
            except BaseException as exc:  # handed to the caller's thread
                errors.append(exc)

        thread = threading.Thread(target=target, name="kubemu-control", daemon=True)
        thread.start()
        thread.join(CLIENT_TIMEOUT_S + 5.0)
        if errors:
            raise errors[0]
        if not result:
            raise ClusterError(f"the supervisor of {home} did not answer in time")
        return result[0]

    async def _control(self, call: Callable[[SupervisorClient], Any]) -> Any:
        async with SupervisorClient(self.home) as control:
            return await call(control)

    async def kill(self, *names: str, signal: int = signal.SIGKILL,
                   keep_down: bool = False) -> None:
        """Signal processes by name; the supervisor restarts them unless keep_down."""
        await self._control(lambda c: c.kill(list(names), signal=signal, keep_down=keep_down))

    async def stop(self, *names: str) -> None:
        """Stop processes; they stay down until start()."""
        await self._control(lambda c: c.stop(list(names)))

    async def start(self, *names: str) -> None:
        await self._control(lambda c: c.start(list(names)))

    async def restart(self, *names: str) -> None:
        await self._control(lambda c: c.restart(list(names)))

    async def pause(self, *names: str, for_s: float | None = None) -> None:
        """SIGSTOP processes (never taken for dead); resume() or `for_s` ends it."""
        await self._control(lambda c: c.pause(list(names), for_s=for_s))

    async def resume(self, *names: str) -> None:
        await self._control(lambda c: c.resume(list(names)))

    async def partition(self, *names: str, for_s: float | None = None) -> None:
        """Cut processes off from the apiserver (and etcd members from their peers)."""
        await self._control(lambda c: c.partition(list(names), for_s=for_s))

    async def heal(self, *names: str) -> None:
        """End the partitions of `names`, or every partition when none is named."""
        await self._control(lambda c: c.heal(list(names) or None))

    async def add_node(self, timeout_s: float = NODE_TIMEOUT_S) -> str:
        """Start one more node (with the cluster's node components); its name,
        once its processes are ready and its Node is Ready."""
        if KUBELET not in self.components:
            raise ClusterError("add_node: this cluster runs no kubelet "
                               f"(components: {', '.join(self.components)})")
        return await self._control(lambda c: c.add_node(timeout_s=timeout_s))

    async def remove_node(self, name: str, timeout_s: float = NODE_TIMEOUT_S) -> None:
        """Stop a node's processes and delete its Node object."""
        await self._control(lambda c: c.remove_node(name, timeout_s=timeout_s))

