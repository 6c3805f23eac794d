"""Deployments on a real cluster: the whole control plane with the fast profile
(scheduler and controller-manager included) and two nodes whose kubelets run
kuard pods as real processes, the seed notes' examples.

Where a bound must hold throughout a rollout (at most replicas + maxSurge
pods, at least replicas - maxUnavailable Ready; Recreate never running old
and new pods together), a watch on the namespace's pods checks it at every
event, from a list's snapshot onwards. Pods are counted as Kubernetes counts
them: a terminating pod no longer counts towards the surge or availability,
and for Recreate an old pod counts until it is gone or terminal.

There is no garbage collector in this cluster's controller-manager yet, so
each test deletes its Deployment and ReplicaSets itself before the `ns`
fixture deletes the pods.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Callable

import pytest

from kubemu.api import errors
from kubemu.client.clientset import Client
from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import (ClusterThread, Seen, cli, obj, serving,
                                    workload_control_plane)

pytestmark = pytest.mark.e2e

BLUE = "gcr.io/kuar-demo/kuard-amd64:blue"
GREEN = "gcr.io/kuar-demo/kuard-amd64:green"
ROLL_S = 120.0
HASH = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from serving(ClusterThread(tmp_path_factory.mktemp("deployment-home"), nodes=2,
                                     kinds=workload_control_plane()))


@pytest.fixture
async def dns(api, ns):
    """The test's namespace; its Deployments and ReplicaSets go first at the end."""
    try:
        yield ns
    finally:
        for resource in ("deployments", "replicasets"):
            for item in (await api.list(resource, ns)).items:
                with contextlib.suppress(errors.NotFound):
                    await api.delete(resource, item.metadata.name, ns)


def kuard(name: str, namespace: str, replicas: int, image: str = BLUE, ready_path: str = "/ready",
          change_cause: str = "", **spec) -> dict:
    meta = {"name": name, "namespace": namespace}
    if change_cause:
        meta["annotations"] = {CHANGE_CAUSE: change_cause}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {
                         "terminationGracePeriodSeconds": 2,
                         "containers": [{
                             "name": "kuard", "image": image,
                             "ports": [{"containerPort": 8080, "name": "http"}],
                             "readinessProbe": {"httpGet": {"path": ready_path, "port": 8080},
                                                "periodSeconds": 1, "timeoutSeconds": 3,
                                                "failureThreshold": 3}}]}},
                     **spec}}


def condition(d, kind: str):
    return next((c for c in d.status.conditions if c.type == kind), None)


def is_ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def image_of(pod) -> str:
    return pod.spec.containers[0].image


async def wait_complete(api: Client, ns: str, name: str, replicas: int,
                        timeout_s: float = ROLL_S):
    async def complete():
        d = await api.get("deployments", name, ns)
        cond = condition(d, "Progressing")
        done = (d.status.observed_generation == d.metadata.generation
                and (d.status.replicas, d.status.updated_replicas, d.status.ready_replicas,
                     d.status.available_replicas) == (replicas,) * 4
                and cond is not None and cond.reason == "NewReplicaSetAvailable")
        return d if done else Seen(str(d.status))
    return await wait_for(complete, timeout_s, interval_s=0.2,
                          message=f"deployment {name} complete with {replicas}")


async def replica_sets(api: Client, ns: str, app: str) -> list:
    items = (await api.list("replicasets", ns, label_selector=f"app={app}")).items
    return sorted(items, key=lambda rs: int(rs.metadata.annotations.get(REVISION, "0")))


async def live_pods(api: Client, ns: str, app: str) -> list:
    return [p for p in (await api.list("pods", ns, label_selector=f"app={app}")).items
            if not p.metadata.deletion_timestamp]


