"""The StatefulSet controller's decisions, pure: which ordinal is created or
deleted next under OrderedReady and Parallel, the rolling update with its
partition, the status counts, the pods and claims built for an ordinal, and
the revision history's hashing and choices; then the controller on the
apiserver's registry over the in-memory store (tests/unit/controller_harness.py)."""
from __future__ import annotations

import pytest

from kubemu.api import codec
from kubemu.api.kinds import REGISTRY
from controller_manager import controllerutil as cu
from controller_manager import history
from controller_manager.statefulset import (Counts, PodState, SetView, StatefulSetController,
                                            claims_for, count, identity_matches, new_pod,
                                            parent_and_ordinal, plan,
                                            revision_for, template_of, view_of)
from tests.builders import make_pod
from tests.unit.cli_memclient import MemClient
from tests.unit.controller_harness import ControllerHarness

CUR, UPD = "web-cur", "web-upd"


def P(ordinal: int, **kw) -> PodState:  # noqa: N802 - a short builder for the tables
    kw.setdefault("revision", CUR)
    return PodState(ordinal, **kw)


def pending(ordinal: int, **kw) -> PodState:
    return P(ordinal, phase="Pending", ready=False, available=False, **kw)


def not_ready(ordinal: int, **kw) -> PodState:
    return P(ordinal, ready=False, available=False, **kw)


def view(replicas: int, **kw) -> SetView:
    kw.setdefault("current_revision", CUR)
    kw.setdefault("update_revision", CUR)
    return SetView(replicas, **kw)


def writes(decided) -> list[str]:
    out = []
    for a in decided.writes():
        out.append(f"create {a.ordinal}@{a.revision}" if a.verb == "create"
                   else f"delete {a.ordinal} ({a.why})")
    return out


ORDERED = [
    ("empty-creates-0-only", view(3), [], ["create 0@web-cur"]),
    ("waits-for-0-pending", view(3), [pending(0)], []),
    ("waits-for-0-running-not-ready", view(3), [not_ready(0)], []),
    ("0-ready-creates-1", view(3), [P(0)], ["create 1@web-cur"]),
    ("0-1-ready-creates-2", view(3), [P(0), P(1)], ["create 2@web-cur"]),
    ("fills-a-gap-first", view(3), [P(0), P(2)], ["create 1@web-cur"]),
    ("all-ready-nothing", view(3), [P(0), P(1), P(2)], []),
    ("waits-for-min-ready-seconds", view(3), [P(0, available=False)], []),
    ("failed-is-deleted-and-blocks", view(3), [P(0), P(1, phase="Failed", ready=False)],
     ["delete 1 (failed)"]),
    ("succeeded-is-deleted-too", view(2), [P(0, phase="Succeeded", ready=False)],
     ["delete 0 (failed)"]),
    ("failed-terminating-waits", view(2),
     [P(0, phase="Failed", ready=False, terminating=True)], []),
    ("terminating-blocks-successors", view(3), [P(0), P(1, terminating=True)], []),
    ("deleted-pod-is-recreated", view(3), [P(0), P(2)], ["create 1@web-cur"]),
    ("scale-down-highest-first", view(1), [P(0), P(1), P(2)], ["delete 2 (scale down)"]),
    ("scale-down-waits-for-terminating", view(1), [P(0), P(1), P(2, terminating=True)], []),
    ("scale-down-waits-for-unready-replica", view(1), [not_ready(0), P(1), P(2)], []),
    ("scale-down-of-the-first-unhealthy", view(1), [P(0), P(1), not_ready(2)],
     ["delete 2 (scale down)"]),
    ("scale-down-blocks-behind-unready", view(1), [P(0), not_ready(1), not_ready(2)], []),
    ("scale-to-zero", view(0), [P(0), P(1)], ["delete 1 (scale down)"]),
    ("create-before-scale-down", view(2), [P(0), P(2)], ["create 1@web-cur"]),
    ("start-ordinal", view(2, start=5), [P(5)], ["create 6@web-cur"]),
    ("below-start-is-condemned", view(1, start=5), [P(5), P(0)], ["delete 0 (scale down)"]),
]


