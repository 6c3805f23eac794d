"""The kubelet on a real cluster: etcd, apiserver, and one node (runtime + kubelet)
started by the supervisor with fast timings, shared by this module's tests.

Pods are created with spec.nodeName set (no scheduler needed). Each test works
in its own namespace and, at its end, deletes its pods and waits until the
kubelet has confirmed their deletion (so their processes are gone); the
module ends by shutting the cluster down and asserting that no process of it
is left. What a test checks is what a Kubernetes user would: pod status,
events, `kubemu logs` / `kubemu exec` output, and the real processes.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import grpc
import psutil
import pytest

from deploy import components as comp
from deploy.supervisor import Cluster
from kubemu.api import codec, errors
from kubemu.api.kinds import REGISTRY
from kubemu.client.clientset import Client
from kubemu.client.wait import wait_for
from kubemu.runtime.v1 import runtime_pb2 as rpb
from kubemu.runtime.v1 import runtime_pb2_grpc as rpb_grpc

pytestmark = pytest.mark.e2e

REPO = pathlib.Path(__file__).resolve().parents[2]
NODE = "node-1"
START_TIMEOUT_S = 90.0
WAIT_S = 30.0
CLI_TIMEOUT_S = 60.0
# Kubernetes' timings scaled down (the kubelet's flags). The node shares the
# host's disk, memory and pids: thresholds no host crosses keep the conditions
# this module checks independent of how full the machine running it is.
KUBELET_FLAGS = ["--eviction-hard", "memory.available<1Ki,nodefs.available<1Ki,pid.available<1",
                 "--pleg-relist-s", "0.1", "--sync-frequency-s", "2",
                 "--node-status-update-s", "1", "--node-lease-renew-s", "1",
                 "--crash-backoff-initial-s", "1", "--crash-backoff-max-s", "4",
                 "--image-backoff-initial-s", "1", "--image-backoff-max-s", "4",
                 "--min-grace-s", "1", "--log-follow-poll-s", "0.1", "--log-level", "debug"]
RUNTIME_FLAGS = ["--monitor-period-s", "0.1", "--log-level", "debug"]


def fast_node_kinds() -> tuple[comp.ComponentKind, ...]:
    return comp.node_components(runtime_flags=RUNTIME_FLAGS, kubelet_flags=KUBELET_FLAGS)


def workload_control_plane() -> tuple[comp.ComponentKind, ...]:
    """The whole control plane (scheduler and controller-manager included) with
    the fast profile's timings: for tests of controllers on real nodes."""
    return comp.control_plane("fast")


def control_plane() -> tuple[comp.ComponentKind, ...]:
    """etcd and the apiserver only: these tests bind pods themselves."""
    return (comp.ETCD_KIND, comp.APISERVER_KIND)


# ---------------------------------------------------------------- harness

class ClusterThread:
    """A supervisor Cluster on its own event loop in a thread, shared by a module."""

    def __init__(self, home: pathlib.Path, nodes: int = 1,
                 node_kinds: tuple[comp.ComponentKind, ...] | None = None,
                 kinds: tuple[comp.ComponentKind, ...] | None = None, **cluster_args: Any):
        """kinds: the control plane (default: etcd and the apiserver only;
        `workload_control_plane()` adds the scheduler and the controller-manager)."""
        self.home = home
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="cluster", daemon=True)
        self.cluster = Cluster(home, nodes=nodes, kinds=kinds or control_plane(),
                               node_kinds=node_kinds or fast_node_kinds(),
                               progress=lambda line: None, **cluster_args)

    def call(self, coro, timeout_s: float):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def start(self) -> "ClusterThread":
        self.thread.start()
        self.call(self.cluster.start(START_TIMEOUT_S), START_TIMEOUT_S + 10)
        return self

    def stop(self) -> list:
        try:
            return self.call(self.cluster.shutdown(60.0), 90.0)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    # For async tests: the waits run in a thread, not on the test's event loop.
    async def astart(self) -> "ClusterThread":
        return await asyncio.to_thread(self.start)

    async def astop(self) -> list:
        return await asyncio.to_thread(self.stop)

    @property
    def apiserver(self) -> str:
        return self.cluster.address(comp.APISERVER)

    def runtime_socket(self, node: str = NODE) -> str:
        return self.cluster.address(comp.RUNTIME, node)


def serving(running: ClusterThread):
    """The body of a module's `cluster` fixture (`yield from serving(...)`): the
    cluster runs for the module and leaves no process behind. tests/e2e/
    conftest.py gives every module `api` and `ns` fixtures on its `cluster`."""
    try:
        running.start()
        yield running
    finally:
        left = running.stop()
        assert not left, f"processes left after shutdown: {left}"
        running.cluster.assert_no_processes()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from serving(ClusterThread(tmp_path_factory.mktemp("kubelet-home")))


async def delete_pods(api: Client, namespace: str, timeout_s: float = WAIT_S) -> None:
    pods = (await api.list("pods", namespace)).items
    for pod in pods:
        try:
            await api.delete("pods", pod.metadata.name, namespace, grace_period_s=1)
        except errors.NotFound:
            pass

    async def all_gone():
        return not (await api.list("pods", namespace)).items
    await wait_for(all_gone, timeout_s, interval_s=0.1, message=f"pods of {namespace} deleted")


def obj(doc: dict[str, Any]):
    kind = REGISTRY.by_gvk(doc["apiVersion"], doc["kind"])
    return codec.from_dict(kind.message, doc)


def pod_doc(name: str, namespace: str, containers: list[dict], **spec: Any) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 2,
                     "containers": containers, **spec}}


def busybox(script: str, name: str = "main", **extra: Any) -> dict:
    return {"name": name, "image": "busybox", "command": ["sh", "-c", script], **extra}


async def create_pod(api: Client, doc: dict):
    return await api.create(obj(doc))


def as_dict(message) -> dict:
    return codec.to_dict(message)


async def pod_json(api: Client, namespace: str, name: str) -> dict:
    return as_dict(await api.get("pods", name, namespace))


