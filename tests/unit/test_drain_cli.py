"""`kubemu drain`'s pod filters and eviction loop (kubemu.cli.drain), against
kubectl's pkg/drain wording; the loop on a fake client and a fake sleep."""
from __future__ import annotations

from typing import Any

import pytest

from kubemu.api import errors
from kubemu.cli import drain
from tests.builders import make_pod

NOW_S = 1_800_000_000.0


def pod(name: str, *, owner: str = "", phase: str = "Running", emptydir: bool = False,
        mirror: bool = False, ns: str = "default"):
    p = make_pod(name, ns).build()
    p.status.phase = phase
    if owner:
        p.metadata.owner_references.add(kind=owner, name=f"{name}-owner", uid="u",
                                        controller=True)
    if emptydir:
        p.spec.volumes.add(name="scratch").empty_dir.SetInParent()
    if mirror:
        p.metadata.annotations[drain.MIRROR_POD_ANNOTATION] = "hash"
    return p


@pytest.mark.parametrize("pods, flags, deleted, errs, warnings", [
    ([pod("web", owner="ReplicaSet")], {}, ["web"], [], ""),
    # kubectl 1.32's doubled wording (its message starts with "cannot delete" too).
    ([pod("bare")], {}, [],
     ["cannot delete cannot delete Pods that declare no controller (use --force to override): "
      "default/bare"], ""),
    ([pod("bare")], {"force": True}, ["bare"], [],
     "deleting Pods that declare no controller: default/bare"),
    ([pod("ds", owner="DaemonSet")], {}, [],
     ["cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): default/ds"],
     ""),
    ([pod("ds", owner="DaemonSet"), pod("ds2", owner="DaemonSet", ns="kube-system")],
     {"ignore_daemonsets": True}, [], [],
     "ignoring DaemonSet-managed Pods: default/ds, kube-system/ds2"),
    ([pod("ds", owner="DaemonSet", phase="Succeeded")], {}, ["ds"], [], ""),
    ([pod("static", mirror=True)], {}, [], [], ""),
    ([pod("tmp", owner="ReplicaSet", emptydir=True)], {}, [],
     ["cannot delete Pods with local storage (use --delete-emptydir-data to override): "
      "default/tmp"], ""),
    # kubectl's known quirk: the later filter's Okay replaces the local-storage warning.
    ([pod("tmp", owner="ReplicaSet", emptydir=True)], {"delete_emptydir_data": True},
     ["tmp"], [], ""),
    ([pod("tmp", emptydir=True)], {"delete_emptydir_data": True, "force": True}, ["tmp"], [],
     "deleting Pods that declare no controller: default/tmp"),
    ([pod("done", phase="Failed")], {}, ["done"], [], ""),
    ([pod("a"), pod("b"), pod("ds", owner="DaemonSet")], {}, [],
     ["cannot delete cannot delete Pods that declare no controller (use --force to override): "
      "default/a, default/b",
      "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): default/ds"],
     ""),
], ids=["managed", "bare", "bare-force", "daemonset", "daemonset-ignored", "daemonset-finished",
        "mirror-skipped", "emptydir", "emptydir-allowed", "emptydir-bare-force", "finished-bare",
        "errors-grouped"])
def test_filters(pods, flags, deleted, errs, warnings):
    found = drain.filter_pods(pods, drain.Filters(**flags), NOW_S)
    assert [p.metadata.name for p in found.pods()] == deleted
    assert sorted(found.errors()) == sorted(errs)
    assert found.warnings() == warnings


@pytest.mark.parametrize("force, deleted, errs", [
    (False, [], ['cannot delete daemonsets.apps "ds-owner" not found: default/ds']),
    (True, ["ds"], []),
], ids=["orphan", "orphan-force"])
def test_orphaned_daemonset_pod(force, deleted, errs):
    found = drain.filter_pods([pod("ds", owner="DaemonSet")], drain.Filters(force=force), NOW_S,
                              lambda _p: 'daemonsets.apps "ds-owner" not found')
    assert [p.metadata.name for p in found.pods()] == deleted
    assert found.errors() == errs


def test_pods_deleted_long_ago_are_skipped():
    old = pod("old", owner="ReplicaSet")
    old.metadata.deletion_timestamp = "2027-01-15T07:59:00Z"  # 60 s before NOW_S
    assert drain.filter_pods([old], drain.Filters(skip_wait_for_delete_timeout_s=30),
                             NOW_S).pods() == []
    assert len(drain.filter_pods([old], drain.Filters(skip_wait_for_delete_timeout_s=90),
                                 NOW_S).pods()) == 1


