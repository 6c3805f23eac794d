"""The Deployment controller in the real controller-manager process, with the
ReplicaSet controller, on a real apiserver with no nodes: pods stay
unscheduled, and the test makes them Running and Ready itself with
update_status (the kubelet's part, faked). What is checked is what a user
sees: ReplicaSet names, labels and annotations, sizes during a rollout,
Deployment status and conditions, events. Each test starts its
controller-manager against the worker's shared etcd + apiserver
(kubemu.testing) and works in a namespace of its own."""
from __future__ import annotations

import pytest

from kubemu import timefmt
from kubemu.api import codec, errors
from kubemu.api.kinds import REGISTRY
from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import Seen
from controller_manager import deployment_util as du
from tests.support import ControllerManagerProc

WAIT_S = 20.0
HASH = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"


def obj(doc: dict):
    return codec.from_dict(REGISTRY.by_gvk(doc["apiVersion"], doc["kind"]).message, doc)


def deployment_doc(name: str, ns: str, replicas: int, image: str = "busybox:1", **spec) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}},
                     **spec}}


@pytest.fixture
async def cm(tmp_path, kubemu_cluster):
    proc = await ControllerManagerProc(tmp_path, kubemu_cluster.address, "--controllers",
                                       "replicaset,deployment").astart()
    try:
        yield proc
    finally:
        await proc.astop()


async def replica_sets(client, ns: str, app: str) -> list:
    items = (await client.list("replicasets", ns, label_selector=f"app={app}")).items
    return sorted(items, key=lambda rs: int(rs.metadata.annotations.get(REVISION, "0")))


async def pods_of(client, ns: str, app: str) -> list:
    return [p for p in (await client.list("pods", ns, label_selector=f"app={app}")).items
            if not p.metadata.deletion_timestamp]


async def make_ready(client, ns: str, app: str, image: str | None = None) -> int:
    """Running and Ready for every pod of `app` (of `image` only, if given) not Ready yet."""
    stamp = timefmt.rfc3339()
    count = 0
    for pod in await pods_of(client, ns, app):
        if image is not None and pod.spec.containers[0].image != image:
            continue
        if any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions):
            continue
        pod.status.phase = "Running"
        del pod.status.conditions[:]
        for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
            pod.status.conditions.add(type=kind, status="True", last_transition_time=stamp)
        try:
            await client.update_status(pod)
            count += 1
        except (errors.Conflict, errors.NotFound):
            pass
    return count


def condition(d, kind: str):
    return next((c for c in d.status.conditions if c.type == kind), None)


async def wait_deployment(client, ns: str, name: str, check, message: str):
    async def ok():
        d = await client.get("deployments", name, ns)
        return d if check(d) else Seen(str(d.status))
    return await wait_for(ok, WAIT_S, interval_s=0.1, message=message)


def complete(replicas: int):
    def check(d) -> bool:
        cond = condition(d, "Progressing")
        return (d.status.observed_generation == d.metadata.generation
                and d.status.updated_replicas == replicas and d.status.replicas == replicas
                and d.status.available_replicas == replicas
                and cond is not None and cond.reason == "NewReplicaSetAvailable")
    return check


async def roll_to_completion(client, ns: str, app: str, replicas: int, image: str | None = None,
                             max_surge: int = 1, max_unavailable: int = 1) -> None:
    """Make pods Ready as they come until the rollout completes, checking the
    surge bound (by ReplicaSet specs) on the way."""
    async def done():
        await make_ready(client, ns, app, image)
        rss = await replica_sets(client, ns, app)
        total = sum(rs.spec.replicas for rs in rss)
        assert total <= replicas + max_surge, [(r.metadata.name, r.spec.replicas) for r in rss]
        pods = await pods_of(client, ns, app)
        assert len(pods) <= replicas + max_surge, [p.metadata.name for p in pods]
        d = await client.get("deployments", app, ns)
        return d if complete(replicas)(d) else Seen(str(d.status))
    await wait_for(done, WAIT_S, interval_s=0.1, message=f"{app} rolled out")


async def events_of(client, ns: str, name: str) -> list[str]:
    return [e.message for e in (await client.list("events", ns)).items
            if e.involved_object.name == name and e.reason == "ScalingReplicaSet"]


