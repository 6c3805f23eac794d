"""Changing a running pod: a new container image restarts that container into
the new image (the kubelet's spec hash), anything else the apiserver refuses.

The module's cluster (etcd, apiserver, one node with fast timings) is the
kubelet tests' harness. Pods go through the CLI as a user sends them (`kubemu
apply -f` of a manifest edited in place, `kubemu set image`); what is checked
is what a Kubernetes user sees (the CLI's output, the pod's status, events)
and the real processes (the container's pid before and after).
"""
from __future__ import annotations

import asyncio
import contextlib
import pathlib

import pytest
import yaml

from kubemu.api import codec
from kubemu.client.clientset import Client
from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import (serving, NODE, WAIT_S, ClusterThread, Seen, alive, cli,
                                    container_pid, container_status, events_of,
                                    obj, pod_json, running, wait_pod)

pytestmark = pytest.mark.e2e

FORBIDDEN = (
    "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from serving(ClusterThread(tmp_path_factory.mktemp("podupdate-home")))


def manifest(name: str, namespace: str, image: str, **container) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 2,
                     "containers": [{"name": "main", "image": image, **container}]}}


async def apply(cluster: ClusterThread, path: pathlib.Path, doc: dict):
    await asyncio.to_thread(path.write_text, yaml.safe_dump(doc))
    return await cli(cluster, "apply", "-f", str(path))


async def started_pod(cluster, api, ns, path, doc) -> tuple[dict, int]:
    """Apply `doc`, wait until it runs: the pod and its container's pid."""
    result = await apply(cluster, path, doc)
    assert (result.returncode, result.stdout) == (0, f"pod/{doc['metadata']['name']} created\n"), \
        result.stderr
    pod = await wait_pod(api, ns, doc["metadata"]["name"], running)
    pid = await container_pid(cluster.runtime_socket(), container_status(pod)["containerID"])
    assert pid > 0 and await asyncio.to_thread(alive, pid)
    return pod, pid


async def restart_events(api: Client, namespace: str, name: str, times: int,
                         pulled: str) -> list[dict]:
    """The events of a restart for a new definition, once Created and Started
    have been recorded `times` times: Killing, the Pulled whose message starts
    with `pulled`, Created, Started."""
    async def found():
        events = await events_of(api, namespace, name)
        by_key = {(e["reason"], e["message"]): e for e in events}
        killing = by_key.get(("Killing", "Container main definition changed, will be restarted"))
        pull = next((e for e in events if e["reason"] == "Pulled"
                     and e["message"].startswith(pulled)), None)
        created = by_key.get(("Created", "Created container main"))
        started = by_key.get(("Started", "Started container main"))
        got = [killing, pull, created, started]
        if any(e is None for e in got) or created["count"] != times or started["count"] != times:
            return Seen(sorted((r, m, e.get("count")) for (r, m), e in by_key.items()))
        return got
    return await wait_for(found, WAIT_S, interval_s=0.2, message="restart events")


def restarted_into(image: str, count: int):
    def check(pod: dict) -> bool:
        cs = container_status(pod)
        return cs.get("restartCount") == count and cs.get("image") == image \
            and "running" in cs.get("state", {})
    return check


class PodHistory:
    """Every version of one pod the API has, from a watch, for checks over time."""

    def __init__(self, api: Client, namespace: str, name: str):
        self.api, self.namespace, self.name = api, namespace, name
        self.seen: list[dict] = []
        self.task: asyncio.Task | None = None

    async def _run(self, resource_version: str) -> None:
        stream = self.api.watch("pods", self.namespace, resource_version=resource_version,
                                field_selector=f"metadata.name={self.name}")
        async with contextlib.aclosing(stream) as events:
            async for event in events:
                if event.object is not None and event.type != "BOOKMARK":
                    self.seen.append(codec.to_dict(event.object))

    def start(self, resource_version: str) -> None:
        self.task = asyncio.create_task(self._run(resource_version))

    async def stop(self) -> list[dict]:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        return self.seen