@pytest.mark.parametrize("v,pods,expected", [c[1:] for c in ORDERED],
                         ids=[c[0] for c in ORDERED])
def test_ordered_ready_creates_and_deletes_one_ordinal_at_a_time(v, pods, expected):
    assert writes(plan(v, pods)) == expected


PARALLEL = [
    ("creates-all", [], 3, ["create 0@web-cur", "create 1@web-cur", "create 2@web-cur"]),
    ("does-not-wait-for-pending", [pending(0)], 3, ["create 1@web-cur", "create 2@web-cur"]),
    ("deletes-failed-and-goes-on", [P(0), P(1, phase="Failed", ready=False)], 3,
     ["delete 1 (failed)", "create 2@web-cur"]),
    ("scale-down-all-at-once", [P(0), P(1), not_ready(2)], 1,
     ["delete 2 (scale down)", "delete 1 (scale down)"]),
    ("skips-terminating", [P(0), P(1, terminating=True), P(2)], 1, ["delete 2 (scale down)"]),
]


@pytest.mark.parametrize("pods,replicas,expected", [c[1:] for c in PARALLEL],
                         ids=[c[0] for c in PARALLEL])
def test_parallel_creates_and_deletes_without_waiting(pods, replicas, expected):
    assert writes(plan(view(replicas, monotonic=False), pods)) == expected


def rolling(replicas: int = 3, **kw) -> SetView:
    kw.setdefault("update_revision", UPD)
    return view(replicas, **kw)


ROLLING = [
    ("highest-first", rolling(), [P(0), P(1), P(2)], ["delete 2 (update)"]),
    ("then-the-next", rolling(), [P(0), P(1), P(2, revision=UPD)], ["delete 1 (update)"]),
    ("recreated-from-update", rolling(), [P(0), P(1)], ["create 2@web-upd"]),
    ("waits-for-updated-ready", rolling(monotonic=False),
     [P(0), P(1), not_ready(2, revision=UPD)], []),
    ("ordered-waits-in-the-replica-walk", rolling(),
     [P(0), P(1), not_ready(2, revision=UPD)], []),
    ("done", rolling(), [P(i, revision=UPD) for i in range(3)], []),
    ("partition-keeps-lower-ordinals", rolling(partition=2),
     [P(0), P(1), P(2, revision=UPD)], []),
    ("partition-updates-above", rolling(partition=1), [P(0), P(1), P(2)],
     ["delete 2 (update)"]),
    ("partition-recreates-below-at-current", rolling(partition=2), [P(1), P(2, revision=UPD)],
     ["create 0@web-cur"]),
    ("partition-beyond-replicas", rolling(partition=5), [P(0), P(1), P(2)], []),
    ("parallel-still-one-at-a-time", rolling(monotonic=False), [P(0), P(1), P(2)],
     ["delete 2 (update)"]),
    ("on-delete-waits-for-the-user", rolling(on_delete=True, partition=None),
     [P(0), P(1), P(2)], []),
    ("on-delete-recreates-at-update", rolling(on_delete=True, partition=None), [P(0), P(1)],
     ["create 2@web-upd"]),
    ("scale-down-before-update", rolling(2), [P(0), P(1), P(2)], ["delete 2 (scale down)"]),
]


@pytest.mark.parametrize("v,pods,expected", [c[1:] for c in ROLLING],
                         ids=[c[0] for c in ROLLING])
def test_rolling_update_replaces_the_highest_stale_ordinal_above_the_partition(
        v, pods, expected):
    assert writes(plan(v, pods)) == expected


@pytest.mark.parametrize("v,ordinal,expected", [
    (rolling(partition=2), 1, CUR),
    (rolling(partition=2), 2, UPD),
    (rolling(partition=0), 0, UPD),
    (rolling(partition=None, current_replicas=2), 1, CUR),
    (rolling(partition=None, current_replicas=2), 2, UPD),
    (rolling(on_delete=True, partition=None, current_replicas=3), 0, UPD),
    (rolling(partition=1, start=5), 5, CUR),
    (rolling(partition=1, start=5), 6, UPD),
], ids=["below-partition", "at-partition", "no-partition", "no-rolling-below-current",
        "no-rolling-above-current", "on-delete", "start-below", "start-above"])
