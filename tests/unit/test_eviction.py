"""The pods/eviction subresource (apiserver.eviction): the pure decisions
table-driven, then the whole call against the in-memory store."""
from __future__ import annotations

import random
from typing import Any

import pytest

from apiserver import eviction
from apiserver.memstore import MemoryStore
from apiserver.registry import ObjectRegistry
from kubemu.api import errors
from kubemu.api.kinds import REGISTRY
from kubemu.api.v1 import core_pb2, policy_pb2
from tests.builders import make_pod, obj

NOW_S = 1_800_000_000.0
PODS = REGISTRY.by_resource("pods")
PDBS = REGISTRY.by_resource("poddisruptionbudgets")
NAMESPACES = REGISTRY.by_resource("namespaces")


def pod(name: str = "web-1", *, phase: str = "Running", ready: bool = True,
        deleting: bool = False, app: str = "web"):
    p = make_pod(name).labels(app=app).build()
    p.status.phase = phase
    p.status.conditions.add(type="Ready", status="True" if ready else "False")
    if deleting:
        p.metadata.deletion_timestamp = "2026-11-30T16:00:00Z"
    return p


def pdb(name: str = "web", *, allowed: int = 1, healthy: int = 3, desired: int = 2,
        generation: int = 1, observed: int = 1, policy: str = "", selector: Any = "web",
        disrupted: int = 0):
    doc: dict[str, Any] = {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": "default", "generation": generation},
        "spec": {"minAvailable": desired},
        "status": {"observedGeneration": observed, "disruptionsAllowed": allowed,
                   "currentHealthy": healthy, "desiredHealthy": desired,
                   "expectedPods": healthy,
                   "disruptedPods": {f"p{i}": "2026-11-30T16:00:00Z" for i in range(disrupted)}},
    }
    if policy:
        doc["spec"]["unhealthyPodEvictionPolicy"] = policy
    if selector is not None:
        doc["spec"]["selector"] = {"matchLabels": {"app": selector}} if selector else {}
    return obj(doc)


@pytest.mark.parametrize("phase, deleting, ignore", [
    ("Running", False, False),
    ("Pending", False, True),
    ("Succeeded", False, True),
    ("Failed", False, True),
    ("Running", True, True),
], ids=["running", "pending", "succeeded", "failed", "terminating"])
def test_can_ignore_pdb(phase, deleting, ignore):
    assert eviction.can_ignore_pdb(pod(phase=phase, deleting=deleting)) is ignore


@pytest.mark.parametrize("budgets, expected", [
    ([pdb("a")], ["a"]),
    ([pdb("a", selector="other")], []),
    ([pdb("a", selector="")], []),  # an empty selector matches nothing here
    ([pdb("a", selector=None)], []),
    ([pdb("a"), pdb("b")], ["a", "b"]),
], ids=["matches", "other-app", "empty-selector", "no-selector", "two"])
def test_matching_pdbs(budgets, expected):
    assert [p.metadata.name for p in eviction.matching_pdbs(pod(), budgets)] == expected


@pytest.mark.parametrize("ready, policy, healthy, desired, delete_unchecked", [
    (True, "", 3, 2, False),
    (False, "AlwaysAllow", 0, 2, True),
    (False, "IfHealthyBudget", 2, 2, True),
    (False, "", 3, 2, True),
    (False, "IfHealthyBudget", 1, 2, False),
    (False, "", 0, 0, False),
], ids=["ready-is-guarded", "always-allow", "if-healthy-budget-met", "default-is-if-healthy",
        "if-healthy-budget-short", "desired-zero"])
def test_unhealthy_pod_eviction_policy(ready, policy, healthy, desired, delete_unchecked):
    budget = pdb(policy=policy, healthy=healthy, desired=desired)
    assert eviction.decide_unhealthy(pod(ready=ready), budget) is delete_unchecked


