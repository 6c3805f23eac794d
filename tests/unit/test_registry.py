"""The generic registry and the per-kind strategies, on the in-memory store."""
from __future__ import annotations

import copy
import json
import random

import pytest

from apiserver import storage
from apiserver.memstore import MemoryStore
from apiserver.registry import UPDATE_RETRIES, ObjectRegistry
from kubemu.api import codec, errors, limits
from kubemu.api.kinds import REGISTRY
from kubemu.api.v1 import core_pb2
from tests.builders import configmap, make_pod, obj

PODS = REGISTRY.by_resource("pods")
CONFIGMAPS = REGISTRY.by_resource("configmaps")
NAMESPACES = REGISTRY.by_resource("namespaces")
DEPLOYMENTS = REGISTRY.by_resource("deployments")
LEASES = REGISTRY.by_resource("leases")
NOW_S = 1_800_000_000.0


class Clock:
    def __init__(self, now_s: float = NOW_S):
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


class RacingStore(MemoryStore):
    """A store where another writer changes a key just before each of our next
    `races` conditional writes to it (so that write finds a newer revision)."""

    def __init__(self) -> None:
        super().__init__()
        self.races = 0
        self.rival_writes = 0
        self.rival = lambda value: value

    async def put_if(self, key, value, mod_revision, *, lease=0):
        if self.races and mod_revision:
            self.races -= 1
            current = await self.get(key)
            await super().put_if(key, self.rival(current.value), current.mod_revision)
            self.rival_writes += 1
        return await super().put_if(key, value, mod_revision, lease=lease)


@pytest.fixture
async def store():
    return RacingStore()


@pytest.fixture
async def reg(store):
    registry = ObjectRegistry(store, {}, rng=random.Random(7), clock=Clock())
    await registry.create(NAMESPACES, "", core_pb2.Namespace(metadata={"name": "default"}))
    return registry


def deployment(name: str = "web"):
    return obj({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}},
                                      "spec": {"containers": [{"name": "c", "image": "x"}]}}}})


async def stored_value(store, kind, name, namespace="default") -> bytes | None:
    kv = await store.get(storage.object_key(kind.resource, namespace, name))
    return None if kv is None else kv.value


# ---------------------------------------------------------------- preconditions

def precondition_message(resource: str, name: str, key: str, what: str, wanted: str,
                         actual: str) -> str:
    return (f'Operation cannot be fulfilled on {resource} "{name}": StorageError: invalid '
            f"object, Code: 4, Key: {key}, ResourceVersion: 0, AdditionalErrorMsg: "
            f"Precondition failed: {what} in precondition: {wanted}, {what} in object meta: "
            f"{actual}")


async def _update(reg, stale):
    return await reg.update(PODS, stale)


async def _update_status(reg, stale):
    stale.status.phase = "Failed"
    return await reg.update(PODS, stale, status=True)


async def _patch(reg, stale):
    return await reg.patch(PODS, "default", "p",
                           f'{{"metadata": {{"uid": "{stale.metadata.uid}", '
                           '"labels": {"v": "stale"}}}')


@pytest.mark.parametrize("write", [_update, _update_status],
                         ids=["update", "update-status"])
async def test_a_write_carrying_an_old_uid_never_lands_on_a_recreated_object(reg, store, write):
    first = await reg.create(PODS, "default", make_pod("p").labels(v="1").build())
    _, deleted = await reg.delete(PODS, "default", "p", grace_period_s=None,
                                  propagation_policy="")
    assert deleted
    second = await reg.create(PODS, "default", make_pod("p").labels(v="2").build())
    before = await stored_value(store, PODS, "p")
    stale = copy.deepcopy(first)
    stale.metadata.resource_version = ""
    stale.metadata.labels["v"] = "stale"
    with pytest.raises(errors.Conflict) as caught:
        await write(reg, stale)
    assert str(caught.value) == precondition_message(
        "pods", "p", "/registry/pods/default/p", "UID", first.metadata.uid, second.metadata.uid)
    assert await stored_value(store, PODS, "p") == before


async def test_a_patch_carrying_an_old_uid_is_refused_as_an_immutable_field(reg, store):
    first = await reg.create(PODS, "default", make_pod("p").labels(v="1").build())
    await reg.delete(PODS, "default", "p", grace_period_s=None, propagation_policy="")
    await reg.create(PODS, "default", make_pod("p").labels(v="2").build())
    before = await stored_value(store, PODS, "p")
    with pytest.raises(errors.Invalid) as caught:
        await _patch(reg, first)
    assert str(caught.value) == (f'Pod "p" is invalid: metadata.uid: Invalid value: '
                                 f'"{first.metadata.uid}": field is immutable')
    assert await stored_value(store, PODS, "p") == before


