"""The apiserver as one real process over a real etcd, through the clientset."""
from __future__ import annotations

import asyncio
import copy

import pytest

from kubemu.api import codec, errors
from kubemu.api.kinds import REGISTRY
from kubemu.client.wait import wait_for
from tests.builders import configmap, make_pod, obj
from tests.component.manifests import CHANGES, MANIFESTS


def manifest(resource: str, namespace: str = "default"):
    doc = copy.deepcopy(MANIFESTS[resource])
    if REGISTRY.by_resource(resource).namespaced:
        doc["metadata"]["namespace"] = namespace
    return obj(doc)


def test_every_kind_has_a_manifest():
    assert sorted(MANIFESTS) == sorted(k.resource for k in REGISTRY.kinds)


@pytest.mark.parametrize("resource", sorted(MANIFESTS))
async def test_crud_every_kind(client, resource):
    kind = REGISTRY.by_resource(resource)
    ns = "default" if kind.namespaced else ""
    created = await client.create(manifest(resource))
    name = created.metadata.name
    assert created.metadata.uid and created.metadata.creation_timestamp.endswith("Z")
    assert int(created.metadata.resource_version) > 0
    assert (created.api_version, created.kind) == (kind.api_version, kind.kind)

    got = await client.get(resource, name, ns)
    assert codec.to_dict(got) == codec.to_dict(created)

    listed = await client.list_all(resource, ns)
    assert name in [i.metadata.name for i in listed.items]

    patched = await client.patch(resource, name, ns, patch=CHANGES[resource])
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)
    assert patched.metadata.uid == created.metadata.uid

    result = await client.delete(resource, name, ns)
    if kind.kind == "Namespace":  # namespaces terminate first, then go
        assert not result.deleted and result.object.status.phase == "Terminating"
        await wait_for(lambda: _gone(client, resource, name, ns), 15)
    else:
        assert result.deleted
        with pytest.raises(errors.NotFound):
            await client.get(resource, name, ns)


async def _gone(client, resource, name, ns):
    try:
        await client.get(resource, name, ns)
        return False
    except errors.NotFound:
        return True


async def test_system_namespaces_exist(client):
    names = {n.metadata.name for n in (await client.list_all("namespaces")).items}
    assert {"default", "kube-system"} <= names


async def test_create_needs_an_existing_namespace(client):
    with pytest.raises(errors.NotFound, match='namespaces "nope" not found'):
        await client.create(configmap("a", "nope"))


async def test_conflict_on_stale_resource_version(client):
    first = await client.create(configmap("c1", color="blue"))
    fresh = copy.deepcopy(first)
    fresh.data["color"] = "green"
    await client.update(fresh)
    stale = copy.deepcopy(first)
    stale.data["color"] = "red"
    with pytest.raises(errors.Conflict, match="the object has been modified"):
        await client.update(stale)
    assert (await client.get("configmaps", "c1", "default")).data["color"] == "green"


async def test_generation_bumps_on_spec_changes_only(client):
    created = await client.create(manifest("deployments"))
    assert created.metadata.generation == 1
    labelled = await client.patch("deployments", "web", "default",
                                  patch={"metadata": {"labels": {"x": "y"}}})
    assert labelled.metadata.generation == 1
    scaled = await client.patch("deployments", "web", "default", patch={"spec": {"replicas": 5}})
    assert scaled.metadata.generation == 2


async def test_status_only_through_update_status(client):
    created = await client.create(manifest("deployments"))
    attempt = copy.deepcopy(created)
    attempt.status.replicas = 7
    attempt.spec.replicas = 3
    updated = await client.update(attempt)
    assert updated.spec.replicas == 3 and updated.status.replicas == 0
    attempt = copy.deepcopy(updated)
    attempt.status.replicas = 7
    attempt.spec.replicas = 9
    status_updated = await client.update_status(attempt)
    assert status_updated.status.replicas == 7 and status_updated.spec.replicas == 3


