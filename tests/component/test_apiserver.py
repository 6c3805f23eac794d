"""The apiserver as one real process over a real etcd, through the clientset.

The tests share their worker's etcd + apiserver (kubemu.testing's shared
cluster: no controller acts on what they write), each in a namespace of its
own; the one that restarts the apiserver and writes to etcd directly has
processes of its own (tests/support.py)."""
from __future__ import annotations

import asyncio
import copy

import pytest

from kubemu.api import codec, errors, limits
from kubemu.api.kinds import REGISTRY
from kubemu.client.wait import wait_for
from kubemu.testing import API_ONLY
from tests.builders import configmap, make_pod, obj
from tests.component.manifests import CHANGES, MANIFESTS


def manifest(resource: str, namespace: str = "default"):
    doc = copy.deepcopy(MANIFESTS[resource])
    if REGISTRY.by_resource(resource).namespaced:
        doc["metadata"]["namespace"] = namespace
        if "involvedObject" in doc:  # an Event is about an object of its own namespace
            doc["involvedObject"]["namespace"] = namespace
    return obj(doc)


def test_every_kind_has_a_manifest():
    # The metrics API is read-only (computed on read): no manifest to create.
    assert sorted(MANIFESTS) == sorted(k.resource for k in REGISTRY.kinds if k.stored)


@pytest.mark.parametrize("resource", sorted(MANIFESTS))
async def test_crud_every_kind(api, kubemu_namespace, resource):
    kind = REGISTRY.by_resource(resource)
    ns = kubemu_namespace if kind.namespaced else ""
    created = await api.create(manifest(resource, kubemu_namespace))
    name = created.metadata.name
    assert created.metadata.uid and created.metadata.creation_timestamp.endswith("Z")
    assert int(created.metadata.resource_version) > 0
    assert (created.api_version, created.kind) == (kind.api_version, kind.kind)

    got = await api.get(resource, name, ns)
    assert codec.to_dict(got) == codec.to_dict(created)

    listed = await api.list_all(resource, ns)
    assert name in [i.metadata.name for i in listed.items]

    patched = await api.patch(resource, name, ns, patch=CHANGES[resource])
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)
    assert patched.metadata.uid == created.metadata.uid

    # As kubectl deletes: Background (a Job's own default would orphan, and
    # wait for the garbage collector to remove the `orphan` finalizer).
    result = await api.delete(resource, name, ns, propagation_policy="Background")
    if kind.kind == "Namespace":  # namespaces terminate first, then go
        assert not result.deleted and result.object.status.phase == "Terminating"
        # No controller-manager here: do the namespace controller's last step
        # (the namespace is empty) through namespaces/finalize.
        terminating = await api.get(resource, name, ns)
        assert list(terminating.spec.finalizers) == ["kubernetes"]
        del terminating.spec.finalizers[:]
        await api.finalize(terminating)
        await wait_for(lambda: _gone(api, resource, name, ns), 15)
    else:
        assert result.deleted
        with pytest.raises(errors.NotFound):
            await api.get(resource, name, ns)


async def _gone(api, resource, name, ns):
    try:
        await api.get(resource, name, ns)
        return False
    except errors.NotFound:
        return True


async def test_system_namespaces_exist(api):
    names = {n.metadata.name for n in (await api.list_all("namespaces")).items}
    assert {"default", "kube-system"} <= names


async def test_create_needs_an_existing_namespace(api):
    with pytest.raises(errors.NotFound, match='namespaces "nope" not found'):
        await api.create(configmap("a", "nope"))


async def test_conflict_on_stale_resource_version(api, ns):
    first = await api.create(configmap("c1", ns, color="blue"))
    fresh = copy.deepcopy(first)
    fresh.data["color"] = "green"
    await api.update(fresh)
    stale = copy.deepcopy(first)
    stale.data["color"] = "red"
    with pytest.raises(errors.Conflict, match="the object has been modified"):
        await api.update(stale)
    assert (await api.get("configmaps", "c1", ns)).data["color"] == "green"