async def test_a_write_carrying_the_current_uid_passes(reg):
    made = await reg.create(PODS, "default", make_pod("p").build())
    made.metadata.labels["v"] = "2"
    assert (await reg.update(PODS, made)).metadata.labels["v"] == "2"


@pytest.mark.parametrize("preconditions, what", [
    ({"uid": "someone-else"}, "UID"),
    ({"resource_version": "1"}, "ResourceVersion"),
], ids=["uid", "resource-version"])
async def test_delete_preconditions(reg, store, preconditions, what):
    made = await reg.create(CONFIGMAPS, "default", configmap("c"))
    with pytest.raises(errors.Conflict) as caught:
        await reg.delete(CONFIGMAPS, "default", "c", grace_period_s=None,
                         propagation_policy="", **preconditions)
    actual = made.metadata.uid if what == "UID" else made.metadata.resource_version
    wanted = next(iter(preconditions.values()))
    assert str(caught.value) == precondition_message(
        "configmaps", "c", "/registry/configmaps/default/c", what, wanted, actual)
    assert await stored_value(store, CONFIGMAPS, "c") is not None
    _, deleted = await reg.delete(CONFIGMAPS, "default", "c", grace_period_s=None,
                                  propagation_policy="", uid=made.metadata.uid,
                                  resource_version=made.metadata.resource_version)
    assert deleted


# ---------------------------------------------------------------- optimistic concurrency

async def test_an_update_from_a_stale_resource_version_is_a_conflict(reg):
    made = await reg.create(CONFIGMAPS, "default", configmap("c", k="1"))
    fresh = copy.deepcopy(made)
    fresh.data["k"] = "2"
    await reg.update(CONFIGMAPS, fresh)
    made.data["k"] = "3"
    with pytest.raises(errors.Conflict, match="the object has been modified"):
        await reg.update(CONFIGMAPS, made)
    assert (await reg.get(CONFIGMAPS, "default", "c")).data["k"] == "2"


async def test_a_patch_with_a_stale_resource_version_is_a_conflict(reg):
    made = await reg.create(CONFIGMAPS, "default", configmap("c", k="1"))
    await reg.patch(CONFIGMAPS, "default", "c", '{"data": {"k": "2"}}')
    with pytest.raises(errors.Conflict, match="the object has been modified"):
        await reg.patch(CONFIGMAPS, "default", "c",
                        f'{{"metadata": {{"resourceVersion": "{made.metadata.resource_version}"}},'
                        ' "data": {"k": "3"}}')


async def test_a_conditional_update_that_loses_a_race_is_a_conflict(reg, store):
    made = await reg.create(CONFIGMAPS, "default", configmap("c", k="1"))
    store.races = 1
    made.data["k"] = "2"
    with pytest.raises(errors.Conflict, match="the object has been modified"):
        await reg.update(CONFIGMAPS, made)


async def test_a_patch_retries_on_concurrent_writers_and_keeps_their_change(reg, store):
    await reg.create(CONFIGMAPS, "default", configmap("c", k="1"))

    def rival(value: bytes) -> bytes:
        cm = core_pb2.ConfigMap.FromString(value)
        cm.data[f"rival{store.rival_writes}"] = "x"
        return cm.SerializeToString()
    store.rival = rival
    store.races = 3
    patched = await reg.patch(CONFIGMAPS, "default", "c", '{"data": {"mine": "y"}}')
    assert store.rival_writes == 3
    assert dict(patched.data) == {"k": "1", "mine": "y", "rival0": "x", "rival1": "x",
                                  "rival2": "x"}
    assert dict((await reg.get(CONFIGMAPS, "default", "c")).data) == dict(patched.data)


async def test_a_patch_gives_up_after_a_bounded_number_of_races(reg, store):
    await reg.create(CONFIGMAPS, "default", configmap("c", k="1"))
    store.races = UPDATE_RETRIES
    with pytest.raises(errors.Conflict, match="too many concurrent writers"):
        await reg.patch(CONFIGMAPS, "default", "c", '{"data": {"mine": "y"}}')


# ---------------------------------------------------------------- finalizers

async def test_finalizers_hold_a_deletion_until_the_last_one_is_removed(reg, store):
    cm = configmap("held")
    cm.metadata.finalizers.extend(["example.com/a", "example.com/b"])
    await reg.create(CONFIGMAPS, "default", cm)
    marked, deleted = await reg.delete(CONFIGMAPS, "default", "held", grace_period_s=None,
                                       propagation_policy="")
    assert not deleted
    assert marked.metadata.deletion_timestamp == "2027-01-15T08:00:00Z"
    assert marked.metadata.deletion_grace_period_seconds == 0

    adding = copy.deepcopy(marked)
    adding.metadata.finalizers.append("example.com/c")
    with pytest.raises(errors.Invalid, match="no new finalizers can be added"):
        await reg.update(CONFIGMAPS, adding)

    one_left = copy.deepcopy(marked)
    one_left.metadata.finalizers.remove("example.com/a")
    updated = await reg.update(CONFIGMAPS, one_left)
    assert updated.metadata.deletion_timestamp == marked.metadata.deletion_timestamp
    none_left = copy.deepcopy(updated)
    none_left.metadata.ClearField("finalizers")
    await reg.update(CONFIGMAPS, none_left)
    assert await stored_value(store, CONFIGMAPS, "held") is None