async def test_a_deployment_makes_a_hashed_replica_set_and_reports_availability(cm, api, ns):
    d = await api.create(obj(deployment_doc("web", ns, 3)))

    async def one_rs():
        rss = await replica_sets(api, ns, "web")
        return rss if len(rss) == 1 and len(await pods_of(api, ns, "web")) == 3 else Seen(str(rss))
    [rs] = await wait_for(one_rs, WAIT_S, message="one ReplicaSet with 3 pods")
    pod_hash = rs.metadata.labels[HASH]
    assert rs.metadata.name == f"web-{pod_hash}"
    assert set(pod_hash) <= set("bcdfghjklmnpqrstvwxz2456789") and 1 <= len(pod_hash) <= 10
    assert rs.spec.selector.match_labels[HASH] == pod_hash
    assert rs.spec.template.metadata.labels[HASH] == pod_hash
    assert rs.metadata.annotations[REVISION] == "1"
    assert rs.metadata.annotations["deployment.kubernetes.io/desired-replicas"] == "3"
    assert rs.metadata.annotations["deployment.kubernetes.io/max-replicas"] == "4"
    ref = rs.metadata.owner_references[0]
    assert (ref.kind, ref.name, ref.uid, ref.controller) == ("Deployment", "web",
                                                             d.metadata.uid, True)

    await wait_deployment(api, ns, "web", lambda d: condition(d, "Available") is not None
                          and condition(d, "Available").status == "False", "unavailable")
    got = await api.get("deployments", "web", ns)
    assert condition(got, "Available").reason == "MinimumReplicasUnavailable"
    assert condition(got, "Available").message == "Deployment does not have minimum availability."
    assert got.metadata.annotations[REVISION] == "1"

    await make_ready(api, ns, "web")
    got = await wait_deployment(api, ns, "web", complete(3), "web complete")
    available, progressing = condition(got, "Available"), condition(got, "Progressing")
    assert (available.status, available.reason, available.message) == (
        "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    assert (progressing.status, progressing.message) == (
        "True", f'ReplicaSet "{rs.metadata.name}" has successfully progressed.')
    assert (got.status.ready_replicas, got.status.unavailable_replicas) == (3, 0)

    async def scaled_event():
        msgs = await events_of(api, ns, "web")
        want = f"Scaled up replica set {rs.metadata.name} from 0 to 3"
        return want in msgs or Seen(str(msgs))
    await wait_for(scaled_event, WAIT_S, message="ScalingReplicaSet event")


async def test_rolling_update_keeps_within_surge_records_change_cause_and_rolls_back(cm, api, ns):
    doc = deployment_doc("roll", ns, 4, strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}})
    doc["metadata"]["annotations"] = {"kubernetes.io/change-cause": "first"}
    await api.create(obj(doc))
    await roll_to_completion(api, ns, "roll", 4)
    [first] = await replica_sets(api, ns, "roll")

    await api.patch("deployments", "roll", ns, patch={
        "metadata": {"annotations": {"kubernetes.io/change-cause": "second"}},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}})
    await roll_to_completion(api, ns, "roll", 4, image="busybox:2")
    old, new = await replica_sets(api, ns, "roll")
    assert old.metadata.uid == first.metadata.uid and old.spec.replicas == 0
    assert new.spec.replicas == 4 and new.metadata.annotations[REVISION] == "2"
    assert old.metadata.annotations["kubernetes.io/change-cause"] == "first"
    assert new.metadata.annotations["kubernetes.io/change-cause"] == "second"

    # Rollback as kubectl does it: revision 1's template written back.
    d = await api.get("deployments", "roll", ns)
    d.spec.template.CopyFrom(old.spec.template)
    del d.spec.template.metadata.labels[HASH]
    d.metadata.annotations["kubernetes.io/change-cause"] = "first"
    await api.update(d)
    await roll_to_completion(api, ns, "roll", 4, image="busybox:1")
    rss = await replica_sets(api, ns, "roll")
    assert [(rs.metadata.name, rs.metadata.annotations[REVISION], rs.spec.replicas)
            for rs in rss] == [(new.metadata.name, "2", 0), (first.metadata.name, "3", 4)]
    assert rss[1].metadata.annotations["deployment.kubernetes.io/revision-history"] == "1"
    got = await api.get("deployments", "roll", ns)
    assert got.metadata.annotations[REVISION] == "3"


