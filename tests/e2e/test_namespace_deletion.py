"""Namespace deletion on a real cluster (the whole control plane, one node):
`kubemu delete ns` on a namespace holding 200 objects of several kinds — a
Deployment and a Job with running pods, ConfigMaps, Secrets, Services,
PersistentVolumeClaims, Leases — leaves it Terminating while the namespace
controller deletes every object (the pods stopped by their kubelet), with
Kubernetes' conditions; once it is empty the `kubernetes` finalizer goes and
the namespace with it.

A ConfigMap with a finalizer of the test's own holds the namespace open, so
the Terminating state is observed for sure, and the condition naming what is
left (that ConfigMap) is checked before the test lets it go."""
from __future__ import annotations

import asyncio
import secrets

import pytest

from kubemu.api import codec, errors
from kubemu.api.kinds import REGISTRY
from kubemu.client.clientset import Client
from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import (Seen, alive, cli, container_pid, container_status, obj,
                                    running, runtime_socket)

WAIT_S = 90.0
HOLD = "example.com/hold"
SLEEPER = "trap 'exit 0' TERM; while true; do sleep 1; done"
CREATES_IN_FLIGHT = 20


def pod_template(app: str) -> dict:
    return {"metadata": {"labels": {"app": app}},
            "spec": {"terminationGracePeriodSeconds": 2,
                     "containers": [{"name": "main", "image": "busybox",
                                     "command": ["sh", "-c", SLEEPER]}]}}


def content(ns: str) -> list[dict]:
    """200 objects: what the test creates (controllers add ReplicaSets, pods,
    Endpoints, EndpointSlices and events on top)."""
    docs: list[dict] = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
         "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                  "template": pod_template("web")}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "work"},
         "spec": {"parallelism": 2, "completions": 2,
                  "template": {**pod_template("work"),
                               "spec": {**pod_template("work")["spec"],
                                        "restartPolicy": "Never"}}}},
    ]
    docs += [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}"},
              "data": {"i": str(i)}} for i in range(99)]
    docs.append({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "held", "finalizers": [HOLD]}})
    docs += [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"secret-{i}"},
              "stringData": {"token": f"t{i}"}} for i in range(60)]
    docs += [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i}"},
              "spec": {"selector": {"app": "web"}, "ports": [{"port": 80 + i}]}}
             for i in range(20)]
    docs += [{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
              "metadata": {"name": f"data-{i}"},
              "spec": {"accessModes": ["ReadWriteOnce"],
                       "resources": {"requests": {"storage": "1Mi"}}}} for i in range(5)]
    docs += [{"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
              "metadata": {"name": f"lease-{i}"}, "spec": {"holderIdentity": f"h{i}"}}
             for i in range(13)]
    for doc in docs:
        doc["metadata"]["namespace"] = ns
    assert len(docs) == 200
    return docs


async def create_all(api: Client, docs: list[dict]) -> None:
    limit = asyncio.Semaphore(CREATES_IN_FLIGHT)

    async def create(doc: dict) -> None:
        async with limit:
            await api.create(obj(doc))
    await asyncio.gather(*(create(d) for d in docs))


async def running_pods(api: Client, ns: str, app: str, n: int) -> None:
    async def all_running():
        pods = [p for p in (await api.list("pods", ns, label_selector=f"app={app}")).items
                if not p.metadata.deletion_timestamp]
        ok = len(pods) == n and all(running(codec.to_dict(p)) for p in pods)
        return ok or Seen([(p.metadata.name, p.status.phase) for p in pods])
    await wait_for(all_running, WAIT_S, interval_s=0.2, message=f"{n} running {app} pods")


async def left_in(api: Client, ns: str) -> dict[str, list[str]]:
    """Every namespaced object still in `ns`, by resource."""
    out = {}
    for kind in REGISTRY.kinds:
        if kind.namespaced:
            names = [o.metadata.name for o in (await api.list_all(kind.resource, ns)).items]
            if names:
                out[kind.resource] = sorted(names)
    return out


async def conditions(api: Client, ns: str) -> dict[str, tuple[str, str, str]]:
    got = await api.get("namespaces", ns)
    return {c.type: (c.status, c.reason, c.message) for c in got.status.conditions}


# A cluster of its own (kubemu.testing's marker): the whole control plane in
# the fast profile and one node.
@pytest.mark.kubemu(nodes=1)
async def test_deleting_a_namespace_of_200_objects_empties_it_then_removes_it(kubemu_cluster,
                                                                              kubemu_client):
    cluster, api = kubemu_cluster, kubemu_client
    ns = f"big-{secrets.token_hex(3)}"
    await api.create(obj({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
    await create_all(api, content(ns))
    await running_pods(api, ns, "web", 3)
    await running_pods(api, ns, "work", 2)
    pods = (await api.list("pods", ns)).items
    socket = await runtime_socket(cluster)
    pids = [await container_pid(socket,
                                container_status(codec.to_dict(p))["containerID"]) for p in pods]
    assert len(pids) == 5 and all(pids)

    deleted = await cli(cluster, "delete", "namespace", ns, "--wait=false")
    assert (deleted.returncode, deleted.stdout) == (0, f'namespace "{ns}" deleted\n'), \
        deleted.stderr
    shown = await cli(cluster, "get", "ns", ns)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[1].split()[:2] == [ns, "Terminating"]

    # Everything but the held ConfigMap goes: the pods once their kubelet
    # has stopped them (their grace is 2 s), the rest at once.
    async def only_the_held_one_left():
        left = await left_in(api, ns)
        return left == {"configmaps": ["held"]} or Seen(
            {resource: len(names) for resource, names in left.items()})
    await wait_for(only_the_held_one_left, WAIT_S, interval_s=0.5,
                   message="the namespace emptied but for the held ConfigMap")
    # The kubelet confirmed each pod's deletion once its processes were gone.
    assert not [pid for pid in pids if await asyncio.to_thread(alive, pid)]

    async def reported():
        conds = await conditions(api, ns)
        want = {"NamespaceContentRemaining": (
                    "True", "SomeResourcesRemain",
                    "Some resources are remaining: configmaps. has 1 resource instances"),
                "NamespaceFinalizersRemaining": (
                    "True", "SomeFinalizersRemain",
                    "Some content in the namespace has finalizers remaining: "
                    f"{HOLD} in 1 resource instances"),
                "NamespaceDeletionContentFailure": (
                    "False", "ContentDeleted",
                    "All content successfully deleted, may be waiting on finalization")}
        return all(conds.get(k) == v for k, v in want.items()) or Seen(conds)
    await wait_for(reported, WAIT_S, interval_s=0.5, message="the remaining-content conditions")
    described = await cli(cluster, "describe", "ns", ns)
    assert "Status:       Terminating" in described.stdout, described.stdout
    assert "NamespaceFinalizersRemaining" in described.stdout
    assert list((await api.get("namespaces", ns)).spec.finalizers) == ["kubernetes"]

    await api.patch("configmaps", "held", ns, patch={"metadata": {"finalizers": None}})

    async def gone():
        try:
            got = await api.get("namespaces", ns)
        except errors.NotFound:
            return True
        return Seen({"phase": got.status.phase, "finalizers": list(got.spec.finalizers)})
    await wait_for(gone, WAIT_S, interval_s=0.5, message=f"namespace {ns} gone")
    assert await left_in(api, ns) == {}
    after = await cli(cluster, "get", "ns", ns)
    assert after.returncode == 1
    assert after.stderr == (
        f'Error from server (NotFound): namespaces "{ns}" not found\n')
