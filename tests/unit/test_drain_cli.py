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
    ([pod("bare")], {}, [],
     ["cannot delete Pods declare no controller (use --force to override): default/bare"], ""),
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
     ["cannot delete Pods declare no controller (use --force to override): default/a, default/b",
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


def drainer(client, **kw) -> drain.Drainer:
    return drain.Drainer(client, drain.Filters(), grace_period_s=None, timeout_s=kw.get(
        "timeout_s", 0.0), pod_selector="", chunk_size=500, disable_eviction=False,
        dry_run="none", clock=lambda: NOW_S, sleep=kw.get("sleep", no_sleep))


async def test_eviction_retries_on_429_with_kubectls_words(capsys):
    client = FakeClient(refusals=2)
    await drainer(client).evict_pods([pod("web-1", owner="ReplicaSet")])
    out, err = capsys.readouterr()
    assert out.splitlines() == ["evicting pod default/web-1"] * 3 + ["pod/web-1 evicted"]
    assert err.splitlines() == [
        'error when evicting pods/"web-1" -n "default" (will retry after 5s): Cannot evict '
        "pod as it would violate the pod's disruption budget."] * 2
    assert client.evictions == 3


async def test_timeout_ends_a_blocked_eviction(capsys):
    import asyncio

    async def real_sleep(_s: float) -> None:
        await asyncio.sleep(0.01)

    client = FakeClient(refusals=10**6)
    with pytest.raises(drain.DrainFailed) as caught:
        await drainer(client, timeout_s=0.05, sleep=real_sleep).evict_pods(
            [pod("web-1", owner="ReplicaSet")])
    assert caught.value.errs == [
        'error when evicting pods/"web-1" -n "default": global timeout reached: 50ms']