def test_revision_of_a_new_pod(v, ordinal, expected):
    assert revision_for(v, ordinal) == expected


def test_plan_says_what_it_waits_for_and_fixes_identity_and_claims():
    decided = plan(view(3), [P(0, consistent=False), pending(1)])
    assert [(a.verb, a.ordinal) for a in decided.actions] == [("update", 0), ("claims", 1)]
    assert decided.waiting == "1 to be Running and Ready"


def test_status_counts():
    pods = [P(0), not_ready(1, revision=UPD), P(2, available=False, revision=UPD),
            P(3, terminating=True)]
    assert count(pods, CUR, UPD) == Counts(replicas=4, ready=3, available=2, current=1,
                                           updated=2)


# ---------------------------------------------------------------- objects

def sts_doc(**spec) -> dict:
    base = {"replicas": 3, "serviceName": "nginx",
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {"metadata": {"labels": {"app": "nginx"}},
                         "spec": {"containers": [{"name": "c", "image": "busybox",
                                                  "volumeMounts": [{"name": "www",
                                                                    "mountPath": "/www"}]}],
                                  "volumes": [{"name": "tmp", "emptyDir": {}}]}},
             "volumeClaimTemplates": [{"metadata": {"name": "www", "labels": {"tier": "db"}},
                                       "spec": {"accessModes": ["ReadWriteOnce"],
                                                "resources": {"requests": {"storage": "1Gi"}}}}]}
    base.update(spec)
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"}, "spec": base}


def sts(**spec):
    return codec.from_dict(REGISTRY.by_gvk("apps/v1", "StatefulSet").message, sts_doc(**spec))


@pytest.mark.parametrize("name,expected", [
    ("web-0", ("web", 0)), ("my-web-12", ("my-web", 12)), ("web", ("", -1)),
    ("web-", ("", -1)), ("web-x", ("", -1))])
def test_parent_and_ordinal(name, expected):
    assert parent_and_ordinal(name) == expected


def test_new_pod_has_identity_revision_and_its_claim():
    s = sts()
    pod = new_pod(s, s.spec.template, 1, "web-abc")
    assert pod.metadata.name == "web-1"
    assert dict(pod.metadata.labels) == {
        "app": "nginx", "statefulset.kubernetes.io/pod-name": "web-1",
        "apps.kubernetes.io/pod-index": "1", "controller-revision-hash": "web-abc"}
    assert (pod.spec.hostname, pod.spec.subdomain) == ("web-1", "nginx")
    assert [(v.name, v.persistent_volume_claim.claim_name) for v in pod.spec.volumes] == \
        [("www", "www-web-1"), ("tmp", "")]
    ref = pod.metadata.owner_references[0]
    assert (ref.kind, ref.name, ref.uid, ref.controller) == ("StatefulSet", "web", "u1", True)
    assert identity_matches(s, pod)
    del pod.metadata.labels["apps.kubernetes.io/pod-index"]
    assert not identity_matches(s, pod)


@pytest.mark.parametrize("policy,owned", [({}, False), ({"whenDeleted": "Delete"}, True)],
                         ids=["retain-ownerless", "delete-owned"])
def test_claims_are_named_per_ordinal_and_labelled_by_the_selector(policy, owned):
    (claim,) = claims_for(sts(persistentVolumeClaimRetentionPolicy=policy), 2)
    assert (claim.metadata.name, claim.metadata.namespace) == ("www-web-2", "ns")
    assert dict(claim.metadata.labels) == {"tier": "db", "app": "nginx"}
    assert claim.spec.resources.requests["storage"] == "1Gi"
    assert bool(claim.metadata.owner_references) == owned


# ---------------------------------------------------------------- history

def test_fnv1_hash_and_safe_encoding():
    assert history.fnv1_32(b"") == 0x811C9DC5
    assert history.fnv1_32(b"a") == 0x050C5D7E
    h = history.hash_revision({"a": 1}, 0)
    assert h == history.hash_revision({"a": 1}, 0)
    assert h != history.hash_revision({"a": 1}, 1)
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert history.revision_name("x" * 300, h) == "x" * 223 + "-" + h