class PodWatch:
    """Every pod of a namespace, kept from a list and a watch from its
    resourceVersion; `check(pods)` runs after each event and what it returns
    (a violation, or None) is collected."""

    def __init__(self, api: Client, ns: str, check: Callable[[dict], str | None]):
        self.api, self.ns, self.check = api, ns, check
        self.pods: dict[str, object] = {}
        self.violations: list[str] = []
        self.events = 0
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "PodWatch":
        listed = await self.api.list("pods", self.ns)
        self.pods = {p.metadata.name: p for p in listed.items}
        self._observe()
        self._task = asyncio.get_running_loop().create_task(self._run(listed.resource_version))
        return self

    async def _run(self, resource_version: str) -> None:
        async with contextlib.aclosing(self.api.watch(
                "pods", self.ns, resource_version=resource_version)) as stream:
            async for event in stream:
                if event.type == "DELETED":
                    self.pods.pop(event.object.metadata.name, None)
                elif event.type in ("ADDED", "MODIFIED"):
                    self.pods[event.object.metadata.name] = event.object
                else:
                    continue
                self.events += 1
                self._observe()

    def _observe(self) -> None:
        problem = self.check(self.pods)
        if problem is not None:
            self.violations.append(problem)

    async def __aexit__(self, *exc_info) -> None:
        assert self._task is not None
        if self._task.done() and self._task.exception() is not None:
            raise self._task.exception()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def rolling_bounds(replicas: int, max_surge: int, max_unavailable: int):
    def check(pods: dict) -> str | None:
        live = [p for p in pods.values() if not p.metadata.deletion_timestamp]
        ready = [p for p in live if is_ready(p)]
        if len(live) > replicas + max_surge:
            return f"{len(live)} pods > {replicas} + {max_surge}: " + ", ".join(
                f"{p.metadata.name}({image_of(p).rsplit(':', 1)[1]})" for p in live)
        if len(ready) < replicas - max_unavailable:
            return f"{len(ready)} Ready < {replicas} - {max_unavailable}: " + ", ".join(
                p.metadata.name for p in ready)
        return None
    return check


def no_overlap(old_image: str, new_image: str):
    def running(pod) -> bool:
        return pod.status.phase not in ("Succeeded", "Failed")

    def check(pods: dict) -> str | None:
        old = [p.metadata.name for p in pods.values() if image_of(p) == old_image and running(p)]
        new = [p.metadata.name for p in pods.values() if image_of(p) == new_image]
        if old and new:
            return f"old {old} and new {new} at once"
        return None
    return check


async def set_template(api: Client, ns: str, name: str, image: str, change_cause: str = "") -> None:
    patch: dict = {"spec": {"template": {"spec": {"containers": [
        {"name": "kuard", "image": image}]}}}}
    if change_cause:
        patch["metadata"] = {"annotations": {CHANGE_CAUSE: change_cause}}
    await api.patch("deployments", name, ns, patch=patch)


async def test_kuard_scales_2_to_10_to_3(cluster, api, dns):
    await api.create(obj(kuard("kuard", dns, 2)))
    await wait_complete(api, dns, "kuard", 2)
    [rs] = await replica_sets(api, dns, "kuard")
    assert rs.metadata.name == f"kuard-{rs.metadata.labels[HASH]}"

    await api.patch("deployments", "kuard", dns, patch={"spec": {"replicas": 10}})
    await wait_complete(api, dns, "kuard", 10)
    nodes = {p.spec.node_name for p in await live_pods(api, dns, "kuard")}
    assert nodes == {"node-1", "node-2"}, nodes

    await api.patch("deployments", "kuard", dns, patch={"spec": {"replicas": 3}})
    d = await wait_complete(api, dns, "kuard", 3)
    available = condition(d, "Available")
    assert (available.status, available.reason, available.message) == (
        "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")

    async def three_pods():
        pods = await live_pods(api, dns, "kuard")
        return pods if len(pods) == 3 else Seen([p.metadata.name for p in pods])
    await wait_for(three_pods, ROLL_S, message="3 kuard pods left")
    assert [r.spec.replicas for r in await replica_sets(api, dns, "kuard")] == [3]