@pytest.mark.parametrize("policy, finalizer", [("Orphan", "orphan"),
                                               ("Foreground", "foregroundDeletion")])
async def test_propagation_policies_add_their_finalizer(reg, policy, finalizer):
    await reg.create(DEPLOYMENTS, "default", deployment())
    marked, deleted = await reg.delete(DEPLOYMENTS, "default", "web", grace_period_s=None,
                                       propagation_policy=policy)
    assert not deleted and list(marked.metadata.finalizers) == [finalizer]


# ---------------------------------------------------------------- graceful pod deletion

GRACEFUL = [
    # (pod, delete grace, deleted at once, deletionGracePeriodSeconds)
    pytest.param(make_pod("p"), None, True, None, id="unbound-goes-at-once"),
    pytest.param(make_pod("p").on_node("n1"), None, False, 30, id="bound-waits-default-30s"),
    pytest.param(make_pod("p").on_node("n1").grace(20), None, False, 20,
                 id="bound-waits-its-own-grace"),
    pytest.param(make_pod("p").on_node("n1").grace(20), 5, False, 5,
                 id="bound-waits-the-asked-grace"),
    pytest.param(make_pod("p").on_node("n1"), 0, True, None, id="grace-0-goes-at-once"),
]


@pytest.mark.parametrize("builder, grace, at_once, grace_s", GRACEFUL)
async def test_graceful_pod_deletion(reg, store, builder, grace, at_once, grace_s):
    await reg.create(PODS, "default", builder.build())
    result, deleted = await reg.delete(PODS, "default", "p", grace_period_s=grace,
                                       propagation_policy="")
    assert deleted is at_once
    assert (await stored_value(store, PODS, "p") is None) is at_once
    if not at_once:
        assert result.metadata.deletion_grace_period_seconds == grace_s
        assert result.metadata.deletion_timestamp == codec_time(NOW_S + grace_s)


def codec_time(seconds: float) -> str:
    from apiserver.strategy import now_rfc3339
    return now_rfc3339(seconds)


async def test_a_bound_pod_goes_when_its_node_deletes_it_with_grace_0(reg, store):
    await reg.create(PODS, "default", make_pod("p").on_node("n1").build())
    await reg.delete(PODS, "default", "p", grace_period_s=None, propagation_policy="")
    again, deleted = await reg.delete(PODS, "default", "p", grace_period_s=60,
                                      propagation_policy="")
    assert not deleted and again.metadata.deletion_grace_period_seconds == 30  # not longer
    _, deleted = await reg.delete(PODS, "default", "p", grace_period_s=0, propagation_policy="")
    assert deleted and await stored_value(store, PODS, "p") is None


async def test_a_shorter_grace_period_moves_the_deletion_earlier(reg):
    await reg.create(PODS, "default", make_pod("p").on_node("n1").grace(60).build())
    await reg.delete(PODS, "default", "p", grace_period_s=None, propagation_policy="")
    reg.clock.now_s += 5  # the second deletion comes later
    shorter, deleted = await reg.delete(PODS, "default", "p", grace_period_s=10,
                                        propagation_policy="")
    # rest.BeforeDelete: the timestamp moves by the difference (60 - 10 s), from
    # the first deletion's, not from now.
    assert not deleted and shorter.metadata.deletion_grace_period_seconds == 10
    assert shorter.metadata.deletion_timestamp == codec_time(NOW_S + 10)


async def test_a_forced_deletion_of_a_pending_pod_with_finalizers_needs_no_node(reg, store):
    """grace 0 on a pod whose graceful deletion is pending: once its finalizers
    go, it is removed without waiting for its (perhaps dead) node."""
    pod = make_pod("p").on_node("n1").build()
    pod.metadata.finalizers.append("example.com/hold")
    await reg.create(PODS, "default", pod)
    await reg.delete(PODS, "default", "p", grace_period_s=None, propagation_policy="")
    forced, deleted = await reg.delete(PODS, "default", "p", grace_period_s=0,
                                       propagation_policy="")
    assert not deleted and forced.metadata.deletion_grace_period_seconds == 0
    del forced.metadata.finalizers[:]
    await reg.update(PODS, forced)
    assert await stored_value(store, PODS, "p") is None


async def test_a_finished_bound_pod_goes_at_once(reg):
    made = await reg.create(PODS, "default", make_pod("p").on_node("n1").build())
    made.status.phase = "Succeeded"
    await reg.update(PODS, made, status=True)
    _, deleted = await reg.delete(PODS, "default", "p", grace_period_s=None,
                                  propagation_policy="")
    assert deleted