@pytest.mark.parametrize("budget, error, cause", [
    (pdb(allowed=0, healthy=2, desired=2), errors.TooManyRequests,
     "The disruption budget web needs 2 healthy pods and has 2 currently"),
    (pdb(generation=2, observed=1), errors.TooManyRequests,
     "The disruption budget web is still being processed by the server."),
    (pdb(allowed=-1), errors.Forbidden, None),
    (pdb(disrupted=eviction.MAX_DISRUPTED_PODS + 1), errors.Forbidden, None),
], ids=["no-disruption-left", "generation-not-observed", "negative", "too-many-unconfirmed"])
def test_check_and_decrement_refuses(budget, error, cause):
    with pytest.raises(error) as caught:
        eviction.check_and_decrement(budget, "web-1", NOW_S)
    if error is errors.Forbidden:
        assert caught.value.message.startswith('poddisruptionbudget.policy "web" is forbidden: ')
    if error is errors.TooManyRequests:
        assert caught.value.message == ("Cannot evict pod as it would violate the pod's "
                                        "disruption budget.")
        assert caught.value.cause_type == "DisruptionBudget"
        assert caught.value.cause == cause


@pytest.mark.parametrize("allowed, left, condition", [
    (2, 1, None),
    (1, 0, ("False", "InsufficientPods")),
], ids=["one-left", "last-one"])
def test_check_and_decrement_spends_one(allowed, left, condition):
    budget = pdb(allowed=allowed)
    spent = eviction.check_and_decrement(budget, "web-1", NOW_S)
    assert spent.status.disruptions_allowed == left
    assert dict(spent.status.disrupted_pods) == {"web-1": "2027-01-15T08:00:00Z"}
    assert budget.status.disruptions_allowed == allowed  # the input is not changed
    conds = [(c.status, c.reason) for c in spent.status.conditions
             if c.type == "DisruptionAllowed"]
    assert conds == ([condition] if condition else [])


# ---------------------------------------------------------------- the whole call

class Clock:
    def __call__(self) -> float:
        return NOW_S


@pytest.fixture
async def reg():
    registry = ObjectRegistry(MemoryStore(), {}, rng=random.Random(7), clock=Clock())
    await registry.create(NAMESPACES, "", core_pb2.Namespace(metadata={"name": "default"}))
    return registry


async def store_pod(reg, p):
    status = p.status
    created = await reg.create(PODS, "default", p)
    created.status.CopyFrom(status)
    return await reg.update(PODS, created, status=True)


async def store_pdb(reg, budget):
    status = budget.status
    created = await reg.create(PDBS, "default", budget)
    created.status.CopyFrom(status)
    created.status.observed_generation = created.metadata.generation
    return await reg.update(PDBS, created, status=True)


def evict_request(name: str, **delete_options: Any):
    ev = policy_pb2.Eviction(api_version="policy/v1", kind="Eviction")
    ev.metadata.name = name
    for key, value in delete_options.items():
        setattr(ev.delete_options, key, value)
    return ev


async def test_eviction_spends_the_budget_then_deletes(reg):
    await store_pod(reg, pod("web-1"))
    await store_pdb(reg, pdb(allowed=1))
    evictor = eviction.Evictor(reg, REGISTRY, Clock())
    out = await evictor.evict("default", evict_request("web-1"))
    assert [(c.type, c.reason) for c in out.status.conditions if c.type == "DisruptionTarget"] \
        == [("DisruptionTarget", "EvictionByEvictionAPI")]
    with pytest.raises(errors.NotFound):
        await reg.get(PODS, "default", "web-1")
    budget = await reg.get(PDBS, "default", "web")
    assert budget.status.disruptions_allowed == 0
    assert list(budget.status.disrupted_pods) == ["web-1"]


