"""The DaemonSet controller in the real controller-manager process on a real
apiserver, with no kubelets and no scheduler: the test registers Node objects
itself and checks the daemon pods (one per eligible node, each pinned with
`matchFields metadata.name In [node]`) appear and go; it writes pod status
itself to fake Failed and Ready pods."""
from __future__ import annotations

import pytest

from kubemu import timefmt
from kubemu.api import codec
from kubemu.api.kinds import REGISTRY
from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import Seen
from tests.support import ControllerManagerProc

WAIT_S = 20.0
NS = "default"


def obj(doc: dict):
    return codec.from_dict(REGISTRY.by_gvk(doc["apiVersion"], doc["kind"]).message, doc)


def node_doc(name: str, labels: dict | None = None, taints: list | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                  **(labels or {})}},
            "spec": {"taints": taints or []}}


def ds_doc(name: str, *, app: str = "", image: str = "busybox", node_selector: dict | None = None,
           tolerations: list | None = None, strategy: dict | None = None) -> dict:
    app = app or name
    spec: dict = {"containers": [{"name": "c", "image": image}]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    doc = {"apiVersion": "apps/v1", "kind": "DaemonSet",
           "metadata": {"name": name, "namespace": NS},
           "spec": {"selector": {"matchLabels": {"app": app}},
                    "template": {"metadata": {"labels": {"app": app}}, "spec": spec}}}
    if strategy:
        doc["spec"]["updateStrategy"] = strategy
    return doc


def pinned_node(pod) -> str:
    terms = pod.spec.affinity.node_affinity.\
        required_during_scheduling_ignored_during_execution.node_selector_terms
    assert len(terms) == 1 and len(terms[0].match_fields) == 1, terms
    field = terms[0].match_fields[0]
    assert (field.key, field.operator, len(field.values)) == ("metadata.name", "In", 1), field
    return field.values[0]


@pytest.fixture
async def cm(tmp_path, apiserver):
    proc = await ControllerManagerProc(tmp_path, apiserver.address,
                                       "--controllers", "daemonset").astart()
    try:
        yield proc
    finally:
        await proc.astop()


async def live_pods(client, app: str) -> list:
    return [p for p in (await client.list("pods", NS, label_selector=f"app={app}")).items
            if not p.metadata.deletion_timestamp]


async def wait_nodes(client, app: str, nodes: set[str]) -> dict:
    """Wait until the live pods of `app` are exactly one per node of `nodes`."""
    async def placed():
        pods = await live_pods(client, app)
        by_node = {pinned_node(p): p for p in pods}
        if len(pods) == len(nodes) and set(by_node) == nodes:
            return by_node
        return Seen(sorted((p.metadata.name, pinned_node(p)) for p in pods))
    return await wait_for(placed, WAIT_S, interval_s=0.1, message=f"{app} pods on {nodes}")


async def wait_none(client, app: str) -> None:
    async def none_left():
        pods = (await client.list("pods", NS, label_selector=f"app={app}")).items
        return not pods or Seen([p.metadata.name for p in pods])
    await wait_for(none_left, WAIT_S, message=f"no {app} pods")


async def mark(client, pod, *, phase: str, ready: bool = False):
    pod.status.phase = phase
    if ready:
        cond = pod.status.conditions.add()
        cond.type, cond.status = "Ready", "True"
        cond.last_transition_time = timefmt.rfc3339(0)
    return await client.update_status(pod)


async def test_one_pod_per_eligible_node_with_the_daemon_tolerations(cm, client):
    await client.create(obj(node_doc("node-a")))
    await client.create(obj(node_doc("node-b", taints=[
        {"key": "dedicated", "value": "infra", "effect": "NoSchedule"}])))
    ds = await client.create(obj(ds_doc("agent")))
    pods = await wait_nodes(client, "agent", {"node-a"})
    pod = pods["node-a"]
    ref = pod.metadata.owner_references[0]
    assert (ref.kind, ref.name, ref.uid, ref.controller, ref.block_owner_deletion) == \
        ("DaemonSet", "agent", ds.metadata.uid, True, True)
    assert pod.metadata.generate_name == "agent-"
    assert pod.metadata.labels["controller-revision-hash"]
    tolerations = {(t.key, t.operator, t.effect, t.HasField("toleration_seconds"))
                   for t in pod.spec.tolerations}
    assert tolerations == {
        ("node.kubernetes.io/not-ready", "Exists", "NoExecute", False),
        ("node.kubernetes.io/unreachable", "Exists", "NoExecute", False),
        ("node.kubernetes.io/disk-pressure", "Exists", "NoSchedule", False),
        ("node.kubernetes.io/memory-pressure", "Exists", "NoSchedule", False),
        ("node.kubernetes.io/pid-pressure", "Exists", "NoSchedule", False),
        ("node.kubernetes.io/unschedulable", "Exists", "NoSchedule", False)}

    async def status_says_one():
        got = await client.get("daemonsets", "agent", NS)
        s = got.status
        numbers = (s.desired_number_scheduled, s.current_number_scheduled, s.number_ready,
                   s.updated_number_scheduled, s.number_available, s.number_unavailable,
                   s.number_misscheduled, s.observed_generation)
        return got if numbers == (1, 1, 0, 1, 0, 1, 0, got.metadata.generation) \
            else Seen(numbers)
    await wait_for(status_says_one, WAIT_S)

    events = (await client.list("events", NS)).items
    created = [e.message for e in events if e.reason == "SuccessfulCreate"
               and e.involved_object.name == "agent"]
    assert created == [f"Created pod: {pod.metadata.name}"]

    # A DaemonSet that tolerates the taint runs on both nodes.
    await client.create(obj(ds_doc("tolerant", tolerations=[
        {"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}])))
    await wait_nodes(client, "tolerant", {"node-a", "node-b"})


async def test_nodes_added_removed_and_relabelled_gain_and_lose_their_pod(cm, client):
    await client.create(obj(node_doc("node-a", labels={"disk": "ssd"})))
    await client.create(obj(ds_doc("ssd-agent", node_selector={"disk": "ssd"})))
    await wait_nodes(client, "ssd-agent", {"node-a"})

    await client.create(obj(node_doc("node-c", labels={"disk": "ssd"})))
    await wait_nodes(client, "ssd-agent", {"node-a", "node-c"})

    # No longer matching the nodeSelector: its pod goes.
    await client.patch("nodes", "node-a", patch={"metadata": {"labels": {"disk": "hdd"}}})
    await wait_nodes(client, "ssd-agent", {"node-c"})

    # Removed: its pod goes too (nothing else would delete it).
    await client.delete("nodes", "node-c")
    await wait_none(client, "ssd-agent")

    # A NoExecute taint the pods do not tolerate evicts; NoSchedule would not.
    await client.patch("nodes", "node-a", patch={"metadata": {"labels": {"disk": "ssd"}}})
    before = (await wait_nodes(client, "ssd-agent", {"node-a"}))["node-a"]
    await client.patch("nodes", "node-a", patch={"spec": {"taints": [
        {"key": "maintenance", "effect": "NoSchedule"}]}})
    ds = await client.get("daemonsets", "ssd-agent", NS)

    async def misscheduled_counted():
        got = await client.get("daemonsets", "ssd-agent", NS)
        s = got.status
        return got if (s.desired_number_scheduled, s.number_misscheduled) == (0, 1) \
            else Seen((s.desired_number_scheduled, s.number_misscheduled))
    await wait_for(misscheduled_counted, WAIT_S)
    assert [p.metadata.uid for p in await live_pods(client, "ssd-agent")] == \
        [before.metadata.uid], "a NoSchedule taint must not evict a running daemon pod"
    assert ds.metadata.uid
    await client.patch("nodes", "node-a", patch={"spec": {"taints": [
        {"key": "maintenance", "effect": "NoExecute"}]}})
    await wait_none(client, "ssd-agent")


async def test_a_failed_daemon_pod_is_deleted_and_replaced(cm, client):
    await client.create(obj(node_doc("node-a")))
    await client.create(obj(ds_doc("crashy")))
    pod = (await wait_nodes(client, "crashy", {"node-a"}))["node-a"]
    await mark(client, pod, phase="Failed")

    async def replaced():
        pods = await live_pods(client, "crashy")
        names = [p.metadata.name for p in pods]
        return pods if len(pods) == 1 and pod.metadata.name not in names else Seen(names)
    await wait_for(replaced, WAIT_S)
    events = (await client.list("events", NS)).items
    assert any(e.reason == "FailedDaemonPod" and e.type == "Warning" and e.message ==
               f"Found failed daemon pod {NS}/{pod.metadata.name} on node node-a, "
               f"will try to kill it" for e in events), [(e.reason, e.message) for e in events]


async def test_rolling_update_replaces_at_most_max_unavailable_at_a_time(cm, client):
    for name in ("node-a", "node-b", "node-c"):
        await client.create(obj(node_doc(name)))
    await client.create(obj(ds_doc("roll", image="busybox:1")))
    first = await wait_nodes(client, "roll", {"node-a", "node-b", "node-c"})
    old_hash = first["node-a"].metadata.labels["controller-revision-hash"]
    for pod in first.values():
        await mark(client, pod, phase="Running", ready=True)

    async def all_available():
        got = await client.get("daemonsets", "roll", NS)
        return got if got.status.number_available == 3 else Seen(str(got.status))
    await wait_for(all_available, WAIT_S)

    await client.patch("daemonsets", "roll", NS, patch={"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "busybox:2"}]}}}})
    replaced: set[str] = set()
    for _ in range(3):
        # maxUnavailable 1: exactly one node at a time has a new, not yet ready pod.
        async def one_new_pending():
            pods = await live_pods(client, "roll")
            new = [p for p in pods if p.metadata.labels["controller-revision-hash"] != old_hash
                   and pinned_node(p) not in replaced]
            ready_old = [p for p in pods
                         if p.metadata.labels["controller-revision-hash"] == old_hash]
            if len(new) == 1 and len(ready_old) == 2 - len(replaced):
                return new[0]
            return Seen(sorted((p.metadata.name, pinned_node(p),
                                p.metadata.labels["controller-revision-hash"]) for p in pods))
        new = await wait_for(one_new_pending, WAIT_S, interval_s=0.1)
        assert new.spec.containers[0].image == "busybox:2"
        replaced.add(pinned_node(new))
        await mark(client, new, phase="Running", ready=True)
    assert replaced == {"node-a", "node-b", "node-c"}

    async def updated():
        got = await client.get("daemonsets", "roll", NS)
        s = got.status
        numbers = (s.desired_number_scheduled, s.updated_number_scheduled, s.number_available)
        return got if numbers == (3, 3, 3) else Seen(numbers)
    await wait_for(updated, WAIT_S)


async def test_on_delete_keeps_old_pods_until_deleted(cm, client):
    await client.create(obj(node_doc("node-a")))
    await client.create(obj(ds_doc("manual", image="busybox:1",
                                   strategy={"type": "OnDelete"})))
    pod = (await wait_nodes(client, "manual", {"node-a"}))["node-a"]
    await client.patch("daemonsets", "manual", NS, patch={"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "busybox:2"}]}}}})

    async def status_not_updated():
        got = await client.get("daemonsets", "manual", NS)
        s = got.status
        return got if (s.observed_generation, s.updated_number_scheduled) == (
            got.metadata.generation, 0) else Seen(str(s))
    await wait_for(status_not_updated, WAIT_S)
    assert [p.metadata.uid for p in await live_pods(client, "manual")] == [pod.metadata.uid]

    await client.delete("pods", pod.metadata.name, NS)
    new = (await wait_nodes(client, "manual", {"node-a"}))["node-a"]
    assert new.spec.containers[0].image == "busybox:2"


async def test_each_template_is_a_controller_revision(cm, client):
    await client.create(obj(node_doc("node-a")))
    ds = await client.create(obj(ds_doc("hist", image="busybox:1")))
    first = (await wait_nodes(client, "hist", {"node-a"}))["node-a"]

    async def revisions(count: int):
        async def listed():
            got = sorted((await client.list("controllerrevisions", NS,
                                            label_selector="app=hist")).items,
                         key=lambda r: r.revision)
            return got if len(got) == count else Seen([r.metadata.name for r in got])
        return await wait_for(listed, WAIT_S)
    [rev1] = await revisions(1)
    hash1 = first.metadata.labels["controller-revision-hash"]
    assert rev1.metadata.name == f"hist-{hash1}"
    assert (rev1.revision, rev1.metadata.labels["controller-revision-hash"]) == (1, hash1)
    ref = rev1.metadata.owner_references[0]
    assert (ref.kind, ref.uid, ref.controller) == ("DaemonSet", ds.metadata.uid, True)
    data = codec.to_dict(rev1)["data"]
    assert data["spec"]["template"]["$patch"] == "replace"
    assert data["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1"

    await client.patch("daemonsets", "hist", NS, patch={"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "busybox:2"}]}}}})
    rev1, rev2 = await revisions(2)
    assert (rev1.revision, rev2.revision) == (1, 2)

    async def replaced():
        pods = await live_pods(client, "hist")
        hashes = [p.metadata.labels["controller-revision-hash"] for p in pods]
        return pods if hashes == [rev2.metadata.labels["controller-revision-hash"]] \
            else Seen(hashes)
    await wait_for(replaced, WAIT_S)

    # Back to the first template: revision 1 becomes revision 3, no new object.
    await client.patch("daemonsets", "hist", NS, patch={"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "busybox:1"}]}}}})

    async def renumbered():
        got = {r.metadata.name: r.revision for r in (await client.list(
            "controllerrevisions", NS, label_selector="app=hist")).items}
        return got if got == {rev1.metadata.name: 3, rev2.metadata.name: 2} else Seen(got)
    await wait_for(renumbered, WAIT_S)


async def test_rolling_update_with_max_surge_starts_new_pods_before_removing_old(cm, client):
    for name in ("node-a", "node-b"):
        await client.create(obj(node_doc(name)))
    await client.create(obj(ds_doc("surge", image="busybox:1", strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})))
    first = await wait_nodes(client, "surge", {"node-a", "node-b"})
    old_hash = first["node-a"].metadata.labels["controller-revision-hash"]
    for pod in first.values():
        await mark(client, pod, phase="Running", ready=True)

    async def all_available():
        got = await client.get("daemonsets", "surge", NS)
        return got if got.status.number_available == 2 else Seen(str(got.status))
    await wait_for(all_available, WAIT_S)
    await client.patch("daemonsets", "surge", NS, patch={"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "busybox:2"}]}}}})

    done: set[str] = set()
    for _ in range(2):
        # maxSurge 1: one node at a time has its old Ready pod and a new one beside it.
        async def one_surging():
            pods = await live_pods(client, "surge")
            by_node: dict[str, list] = {}
            for p in pods:
                by_node.setdefault(pinned_node(p), []).append(p)
            doubled = [n for n, ps in by_node.items() if len(ps) == 2]
            if len(doubled) == 1 and len(pods) == 3:
                new = [p for p in by_node[doubled[0]]
                       if p.metadata.labels["controller-revision-hash"] != old_hash]
                if len(new) == 1:
                    return new[0]
            return Seen(sorted((p.metadata.name, pinned_node(p),
                                p.metadata.labels["controller-revision-hash"]) for p in pods))
        new = await wait_for(one_surging, WAIT_S, interval_s=0.1)
        node = pinned_node(new)
        assert node not in done
        done.add(node)
        await mark(client, new, phase="Running", ready=True)

        # Available: the old pod on that node goes.
        async def old_gone():
            pods = [p for p in await live_pods(client, "surge") if pinned_node(p) == node]
            return pods if [p.metadata.uid for p in pods] == [new.metadata.uid] else Seen(
                [p.metadata.name for p in pods])
        await wait_for(old_gone, WAIT_S)
    assert done == {"node-a", "node-b"}


async def test_old_revisions_beyond_the_history_limit_are_deleted(cm, client):
    await client.create(obj(node_doc("node-a")))
    doc = ds_doc("short", image="busybox:1")
    doc["spec"]["revisionHistoryLimit"] = 1
    await client.create(obj(doc))
    await wait_nodes(client, "short", {"node-a"})
    for image in ("busybox:2", "busybox:3"):
        await client.patch("daemonsets", "short", NS, patch={"spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": image}]}}}})

        async def rolled(image=image):
            pods = await live_pods(client, "short")
            images = [p.spec.containers[0].image for p in pods]
            return pods if images == [image] else Seen(images)
        await wait_for(rolled, WAIT_S)

    async def pruned():
        got = sorted(r.revision for r in (await client.list(
            "controllerrevisions", NS, label_selector="app=short")).items)
        return got if got == [2, 3] else Seen(got)
    await wait_for(pruned, WAIT_S)
