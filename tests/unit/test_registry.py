"""The generic registry and the per-kind strategies, on the in-memory store."""
from __future__ import annotations

import copy
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

    async def put_if(self, key, value, mod_revision):
        if self.races and mod_revision:
            self.races -= 1
            current = await self.get(key)
            await super().put_if(key, self.rival(current.value), current.mod_revision)
            self.rival_writes += 1
        return await super().put_if(key, value, mod_revision)


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