async def test_defaults_are_applied(client):
    pod = await client.create(make_pod("d").build())
    assert pod.spec.restart_policy == "Always"
    assert pod.spec.termination_grace_period_seconds == 30
    assert pod.spec.containers[0].image_pull_policy == "Always"  # busybox has no tag
    assert pod.status.phase == "Pending"
    deploy = await client.create(manifest("deployments"))
    assert codec.to_dict(deploy)["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    assert deploy.spec.revision_history_limit == 10
    assert deploy.spec.progress_deadline_seconds == 600


async def test_generate_name(client):
    doc = codec.to_dict(configmap("x"))
    doc["metadata"] = {"generateName": "web-", "namespace": "default"}
    made = await client.create(obj(doc))
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
async def test_invalid_manifests_are_rejected_and_nothing_is_stored(client, doc, expected):
    kind = REGISTRY.by_gvk(doc["apiVersion"], doc["kind"])
    doc["metadata"]["namespace"] = "default"
    with pytest.raises(errors.Invalid) as caught:
        # A decode error is found on the client, like kubectl's strict decoding;
        # a semantic one comes back from the server as INVALID_ARGUMENT.
        await client.create(codec.from_dict(kind.message, doc))
    assert expected in str(caught.value)
    assert (await client.list_all(kind.resource, "default")).items == []


async def test_server_rejects_unknown_fields_in_patches(client):
    await client.create(make_pod("p").build())
    with pytest.raises(errors.Invalid, match=r"spec.containers\[0\].imagee: unknown field"):
        await client.patch("pods", "p", "default",
                           patch={"spec": {"containers": [{"name": "main", "imagee": "x"}]}})
    assert (await client.get("pods", "p", "default")).spec.containers[0].image == "busybox"


async def test_wrong_kind_for_resource_is_rejected(client):
    from kubemu.api.v1 import resources_pb2 as pb

    request = pb.CreateRequest(resource="pods", namespace="default",
                               object=REGISTRY.pack(configmap("x")))
    with pytest.raises(errors.BadRequest):
        try:
            await client._stub.Create(request, timeout=5)
        except Exception as err:  # grpc error -> ApiError, as the clientset does
            import grpc
            if isinstance(err, grpc.RpcError):
                raise errors.from_rpc_error(err) from None
            raise
    assert (await client.list_all("pods", "default")).items == []


async def test_label_and_field_selectors(client):
    await client.create(make_pod("a").labels(app="web", tier="front").on_node("n1").build())
    await client.create(make_pod("b").labels(app="web", tier="back").build())
    await client.create(make_pod("c").labels(app="db").build())

    async def names(**kw):
        return sorted(p.metadata.name for p in (await client.list_all("pods", "default", **kw)).items)

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


async def test_finalizers_hold_deletion_until_removed(client):
    cm = configmap("held")
    cm.metadata.finalizers.append("example.com/hold")
    await client.create(cm)
    result = await client.delete("configmaps", "held", "default")
    assert not result.deleted and result.object.metadata.deletion_timestamp
    held = await client.get("configmaps", "held", "default")
    held.metadata.ClearField("finalizers")
    await client.update(held)
    with pytest.raises(errors.NotFound):
        await client.get("configmaps", "held", "default")


async def test_delete_preconditions(client):
    made = await client.create(configmap("pre"))
    with pytest.raises(errors.Conflict, match="Precondition failed: UID"):
        await client.delete("configmaps", "pre", "default", uid="not-the-uid")
    with pytest.raises(errors.Conflict, match="Precondition failed: ResourceVersion"):
        await client.delete("configmaps", "pre", "default", resource_version="1")
    assert (await client.delete("configmaps", "pre", "default", uid=made.metadata.uid)).deleted


async def test_graceful_pod_deletion(client):
    await client.create(make_pod("unbound").build())
    assert (await client.delete("pods", "unbound", "default")).deleted  # unbound: at once

    await client.create(make_pod("bound").on_node("n1").grace(20).build())
    pending = await client.delete("pods", "bound", "default")
    assert not pending.deleted
    assert pending.object.metadata.deletion_timestamp
    assert pending.object.metadata.deletion_grace_period_seconds == 20
    # The node confirms the pod stopped by deleting with grace 0.
    assert (await client.delete("pods", "bound", "default", grace_period_s=0)).deleted


async def test_binding(client):
    made = await client.create(make_pod("b").build())
    bound = await client.bind("default", "b", "node-1", uid=made.metadata.uid)
    assert bound.spec.node_name == "node-1"
    assert [(c.type, c.status) for c in bound.status.conditions] == [("PodScheduled", "True")]
    with pytest.raises(errors.Conflict, match="already assigned"):
        await client.bind("default", "b", "node-2")


async def test_concurrent_creates_lose_nothing(client):
    count = 500
    results = await asyncio.gather(
        *(client.create(configmap(f"cm-{i:04d}", i=str(i))) for i in range(count)),
        return_exceptions=True)
    failures = [r for r in results if isinstance(r, Exception)]
    assert failures == []
    listed = await client.list_all("configmaps", "default")
    names = [c.metadata.name for c in listed.items]
    assert len(names) == count and len(set(names)) == count
    assert len({c.metadata.resource_version for c in listed.items}) == count


async def test_list_pages_ten_thousand_objects(client):
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