# ---------------------------------------------------------------- generation, status

async def test_generation_bumps_on_spec_changes_only(reg):
    made = await reg.create(DEPLOYMENTS, "default", deployment())
    assert made.metadata.generation == 1
    made.metadata.labels["x"] = "y"
    labelled = await reg.update(DEPLOYMENTS, made)
    assert labelled.metadata.generation == 1
    labelled.status.replicas = 3
    status = await reg.update(DEPLOYMENTS, labelled, status=True)
    assert status.metadata.generation == 1
    scaled = await reg.patch(DEPLOYMENTS, "default", "web", '{"spec": {"replicas": 4}}')
    assert scaled.metadata.generation == 2


async def test_status_is_written_only_through_the_status_subresource(reg):
    made = await reg.create(DEPLOYMENTS, "default", deployment())
    made.status.replicas = 7
    made.spec.replicas = 3
    updated = await reg.update(DEPLOYMENTS, made)
    assert (updated.spec.replicas, updated.status.replicas) == (3, 0)
    updated.status.replicas = 7
    updated.spec.replicas = 9
    status = await reg.update(DEPLOYMENTS, updated, status=True)
    assert (status.spec.replicas, status.status.replicas) == (3, 7)


# ---------------------------------------------------------------- per-kind strategies

async def test_pod_create_sets_phase_qos_and_default_tolerations(reg):
    pod = await reg.create(PODS, "default", make_pod("p").build())
    assert (pod.status.phase, pod.status.qos_class) == ("Pending", "BestEffort")
    assert sorted((t.key, t.toleration_seconds) for t in pod.spec.tolerations) == [
        ("node.kubernetes.io/not-ready", 300), ("node.kubernetes.io/unreachable", 300)]


async def test_a_namespace_terminates_and_system_namespaces_may_not_be_deleted(reg):
    with pytest.raises(errors.Forbidden, match="this namespace may not be deleted"):
        await reg.delete(NAMESPACES, "", "default", grace_period_s=None, propagation_policy="")
    made = await reg.create(NAMESPACES, "", core_pb2.Namespace(metadata={"name": "team"}))
    assert made.status.phase == "Active" and list(made.spec.finalizers) == ["kubernetes"]
    marked, deleted = await reg.delete(NAMESPACES, "", "team", grace_period_s=None,
                                       propagation_policy="")
    assert not deleted and marked.status.phase == "Terminating"
    with pytest.raises(errors.Forbidden, match="being terminated"):
        await reg.create(CONFIGMAPS, "team", configmap("c", "team"))
    marked.spec.ClearField("finalizers")
    kept = await reg.update(NAMESPACES, marked)  # an update keeps spec.finalizers
    assert list(kept.spec.finalizers) == ["kubernetes"] and kept.status.phase == "Terminating"
    await reg.create(CONFIGMAPS, "default", configmap("c"))
    with pytest.raises(errors.NotFound, match="no finalize subresource"):
        await reg.update(CONFIGMAPS, configmap("c"), finalize=True)
    kept.spec.ClearField("finalizers")
    await reg.update(NAMESPACES, kept, finalize=True)  # the finalize subresource
    with pytest.raises(errors.NotFound):
        await reg.get(NAMESPACES, "", "team")


async def test_a_job_gets_its_generated_selector(reg):
    job = obj({"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": "j", "namespace": "default"},
               "spec": {"template": {"spec": {"restartPolicy": "Never",
                                              "containers": [{"name": "c", "image": "x"}]}}}})
    made = await reg.create(REGISTRY.by_resource("jobs"), "default", job)
    assert made.spec.selector.match_labels["batch.kubernetes.io/controller-uid"] == \
        made.metadata.uid