async def wait_pod(api: Client, namespace: str, name: str, check, timeout_s: float = WAIT_S,
                   what: str = "") -> dict:
    """Wait until check(pod as Kubernetes JSON) is truthy; returns the pod."""
    async def ready():
        pod = await pod_json(api, namespace, name)
        return pod if check(pod) else Seen(pod.get("status"))
    return await wait_for(ready, timeout_s, interval_s=0.1, message=what or f"pod {name}")


class Seen(str):
    """A falsy value that shows what was last seen when a wait times out."""

    def __new__(cls, value: Any):
        return super().__new__(cls, json.dumps(value)[:3000])

    def __bool__(self) -> bool:
        return False


def condition(pod: dict, kind: str) -> dict:
    return next((c for c in pod["status"].get("conditions", []) if c["type"] == kind), {})


def container_status(pod: dict, name: str = "main", init: bool = False) -> dict:
    key = "initContainerStatuses" if init else "containerStatuses"
    return next((s for s in pod["status"].get(key, []) if s["name"] == name), {})


def running(pod: dict) -> bool:
    return pod["status"].get("phase") == "Running" and \
        "running" in container_status(pod).get("state", {})


def is_ready(pod: dict) -> bool:
    return condition(pod, "Ready").get("status") == "True"


async def events_of(api: Client, namespace: str, name: str) -> list[dict]:
    found = await api.list("events", namespace,
                           field_selector=f"involvedObject.name={name}")
    return sorted((as_dict(e) for e in found.items),
                  key=lambda e: (e.get("firstTimestamp", ""), e["metadata"]["name"]))


async def wait_event(api: Client, namespace: str, name: str, reason: str,
                     contains: str = "", timeout_s: float = WAIT_S) -> dict:
    async def found():
        for e in await events_of(api, namespace, name):
            if e["reason"] == reason and contains in e.get("message", ""):
                return e
        seen = await events_of(api, namespace, name)
        return Seen([(e["reason"], e.get("message")) for e in seen])
    return await wait_for(found, timeout_s, interval_s=0.1, message=f"event {reason}")


async def container_pid(socket: str, container_id: str) -> int:
    """The pid of a container, as its runtime reports it."""
    async with grpc.aio.insecure_channel(socket) as channel:
        stub = rpb_grpc.RuntimeStub(channel)
        response = await stub.ContainerStatus(rpb.ContainerStatusRequest(
            container_id=container_id.removeprefix("kubemu://")), timeout=5.0)
    return response.status.pid


async def runtime_socket(cluster: Any, node: str = NODE) -> str:
    """The address of `node`'s runtime in a kubemu.testing Cluster, from its status
    (a ClusterThread has `runtime_socket(node)`)."""
    processes = await asyncio.to_thread(cluster.status)
    found = [p.address for p in processes if (p.node, p.component) == (node, "runtime")]
    assert len(found) == 1, [(p.name, p.node, p.component) for p in processes]
    return found[0]


async def isolation(api: Client, node: str = NODE) -> str:
    """The node runtime's isolation mode (its Node's label kubemu.io/isolation)."""
    return (await api.get("nodes", node)).metadata.labels.get("kubemu.io/isolation", "plain")


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.Error:
        return False


def kubemu(cluster: ClusterThread, *args: str, timeout_s: float = CLI_TIMEOUT_S,
           stdin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, KUBEMU_HOME=str(cluster.home))
    return subprocess.run([sys.executable, "-m", "kubemu.cli.main", *args], env=env,
                          input=stdin, capture_output=True, text=True, timeout=timeout_s,
                          cwd=REPO)


def ok(cluster: ClusterThread, *args: str, stdin: str | None = None) -> str:
    """The command's stdout; it must have succeeded."""
    got = kubemu(cluster, *args, stdin=stdin)
    assert got.returncode == 0, (args, got.stdout, got.stderr)
    return got.stdout


async def cli(cluster: ClusterThread, *args: str) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(kubemu, cluster, *args)


def http(url: str, method: str = "GET") -> int:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


# ---------------------------------------------------------------- node