async def test_rolling_update_blue_to_green_stays_in_bounds_and_rolls_back(cluster, api, dns):
    replicas = 4
    await api.create(obj(kuard(
        "kuard", dns, replicas, change_cause="kubectl create deployment kuard --image=blue",
        strategy={"type": "RollingUpdate",
                  "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}})))
    await wait_complete(api, dns, "kuard", replicas)

    async with PodWatch(api, dns, rolling_bounds(replicas, 1, 1)) as watch:
        await set_template(api, dns, "kuard", GREEN,
                           change_cause="kubectl set image deployment/kuard kuard=green")
        await wait_complete(api, dns, "kuard", replicas)

        async def all_green():
            pods = await live_pods(api, dns, "kuard")
            images = sorted(image_of(p) for p in pods)
            return images if images == [GREEN] * replicas else Seen(images)
        await wait_for(all_green, ROLL_S, message="only green pods")
    assert watch.events > 0
    assert not watch.violations, watch.violations[:5]

    blue_rs, green_rs = await replica_sets(api, dns, "kuard")
    assert (blue_rs.metadata.annotations[REVISION], blue_rs.spec.replicas) == ("1", 0)
    assert (green_rs.metadata.annotations[REVISION], green_rs.spec.replicas) == ("2", replicas)
    assert blue_rs.metadata.annotations[CHANGE_CAUSE] == "kubectl create deployment kuard " \
                                                         "--image=blue"
    assert green_rs.metadata.annotations[CHANGE_CAUSE] == "kubectl set image deployment/kuard " \
                                                          "kuard=green"

    history = await cli(cluster, "rollout", "history", "deployment/kuard", "-n", dns)
    assert history.stdout == (
        "deployment.apps/kuard \nREVISION  CHANGE-CAUSE\n"
        "1         kubectl create deployment kuard --image=blue\n"
        "2         kubectl set image deployment/kuard kuard=green\n\n"), history
    async with PodWatch(api, dns, rolling_bounds(replicas, 1, 1)) as watch:
        undo = await cli(cluster, "rollout", "undo", "deployment/kuard", "--to-revision=1",
                         "-n", dns)
        assert (undo.returncode, undo.stdout) == (0, "deployment.apps/kuard rolled back\n"), undo
        await wait_complete(api, dns, "kuard", replicas)
    assert not watch.violations, watch.violations[:5]

    rss = await replica_sets(api, dns, "kuard")
    assert [(rs.metadata.name, rs.metadata.annotations[REVISION], rs.spec.replicas)
            for rs in rss] == [(green_rs.metadata.name, "2", 0),
                               (blue_rs.metadata.name, "3", replicas)]
    d = await api.get("deployments", "kuard", dns)
    assert d.metadata.annotations[REVISION] == "3"

    async def all_blue():
        images = sorted(image_of(p) for p in await live_pods(api, dns, "kuard"))
        return images if images == [BLUE] * replicas else Seen(images)
    await wait_for(all_blue, ROLL_S, message="blue is back")


async def test_a_paused_deployment_makes_no_progress_until_resumed(cluster, api, dns):
    await api.create(obj(kuard("kuard", dns, 2)))
    await wait_complete(api, dns, "kuard", 2)
    await api.patch("deployments", "kuard", dns, patch={"spec": {"paused": True}})
    await set_template(api, dns, "kuard", GREEN)

    async def seen_paused():
        d = await api.get("deployments", "kuard", dns)
        cond = condition(d, "Progressing")
        ok = (d.status.observed_generation == d.metadata.generation and cond is not None
              and cond.reason == "DeploymentPaused")
        return d if ok else Seen(str(d.status))
    d = await wait_for(seen_paused, ROLL_S, message="pause observed")
    cond = condition(d, "Progressing")
    assert (cond.status, cond.message) == ("Unknown", "Deployment is paused")
    # The template change was observed and made nothing: one ReplicaSet, blue pods.
    assert len(await replica_sets(api, dns, "kuard")) == 1
    assert {image_of(p) for p in await live_pods(api, dns, "kuard")} == {BLUE}

    await api.patch("deployments", "kuard", dns, patch={"spec": {"paused": False}})
    await wait_complete(api, dns, "kuard", 2)
    old, new = await replica_sets(api, dns, "kuard")
    assert (old.spec.replicas, new.spec.replicas) == (0, 2)
    assert new.spec.template.spec.containers[0].image == GREEN


async def test_an_image_that_never_becomes_ready_exceeds_the_progress_deadline(cluster, api, dns):
    await api.create(obj(kuard("nope", dns, 2, ready_path="/nope", progressDeadlineSeconds=5)))

    async def timed_out():
        d = await api.get("deployments", "nope", dns)
        cond = condition(d, "Progressing")
        return d if cond is not None and cond.reason == "ProgressDeadlineExceeded" \
            else Seen(str(d.status))
    d = await wait_for(timed_out, ROLL_S, interval_s=0.2, message="ProgressDeadlineExceeded")
    [rs] = await replica_sets(api, dns, "nope")
    cond = condition(d, "Progressing")
    assert (cond.status, cond.message) == (
        "False", f'ReplicaSet "{rs.metadata.name}" has timed out progressing.')
    assert d.status.available_replicas == 0
    assert condition(d, "Available").reason == "MinimumReplicasUnavailable"


async def test_recreate_never_runs_old_and_new_pods_together(cluster, api, dns):
    await api.create(obj(kuard("kuard", dns, 3, strategy={"type": "Recreate"})))
    await wait_complete(api, dns, "kuard", 3)
    async with PodWatch(api, dns, no_overlap(BLUE, GREEN)) as watch:
        await set_template(api, dns, "kuard", GREEN)
        await wait_complete(api, dns, "kuard", 3)
    assert watch.events > 0
    assert not watch.violations, watch.violations[:5]
    old, new = await replica_sets(api, dns, "kuard")
    assert (old.spec.replicas, new.spec.replicas) == (0, 3)