class FakeClient:
    """Evictions answer 429 `refusals` times, then delete; gets see the pod until evicted."""

    def __init__(self, refusals: int):
        self.refusals = refusals
        self.evictions = 0
        self.gone: set[str] = set()

    async def evict(self, namespace: str, name: str, **_kw: Any):
        self.evictions += 1
        if self.refusals:
            self.refusals -= 1
            raise errors.TooManyRequests(
                "Cannot evict pod as it would violate the pod's disruption budget.")
        self.gone.add(name)

    async def get(self, resource: str, name: str, namespace: str = ""):
        if name in self.gone:
            raise errors.NotFound(f'pods "{name}" not found')
        return pod(name, owner="ReplicaSet")


async def no_sleep(_s: float) -> None:
    return None


class FakeTime:
    """A monotonic clock that the fake sleep moves."""

    def __init__(self) -> None:
        self.now_s = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now_s

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now_s += seconds


def drainer(client, clock: FakeTime, timeout_s: float = 0.0) -> drain.Drainer:
    return drain.Drainer(client, drain.Filters(), grace_period_s=None, timeout_s=timeout_s,
                         pod_selector="", chunk_size=500, disable_eviction=False,
                         dry_run="none", clock=lambda: NOW_S, monotonic=clock,
                         sleep=clock.sleep)


REFUSED = ('error when evicting pods/"web-1" -n "default" (will retry after 5s): Cannot evict '
           "pod as it would violate the pod's disruption budget.")


async def test_eviction_retries_on_429_with_kubectls_words(capsys):
    client, clock = FakeClient(refusals=2), FakeTime()
    await drainer(client, clock).evict_pods([pod("web-1", owner="ReplicaSet")])
    out, err = capsys.readouterr()
    assert out.splitlines() == ["evicting pod default/web-1"] * 3 + ["pod/web-1 evicted"]
    assert err.splitlines() == [REFUSED] * 2
    assert client.evictions == 3 and clock.slept == [5.0, 5.0]


async def test_timeout_ends_a_blocked_eviction_after_its_next_attempt_line(capsys):
    client, clock = FakeClient(refusals=10**6), FakeTime()
    with pytest.raises(drain.DrainFailed) as caught:
        await drainer(client, clock, timeout_s=12).evict_pods([pod("web-1", owner="ReplicaSet")])
    assert caught.value.errs == [
        'error when evicting pods/"web-1" -n "default": global timeout reached: 12s']
    out, err = capsys.readouterr()
    # Attempts at 0, 5 and 10 s; the fourth line (15 s) finds the deadline passed.
    assert out.splitlines() == ["evicting pod default/web-1"] * 4
    assert err.splitlines() == [REFUSED] * 3


class StuckClient(FakeClient):
    """Evictions succeed but the pod never goes."""

    async def evict(self, namespace: str, name: str, **_kw: Any):
        self.evictions += 1


async def test_timeout_while_waiting_for_the_pod_to_go(capsys):
    client, clock = StuckClient(refusals=0), FakeTime()
    with pytest.raises(drain.DrainFailed) as caught:
        await drainer(client, clock, timeout_s=3).evict_pods([pod("web-1", owner="ReplicaSet")])
    assert caught.value.errs == ['error when waiting for pod "web-1" in namespace "default" to '
                                 "terminate: context deadline exceeded"]


@pytest.mark.parametrize("argv, expected", [
    (["drain"], "error: USAGE: drain NODE [flags]\nSee 'kubemu drain -h' for help and examples\n"),
    (["drain", "n1", "-l", "a=b"], "error: cannot specify both a node name and a --selector "
                                   "option\nSee 'kubemu drain -h' for help and examples\n"),
    (["drain", "n1", "--pod-selector", "a b c"],
     "error: --pod-selector=<pod_selector> must be a valid label selector\n"),
], ids=["no-node", "node-and-selector", "bad-pod-selector"])
def test_usage_errors(argv, expected, capsys, tmp_path):
    from kubemu.cli.main import main

    assert main(["--home", str(tmp_path), *argv]) == 1
    assert capsys.readouterr().err == expected


# ---------------------------------------------------------------- the command on a registry

@pytest.fixture
async def mem(monkeypatch):
    from tests.unit.cli_memclient import MemClient, install

    monkeypatch.setattr(drain, "EVICT_ERROR_RETRY_DELAY_S", 0.01)
    client = install(monkeypatch, await MemClient.new())
    await client.put({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    return client


async def put_pod(mem, name: str, *, owner: bool = True, app: str = "web", ready: bool = True):
    doc: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"nodeName": "n1", "containers": [{"name": "main", "image": "busybox"}]}}
    if owner:
        doc["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                               "name": "web-rs", "uid": "rs-uid",
                                               "controller": True}]
    await mem.put(doc)
    await mem.set_status("pods", name, {
        "phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready
                                            else "False"}]})