@pytest.mark.parametrize("resource, creates", [("leases", True), ("configmaps", False)])
async def test_an_update_of_a_missing_object_creates_it_only_where_kubernetes_does(
        reg, resource, creates):
    kind = REGISTRY.by_resource(resource)
    missing = (obj({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": "m", "namespace": "default"}}) if creates
               else configmap("m"))
    if creates:
        made = await reg.update(kind, missing)
        assert made.metadata.uid and made.metadata.resource_version
    else:
        with pytest.raises(errors.NotFound):
            await reg.update(kind, missing)


async def test_an_update_with_a_uid_of_a_missing_object_is_a_conflict_even_if_creatable(reg):
    lease = obj({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": "m", "namespace": "default", "uid": "gone"}})
    with pytest.raises(errors.Conflict, match="UID in precondition: gone, UID in object meta: $"):
        await reg.update(LEASES, lease)


async def test_binding_assigns_a_node_once(reg):
    from apiserver.strategy import pod as pod_strategy

    made = await reg.create(PODS, "default", make_pod("p").build())

    def bind(node):
        return lambda pod, now_s: pod_strategy.bind(pod, node, now_s)
    bound = await reg.apply(PODS, "default", "p", bind("n1"), uid=made.metadata.uid)
    assert bound.spec.node_name == "n1"
    assert [(c.type, c.status) for c in bound.status.conditions] == [("PodScheduled", "True")]
    with pytest.raises(errors.Conflict, match="already assigned"):
        await reg.apply(PODS, "default", "p", bind("n2"))
    with pytest.raises(errors.Conflict, match="UID in precondition: other"):
        await reg.apply(PODS, "default", "p", bind("n2"), uid="other")


# ---------------------------------------------------------------- bad stored data, sizes

async def test_a_corrupt_value_is_skipped_by_lists_and_reported_by_get(reg, store):
    await reg.create(CONFIGMAPS, "default", configmap("a"))
    key = storage.object_key("configmaps", "default", "bad")
    await store.put_if(key, b"\xff\xff not a protobuf value", 0)
    await reg.create(CONFIGMAPS, "default", configmap("c"))
    items, _, token, _ = await reg.list(CONFIGMAPS, "default", None, 0, "")
    assert [i.metadata.name for i in items] == ["a", "c"] and token == ""
    with pytest.raises(errors.Internal) as caught:
        await reg.get(CONFIGMAPS, "default", "bad")
    assert str(caught.value).startswith(
        "Internal error occurred: StorageError: corrupt object, Code: 7, "
        "Key: /registry/configmaps/default/bad, ResourceVersion: 0, AdditionalErrorMsg: "
        "object not decodable revision=4: ")
    with pytest.raises(errors.Internal, match="corrupt object"):
        await reg.delete(CONFIGMAPS, "default", "bad", grace_period_s=None,
                         propagation_policy="")
    with pytest.raises(errors.Internal, match="corrupt object"):
        await reg.patch(CONFIGMAPS, "default", "bad", '{"data": {"k": "v"}}')


async def test_only_a_corrupt_object_may_be_deleted_unsafely(reg, store):
    await reg.create(CONFIGMAPS, "default", configmap("good"))
    key = storage.object_key("configmaps", "default", "bad")
    await store.put_if(key, b"\xff\xff", 0)
    with pytest.raises(errors.Invalid) as caught:
        await reg.delete(CONFIGMAPS, "default", "good", grace_period_s=None,
                         propagation_policy="", ignore_store_read_error=True)
    assert str(caught.value) == (
        'configmaps "good" is invalid: ignoreStoreReadErrorWithClusterBreakingPotential: '
        "Invalid value: true: is exclusively used to delete corrupt object(s), try again by "
        "removing this option")
    with pytest.raises(errors.Invalid, match="propagationPolicy: Invalid value: \"Orphan\""):
        await reg.delete(CONFIGMAPS, "default", "bad", grace_period_s=None,
                         propagation_policy="Orphan", ignore_store_read_error=True)
    result, deleted = await reg.delete(CONFIGMAPS, "default", "bad", grace_period_s=None,
                                       propagation_policy="", ignore_store_read_error=True)
    assert (result, deleted) == (None, True)
    assert await store.get(key) is None


async def test_an_object_too_large_to_store_is_refused_and_nothing_is_stored(reg, store):
    pod = make_pod("big").build()
    pod.spec.containers[0].env.add(name="PAYLOAD", value="x" * limits.STORE_REQUEST_BYTES_MAX)
    with pytest.raises(errors.RequestEntityTooLarge) as caught:
        await reg.create(PODS, "default", pod)
    assert str(caught.value).startswith('Request entity too large: pods "big" is ')
    assert str(caught.value).endswith(
        f"bytes when stored: limit is {limits.STORE_REQUEST_BYTES_MAX}")
    assert await stored_value(store, PODS, "big") is None


async def test_a_list_reads_every_page_at_the_first_pages_revision(reg):
    for i in range(5):
        await reg.create(CONFIGMAPS, "default", configmap(f"c{i}"))
    first, rv, token, remaining = await reg.list(CONFIGMAPS, "default", None, 2, "")
    assert [c.metadata.name for c in first] == ["c0", "c1"] and remaining == 3
    await reg.create(CONFIGMAPS, "default", configmap("c9"))  # after the snapshot
    names = []
    while token:
        page, page_rv, token, _ = await reg.list(CONFIGMAPS, "default", None, 2, token)
        assert page_rv == rv
        names += [c.metadata.name for c in page]
    assert names == ["c2", "c3", "c4"]
    assert codec.to_dict(first[0])["metadata"]["name"] == "c0"


# ---------------------------------------------------------------- workload kinds (issue 9)

WORKLOADS = ("deployments", "replicasets", "statefulsets", "daemonsets", "jobs", "cronjobs")
WORKLOAD_STATUS = {
    "deployments": {"replicas": 3}, "replicasets": {"replicas": 3},
    "statefulsets": {"replicas": 3}, "daemonsets": {"numberReady": 3},
    "jobs": {"active": 3}, "cronjobs": {"lastScheduleTime": "2027-01-15T08:00:00Z"},
}


def workload(resource: str):
    from tests.component.manifests import MANIFESTS

    doc = copy.deepcopy(MANIFESTS[resource])
    doc["metadata"]["namespace"] = "default"
    return obj(doc)


@pytest.mark.parametrize("resource", WORKLOADS)
async def test_workload_spec_changes_bump_generation_and_status_needs_its_subresource(
        reg, resource):
    from tests.component.manifests import CHANGES

    kind = REGISTRY.by_resource(resource)
    made = await reg.create(kind, "default", workload(resource))
    assert made.metadata.generation == 1
    name = made.metadata.name
    status = json.dumps({"status": WORKLOAD_STATUS[resource]})
    ignored = await reg.patch(kind, "default", name, status)  # main resource: status kept
    assert codec.to_dict(ignored).get("status", {}) == codec.to_dict(made).get("status", {})
    assert ignored.metadata.generation == 1
    labelled = await reg.patch(kind, "default", name, '{"metadata": {"labels": {"a": "b"}}}')
    assert labelled.metadata.generation == 1
    written = await reg.patch(kind, "default", name, status, status=True)
    assert codec.to_dict(written)["status"].items() >= WORKLOAD_STATUS[resource].items()
    assert written.metadata.generation == 1
    changed = await reg.patch(kind, "default", name, json.dumps(CHANGES[resource]))
    assert changed.metadata.generation == 2
    assert codec.to_dict(changed)["status"] == codec.to_dict(written)["status"]


# ------------------------------------------------- deletion propagation (garbage collector)

JOBS = REGISTRY.by_resource("jobs")


@pytest.mark.parametrize("resource, policy, finalizers", [
    ("deployments", "", []),
    ("replicasets", "", []),
    ("statefulsets", "", []),
    ("daemonsets", "", []),
    ("cronjobs", "", []),
    ("jobs", "", ["orphan"]),  # batch/v1's DefaultGarbageCollectionPolicy
    ("jobs", "Background", []),
    ("jobs", "Foreground", ["foregroundDeletion"]),
    ("deployments", "Orphan", ["orphan"]),
    ("deployments", "Foreground", ["foregroundDeletion"]),
])
async def test_default_propagation_per_kind(reg, store, resource, policy, finalizers):
    kind = REGISTRY.by_resource(resource)
    made = await reg.create(kind, "default", workload(resource))
    result, deleted = await reg.delete(kind, "default", made.metadata.name,
                                       grace_period_s=None, propagation_policy=policy)
    assert deleted is (not finalizers)
    if finalizers:
        assert list(result.metadata.finalizers) == finalizers
        assert result.metadata.deletion_timestamp and \
            result.metadata.deletion_grace_period_seconds == 0
    else:
        assert await stored_value(store, kind, made.metadata.name) is None


@pytest.mark.parametrize("before, policy, after, deleted", [
    (["orphan"], "Foreground", ["foregroundDeletion"], False),
    (["foregroundDeletion"], "Orphan", ["orphan"], False),
    (["orphan"], "Background", [], True),
    (["example.com/x", "orphan"], "Background", ["example.com/x"], False),
    (["foregroundDeletion"], "", ["foregroundDeletion"], False),  # the set one stays
    (["example.com/x"], "Orphan", ["example.com/x", "orphan"], False),
], ids=["orphan-to-foreground", "foreground-to-orphan", "orphan-to-background",
        "background-keeps-others", "no-policy-keeps-set-one", "orphan-added-after-others"])
async def test_a_later_deletion_replaces_the_gc_finalizer(reg, store, before, policy, after,
                                                          deleted):
    dep = deployment()
    dep.metadata.finalizers.extend(before)
    await reg.create(DEPLOYMENTS, "default", dep)
    result, gone = await reg.delete(DEPLOYMENTS, "default", "web", grace_period_s=None,
                                    propagation_policy=policy)
    assert gone is deleted
    assert (await stored_value(store, DEPLOYMENTS, "web") is None) is deleted
    if not deleted:
        assert list(result.metadata.finalizers) == after


async def test_an_orphaned_job_goes_once_the_collector_removes_its_finalizer(reg, store):
    made = await reg.create(JOBS, "default", workload("jobs"))
    marked, _ = await reg.delete(JOBS, "default", made.metadata.name, grace_period_s=None,
                                 propagation_policy="")
    assert list(marked.metadata.finalizers) == ["orphan"]
    # The garbage collector orphans the pods, then removes its finalizer.
    del marked.metadata.finalizers[:]
    await reg.update(JOBS, marked)
    assert await stored_value(store, JOBS, made.metadata.name) is None


def test_gc_finalizers_table():
    from apiserver.registry import gc_finalizers

    assert gc_finalizers([], "", "Background") is None
    assert gc_finalizers([], "", "Orphan") == ["orphan"]
    assert gc_finalizers(["orphan"], "", "Background") is None  # set one overrides default
    assert gc_finalizers(["foregroundDeletion"], "", "Orphan") is None
    assert gc_finalizers(["a", "orphan"], "Foreground", "Background") == \
        ["a", "foregroundDeletion"]


# -------------------------------------------- pod finalizers (the Job controller's tracking)

TRACKING = "batch.kubernetes.io/job-tracking"


async def test_a_controller_removes_its_finalizer_from_a_pod_being_deleted(reg, store):
    pod = make_pod("p").on_node("n1").build()
    pod.metadata.finalizers.append(TRACKING)
    await reg.create(PODS, "default", pod)
    marked, deleted = await reg.delete(PODS, "default", "p", grace_period_s=None,
                                       propagation_policy="")
    assert not deleted and marked.metadata.deletion_grace_period_seconds == 30
    # The kubelet confirms the stop (grace 0): the finalizer still holds the pod.
    confirmed, deleted = await reg.delete(PODS, "default", "p", grace_period_s=0,
                                          propagation_policy="")
    assert not deleted
    assert confirmed.metadata.deletion_grace_period_seconds == 0
    assert list(confirmed.metadata.finalizers) == [TRACKING]
    reg.clock.now_s += 3600  # however long: finalizers hold a pod, not the clock
    assert (await reg.get(PODS, "default", "p")).metadata.finalizers[:] == [TRACKING]
    # The Job controller counts the pod and removes its finalizer: the pod goes.
    released = await reg.patch(PODS, "default", "p", '{"metadata": {"finalizers": null}}')
    assert not released.metadata.finalizers
    assert await stored_value(store, PODS, "p") is None


async def test_a_pod_whose_finalizer_goes_first_waits_for_its_node(reg, store):
    pod = make_pod("p").on_node("n1").build()
    pod.metadata.finalizers.append(TRACKING)
    await reg.create(PODS, "default", pod)
    marked, _ = await reg.delete(PODS, "default", "p", grace_period_s=None,
                                 propagation_policy="")
    del marked.metadata.finalizers[:]
    updated = await reg.update(PODS, marked)
    assert updated.metadata.deletion_grace_period_seconds == 30  # the node has not confirmed
    assert await stored_value(store, PODS, "p") is not None
    _, deleted = await reg.delete(PODS, "default", "p", grace_period_s=0, propagation_policy="")
    assert deleted and await stored_value(store, PODS, "p") is None


async def test_an_unbound_pod_with_finalizers_is_marked_with_grace_0(reg, store):
    pod = make_pod("p").build()
    pod.metadata.finalizers.append(TRACKING)
    await reg.create(PODS, "default", pod)
    marked, deleted = await reg.delete(PODS, "default", "p", grace_period_s=None,
                                       propagation_policy="")
    assert not deleted and marked.metadata.deletion_grace_period_seconds == 0
    assert marked.metadata.deletion_timestamp == codec_time(NOW_S)
    del marked.metadata.finalizers[:]
    await reg.update(PODS, marked)
    assert await stored_value(store, PODS, "p") is None


async def test_an_orphan_deletion_of_a_bound_pod_adds_the_finalizer_once(reg):
    await reg.create(PODS, "default", make_pod("p").on_node("n1").build())
    marked, _ = await reg.delete(PODS, "default", "p", grace_period_s=None,
                                 propagation_policy="Orphan")
    assert list(marked.metadata.finalizers) == ["orphan"]
    # A deletion already pending and left as it was changes nothing else.
    again, _ = await reg.delete(PODS, "default", "p", grace_period_s=None,
                                propagation_policy="Background")
    assert list(again.metadata.finalizers) == ["orphan"]
    assert again.metadata.resource_version == marked.metadata.resource_version


# ---------------------------------------------- DefaultStorageClass admission on claims

PVCS = REGISTRY.by_resource("persistentvolumeclaims")
STORAGE_CLASSES = REGISTRY.by_resource("storageclasses")
IS_DEFAULT = "storageclass.kubernetes.io/is-default-class"


def storage_class(name: str, default: str | None = "true", beta: bool = False):
    annotations = {}
    if default is not None:
        key = "storageclass.beta.kubernetes.io/is-default-class" if beta else IS_DEFAULT
        annotations[key] = default
    return obj({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": name, "annotations": annotations},
                "provisioner": "rancher.io/local-path"})


def claim(name: str = "data", **spec):
    return obj({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Gi"}}, **spec}})


@pytest.mark.parametrize("classes, spec, expected", [
    ([], {}, None),
    ([("standard", "true", False)], {}, "standard"),
    ([("standard", "false", False)], {}, None),
    ([("standard", "true", True)], {}, "standard"),  # the beta annotation counts too
    ([("old", "true", False), ("new", "true", False)], {}, "new"),  # newest wins
    ([("standard", "true", False)], {"storageClassName": "fast"}, "fast"),
    ([("standard", "true", False)], {"storageClassName": ""}, ""),  # "" asks for no class
], ids=["no-classes", "default", "not-default", "beta-annotation", "newest-default",
        "named-class", "explicitly-none"])
async def test_a_claim_without_a_class_gets_the_default_one(reg, classes, spec, expected):
    for name, default, beta in classes:
        await reg.create(STORAGE_CLASSES, "", storage_class(name, default, beta))
        reg.clock.now_s += 1
    made = await reg.create(PVCS, "default", claim(**spec))
    if expected is None:
        assert not made.spec.HasField("storage_class_name")
    else:
        assert made.spec.storage_class_name == expected
    assert made.status.phase == "Pending"


async def test_equally_old_defaults_are_chosen_by_name(reg):
    for name in ("zeta", "alpha"):
        await reg.create(STORAGE_CLASSES, "", storage_class(name))
    assert (await reg.create(PVCS, "default", claim())).spec.storage_class_name == "alpha"


async def test_a_claim_with_the_beta_class_annotation_is_left_alone(reg):
    await reg.create(STORAGE_CLASSES, "", storage_class("standard"))
    pvc = claim()
    pvc.metadata.annotations["volume.beta.kubernetes.io/storage-class"] = "slow"
    made = await reg.create(PVCS, "default", pvc)
    assert not made.spec.HasField("storage_class_name")


async def test_the_default_class_is_only_given_at_create(reg):
    made = await reg.create(PVCS, "default", claim())
    await reg.create(STORAGE_CLASSES, "", storage_class("standard"))
    made.metadata.labels["x"] = "y"
    updated = await reg.update(PVCS, made)
    assert not updated.spec.HasField("storage_class_name")


async def test_a_claim_needs_a_storage_request(reg):
    pvc = claim()
    pvc.spec.resources.ClearField("requests")
    with pytest.raises(errors.Invalid) as caught:
        await reg.create(PVCS, "default", pvc)
    assert caught.value.message == ('PersistentVolumeClaim "data" is invalid: '
                                    'spec.resources[storage]: Required value')


async def test_a_status_update_is_validated_as_a_status(reg):
    made = await reg.create(DEPLOYMENTS, "default", deployment())
    with pytest.raises(errors.Invalid) as caught:
        await reg.patch(DEPLOYMENTS, "default", "web",
                        '{"status": {"replicas": 1, "readyReplicas": 2}}', status=True)
    assert caught.value.message == (
        'Deployment "web" is invalid: status.readyReplicas: Invalid value: 2: '
        'cannot be greater than status.replicas')
    assert (await reg.get(DEPLOYMENTS, "default", "web")).metadata.resource_version == \
        made.metadata.resource_version


INGRESSES = REGISTRY.by_resource("ingresses")
INGRESS_CLASSES = REGISTRY.by_resource("ingressclasses")


def ingress_class(name: str, default: str | None = "true"):
    annotations = {"ingressclass.kubernetes.io/is-default-class": default} if default else {}
    return obj({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                "metadata": {"name": name, "annotations": annotations},
                "spec": {"controller": "k8s.io/ingress-nginx"}})


def ingress(annotations: dict[str, str] | None = None, **spec):
    return obj({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": "web", "namespace": "default",
                             "annotations": annotations or {}},
                "spec": {"defaultBackend": {"service": {"name": "web",
                                                        "port": {"number": 80}}}, **spec}})


@pytest.mark.parametrize("classes, spec, annotations, expected", [
    ([], {}, None, None),
    ([("nginx", "true")], {}, None, "nginx"),
    ([("nginx", "false")], {}, None, None),
    ([("old", "true"), ("new", "true")], {}, None, "new"),  # newest wins
    ([("nginx", "true")], {"ingressClassName": "traefik"}, None, "traefik"),
    # The old annotation names a class: no default is added.
    ([("nginx", "true")], {}, {"kubernetes.io/ingress.class": "traefik"}, None),
], ids=["no-classes", "default", "not-default", "newest-default", "named-class",
        "annotation-class"])
async def test_an_ingress_without_a_class_gets_the_default_one(reg, classes, spec, annotations,
                                                              expected):
    for name, default in classes:
        await reg.create(INGRESS_CLASSES, "", ingress_class(name, default))
        reg.clock.now_s += 1
    made = await reg.create(INGRESSES, "default", ingress(annotations, **spec))
    if expected is None:
        assert not made.spec.HasField("ingress_class_name")
    else:
        assert made.spec.ingress_class_name == expected