def revision(owner, number: int, image: str = "busybox"):
    s = sts()
    s.spec.template.spec.containers[0].image = image
    rev = history.new_revision(owner, {"app": "nginx"}, history.template_patch(s), number, 0)
    rev.metadata.creation_timestamp = "2026-01-01T00:00:00Z"
    return rev


def test_a_revision_records_the_template_and_gives_it_back():
    s = sts()
    rev = history.new_revision(s, {"app": "nginx"}, history.template_patch(s), 1, 0)
    assert rev.metadata.name.startswith("web-")
    assert rev.metadata.labels[history.HASH_LABEL] == rev.metadata.name.removeprefix("web-")
    assert history.revision_data(rev)["spec"]["template"]["$patch"] == "replace"
    assert template_of(s, rev) == s.spec.template
    changed = sts()
    changed.spec.template.spec.containers[0].image = "nginx"
    assert template_of(changed, rev) == s.spec.template


@pytest.mark.parametrize("images,present,verb,number", [
    ([], "busybox", "create", 1),
    (["busybox"], "busybox", "reuse", 1),
    (["busybox"], "nginx", "create", 2),
    (["busybox", "nginx"], "busybox", "renumber", 3),
], ids=["first", "unchanged", "changed", "rollback"])
def test_update_revision_is_reused_renumbered_or_created(images, present, verb, number):
    owner = sts()
    revisions = [revision(owner, i + 1, image) for i, image in enumerate(images)]
    s = sts()
    s.spec.template.spec.containers[0].image = present
    decision = history.decide_update_revision(history.sort_revisions(revisions),
                                              history.template_patch(s))
    assert (decision.verb, decision.number) == (verb, number)


def test_history_keeps_the_limit_of_unused_revisions_oldest_dropped():
    owner = sts()
    revisions = history.sort_revisions(
        [revision(owner, n, f"img{n}") for n in (3, 1, 4, 2, 5)])
    assert [history.revision_number(r) for r in revisions] == [1, 2, 3, 4, 5]
    live = {revisions[4].metadata.name, revisions[0].metadata.name}
    dropped = history.truncate(revisions, live, 1)
    assert [history.revision_number(r) for r in dropped] == [2, 3]
    assert history.truncate(revisions, live, 10) == []


@pytest.mark.parametrize("spec,expected", [
    ({}, dict(monotonic=True, on_delete=False, partition=None)),
    ({"podManagementPolicy": "Parallel"}, dict(monotonic=False)),
    ({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}},
     dict(on_delete=False, partition=2)),
    ({"updateStrategy": {"type": "OnDelete"}}, dict(on_delete=True, partition=None)),
    ({"ordinals": {"start": 4}, "replicas": 2}, dict(start=4, replicas=2)),
], ids=["defaults-unset", "parallel", "partition", "on-delete", "ordinals-start"])
def test_view_of_a_set(spec, expected):
    v = view_of(sts(**spec), CUR, UPD)
    assert {k: getattr(v, k) for k in expected} == expected


# ---------------------------------------------------------------- the controller on a fake store

@pytest.fixture
async def h():
    harness = ControllerHarness(StatefulSetController, await MemClient.new())
    try:
        yield harness
    finally:
        await harness.stop()


async def test_a_pod_it_owns_that_is_not_named_as_its_member_is_released_not_counted(h):
    """getPodsForStatefulSet claims with isMemberOf as a filter: "other-0"
    is no ordinal of "web", so it is released and web-0 is still created."""
    doc = sts_doc(replicas=1, volumeClaimTemplates=[])
    doc["metadata"] = {"name": "web", "namespace": "default"}
    del doc["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    web = await h.client.create(codec.from_dict(
        REGISTRY.by_gvk("apps/v1", "StatefulSet").message, doc))
    stray = make_pod("other-0").labels(app="nginx").build()
    stray.metadata.owner_references.append(cu.controller_ref(web))
    stray = await h.client.create(stray)
    h.cache("statefulsets", [web])
    h.cache("pods", [stray])
    h.cache("controllerrevisions", [])
    h.cache("persistentvolumeclaims", [])
    await h.controller.sync("default/web")
    assert await h.names("pods") == ["other-0", "web-0"]
    assert not cu.controller_of(await h.client.get("pods", "other-0", "default"))