async def test_generation_bumps_on_spec_changes_only(api, ns):
    created = await api.create(manifest("deployments", ns))
    assert created.metadata.generation == 1
    labelled = await api.patch("deployments", "web", ns,
                               patch={"metadata": {"labels": {"x": "y"}}})
    assert labelled.metadata.generation == 1
    scaled = await api.patch("deployments", "web", ns, patch={"spec": {"replicas": 5}})
    assert scaled.metadata.generation == 2


async def test_status_only_through_update_status(api, ns):
    created = await api.create(manifest("deployments", ns))
    attempt = copy.deepcopy(created)
    attempt.status.replicas = 7
    attempt.spec.replicas = 3
    updated = await api.update(attempt)
    assert updated.spec.replicas == 3 and updated.status.replicas == 0
    attempt = copy.deepcopy(updated)
    attempt.status.replicas = 7
    attempt.spec.replicas = 9
    status_updated = await api.update_status(attempt)
    assert status_updated.status.replicas == 7 and status_updated.spec.replicas == 3


async def test_defaults_are_applied(api, ns):
    pod = await api.create(make_pod("d", ns).build())
    assert pod.spec.restart_policy == "Always"
    assert pod.spec.termination_grace_period_seconds == 30
    assert pod.spec.containers[0].image_pull_policy == "Always"  # busybox has no tag
    assert pod.status.phase == "Pending"
    deploy = await api.create(manifest("deployments", ns))
    assert codec.to_dict(deploy)["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    assert deploy.spec.revision_history_limit == 10
    assert deploy.spec.progress_deadline_seconds == 600


async def test_generate_name(api, ns):
    doc = codec.to_dict(configmap("x", ns))
    doc["metadata"] = {"generateName": "web-", "namespace": ns}
    made = await api.create(obj(doc))
    assert made.metadata.name.startswith("web-") and len(made.metadata.name) == 9


INVALID = [
    pytest.param({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                  "spec": {"containers": [{"name": "c", "image": "busybox", "imagee": "x"}]}},
                 "spec.containers[0].imagee: unknown field", id="unknown-field"),
    pytest.param({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad_Name"},
                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
                 "metadata.name: Invalid value", id="bad-name"),
    pytest.param({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                  "spec": {"containers": [{"name": "c"}]}},
                 "spec.containers[0].image: Required value", id="missing-image"),
    pytest.param({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                  "spec": {"selector": {"matchLabels": {"app": "a"}},
                           "template": {"metadata": {"labels": {"app": "b"}},
                                        "spec": {"containers": [{"name": "c", "image": "x"}]}}}},
                 "spec.template.metadata.labels", id="selector-mismatch"),
]


@pytest.mark.parametrize("doc, expected", INVALID)
async def test_invalid_manifests_are_rejected_and_nothing_is_stored(api, ns, doc, expected):
    kind = REGISTRY.by_gvk(doc["apiVersion"], doc["kind"])
    doc["metadata"]["namespace"] = ns
    with pytest.raises(errors.Invalid) as caught:
        # A decode error is found on the client, like kubectl's strict decoding;
        # a semantic one comes back from the server as INVALID_ARGUMENT.
        await api.create(codec.from_dict(kind.message, doc))
    assert expected in str(caught.value)
    assert (await api.list_all(kind.resource, ns)).items == []


async def test_server_rejects_unknown_fields_in_patches(api, ns):
    await api.create(make_pod("p", ns).build())
    with pytest.raises(errors.Invalid, match=r"spec.containers\[0\].imagee: unknown field"):
        await api.patch("pods", "p", ns,
                        patch={"spec": {"containers": [{"name": "main", "imagee": "x"}]}})
    assert (await api.get("pods", "p", ns)).spec.containers[0].image == "busybox"


async def test_wrong_kind_for_resource_is_rejected(api, ns):
    from kubemu.api.v1 import resources_pb2 as pb

    request = pb.CreateRequest(resource="pods", namespace=ns,
                               object=REGISTRY.pack(configmap("x", ns)))
    with pytest.raises(errors.BadRequest):
        try:
            await api._stub.Create(request, timeout=5)
        except Exception as err:  # grpc error -> ApiError, as the clientset does
            import grpc
            if isinstance(err, grpc.RpcError):
                raise errors.from_rpc_error(err) from None
            raise
    assert (await api.list_all("pods", ns)).items == []


async def test_label_and_field_selectors(api, ns):
    await api.create(make_pod("a", ns).labels(app="web", tier="front").on_node("n1").build())
    await api.create(make_pod("b", ns).labels(app="web", tier="back").build())
    await api.create(make_pod("c", ns).labels(app="db").build())

    async def names(**kw):
        return sorted(p.metadata.name for p in (await api.list_all("pods", ns, **kw)).items)

    assert await names(label_selector="app=web") == ["a", "b"]
    assert await names(label_selector="app==web,tier!=front") == ["b"]
    assert await names(label_selector="tier in (front, back)") == ["a", "b"]
    assert await names(label_selector="app notin (web)") == ["c"]
    assert await names(label_selector="tier") == ["a", "b"]
    assert await names(label_selector="!tier") == ["c"]
    assert await names(field_selector="spec.nodeName=n1") == ["a"]
    assert await names(field_selector="metadata.name!=a,status.phase=Pending") == ["b", "c"]
    with pytest.raises(errors.BadRequest):
        await names(field_selector="spec.bogus=1")


async def test_finalizers_hold_deletion_until_removed(api, ns):
    cm = configmap("held", ns)
    cm.metadata.finalizers.append("example.com/hold")
    await api.create(cm)
    result = await api.delete("configmaps", "held", ns)
    assert not result.deleted and result.object.metadata.deletion_timestamp
    held = await api.get("configmaps", "held", ns)
    held.metadata.ClearField("finalizers")
    await api.update(held)
    with pytest.raises(errors.NotFound):
        await api.get("configmaps", "held", ns)


async def test_delete_preconditions(api, ns):
    made = await api.create(configmap("pre", ns))
    rv = made.metadata.resource_version
    with pytest.raises(errors.Conflict) as caught:
        await api.delete("configmaps", "pre", ns, uid="not-the-uid")
    assert str(caught.value) == (
        'Operation cannot be fulfilled on configmaps "pre": StorageError: invalid object, '
        f"Code: 4, Key: /registry/configmaps/{ns}/pre, ResourceVersion: 0, "
        "AdditionalErrorMsg: Precondition failed: UID in precondition: not-the-uid, "
        f"UID in object meta: {made.metadata.uid}")
    with pytest.raises(errors.Conflict) as caught:
        await api.delete("configmaps", "pre", ns, resource_version="1")
    assert str(caught.value).endswith(
        "Precondition failed: ResourceVersion in precondition: 1, "
        f"ResourceVersion in object meta: {rv}")
    assert (await api.get("configmaps", "pre", ns)).metadata.resource_version == rv
    assert (await api.delete("configmaps", "pre", ns, uid=made.metadata.uid,
                             resource_version=rv)).deleted


async def test_a_stale_writer_never_lands_on_a_recreated_object(api, ns):
    """metadata.uid is a precondition of Update and UpdateStatus; a patch that
    carries another uid is refused as changing an immutable field, as
    kube-apiserver does (its patch handler has no uid precondition)."""
    first = await api.create(make_pod("p", ns).labels(v="1").build())
    assert (await api.delete("pods", "p", ns)).deleted  # unbound: at once
    second = await api.create(make_pod("p", ns).labels(v="2").build())
    old_uid, new_uid = first.metadata.uid, second.metadata.uid
    why = ('Operation cannot be fulfilled on pods "p": StorageError: invalid object, Code: 4, '
           f"Key: /registry/pods/{ns}/p, ResourceVersion: 0, AdditionalErrorMsg: "
           f"Precondition failed: UID in precondition: {old_uid}, UID in object meta: {new_uid}")

    stale = copy.deepcopy(first)
    stale.metadata.resource_version = ""  # even an unconditional write carries its uid
    stale.metadata.labels["v"] = "stale"
    with pytest.raises(errors.Conflict) as caught:
        await api.update(stale)
    assert str(caught.value) == why
    stale.status.phase = "Failed"
    with pytest.raises(errors.Conflict) as caught:
        await api.update_status(stale)
    assert str(caught.value) == why
    for status in (False, True):
        with pytest.raises(errors.Invalid) as caught:
            await api.patch("pods", "p", ns, status=status, patch={
                "metadata": {"uid": old_uid, "labels": {"v": "stale"}}})
        assert str(caught.value) == (f'Pod "p" is invalid: metadata.uid: Invalid value: '
                                     f'"{old_uid}": field is immutable')

    now = await api.get("pods", "p", ns)
    assert codec.to_dict(now) == codec.to_dict(second)
    # The right uid passes.
    patched = await api.patch("pods", "p", ns, patch={
        "metadata": {"uid": new_uid, "labels": {"v": "3"}}})
    assert patched.metadata.labels["v"] == "3"


async def test_an_object_too_large_for_etcd_is_refused_and_nothing_is_stored(api, ns):
    pod = make_pod("big", ns).build()
    pod.spec.containers[0].env.add(name="PAYLOAD", value="x" * (2 * 1024 * 1024))
    with pytest.raises(errors.RequestEntityTooLarge) as caught:
        await api.create(pod)
    message = str(caught.value)
    assert message.startswith('Request entity too large: pods "big" is ')
    assert message.endswith(f"bytes when stored: limit is {limits.STORE_REQUEST_BYTES_MAX}")
    assert "etcd" not in message
    assert (await api.list_all("pods", ns)).items == []

    # An update that would grow an object past the limit leaves it as it was.
    deploy = await api.create(manifest("deployments", ns))
    grown = copy.deepcopy(deploy)
    grown.spec.template.spec.containers[0].env.add(name="PAYLOAD",
                                                   value="x" * (2 * 1024 * 1024))
    with pytest.raises(errors.RequestEntityTooLarge, match='deployments.apps "web" is'):
        await api.update(grown)
    assert (await api.get("deployments", "web", ns)).metadata.resource_version == \
        deploy.metadata.resource_version


async def test_a_large_annotation_is_invalid_as_in_kubernetes(api, ns):
    pod = make_pod("annotated", ns).build()
    pod.metadata.annotations["blob"] = "x" * (2 * 1024 * 1024)
    with pytest.raises(errors.Invalid, match="metadata.annotations: Too long"):
        await api.create(pod)
    assert (await api.list_all("pods", ns)).items == []


async def test_a_request_over_the_receive_limit_is_refused_by_grpc_with_a_clear_error(api, ns):
    pod = make_pod("huge", ns).build()
    pod.spec.containers[0].env.add(name="PAYLOAD", value="x" * (8 * 1024 * 1024))
    with pytest.raises(errors.RequestEntityTooLarge) as caught:
        await api.create(pod)
    message = str(caught.value)
    assert message.startswith('Request entity too large: pods "huge" is ')
    assert message.endswith(f"limit is {limits.REQUEST_BYTES_MAX}")
    assert "Received message" not in message and "grpc" not in message.lower()
    assert (await api.list_all("pods", ns)).items == []


async def test_graceful_pod_deletion(api, ns):
    await api.create(make_pod("unbound", ns).build())
    assert (await api.delete("pods", "unbound", ns)).deleted  # unbound: at once

    await api.create(make_pod("bound", ns).on_node("n1").grace(20).build())
    pending = await api.delete("pods", "bound", ns)
    assert not pending.deleted
    assert pending.object.metadata.deletion_timestamp
    assert pending.object.metadata.deletion_grace_period_seconds == 20
    # The node confirms the pod stopped by deleting with grace 0.
    assert (await api.delete("pods", "bound", ns, grace_period_s=0)).deleted


async def test_binding(api, ns):
    made = await api.create(make_pod("b", ns).build())
    bound = await api.bind(ns, "b", "node-1", uid=made.metadata.uid)
    assert bound.spec.node_name == "node-1"
    assert [(c.type, c.status) for c in bound.status.conditions] == [("PodScheduled", "True")]
    with pytest.raises(errors.Conflict, match="already assigned"):
        await api.bind(ns, "b", "node-2")


async def test_concurrent_creates_lose_nothing(api, ns):
    count = 500
    results = await asyncio.gather(
        *(api.create(configmap(f"cm-{i:04d}", ns, i=str(i))) for i in range(count)),
        return_exceptions=True)
    failures = [r for r in results if isinstance(r, Exception)]
    assert failures == []
    listed = await api.list_all("configmaps", ns)
    names = [c.metadata.name for c in listed.items]
    assert len(names) == count and len(set(names)) == count
    assert len({c.metadata.resource_version for c in listed.items}) == count


# Ten thousand objects would stay in the shared cluster (its namespaces are
# never emptied: no controller-manager): this test gets an API of its own.
@pytest.mark.kubemu(components=list(API_ONLY))
async def test_list_pages_ten_thousand_objects(kubemu_client):
    client = kubemu_client
    count, in_flight = 10_000, 64
    sem = asyncio.Semaphore(in_flight)

    async def make(i):
        async with sem:
            await client.create(configmap(f"cm-{i:05d}", payload="x" * 200))
    await asyncio.gather(*(make(i) for i in range(count)))

    first = await client.list("configmaps", "default", limit=1000)
    assert len(first.items) == 1000 and first.continue_token
    assert first.remaining_item_count == count - 1000
    everything = await client.list_all("configmaps", "default", page_size=1000)
    names = [c.metadata.name for c in everything.items]
    assert names == [f"cm-{i:05d}" for i in range(count)]


async def test_a_corrupt_value_in_etcd_is_skipped_survives_a_restart_and_can_be_deleted(
        tmp_path, etcd, apiserver):
    import aetcd

    from kubemu.client.clientset import Client

    key = b"/registry/configmaps/default/bad"
    host, _, port = etcd.endpoint.rpartition(":")
    raw = aetcd.Client(host=host, port=int(port), timeout=5)
    client = Client(apiserver.address, timeout_s=10.0)
    try:
        await client.create(configmap("good-a"))
        watch = client.watch("configmaps", "default", resource_version="0")
        assert (await anext(watch)).object.metadata.name == "good-a"
        await raw.put(key, b"\xff\xff written by another tool, not a protobuf value")
        await client.create(configmap("good-b"))
        # The watch cache skipped the bad value and kept running.
        event = await asyncio.wait_for(anext(watch), 10)
        assert (event.type, event.object.metadata.name) == ("ADDED", "good-b")
        await watch.aclose()

        listed = await client.list_all("configmaps", "default")
        assert [c.metadata.name for c in listed.items] == ["good-a", "good-b"]
        with pytest.raises(errors.Internal) as caught:
            await client.get("configmaps", "bad", "default")
        assert str(caught.value).startswith(
            "Internal error occurred: StorageError: corrupt object, Code: 7, "
            "Key: /registry/configmaps/default/bad, ResourceVersion: 0, "
            "AdditionalErrorMsg: object not decodable revision=")
        with pytest.raises(errors.Internal, match="corrupt object"):
            await client.delete("configmaps", "bad", "default")
        with pytest.raises(errors.Invalid) as caught:
            await client.delete("configmaps", "good-a", "default",
                                ignore_store_read_error_with_cluster_breaking_potential=True)
        assert str(caught.value) == (
            'configmaps "good-a" is invalid: ignoreStoreReadErrorWithClusterBreakingPotential: '
            "Invalid value: true: is exclusively used to delete corrupt object(s), try again "
            "by removing this option")
        with pytest.raises(errors.Invalid, match="gracePeriodSeconds: Invalid value: 0: can "
                           "not be set together with ignoreStore"):
            await client.delete("configmaps", "bad", "default", grace_period_s=0,
                                ignore_store_read_error_with_cluster_breaking_potential=True)
    finally:
        await client.close()

    # A restarted apiserver becomes ready (its cache lists past the bad key) and says why.
    await apiserver.astop()
    await apiserver.astart()
    log_text = apiserver.proc.log_path.read_text(errors="replace")
    assert "/registry/configmaps/default/bad" in log_text and "cannot be decoded" in log_text

    client = Client(apiserver.address, timeout_s=10.0)
    try:
        listed = await client.list_all("configmaps", "default")
        assert [c.metadata.name for c in listed.items] == ["good-a", "good-b"]
        result = await client.delete(
            "configmaps", "bad", "default",
            ignore_store_read_error_with_cluster_breaking_potential=True)
        assert result.deleted and result.object is None
        assert await raw.get(key) is None
        with pytest.raises(errors.NotFound):
            await client.get("configmaps", "bad", "default")
    finally:
        await client.close()
        await raw.close()