async def test_a_new_image_restarts_the_container_into_it(cluster, api, ns, tmp_path):
    path = tmp_path / "web.yaml"
    doc = manifest("web", ns, "nginx:1.25", ports=[{"containerPort": 80}])
    first, first_pid = await started_pod(cluster, api, ns, path, doc)
    first_cs = container_status(first)
    assert (first_cs["image"], first_cs["restartCount"]) == ("nginx:1.25", 0)
    first_id = first_cs["containerID"]
    history = PodHistory(api, ns, "web")
    history.start(first["metadata"]["resourceVersion"])

    doc["spec"]["containers"][0]["image"] = "nginx:1.27"
    result = await apply(cluster, path, doc)
    assert (result.returncode, result.stdout, result.stderr) == (0, "pod/web configured\n", "")

    pod = await wait_pod(api, ns, "web", restarted_into("nginx:1.27", 1), what="web restarted")
    cs = container_status(pod)
    assert cs["containerID"] != first_id and cs["imageID"]
    assert cs["lastState"]["terminated"]["containerID"] == first_id
    new_pid = await container_pid(cluster.runtime_socket(), cs["containerID"])
    assert new_pid != first_pid
    assert await asyncio.to_thread(alive, new_pid)
    assert not await asyncio.to_thread(alive, first_pid)  # the old process is gone

    # Every status the pod had: the new image only with the new container running;
    # the old container only ever with the old image.
    seen = await history.stop()
    assert seen, "the watch saw no version of the pod"
    for version in seen:
        vcs = container_status(version)
        if vcs.get("image") == "nginx:1.27":
            assert "running" in vcs["state"] and vcs["containerID"] != first_id, vcs
            assert vcs["restartCount"] == 1, vcs
        if vcs.get("containerID") == first_id:
            assert vcs["image"] == "nginx:1.25" and vcs["restartCount"] == 0, vcs
    assert any(container_status(v).get("image") == "nginx:1.27" for v in seen)

    # Killing, then the new image pulled (new to this node), then Created and
    # Started a second time.
    killing, pulled, created, started = await restart_events(
        api, ns, "web", 2, 'Successfully pulled image "nginx:1.27" in ')
    assert killing["involvedObject"]["fieldPath"] == "spec.containers{main}"
    assert killing["type"] == pulled["type"] == created["type"] == "Normal"
    # eventTime (microseconds) is the first occurrence's: Killing and the new Pulled
    # are first occurrences. Created/Started repeat: their lastTimestamp has whole
    # seconds, so their order shows as "not later than".
    assert killing["eventTime"] < pulled["eventTime"]
    assert killing["lastTimestamp"] <= pulled["lastTimestamp"] <= created["lastTimestamp"] \
        <= started["lastTimestamp"]
    assert killing["lastTimestamp"] <= cs["state"]["running"]["startedAt"]

    # Applying the same manifest again changes nothing.
    result = await apply(cluster, path, doc)
    assert (result.returncode, result.stdout) == (0, "pod/web unchanged\n")
    again = await pod_json(api, ns, "web")
    assert container_status(again)["containerID"] == cs["containerID"]

    # Back to the first image, which the node has: "already present on machine".
    result = await cli(cluster, "set", "image", "-n", ns, "pod/web", "main=nginx:1.25")
    assert (result.returncode, result.stdout, result.stderr) == (0, "pod/web image updated\n", "")
    pod = await wait_pod(api, ns, "web", restarted_into("nginx:1.25", 2), what="web back")
    cs = container_status(pod)
    killing, _, _, _ = await restart_events(
        api, ns, "web", 3, 'Container image "nginx:1.25" already present on machine')
    assert killing["count"] == 2
    assert cs["lastState"]["terminated"]["containerID"] != first_id  # the 1.27 one