async def test_eviction_refused_by_the_budget_leaves_the_pod(reg):
    await store_pod(reg, pod("web-1"))
    await store_pdb(reg, pdb(allowed=0, healthy=2, desired=2))
    evictor = eviction.Evictor(reg, REGISTRY, Clock())
    with pytest.raises(errors.TooManyRequests, match="would violate the pod's disruption"):
        await evictor.evict("default", evict_request("web-1"))
    kept = await reg.get(PODS, "default", "web-1")
    assert not kept.metadata.deletion_timestamp
    assert not [c for c in kept.status.conditions if c.type == "DisruptionTarget"]


async def test_two_budgets_are_refused_with_500(reg):
    await store_pod(reg, pod("web-1"))
    await store_pdb(reg, pdb("a"))
    await store_pdb(reg, pdb("b"))
    evictor = eviction.Evictor(reg, REGISTRY, Clock())
    with pytest.raises(errors.Internal) as caught:
        await evictor.evict("default", evict_request("web-1"))
    assert caught.value.message == ("This pod has more than one PodDisruptionBudget, which "
                                    "the eviction subresource does not support.")


@pytest.mark.parametrize("p", [pod("web-1", phase="Pending"), pod("web-1", app="other")],
                         ids=["pending-ignores-budget", "no-budget"])
async def test_eviction_without_a_budget_to_ask_deletes(reg, p):
    await store_pod(reg, p)
    await store_pdb(reg, pdb(allowed=0))
    evictor = eviction.Evictor(reg, REGISTRY, Clock())
    await evictor.evict("default", evict_request("web-1"))
    with pytest.raises(errors.NotFound):
        await reg.get(PODS, "default", "web-1")
    assert (await reg.get(PDBS, "default", "web")).status.disruptions_allowed == 0


async def test_dry_run_changes_nothing(reg):
    await store_pod(reg, pod("web-1"))
    await store_pdb(reg, pdb(allowed=1))
    evictor = eviction.Evictor(reg, REGISTRY, Clock())
    ev = evict_request("web-1")
    ev.delete_options.dry_run.append("All")
    await evictor.evict("default", ev)
    assert (await reg.get(PODS, "default", "web-1")).metadata.name == "web-1"
    assert (await reg.get(PDBS, "default", "web")).status.disruptions_allowed == 1


async def test_missing_pod_is_not_found(reg):
    evictor = eviction.Evictor(reg, REGISTRY, Clock())
    with pytest.raises(errors.NotFound):
        await evictor.evict("default", evict_request("nope"))


async def test_concurrent_evictions_spend_one_disruption_once(reg):
    import asyncio

    await store_pod(reg, pod("web-1"))
    await store_pod(reg, pod("web-2"))
    await store_pdb(reg, pdb(allowed=1))
    evictor = eviction.Evictor(reg, REGISTRY, Clock())
    results = await asyncio.gather(evictor.evict("default", evict_request("web-1")),
                                   evictor.evict("default", evict_request("web-2")),
                                   return_exceptions=True)
    refused = [r for r in results if isinstance(r, errors.TooManyRequests)]
    assert len(refused) == 1, results
    budget = await reg.get(PDBS, "default", "web")
    assert budget.status.disruptions_allowed == 0 and len(budget.status.disrupted_pods) == 1
    left = (await reg.list(PODS, "default", None, 0, ""))[0]
    assert [p.metadata.name for p in left] == [n for n in ("web-1", "web-2")
                                                 if n not in budget.status.disrupted_pods]


async def test_a_stale_budget_is_read_again_after_a_conflict(reg):
    await store_pod(reg, pod("web-1"))
    stale = await store_pdb(reg, pdb(allowed=2))
    evictor = eviction.Evictor(reg, REGISTRY, Clock())
    await evictor.evict("default", evict_request("web-1"))  # the budget moves on: 1 left
    await evictor._spend(stale, "web-2", dry_run=False)  # conflicts, re-reads, spends the last
    budget = await reg.get(PDBS, "default", "web")
    assert budget.status.disruptions_allowed == 0
    assert sorted(budget.status.disrupted_pods) == ["web-1", "web-2"]
    with pytest.raises(errors.TooManyRequests):
        await evictor._spend(stale, "web-3", dry_run=False)