async def put_budget(mem, allowed: int):
    await mem.put({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                   "metadata": {"name": "web"},
                   "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}})
    await mem.set_status("poddisruptionbudgets", "web", {
        "observedGeneration": 1, "disruptionsAllowed": allowed, "currentHealthy": 2,
        "desiredHealthy": 1, "expectedPods": 2})


async def test_drain_evicts_through_the_budget_and_prints_kubectls_lines(mem, capsys):
    from tests.unit.cli_memclient import run_cli

    await put_pod(mem, "a")
    await put_budget(mem, allowed=1)
    assert await run_cli("drain", "n1", "--grace-period=0") == 0
    assert capsys.readouterr().out.splitlines() == [
        "node/n1 cordoned", "evicting pod default/a", "pod/a evicted", "node/n1 drained"]
    assert (await mem.get("nodes", "n1")).spec.unschedulable
    assert not (await mem.list("pods", "default")).items
    budget = await mem.get("poddisruptionbudgets", "web", "default")
    assert budget.status.disruptions_allowed == 0 and list(budget.status.disrupted_pods) == ["a"]


async def test_drain_held_by_the_budget_until_its_timeout(mem, capsys):
    from tests.unit.cli_memclient import run_cli

    await put_pod(mem, "a")
    await put_budget(mem, allowed=0)
    assert await run_cli("drain", "n1", "--timeout=50ms") == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "node/n1 cordoned"
    assert set(out.splitlines()[1:]) == {"evicting pod default/a"}
    lines = err.splitlines()
    timeout = 'error when evicting pods/"a" -n "default": global timeout reached: 50ms'
    assert lines[0] == ('error when evicting pods/"a" -n "default" (will retry after 5s): '
                        "Cannot evict pod as it would violate the pod's disruption budget.")
    assert lines[-6:] == [
        f'There are pending pods in node "n1" when an error occurred: {timeout}',
        "pod/a",
        f'error: unable to drain node "n1" due to error: {timeout}, continuing command...',
        "There are pending nodes to be drained:",
        " n1",
        timeout]
    assert (await mem.get("pods", "a", "default")).metadata.name == "a"


async def test_disable_eviction_deletes_past_the_budget(mem, capsys):
    from tests.unit.cli_memclient import run_cli

    await put_pod(mem, "a")
    await put_budget(mem, allowed=0)
    assert await run_cli("drain", "n1", "--disable-eviction", "--grace-period=0") == 0
    assert capsys.readouterr().out.splitlines() == [
        "node/n1 cordoned", "pod/a deleted", "node/n1 drained"]
    assert ("evict", "pods", "a") not in mem.calls


async def test_pod_selector_and_client_dry_run(mem, capsys):
    from tests.unit.cli_memclient import run_cli

    await put_pod(mem, "a")
    await put_pod(mem, "b", app="db")
    assert await run_cli("drain", "n1", "--pod-selector=app=db", "--dry-run=client") == 0
    assert capsys.readouterr().out.splitlines() == [
        "node/n1 cordoned (dry run)", "evicting pod default/b (dry run)",
        "node/n1 drained (dry run)"]
    assert not (await mem.get("nodes", "n1")).spec.unschedulable
    assert len((await mem.list("pods", "default")).items) == 2


async def test_server_dry_run_evicts_nothing(mem, capsys):
    from tests.unit.cli_memclient import run_cli

    await put_pod(mem, "a")
    assert await run_cli("drain", "n1", "--dry-run=server") == 0
    assert capsys.readouterr().out.splitlines() == [
        "node/n1 cordoned (server dry run)", "evicting pod default/a (server dry run)",
        "node/n1 drained (server dry run)"]
    assert not (await mem.get("nodes", "n1")).spec.unschedulable
    assert (await mem.get("pods", "a", "default")).metadata.name == "a"


async def test_deprecated_delete_local_data_still_works(mem, capsys):
    from tests.unit.cli_memclient import run_cli

    await mem.put({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "tmp", "ownerReferences": [
                       {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u",
                        "controller": True}]},
                   "spec": {"nodeName": "n1", "volumes": [{"name": "s", "emptyDir": {}}],
                            "containers": [{"name": "main", "image": "busybox"}]}})
    await mem.set_status("pods", "tmp", {"phase": "Running"})
    assert await run_cli("drain", "n1", "--delete-local-data", "--grace-period=0") == 0
    out, err = capsys.readouterr()
    assert err == ("Flag --delete-local-data has been deprecated, This option is deprecated and "
                   "will be deleted. Use --delete-emptydir-data.\n")
    assert out.splitlines()[-2:] == ["pod/tmp evicted", "node/n1 drained"]