async def test_a_change_of_anything_else_is_refused_and_changes_nothing(
        cluster, api, ns, tmp_path):
    path = tmp_path / "fixed.yaml"
    doc = manifest("fixed", ns, "busybox:1.36", command=["sh", "-c", "sleep 600"])
    first, first_pid = await started_pod(cluster, api, ns, path, doc)
    doc["spec"]["containers"][0]["env"] = [{"name": "MODE", "value": "new"}]
    doc["spec"]["containers"][0]["image"] = "busybox:1.35"  # allowed, but not alone
    result = await apply(cluster, path, doc)
    assert result.returncode == 1 and result.stdout == ""
    first_line = result.stderr.splitlines()[0]
    assert first_line.startswith(f'The Pod "fixed" is invalid: {FORBIDDEN}'), result.stderr
    # Then go-cmp's diff of the specs, the env line marked as added.
    assert result.stderr.splitlines()[1] == "  core.PodSpec{"
    added = [line for line in result.stderr.splitlines() if line.startswith("+ ")]
    assert len(added) == 1 and added[0].split() == [
        "+", "Env:", '[]core.EnvVar{{Name:', '"MODE",', 'Value:', '"new"}},'], result.stderr

    pod = await pod_json(api, ns, "fixed")
    assert pod["spec"]["containers"][0]["image"] == "busybox:1.36"
    assert "env" not in pod["spec"]["containers"][0]
    assert pod["metadata"]["generation"] == first["metadata"]["generation"]
    cs = container_status(pod)
    assert (cs["containerID"], cs["restartCount"], cs["image"]) == (
        container_status(first)["containerID"], 0, "busybox:1.36")
    assert await asyncio.to_thread(alive, first_pid)


async def test_set_image_restarts_the_container_whatever_the_restart_policy(
        cluster, api, ns, tmp_path):
    doc = manifest("job", ns, "busybox:1.36", command=["sh", "-c", "sleep 600"])
    doc["spec"]["restartPolicy"] = "Never"
    first, first_pid = await started_pod(cluster, api, ns, tmp_path / "job.yaml", doc)

    result = await cli(cluster, "set", "image", "-n", ns, "pod/job", "main=busybox:1.35")
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "pod/job image updated\n", "")
    pod = await wait_pod(api, ns, "job", restarted_into("busybox:1.35", 1), what="job restarted")
    assert pod["status"]["phase"] == "Running"
    assert container_status(pod)["lastState"]["terminated"]["containerID"] == \
        container_status(first)["containerID"]
    assert not await asyncio.to_thread(alive, first_pid)

    # Already so: nothing is patched or printed; an unknown container is named.
    result = await cli(cluster, "set", "image", "-n", ns, "pod/job", "main=busybox:1.35")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    result = await cli(cluster, "set", "image", "-n", ns, "pod/job", "nope=busybox")
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", 'error: unable to find container named "nope"\n')
    still = await pod_json(api, ns, "job")
    assert container_status(still)["restartCount"] == 1


async def test_set_image_on_a_deployment_and_on_a_kind_without_pods(cluster, api, ns):
    await api.create(obj({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "main", "image": "nginx:1.25"}]}}}}))
    await api.create(obj({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "settings", "namespace": ns}}))

    result = await cli(cluster, "set", "image", "-n", ns, "deployment/web", "main=nginx:1.27",
                       "--dry-run=server")
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "deployment.apps/web image updated (server dry run)\n", "")
    assert (await api.get("deployments", "web", ns)).spec.template.spec.containers[0].image == \
        "nginx:1.25"
    result = await cli(cluster, "set", "image", "-n", ns, "deployment", "web", "*=nginx:1.27")
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "deployment.apps/web image updated\n", "")
    stored = await api.get("deployments", "web", ns)
    assert stored.spec.template.spec.containers[0].image == "nginx:1.27"
    assert stored.metadata.generation == 2

    result = await cli(cluster, "set", "image", "-n", ns, "configmap/settings", "main=x")
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", "error: configmaps/settings the object is not a pod or does not have a pod "
               "template: *v1.ConfigMap\n")