async def test_paused_deployment_scales_but_does_not_roll_until_resumed(cm, api, ns):
    await api.create(obj(deployment_doc("pause", ns, 2)))
    await roll_to_completion(api, ns, "pause", 2)
    await api.patch("deployments", "pause", ns, patch={"spec": {"paused": True}})
    await wait_deployment(api, ns, "pause",
                          lambda d: condition(d, "Progressing").reason == "DeploymentPaused",
                          "paused condition")
    await api.patch("deployments", "pause", ns, patch={"spec": {
        "replicas": 3,
        "template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}})

    async def scaled():
        rss = await replica_sets(api, ns, "pause")
        return rss if [rs.spec.replicas for rs in rss] == [3] else Seen(str(rss))
    await wait_for(scaled, WAIT_S, message="the one ReplicaSet scaled to 3 while paused")
    got = await api.get("deployments", "pause", ns)
    cond = condition(got, "Progressing")
    assert (cond.status, cond.reason, cond.message) == ("Unknown", "DeploymentPaused",
                                                        "Deployment is paused")

    await api.patch("deployments", "pause", ns, patch={"spec": {"paused": False}})
    await roll_to_completion(api, ns, "pause", 3, image="busybox:2")
    assert [rs.spec.replicas for rs in await replica_sets(api, ns, "pause")] == [0, 3]


async def test_a_rollout_that_never_becomes_ready_exceeds_its_progress_deadline(cm, api, ns):
    await api.create(obj(deployment_doc("stuck", ns, 2, progressDeadlineSeconds=2)))

    def timed_out(d) -> bool:
        cond = condition(d, "Progressing")
        return cond is not None and cond.reason == "ProgressDeadlineExceeded"
    got = await wait_deployment(api, ns, "stuck", timed_out, "ProgressDeadlineExceeded")
    [rs] = await replica_sets(api, ns, "stuck")
    cond = condition(got, "Progressing")
    assert (cond.status, cond.message) == (
        "False", f'ReplicaSet "{rs.metadata.name}" has timed out progressing.')


async def test_recreate_scales_old_to_zero_before_creating_the_new(cm, api, ns):
    await api.create(obj(deployment_doc("rec", ns, 2, strategy={"type": "Recreate"})))
    await roll_to_completion(api, ns, "rec", 2)
    await api.patch("deployments", "rec", ns, patch={"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "busybox:2"}]}}}})

    async def rolled():
        pods = await pods_of(api, ns, "rec")
        images = {p.spec.containers[0].image for p in pods}
        assert len(images) <= 1, "old and new pods at once"
        await make_ready(api, ns, "rec")
        d = await api.get("deployments", "rec", ns)
        return d if complete(2)(d) else Seen(str(d.status))
    await wait_for(rolled, WAIT_S, interval_s=0.05, message="recreated")
    assert [rs.spec.replicas for rs in await replica_sets(api, ns, "rec")] == [0, 2]


async def test_revision_history_limit_deletes_the_oldest_scaled_down_replica_sets(cm, api, ns):
    await api.create(obj(deployment_doc("hist", ns, 1, revisionHistoryLimit=1)))
    for image in ("busybox:1", "busybox:2", "busybox:3"):
        if image != "busybox:1":
            await api.patch("deployments", "hist", ns, patch={"spec": {"template": {"spec": {
                "containers": [{"name": "c", "image": image}]}}}})
        await roll_to_completion(api, ns, "hist", 1, image=image)

    async def two_left():
        rss = await replica_sets(api, ns, "hist")
        revs = [rs.metadata.annotations[REVISION] for rs in rss]
        return revs if revs == ["2", "3"] else Seen(str(revs))
    await wait_for(two_left, WAIT_S, message="revision 1 cleaned up")


async def test_scaling_in_the_middle_of_a_rollout_is_proportional(cm, api, ns):
    await api.create(obj(deployment_doc("prop", ns, 10, strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}})))
    await roll_to_completion(api, ns, "prop", 10, max_surge=3)
    await api.patch("deployments", "prop", ns, patch={"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "busybox:2"}]}}}})

    # New pods never become Ready: the rollout stops at old 8, new 5 (10 + 3 surge).
    async def stuck():
        sizes = [rs.spec.replicas for rs in await replica_sets(api, ns, "prop")]
        return sizes if sizes == [8, 5] else Seen(str(sizes))
    await wait_for(stuck, WAIT_S, message="rollout stuck at 8 old + 5 new")

    await api.patch("deployments", "prop", ns, patch={"spec": {"replicas": 20}})

    # 13 -> 23 (20 + 3): +10 spread 8:5 by share of max-replicas (13):
    # old 8*23/13 = 14.15 -> 14, new 5*23/13 = 8.85 -> 9.
    async def proportional():
        rss = await replica_sets(api, ns, "prop")
        sizes = [rs.spec.replicas for rs in rss]
        return rss if sizes == [14, 9] else Seen(str(sizes))
    rss = await wait_for(proportional, WAIT_S, message="proportional scale-up")
    for rs in rss:
        assert rs.metadata.annotations["deployment.kubernetes.io/desired-replicas"] == "20"
        assert rs.metadata.annotations["deployment.kubernetes.io/max-replicas"] == "23"


async def test_an_orphan_replica_set_with_the_template_is_adopted_and_one_relabelled_is_released(
        cm, api, ns):
    doc = deployment_doc("adopt", ns, 2)
    orphan = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": "orphan", "namespace": ns, "labels": {"app": "adopt"}},
              "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "adopt"}},
                       "template": doc["spec"]["template"]}}
    await api.create(obj(orphan))
    d = await api.create(obj(doc))

    async def adopted():
        rss = await replica_sets(api, ns, "adopt")
        owned = [rs for rs in rss if rs.metadata.owner_references]
        return rss if len(rss) == 1 and owned else Seen(str(rss))
    [rs] = await wait_for(adopted, WAIT_S, message="the orphan adopted as the new ReplicaSet")
    ref = rs.metadata.owner_references[0]
    assert (rs.metadata.name, ref.kind, ref.uid, ref.controller) == (
        "orphan", "Deployment", d.metadata.uid, True)
    await wait_deployment(api, ns, "adopt",
                          lambda d: d.metadata.annotations.get(REVISION) == "1",
                          "revision 1 from the adopted ReplicaSet")

    # Relabelled out of the selector: released, and the Deployment makes its own.
    await api.patch("replicasets", "orphan", ns, patch={"metadata": {"labels": {
        "app": "elsewhere"}}})

    async def released_and_replaced():
        got = await api.get("replicasets", "orphan", ns)
        rss = await replica_sets(api, ns, "adopt")
        ok = not got.metadata.owner_references and len(rss) == 1 and \
            rss[0].metadata.name.startswith("adopt-")
        return rss if ok else Seen(str((got.metadata.owner_references, rss)))
    await wait_for(released_and_replaced, WAIT_S, message="released and replaced")


async def test_a_name_taken_by_another_replica_set_is_a_collision_that_moves_the_hash(cm, api, ns):
    await api.create(obj(deployment_doc("coll", ns, 1, paused=True)))
    d = await wait_deployment(api, ns, "coll",
                              lambda d: d.status.observed_generation == d.metadata.generation,
                              "paused Deployment observed")
    taken = f"coll-{du.compute_hash(d.spec.template, None)}"
    squatter = deployment_doc("other", ns, 0)
    await api.create(obj({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                          "metadata": {"name": taken, "namespace": ns},
                          "spec": {"replicas": 0, "selector": squatter["spec"]["selector"],
                                   "template": squatter["spec"]["template"]}}))
    await api.patch("deployments", "coll", ns, patch={"spec": {"paused": False}})

    got = await wait_deployment(
        api, ns, "coll",
        lambda d: d.status.HasField("collision_count") and d.status.updated_replicas == 1,
        "a new ReplicaSet after the collision")
    assert got.status.collision_count == 1
    [rs] = await replica_sets(api, ns, "coll")
    assert rs.metadata.name == f"coll-{du.compute_hash(d.spec.template, 1)}" != taken


async def test_a_controller_manager_killed_mid_rollout_finishes_it_within_bounds_after_restart(
        tmp_path, kubemu_cluster, api, ns):
    a = await ControllerManagerProc(tmp_path, kubemu_cluster.address, "--controllers",
                                    "replicaset,deployment", name="cm-a").astart()
    b = None
    try:
        await api.create(obj(deployment_doc("chaos", ns, 6, strategy={
            "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}})))
        await roll_to_completion(api, ns, "chaos", 6)
        await api.patch("deployments", "chaos", ns, patch={"spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": "busybox:2"}]}}}})

        async def mid_rollout():
            await make_ready(api, ns, "chaos", "busybox:2")
            sizes = [rs.spec.replicas for rs in await replica_sets(api, ns, "chaos")]
            return sizes if len(sizes) == 2 and sizes[1] >= 2 and sizes[0] > 0 else Seen(sizes)
        await wait_for(mid_rollout, WAIT_S, interval_s=0.05, message="in the middle of it")
        await a.akill()
        b = await ControllerManagerProc(tmp_path, kubemu_cluster.address, "--controllers",
                                        "replicaset,deployment", name="cm-b").astart()
        await roll_to_completion(api, ns, "chaos", 6, image="busybox:2")
        assert [rs.spec.replicas for rs in await replica_sets(api, ns, "chaos")] == [0, 6]
    finally:
        await a.astop()
        if b is not None:
            await b.astop()
