"""Priority and preemption on a real cluster (etcd, apiserver, scheduler,
controller-manager, one node with 2 CPUs), as a Kubernetes user sees them:
PriorityClasses applied with `kubemu apply`, the built-in classes listed by
`kubemu get priorityclass`, a full node where a high-priority pod preempts a
low-priority one (the victim deleted with a Preempted event, the preemptor
nominated to the node, then Running there), and a `preemptionPolicy: Never`
pod of the same value that waits instead of preempting.
"""
from __future__ import annotations

import pytest

from deploy import components as comp
from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import (KUBELET_FLAGS, NODE, RUNTIME_FLAGS, WAIT_S, ClusterThread,
                                    Seen, cli, create_pod, events_of, pod_json, running,
                                    serving, wait_event, wait_pod, workload_control_plane)

pytestmark = pytest.mark.e2e

NODE_CPU = "2"
CLASSES = """\
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: low-priority
value: 10
description: "Batch work that may be preempted."
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: high-priority
value: 1000000
description: "This priority class should be used for XYZ service pods only."
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: high-priority-nonpreempting
value: 1000000
preemptionPolicy: Never
globalDefault: false
description: "This priority class will not cause other pods to be preempted."
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    node_kinds = comp.node_components(runtime_flags=RUNTIME_FLAGS,
                                      kubelet_flags=[*KUBELET_FLAGS, "--cpu", NODE_CPU])
    yield from serving(ClusterThread(tmp_path_factory.mktemp("priority-home"),
                                     node_kinds=node_kinds, kinds=workload_control_plane()))


def sleeper(name: str, namespace: str, cls: str, cpu: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"priorityClassName": cls, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "busybox",
                                     "command": ["sleep", "3600"],
                                     "resources": {"requests": {"cpu": cpu}}}]}}


async def test_built_in_classes_are_listed(cluster, tmp_path):
    out = await cli(cluster, "get", "priorityclass")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["system-cluster-critical"][1:3] == ["2000000000", "false"]
    assert rows["system-node-critical"][1:3] == ["2000001000", "false"]
    assert rows["system-node-critical"][4] == "PreemptLowerPriority"
    out = await cli(cluster, "describe", "pc", "system-cluster-critical")
    assert out.returncode == 0, out.stderr
    assert out.stdout == (
        "Name:              system-cluster-critical\n"
        "Value:             2000000000\n"
        "GlobalDefault:     false\n"
        "PreemptionPolicy:  PreemptLowerPriority\n"
        "Description:       Used for system critical pods that must run in the cluster, but "
        "can be moved to another node if necessary.\n"
        "Annotations:       <none>\n"
        "Events:            <none>\n")
    # A pod naming a class that does not exist is refused, as kube-apiserver refuses it.
    manifest = tmp_path / "pod.yaml"
    manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n"
                        "  priorityClassName: foo\n  containers:\n  - name: c\n"
                        "    image: busybox\n")
    out = await cli(cluster, "apply", "-f", str(manifest))
    assert out.returncode == 1
    # (kubectl puts `error when creating "<file>": ` before the server's message;
    # kubemu's apply does not yet, for any error.)
    assert out.stderr.startswith("Error from server (Forbidden): ")
    assert out.stderr.endswith('pods "x" is forbidden: no PriorityClass with name foo was '
                               'found\n')
    out = await cli(cluster, "delete", "priorityclass", "system-node-critical")
    assert out.returncode == 1
    assert out.stderr == ('Error from server (Forbidden): priorityclasses.scheduling.k8s.io '
                          '"system-node-critical" is forbidden: this is a system priority '
                          'class and cannot be deleted\n')


async def test_high_priority_pod_preempts_a_low_priority_one_on_a_full_node(cluster, api, ns,
                                                                             tmp_path):
    manifest = tmp_path / "classes.yaml"
    manifest.write_text(CLASSES)
    out = await cli(cluster, "apply", "-f", str(manifest))
    assert out.returncode == 0, out.stderr

    # The node's 2 CPUs, all requested by low-priority pods.
    for name in ("low-a", "low-b"):
        await create_pod(api, sleeper(name, ns, "low-priority", "1"))
    for name in ("low-a", "low-b"):
        low = await wait_pod(api, ns, name, running, what=f"{name} Running")
        assert (low["spec"]["priority"], low["spec"]["preemptionPolicy"]) == \
            (10, "PreemptLowerPriority")

    # Same value, preemptionPolicy Never: it waits, and no one is preempted.
    await create_pod(api, sleeper("polite", ns, "high-priority-nonpreempting", "1"))
    polite = await wait_event(api, ns, "polite", "FailedScheduling",
                              "not eligible due to preemptionPolicy=Never")
    assert polite["message"] == ("0/1 nodes are available: 1 Insufficient cpu. preemption: "
                                 "not eligible due to preemptionPolicy=Never.")
    for name in ("low-a", "low-b"):
        assert not (await pod_json(api, ns, name))["metadata"].get("deletionTimestamp")
    out = await cli(cluster, "delete", "pod", "polite", "-n", ns, "--wait=false")
    assert out.returncode == 0, out.stderr

    await create_pod(api, sleeper("important", ns, "high-priority", "1"))
    important = await wait_pod(api, ns, "important",
                               lambda p: p["status"].get("nominatedNodeName") == NODE,
                               what="nominated")
    assert important["spec"]["priority"] == 1000000

    async def one_victim():
        events = {}
        for name in ("low-a", "low-b"):
            events[name] = [e for e in await events_of(api, ns, name)
                            if e["reason"] == "Preempted"]
        victims = [name for name, found in events.items() if found]
        return victims if len(victims) == 1 else Seen(events)
    [victim] = await wait_for(one_victim, WAIT_S, interval_s=0.2, message="one Preempted event")
    uid = important["metadata"]["uid"]
    [event] = [e for e in await events_of(api, ns, victim) if e["reason"] == "Preempted"]
    assert event["message"] == f"Preempted by pod {uid} on node {NODE}"

    await wait_pod(api, ns, "important", running, what="important Running")
    survivor = "low-b" if victim == "low-a" else "low-a"
    assert running(await pod_json(api, ns, survivor))

    async def victim_gone():
        out = await cli(cluster, "get", "pod", victim, "-n", ns)
        return out if out.returncode != 0 else Seen(out.stdout)
    gone = await wait_for(victim_gone, WAIT_S, interval_s=0.2, message="victim deleted")
    assert gone.stderr.strip() == f'Error from server (NotFound): pods "{victim}" not found'