async def test_node_is_registered_ready_with_lease(cluster, api):
    node = as_dict(await api.get("nodes", NODE))
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == NODE
    assert labels["kubernetes.io/os"] == "linux"
    ip = node["status"]["addresses"][0]
    assert ip["type"] == "InternalIP" and ip["address"].startswith("127.0.")
    cidr = node["spec"]["podCIDR"]
    assert cidr.startswith("127.") and cidr.endswith(".0/24") and node["spec"]["podCIDRs"] == [cidr]
    assert node["status"]["capacity"]["pods"] == "110"
    assert node["status"]["allocatable"]["cpu"] == node["status"]["capacity"]["cpu"]
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] > 0
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("kubemu://")
    kinds = [(c["type"], c["status"], c["reason"]) for c in node["status"]["conditions"]]
    assert kinds == [("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                     ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                     ("PIDPressure", "False", "KubeletHasSufficientPID"),
                     ("Ready", "True", "KubeletReady")]
    first = as_dict(await api.get("leases", NODE, "kube-node-lease"))
    assert first["spec"]["holderIdentity"] == NODE
    assert first["metadata"]["ownerReferences"][0]["kind"] == "Node"

    async def renewed():
        lease = as_dict(await api.get("leases", NODE, "kube-node-lease"))
        return lease["spec"]["renewTime"] > first["spec"]["renewTime"]
    await wait_for(renewed, 10, interval_s=0.2, message="lease renewed")


# ---------------------------------------------------------------- running pods

async def test_pod_runs_as_a_real_process_with_its_ip_env_and_logs(cluster, api, ns):
    await create_pod(api, pod_doc("web", ns, [busybox(
        'echo "started $POD_IP $HOSTNAME"; exec sleep 3600')]))
    pod = await wait_pod(api, ns, "web", running, what="web Running")
    status = pod["status"]
    node = as_dict(await api.get("nodes", NODE))
    cidr_prefix = node["spec"]["podCIDR"].rsplit(".", 1)[0] + "."
    assert status["podIP"].startswith(cidr_prefix) and status["podIPs"] == [{"ip": status["podIP"]}]
    assert status["hostIP"] == node["status"]["addresses"][0]["address"]
    assert status["qosClass"] == "BestEffort" and status["startTime"].endswith("Z")
    assert [(c["type"], c["status"]) for c in status["conditions"]] == [
        ("PodReadyToStartContainers", "True"), ("Initialized", "True"), ("Ready", "True"),
        ("ContainersReady", "True"), ("PodScheduled", "True")]
    cs = container_status(pod)
    assert cs["ready"] is True and cs["started"] is True and cs["restartCount"] == 0
    assert cs["image"] == "busybox"
    assert cs["imageID"].startswith("docker.io/library/busybox@sha256:")
    assert cs["containerID"].startswith("kubemu://") and cs["lastState"] == {}

    pid = await container_pid(cluster.runtime_socket(), cs["containerID"])
    assert alive(pid)
    env = psutil.Process(pid).environ()
    assert env["POD_IP"] == status["podIP"] and env["HOSTNAME"] == "web"

    logs = await wait_for(lambda: _logs_with(cluster, ns, "web", "started"), WAIT_S,
                          interval_s=0.2, message="kubemu logs")
    assert logs.stdout == f"started {status['podIP']} web\n"
    reasons = [e["reason"] for e in await events_of(api, ns, "web")]
    for reason in ("Pulled", "Created", "Started"):
        assert reason in reasons, reasons

    await api.delete("pods", "web", ns, grace_period_s=1)

    async def gone():
        try:
            await api.get("pods", "web", ns)
            return False
        except errors.NotFound:
            return True
    await wait_for(gone, WAIT_S, interval_s=0.1, message="web deleted")
    assert not alive(pid)


async def _logs_with(cluster, ns: str, pod: str, text: str, *flags: str):
    out = await cli(cluster, "logs", "-n", ns, pod, *flags)
    return out if out.returncode == 0 and text in out.stdout else Seen([out.stdout, out.stderr])


async def test_exec_runs_in_the_container_and_returns_its_exit_code(cluster, api, ns):
    await create_pod(api, pod_doc("box", ns, [busybox("exec sleep 3600",
                                                      env=[{"name": "GREETING", "value": "hi"}])]))
    await wait_pod(api, ns, "box", running)
    out = await cli(cluster, "exec", "-n", ns, "box", "--", "sh", "-c",
                    'echo "$GREETING from $HOSTNAME"; echo oops >&2; exit 3')
    assert out.returncode == 3, out.stderr
    assert out.stdout == "hi from box\n"
    assert out.stderr == "oops\ncommand terminated with exit code 3\n"
    missing = await cli(cluster, "exec", "-n", ns, "box", "-c", "nope", "--", "true")
    assert missing.returncode == 1
    assert missing.stderr.strip() == ("Error from server (BadRequest): container nope is not "
                                      "valid for pod box")


async def test_logs_tail_follow_and_previous(cluster, api, ns):
    script = "for i in 1 2 3 4 5; do echo line $i; sleep 0.1; done; exit 1"
    await create_pod(api, pod_doc("counter", ns, [busybox(script)], restartPolicy="OnFailure"))

    async def restarted():
        pod = await pod_json(api, ns, "counter")
        return pod if container_status(pod).get("restartCount", 0) >= 1 else Seen(pod["status"])
    await wait_for(restarted, WAIT_S, interval_s=0.1, message="counter restarted")
    previous = await cli(cluster, "logs", "-n", ns, "counter", "--previous")
    assert previous.returncode == 0, previous.stderr
    assert previous.stdout == "".join(f"line {i}\n" for i in range(1, 6))
    tail = await cli(cluster, "logs", "-n", ns, "counter", "--previous", "--tail", "2")
    assert tail.stdout == "line 4\nline 5\n"
    # -f follows the running instance and ends when it exits.
    await wait_pod(api, ns, "counter", lambda p: "running" in container_status(p)["state"])
    followed = await cli(cluster, "logs", "-n", ns, "counter", "-f")
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.endswith("line 5\n")


# ---------------------------------------------------------------- probes and restarts

async def test_liveness_failure_restarts_the_container(cluster, api, ns):
    # The kubernetes.io liveness example, scaled down: healthy for 2 s, then not.
    script = "touch healthy; sleep 2; rm -f healthy; sleep 600"
    # initialDelaySeconds: the shell has created the file by then.
    probe = {"exec": {"command": ["cat", "healthy"]}, "initialDelaySeconds": 1,
             "periodSeconds": 1, "failureThreshold": 1}
    await create_pod(api, pod_doc("live", ns, [busybox(script, livenessProbe=probe)]))
    first = await wait_pod(api, ns, "live", running)
    assert container_status(first)["restartCount"] == 0
    first_id = container_status(first)["containerID"]

    def restarted(pod):
        cs = container_status(pod)
        return cs.get("restartCount", 0) >= 1 and "running" in cs.get("state", {})
    pod = await wait_pod(api, ns, "live", restarted, what="live restarted")
    cs = container_status(pod)
    assert cs["containerID"] != first_id
    terminated = cs["lastState"]["terminated"]
    # The shell is its container's PID 1 with a PID namespace: SIGTERM, which it
    # does not handle, does nothing, and the kill after the grace period ends it
    # (137, as in Kubernetes); without one it dies of SIGTERM (143).
    expected = 137 if await isolation(api) == "namespaces" else 143
    assert terminated["exitCode"] == expected and terminated["reason"] == "Error"
    assert terminated["containerID"] == first_id
    unhealthy = await wait_event(api, ns, "live", "Unhealthy", "Liveness probe failed:")
    assert unhealthy["type"] == "Warning"
    assert unhealthy["involvedObject"]["fieldPath"] == "spec.containers{main}"
    killing = await wait_event(api, ns, "live", "Killing")
    assert killing["message"] == "Container main failed liveness probe, will be restarted"


async def test_crashing_container_goes_to_crash_loop_back_off_with_growing_delays(
        cluster, api, ns):
    await create_pod(api, pod_doc("crash", ns, [busybox("echo crashing; exit 2")]))
    delays = []

    async def backoff_seen():
        pod = await pod_json(api, ns, "crash")
        waiting = container_status(pod).get("state", {}).get("waiting", {})
        if waiting.get("reason") == "CrashLoopBackOff":
            delay = waiting["message"].split()[1]
            if not delays or delays[-1] != delay:
                delays.append(delay)
        return pod if delays and delays[-1] == "4s" else Seen([delays, pod["status"]])
    pod = await wait_for(backoff_seen, 40, interval_s=0.1, message="back-off reaches its cap")
    # What holds whatever the scheduling: every delay seen is one of the
    # doubling sequence from --crash-backoff-initial-s (1 s) to its cap (4 s),
    # in order, never shrinking. (How many of them a poll catches depends on
    # timing; the exact sequence is unit-tested on kubemu.backoff with a fake clock.)
    assert set(delays) <= {"1s", "2s", "4s"}, delays
    assert delays == sorted(delays, key=lambda d: int(d[:-1])), delays
    cs = container_status(pod)
    assert cs["restartCount"] >= 2
    assert cs["lastState"]["terminated"]["exitCode"] == 2
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    assert pod["status"]["phase"] == "Running"
    message = cs["state"]["waiting"]["message"]
    assert message.startswith("back-off ") and \
        message.endswith(f"restarting failed container=main pod=crash_{ns}"
                         f"({pod['metadata']['uid']})")
    backoff = await wait_event(api, ns, "crash", "BackOff")
    assert backoff["message"] == (f"Back-off restarting failed container main in pod "
                                  f"crash_{ns}({pod['metadata']['uid']})")


async def test_readiness_probe_flips_ready_both_ways(cluster, api, ns):
    probe = {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1,
             "failureThreshold": 1}
    kuard = {"name": "main", "image": "gcr.io/kuar-demo/kuard-amd64:blue",
             "ports": [{"name": "http", "containerPort": 8080}], "readinessProbe": probe}
    await create_pod(api, pod_doc("kuard", ns, [kuard]))
    pod = await wait_pod(api, ns, "kuard", is_ready, what="kuard Ready")
    assert container_status(pod)["ready"] is True
    base = f"http://{pod['status']['podIP']}:8080"
    assert await asyncio.to_thread(http, f"{base}/ready/fail", "POST") == 500

    pod = await wait_pod(api, ns, "kuard", lambda p: not is_ready(p), what="kuard not Ready")
    ready = condition(pod, "Ready")
    assert ready["reason"] == "ContainersNotReady"
    assert ready["message"] == "containers with unready status: [main]"
    assert condition(pod, "ContainersReady")["status"] == "False"
    assert container_status(pod)["ready"] is False and pod["status"]["phase"] == "Running"
    await wait_event(api, ns, "kuard", "Unhealthy",
                     "Readiness probe failed: HTTP probe failed with statuscode: 500")

    assert await asyncio.to_thread(http, f"{base}/ready/ok", "POST") == 200
    pod = await wait_pod(api, ns, "kuard", is_ready, what="kuard Ready again")
    assert container_status(pod)["restartCount"] == 0


@pytest.mark.parametrize("code,phase,reason", [(0, "Succeeded", "Completed"),
                                               (3, "Failed", "Error")],
                         ids=["exit-0-succeeded", "exit-3-failed"])
async def test_restart_never_pod_ends_with_the_exit_code(cluster, api, ns, code, phase, reason):
    await create_pod(api, pod_doc("job", ns, [busybox(f"echo working; exit {code}")],
                                  restartPolicy="Never"))
    pod = await wait_pod(api, ns, "job", lambda p: p["status"].get("phase") == phase,
                         what=f"job {phase}")
    terminated = container_status(pod)["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (code, reason)
    assert terminated["startedAt"] <= terminated["finishedAt"]
    assert container_status(pod)["restartCount"] == 0
    ready = condition(pod, "Ready")
    if phase == "Succeeded":
        assert (ready["status"], ready["reason"]) == ("False", "PodCompleted")
        assert condition(pod, "Initialized")["reason"] == "PodCompleted"
    else:
        assert (ready["status"], ready["reason"]) == ("False", "ContainersNotReady")


async def test_container_over_its_memory_limit_is_oom_killed(cluster, api, ns):
    hog = {"name": "main", "image": "python:3.12",
           "command": ["python3", "-c",
                       "import time\nx = b'x' * (256 << 20)\nprint('allocated', flush=True)\n"
                       "time.sleep(60)"],
           "resources": {"limits": {"memory": "64Mi"}}}
    await create_pod(api, pod_doc("hog", ns, [hog], restartPolicy="Never"))
    pod = await wait_pod(api, ns, "hog", lambda p: p["status"].get("phase") == "Failed",
                         what="hog OOMKilled")
    terminated = container_status(pod)["state"]["terminated"]
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)
    assert pod["status"]["qosClass"] == "Burstable"


async def test_init_containers_run_in_order_before_the_app(cluster, api, ns):
    volume = [{"name": "work", "mountPath": "/work"}]
    inits = [busybox("echo first >> work/trace", name="first", volumeMounts=volume),
             busybox("sleep 0.3; echo second >> work/trace", name="second",
                     volumeMounts=volume)]
    post_start = {"postStart": {"exec": {"command": ["sh", "-c", "echo poststart >> work/trace"]}}}
    await create_pod(api, pod_doc("inits", ns, [busybox(
        "echo app >> work/trace; exec sleep 3600", volumeMounts=volume, lifecycle=post_start)],
        initContainers=inits, volumes=[{"name": "work", "emptyDir": {}}]))
    pod = await wait_pod(api, ns, "inits", running, what="inits Running")
    assert condition(pod, "Initialized")["status"] == "True"
    for name in ("first", "second"):
        terminated = container_status(pod, name, init=True)["state"]["terminated"]
        assert (terminated["reason"], terminated["exitCode"]) == ("Completed", 0)

    async def all_ran():
        out = await cli(cluster, "exec", "-n", ns, "inits", "--", "cat", "work/trace")
        lines = out.stdout.splitlines()
        return lines if len(lines) == 4 else Seen([out.stdout, out.stderr])
    lines = await wait_for(all_ran, WAIT_S, interval_s=0.2, message="init, app and postStart")
    # The init containers ran in order, before the app (and its postStart hook).
    assert lines[:2] == ["first", "second"] and sorted(lines[2:]) == ["app", "poststart"]


# ---------------------------------------------------------------- configuration

async def test_env_from_configmap_secret_and_downward_api_with_expansion(cluster, api, ns):
    await api.create(obj({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "cfg", "namespace": ns},
                          "data": {"color": "blue", "size": "10"}}))
    await api.create(obj({"apiVersion": "v1", "kind": "Secret",
                          "metadata": {"name": "creds", "namespace": ns},
                          "stringData": {"password": "s3cret"}}))
    env = [{"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
           {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds",
                                                               "key": "password"}}},
           {"name": "MY_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath":
                                                               "metadata.namespace"}}},
           {"name": "MESSAGE", "value": "$(COLOR) in $(MY_NAMESPACE), $$(COLOR) $(NOPE)"}]
    ctr = busybox("exec sleep 3600", env=env, envFrom=[{"prefix": "CFG_",
                                                        "configMapRef": {"name": "cfg"}}])
    await create_pod(api, pod_doc("env", ns, [ctr]))
    await wait_pod(api, ns, "env", running)
    out = await cli(cluster, "exec", "-n", ns, "env", "--", "env")
    seen = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    assert seen["COLOR"] == "blue" and seen["PASSWORD"] == "s3cret"
    assert seen["MY_NAMESPACE"] == ns and seen["CFG_size"] == "10"
    assert seen["MESSAGE"] == f"blue in {ns}, $(COLOR) $(NOPE)"
    assert seen["HOSTNAME"] == "env" and seen["POD_IP"]


async def test_missing_configmap_key_is_create_container_config_error(cluster, api, ns):
    await api.create(obj({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "cfg", "namespace": ns}, "data": {"a": "1"}}))
    env = [{"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "b"}}}]
    await create_pod(api, pod_doc("cfgerr", ns, [busybox("exec sleep 3600", env=env)]))

    def config_error(pod):
        waiting = container_status(pod).get("state", {}).get("waiting", {})
        return waiting.get("reason") == "CreateContainerConfigError"
    pod = await wait_pod(api, ns, "cfgerr", config_error)
    assert container_status(pod)["state"]["waiting"]["message"] == \
        f"couldn't find key b in ConfigMap {ns}/cfg"
    assert pod["status"]["phase"] == "Pending"
    await wait_event(api, ns, "cfgerr", "Failed", "Error: couldn't find key b in ConfigMap")
    # Adding the key lets the container start.
    await api.patch("configmaps", "cfg", ns, patch={"data": {"b": "2"}})
    await wait_pod(api, ns, "cfgerr", running, what="cfgerr Running once the key exists")


async def test_configmap_volume_appears_and_updates_in_place(cluster, api, ns):
    await api.create(obj({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "site", "namespace": ns},
                          "data": {"greeting": "hello", "extra": "x"}}))
    ctr = busybox("exec sleep 3600", volumeMounts=[{"name": "config",
                                                    "mountPath": "/etc/config"}])
    await create_pod(api, pod_doc("reader", ns, [ctr], volumes=[
        {"name": "config", "configMap": {"name": "site"}}]))
    await wait_pod(api, ns, "reader", running)

    async def read(path: str) -> str:
        out = await cli(cluster, "exec", "-n", ns, "reader", "--", "sh", "-c",
                        f'cat "$KUBEMU_ROOTFS/{path}"')
        return out.stdout
    assert await read("etc/config/greeting") == "hello"
    listing = await cli(cluster, "exec", "-n", ns, "reader", "--", "ls", "etc/config")
    assert listing.stdout.split() == ["extra", "greeting"]
    await api.patch("configmaps", "site", ns, patch={"data": {"greeting": "bonjour",
                                                              "extra": None}})

    async def updated():
        text = await read("etc/config/greeting")
        return text == "bonjour" or Seen(text)
    await wait_for(updated, WAIT_S, interval_s=0.2, message="configMap volume updated")
    listing = await cli(cluster, "exec", "-n", ns, "reader", "--", "ls", "etc/config")
    assert listing.stdout.split() == ["greeting"]


async def test_downward_api_and_secret_volumes(cluster, api, ns):
    await api.create(obj({"apiVersion": "v1", "kind": "Secret",
                          "metadata": {"name": "creds", "namespace": ns},
                          "stringData": {"password": "s3cret", "user": "admin"}}))
    mounts = [{"name": "info", "mountPath": "/etc/info"},
              {"name": "creds", "mountPath": "/etc/creds", "readOnly": True}]
    volumes = [{"name": "info", "downwardAPI": {"items": [
                   {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                   {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
               {"name": "creds", "secret": {"secretName": "creds",
                                            "items": [{"key": "password", "path": "pw"}]}}]
    doc = pod_doc("downward", ns, [busybox("exec sleep 3600", volumeMounts=mounts)],
                  volumes=volumes)
    doc["metadata"]["labels"] = {"app": "demo", "tier": "web"}
    await create_pod(api, doc)
    await wait_pod(api, ns, "downward", running)

    async def read(path: str) -> str:
        return (await cli(cluster, "exec", "-n", ns, "downward", "--", "cat", path)).stdout
    assert await read("etc/info/labels") == 'app="demo"\ntier="web"'
    assert await read("etc/info/name") == "downward"
    assert await read("etc/creds/pw") == "s3cret"
    # Labels change: the file follows, in place.
    await api.patch("pods", "downward", ns, patch={"metadata": {"labels": {"tier": "db"}}})

    async def updated():
        text = await read("etc/info/labels")
        return text == 'app="demo"\ntier="db"' or Seen(text)
    await wait_for(updated, WAIT_S, interval_s=0.2, message="downward API labels updated")


async def test_tcp_socket_and_grpc_probes(cluster, api, ns):
    server = ("import os, grpc\n"
              "from concurrent import futures\n"
              "from grpc_health.v1 import health, health_pb2, health_pb2_grpc\n"
              "server = grpc.server(futures.ThreadPoolExecutor(2))\n"
              "servicer = health.HealthServicer()\n"
              "health_pb2_grpc.add_HealthServicer_to_server(servicer, server)\n"
              "servicer.set('', health_pb2.HealthCheckResponse.SERVING)\n"
              "server.add_insecure_port(os.environ['POD_IP'] + ':9000')\n"
              "server.start()\n"
              "server.wait_for_termination()\n")
    grpc_ctr = {"name": "main", "image": "python:3.12", "command": ["python3", "-c", server],
                "readinessProbe": {"grpc": {"port": 9000}, "periodSeconds": 1},
                "livenessProbe": {"tcpSocket": {"port": 9000}, "initialDelaySeconds": 2,
                                  "periodSeconds": 1}}
    closed = busybox("exec sleep 3600", name="closed", readinessProbe={
        "tcpSocket": {"port": 9999}, "periodSeconds": 1, "timeoutSeconds": 1})
    await create_pod(api, pod_doc("probed", ns, [grpc_ctr, closed]))

    def main_ready(pod):
        return container_status(pod).get("ready") is True
    pod = await wait_pod(api, ns, "probed", main_ready, what="gRPC-probed container ready")
    assert container_status(pod, "closed")["ready"] is False
    ready = condition(pod, "Ready")
    assert (ready["status"], ready["message"]) == ("False",
                                                   "containers with unready status: [closed]")
    ip = pod["status"]["podIP"]
    await wait_event(api, ns, "probed", "Unhealthy",
                     f"Readiness probe failed: dial tcp {ip}:9999: connect: connection refused")
    # The tcpSocket liveness probe keeps passing: no restart.
    pod = await pod_json(api, ns, "probed")
    assert container_status(pod)["restartCount"] == 0


async def test_status_is_written_only_when_it_changes(cluster, api, ns):
    await create_pod(api, pod_doc("quiet", ns, [busybox("exec sleep 3600")]))
    pod = await wait_pod(api, ns, "quiet", lambda p: running(p) and is_ready(p))
    changes = []
    # Longer than the kubelet's sync period (2 s): every sync finds nothing to write.
    async for event in api.watch("pods", ns, resource_version=pod["metadata"]["resourceVersion"],
                                 field_selector="metadata.name=quiet", timeout_s=4.5):
        changes.append((event.type, as_dict(event.object).get("status")))
    assert changes == []


async def test_persistent_volume_claim_outlives_the_pod(cluster, api, ns):
    await api.create(obj({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                          "metadata": {"name": "data", "namespace": ns},
                          "spec": {"accessModes": ["ReadWriteOnce"],
                                   "resources": {"requests": {"storage": "1Gi"}}}}))
    mount = [{"name": "data", "mountPath": "/data"}]
    claim = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    writer = busybox("echo kept > data/file", volumeMounts=mount)
    await create_pod(api, pod_doc("writer", ns, [writer], restartPolicy="Never", volumes=claim))
    await wait_pod(api, ns, "writer", lambda p: p["status"].get("phase") == "Succeeded")
    await delete_pods(api, ns)
    await create_pod(api, pod_doc("reader", ns, [busybox("exec sleep 3600", volumeMounts=mount)],
                                  volumes=claim))
    await wait_pod(api, ns, "reader", running)
    out = await cli(cluster, "exec", "-n", ns, "reader", "--", "cat", "data/file")
    assert out.stdout == "kept\n", out.stderr


async def test_unknown_image_is_err_image_pull_then_image_pull_back_off(cluster, api, ns):
    await create_pod(api, pod_doc("ghost", ns, [{"name": "main",
                                                 "image": "example.com/no/such:1"}]))
    reasons = set()

    async def both():
        pod = await pod_json(api, ns, "ghost")
        waiting = container_status(pod).get("state", {}).get("waiting", {})
        if waiting.get("reason"):
            reasons.add(waiting["reason"])
        return {"ErrImagePull", "ImagePullBackOff"} <= reasons or Seen(sorted(reasons))
    await wait_for(both, WAIT_S, interval_s=0.05, message="ErrImagePull and ImagePullBackOff")
    failed = await wait_event(api, ns, "ghost", "Failed", 'Failed to pull image '
                                                          '"example.com/no/such:1"')
    assert failed["type"] == "Warning"
    await wait_event(api, ns, "ghost", "BackOff", 'Back-off pulling image "example.com/no/such:1"')


# ---------------------------------------------------------------- deletion

async def test_delete_runs_pre_stop_then_sigterm(cluster, api, ns, tmp_path):
    trace = tmp_path / "trace"
    script = ('trap "echo term >> data/trace; exit 0" TERM; echo up >> data/trace; '
              'while true; do sleep 0.1; done')
    ctr = busybox(script, volumeMounts=[{"name": "data", "mountPath": "/data"}],
                  lifecycle={"preStop": {"exec": {"command": [
                      "sh", "-c", "echo prestop >> data/trace"]}}})
    await create_pod(api, pod_doc("graceful", ns, [ctr], terminationGracePeriodSeconds=10,
                                  volumes=[{"name": "data", "hostPath": {"path": str(tmp_path)}}]))
    await wait_pod(api, ns, "graceful", running)
    await wait_for(lambda: trace.exists() and trace.read_text() == "up\n", WAIT_S)
    pod = await pod_json(api, ns, "graceful")
    events = api.watch("pods", ns, resource_version=pod["metadata"]["resourceVersion"],
                       field_selector="metadata.name=graceful", timeout_s=WAIT_S)
    await api.delete("pods", "graceful", ns)
    last: dict = {}
    async for event in events:
        if event.type == "DELETED":
            break
        last = as_dict(event.object)
    await events.aclose()
    assert trace.read_text() == "up\nprestop\nterm\n"
    # It ended on its TERM trap (exit 0), not by the SIGKILL that ends the grace period (137).
    assert container_status(last)["state"]["terminated"]["exitCode"] == 0


async def test_pod_ignoring_sigterm_is_killed_after_its_grace_period(cluster, api, ns):
    grace_s = 2
    await create_pod(api, pod_doc("stubborn", ns, [busybox(
        "trap '' TERM; while true; do sleep 0.1; done")], terminationGracePeriodSeconds=grace_s))
    pod = await wait_pod(api, ns, "stubborn", running)
    pid = await container_pid(cluster.runtime_socket(), container_status(pod)["containerID"])
    last: dict = {}
    events = api.watch("pods", ns, resource_version=pod["metadata"]["resourceVersion"],
                       field_selector="metadata.name=stubborn", timeout_s=WAIT_S)
    begun = time.monotonic()
    await api.delete("pods", "stubborn", ns)
    deleted_after = None
    async for event in events:
        if event.type == "DELETED":
            deleted_after = time.monotonic() - begun
            break
        last = as_dict(event.object)
    await events.aclose()
    assert deleted_after is not None, "the pod was not deleted"
    assert deleted_after >= grace_s
    assert not alive(pid)
    terminated = container_status(last)["state"]["terminated"]
    assert terminated["exitCode"] == 137
    assert last["status"]["phase"] == "Failed"
    assert last["metadata"]["deletionGracePeriodSeconds"] == grace_s


async def test_top_pods_and_nodes(cluster, api, ns):
    await create_pod(api, pod_doc("busy", ns, [busybox("exec sleep 3600")]))
    await wait_pod(api, ns, "busy", running)

    async def listed():
        out = await cli(cluster, "top", "pods", "-n", ns)
        return out if "busy" in out.stdout else Seen([out.stdout, out.stderr])
    out = await wait_for(listed, WAIT_S, interval_s=0.3, message="top pods")
    header, row = out.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    name, cpu, memory = row.split()
    assert name == "busy" and cpu.endswith("m") and memory.endswith("Mi")
    nodes = await cli(cluster, "top", "nodes")
    assert nodes.returncode == 0, nodes.stderr
    assert nodes.stdout.splitlines()[0].split() == ["NAME", "CPU(cores)", "CPU(%)",
                                                   "MEMORY(bytes)", "MEMORY(%)"]
    assert nodes.stdout.splitlines()[1].startswith(NODE)



async def test_a_second_deletion_with_a_shorter_grace_period_wins(cluster, api, ns):
    await create_pod(api, pod_doc("slow", ns, [busybox(
        "trap '' TERM; while true; do sleep 0.1; done")], terminationGracePeriodSeconds=60))
    pod = await wait_pod(api, ns, "slow", running)
    pid = await container_pid(cluster.runtime_socket(), container_status(pod)["containerID"])
    first = await api.delete("pods", "slow", ns)
    assert first.object.metadata.deletion_grace_period_seconds == 60
    await wait_event(api, ns, "slow", "Killing", "Stopping container main")
    await api.delete("pods", "slow", ns, grace_period_s=1)

    async def gone():
        try:
            await api.get("pods", "slow", ns)
            return False
        except errors.NotFound:
            return True
    # The first grace period (60 s) is twice this wait: only the second one (1 s) ends it in time.
    await wait_for(gone, WAIT_S, interval_s=0.1, message="slow deleted within the second grace")
    assert not alive(pid)


async def test_a_pod_that_does_not_fit_the_node_is_rejected(cluster, api, ns):
    big = busybox("exec sleep 3600", resources={"requests": {"cpu": "5"}})
    await create_pod(api, pod_doc("big", ns, [big]))
    pod = await wait_pod(api, ns, "big", lambda p: p["status"].get("phase") == "Failed")
    assert pod["status"]["reason"] == "OutOfcpu"
    message = pod["status"]["message"]
    assert message.startswith("Pod was rejected: Node didn't have enough resource: cpu, "
                              "requested: 5000, used: ") and message.endswith("capacity: 4000")
    await wait_event(api, ns, "big", "OutOfcpu", "Pod was rejected")


# ---------------------------------------------------------------- status written by others

async def set_condition(api: Client, namespace: str, name: str, condition: dict) -> dict:
    """Write one pod condition as another component would (UpdateStatus on the
    pod as read, again on Conflict); the pod as written."""
    for _ in range(10):
        pod = as_dict(await api.get("pods", name, namespace))
        conditions = [c for c in pod["status"].get("conditions", [])
                      if c["type"] != condition["type"]]
        pod["status"]["conditions"] = conditions + [condition]
        try:
            return as_dict(await api.update_status(obj(pod)))
        except errors.Conflict:
            continue  # the kubelet wrote in between
    raise AssertionError(f"could not write condition {condition['type']} on {name}")


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


async def test_a_readiness_gate_condition_survives_the_kubelets_status_writes(cluster, api, ns):
    gate = "example.com/feature-ready"
    # The postStart hook holds the kubelet's sync of the pod for a while: the
    # status it writes at its end was computed before the gate was set.
    hook = {"postStart": {"exec": {"command": ["sh", "-c", "sleep 3"]}}}
    await create_pod(api, pod_doc("gated", ns, [busybox("exec sleep 3600", lifecycle=hook)],
                                  readinessGates=[{"conditionType": gate}]))
    await wait_event(api, ns, "gated", "Started")
    written = await set_condition(api, ns, "gated", {"type": gate, "status": "True",
                                                     "lastTransitionTime": now_rfc3339()})
    seen = []
    async with contextlib.aclosing(api.watch(
            "pods", ns, resource_version=written["metadata"]["resourceVersion"],
            field_selector="metadata.name=gated", timeout_s=WAIT_S)) as events:
        async for event in events:
            pod = as_dict(event.object)
            seen.append(pod)
            # Every status written after ours keeps the condition.
            assert condition(pod, gate).get("status") == "True", pod["status"]
            if is_ready(pod) and running(pod):
                break
    assert seen and is_ready(seen[-1]), [s["status"] for s in seen]
    # The gate goes False: Ready follows (the kubelet's next write), the gate stays.
    await set_condition(api, ns, "gated", {"type": gate, "status": "False",
                                           "lastTransitionTime": now_rfc3339()})
    pod = await wait_pod(api, ns, "gated", lambda p: not is_ready(p), what="gated not Ready")
    ready = condition(pod, "Ready")
    assert (ready["reason"], ready["message"]) == (
        "ReadinessGatesNotReady",
        f'the status of pod readiness gate "{gate}" is not "True", but False')
    assert condition(pod, gate)["status"] == "False"
    assert condition(pod, "ContainersReady")["status"] == "True"


async def test_a_disruption_target_survives_the_final_status_of_a_deleted_pod(cluster, api, ns):
    await create_pod(api, pod_doc("evicted", ns, [busybox(
        "trap '' TERM; while true; do sleep 0.1; done")], terminationGracePeriodSeconds=3))
    pod = await wait_pod(api, ns, "evicted", running)
    disruption = {"type": "DisruptionTarget", "status": "True",
                  "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting",
                  "lastTransitionTime": now_rfc3339()}
    last = None
    async with contextlib.aclosing(api.watch(
            "pods", ns, resource_version=pod["metadata"]["resourceVersion"],
            field_selector="metadata.name=evicted", timeout_s=WAIT_S)) as events:
        await api.delete("pods", "evicted", ns)
        # While the kubelet waits out the grace period, an evictor marks the pod.
        await set_condition(api, ns, "evicted", disruption)
        async for event in events:
            last = (event.type, as_dict(event.object))
            if event.type == "DELETED":
                break
    assert last is not None and last[0] == "DELETED", last
    final = last[1]
    assert final["status"]["phase"] == "Failed"  # the kubelet's final status
    assert condition(final, "DisruptionTarget") == disruption


# ---------------------------------------------------------------- instances and sandboxes

async def runtime_view(cluster: ClusterThread, uid: str) -> tuple[list, list]:
    """The pod's containers and sandboxes, as the node's runtime has them."""
    labels = {"io.kubernetes.pod.uid": uid}
    async with grpc.aio.insecure_channel(cluster.runtime_socket()) as channel:
        stub = rpb_grpc.RuntimeStub(channel)
        found = await stub.ListContainers(rpb.ListContainersRequest(
            filter=rpb.ContainerFilter(label_selector=labels)), timeout=5.0)
        sandboxes = await stub.ListPodSandbox(rpb.ListPodSandboxRequest(
            filter=rpb.PodSandboxFilter(label_selector=labels)), timeout=5.0)
    return list(found.containers), list(sandboxes.items)


async def test_restart_counts_go_on_and_old_instances_go_when_the_sandbox_is_replaced(
        cluster, api, ns):
    # (`$$` would be Kubernetes' escape for `$`; the shell reads its own pid instead.)
    await create_pod(api, pod_doc("phoenix", ns, [busybox(
        'read pid rest < /proc/self/stat; echo "pid $pid"; exec sleep 3600')]))
    pod = await wait_pod(api, ns, "phoenix", running)
    uid = pod["metadata"]["uid"]
    counts: list[int] = []

    async def kill_and_wait_restart(expected: int) -> dict:
        cid = container_status(await pod_json(api, ns, "phoenix"))["containerID"]
        os.kill(await container_pid(cluster.runtime_socket(), cid), 9)

        def restarted(p):
            cs = container_status(p)
            counts.append(cs.get("restartCount", 0))
            return cs.get("restartCount", 0) >= expected and "running" in cs.get("state", {})
        return await wait_pod(api, ns, "phoenix", restarted, what=f"restart {expected}")

    await kill_and_wait_restart(1)
    await kill_and_wait_restart(2)

    async def collected():
        found, _ = await runtime_view(cluster, uid)
        dead = [c for c in found if c.state != rpb.CONTAINER_RUNNING]
        return (len(found), len(dead)) == (2, 1) or Seen([(c.metadata.attempt, c.state)
                                                          for c in found])
    # The current instance and one dead one (lastState, logs --previous).
    await wait_for(collected, WAIT_S, interval_s=0.1, message="one dead instance kept")

    # The sandbox dies (as at a node restart): a new one, and the count goes on.
    _, (old_sandbox,) = await runtime_view(cluster, uid)
    async with grpc.aio.insecure_channel(cluster.runtime_socket()) as channel:
        await rpb_grpc.RuntimeStub(channel).StopPodSandbox(
            rpb.StopPodSandboxRequest(pod_sandbox_id=old_sandbox.id, timeout_s=0), timeout=10.0)

    def in_new_sandbox(p):
        cs = container_status(p)
        counts.append(cs.get("restartCount", 0))
        return cs.get("restartCount", 0) >= 3 and "running" in cs.get("state", {})
    pod = await wait_pod(api, ns, "phoenix", in_new_sandbox, what="restarted in a new sandbox")
    assert counts == sorted(counts), f"restartCount went down: {counts}"
    cs = container_status(pod)
    assert cs["lastState"]["terminated"]["exitCode"] == 137
    # logs and exec reach the instance that runs now.
    pid = await container_pid(cluster.runtime_socket(), cs["containerID"])
    logs = await cli(cluster, "logs", "-n", ns, "phoenix")
    if await isolation(api) == "namespaces":
        pid = 1  # the first process of its own PID namespace
    assert logs.stdout == f"pid {pid}\n", logs.stderr
    out = await cli(cluster, "exec", "-n", ns, "phoenix", "--", "sh", "-c", "echo $PPID")
    assert out.returncode == 0, out.stderr

    await kill_and_wait_restart(4)
    assert counts == sorted(counts), f"restartCount went down: {counts}"

    async def old_sandbox_removed():
        found, sandboxes = await runtime_view(cluster, uid)
        ok = len(found) == 2 and [s.id for s in sandboxes] != [old_sandbox.id] and \
            old_sandbox.id not in [s.id for s in sandboxes]
        return ok or Seen([[(c.metadata.attempt, c.state) for c in found],
                           [s.id[:12] for s in sandboxes]])
    await wait_for(old_sandbox_removed, WAIT_S, interval_s=0.1,
                   message="old instances and the empty sandbox removed")
