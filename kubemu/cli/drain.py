"""`kubemu drain NODE`: kubectl drain (k8s.io/kubectl/pkg/cmd/drain and pkg/drain).

1. Cordon the node (`node/n1 cordoned`, or `already cordoned`).
2. List its pods (field selector spec.nodeName, `--pod-selector`, pages of
   `--chunk-size`) and filter them as kubectl does, in its order: pods deleted
   more than `--skip-wait-for-delete-timeout` s ago are skipped; DaemonSet pods
   are an error without `--ignore-daemonsets` (a warning with it; their
   DaemonSet gone and `--force`: deleted with the NotFound as warning); mirror
   pods are skipped; emptyDir pods need `--delete-emptydir-data`; pods without a
   controller need `--force`. Finished pods always go. Errors are grouped by
   message, each as `cannot delete <message>: ns/a, ns/b` (kubectl 1.32's
   message for pods without a controller already starts with "cannot delete",
   so it reads `cannot delete cannot delete Pods that declare no controller
   (use --force to override): default/bare`, as 1.32 prints it); warnings
   likewise after `Warning: `.
3. Evict every pod at once (one task each; `--disable-eviction` deletes
   instead): `evicting pod ns/name` before each attempt; a 429 (a disruption
   budget forbids it now) prints kubectl's `error when evicting pods/"x" -n "ns"
   (will retry after 5s): ...` on stderr and tries again after 5 s; NotFound
   means done. Each evicted pod is then polled every second until it is gone
   (or replaced under its name by another uid): `pod/name evicted`.
   `--timeout` (0 = none) is one deadline for all of it, looked at where
   kubectl looks (after each `evicting pod` line, and while waiting).
4. `node/n1 drained`. On failure, kubectl's lines on stderr
   (`error: unable to drain node "n1" due to error: ..., continuing command...`,
   `There are pending nodes to be drained:`) and the error last, exit 1.
`--dry-run=client` only prints what would be evicted; `--dry-run=server` sends
the evictions as dry runs.

`filter_pods` is pure (tested table-driven); the rest is I/O around it.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from typing import Any, Awaitable, Callable

from kubemu.cli import common
from kubemu.cli.common import CliError

DAEMONSET_FATAL = "DaemonSet-managed Pods (use --ignore-daemonsets to ignore)"
DAEMONSET_WARNING = "ignoring DaemonSet-managed Pods"
LOCAL_STORAGE_FATAL = "Pods with local storage (use --delete-emptydir-data to override)"
LOCAL_STORAGE_WARNING = "deleting Pods with local storage"
# kubectl 1.32's own text, which errors() prefixes with "cannot delete " once more.
UNMANAGED_FATAL = "cannot delete Pods that declare no controller (use --force to override)"
UNMANAGED_WARNING = "deleting Pods that declare no controller"
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
EVICT_ERROR_RETRY_DELAY_S = 5.0  # kubectl's EvictErrorRetryDelay
WAIT_INTERVAL_S = 1.0  # kubectl's waitForDelete poll
DEFAULT_CHUNK_SIZE = 500
FINISHED = ("Succeeded", "Failed")

OKAY, SKIP, WARNING, ERROR = "Okay", "Skip", "Warning", "Error"


@dataclasses.dataclass(frozen=True)
class PodDelete:
    pod: Any
    delete: bool
    reason: str = OKAY
    message: str = ""


@dataclasses.dataclass(frozen=True)
class PodDeleteList:
    items: tuple[PodDelete, ...]

    def pods(self) -> list[Any]:
        return [i.pod for i in self.items if i.delete]

    def _grouped(self, reason: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for i in self.items:
            if i.reason == reason:
                out.setdefault(i.message or "unexpected error", []).append(
                    f"{i.pod.metadata.namespace}/{i.pod.metadata.name}")
        return out

    def warnings(self) -> str:
        return "; ".join(f"{msg}: {', '.join(pods)}"
                         for msg, pods in self._grouped(WARNING).items())

    def errors(self) -> list[str]:
        return [f"cannot delete {msg}: {', '.join(pods)}"
                for msg, pods in self._grouped(ERROR).items()]


@dataclasses.dataclass(frozen=True)
class Filters:
    force: bool = False
    ignore_daemonsets: bool = False
    delete_emptydir_data: bool = False
    skip_wait_for_delete_timeout_s: int = 0


def _controller(pod: Any) -> Any | None:
    return next((r for r in pod.metadata.owner_references if r.controller), None)


def should_skip_pod(pod: Any, skip_s: int, now_s: float) -> bool:
    if skip_s <= 0 or not pod.metadata.deletion_timestamp:
        return False
    from kubemu import timefmt

    return int(now_s - timefmt.parse_rfc3339(pod.metadata.deletion_timestamp)) > skip_s


def _skip_deleted(pod: Any, f: Filters, now_s: float, _missing: Any) -> PodDelete:
    if should_skip_pod(pod, f.skip_wait_for_delete_timeout_s, now_s):
        return PodDelete(pod, False, SKIP)
    return PodDelete(pod, True)


def _daemonset(pod: Any, f: Filters, _now_s: float,
               daemonset_missing: Callable[[Any], str | None]) -> PodDelete:
    ref = _controller(pod)
    if ref is None or ref.kind != "DaemonSet" or pod.status.phase in FINISHED:
        return PodDelete(pod, True)
    missing = daemonset_missing(pod)
    if missing is not None:  # an orphan: deleted with --force, with the NotFound as warning
        return PodDelete(pod, True, WARNING, missing) if f.force else \
            PodDelete(pod, False, ERROR, missing)
    if not f.ignore_daemonsets:
        return PodDelete(pod, False, ERROR, DAEMONSET_FATAL)
    return PodDelete(pod, False, WARNING, DAEMONSET_WARNING)


def _mirror(pod: Any, _f: Filters, _now_s: float, _missing: Any) -> PodDelete:
    if MIRROR_POD_ANNOTATION in pod.metadata.annotations:
        return PodDelete(pod, False, SKIP)
    return PodDelete(pod, True)


def _local_storage(pod: Any, f: Filters, _now_s: float, _missing: Any) -> PodDelete:
    if not any(v.HasField("empty_dir") for v in pod.spec.volumes) or \
            pod.status.phase in FINISHED:
        return PodDelete(pod, True)
    if not f.delete_emptydir_data:
        return PodDelete(pod, False, ERROR, LOCAL_STORAGE_FATAL)
    return PodDelete(pod, True, WARNING, LOCAL_STORAGE_WARNING)


def _unreplicated(pod: Any, f: Filters, _now_s: float, _missing: Any) -> PodDelete:
    if pod.status.phase in FINISHED or _controller(pod) is not None:
        return PodDelete(pod, True)
    if f.force:
        return PodDelete(pod, True, WARNING, UNMANAGED_WARNING)
    return PodDelete(pod, False, ERROR, UNMANAGED_FATAL)


FILTERS = (_skip_deleted, _daemonset, _mirror, _local_storage, _unreplicated)


def filter_pods(pods: list[Any], f: Filters, now_s: float,
                daemonset_missing: Callable[[Any], str | None] = lambda _pod: None
                ) -> PodDeleteList:
    """kubectl's makeFilters, in its order: the first filter that keeps a pod
    back decides; otherwise the last filter's status stands (so a later Okay
    drops an earlier warning, as in kubectl). `daemonset_missing(pod)`
    is the NotFound text when the pod's DaemonSet is gone, else None."""
    out = []
    for pod in pods:
        status = PodDelete(pod, True)
        for check in FILTERS:
            status = check(pod, f, now_s, daemonset_missing)
            if not status.delete:
                break
        out.append(status)
    return PodDeleteList(tuple(out))


# ---------------------------------------------------------------- I/O


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _err(line: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _aggregate(errs: list[str]) -> str:
    """utilerrors.NewAggregate(...).Error()."""
    return errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"


class DrainFailed(Exception):
    def __init__(self, errs: list[str]):
        super().__init__(_aggregate(errs))
        self.errs = errs


@dataclasses.dataclass
class Drainer:
    client: Any
    filters: Filters
    grace_period_s: int | None
    timeout_s: float
    pod_selector: str
    chunk_size: int
    disable_eviction: bool
    dry_run: str
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    retry_delay_s: float = EVICT_ERROR_RETRY_DELAY_S

    async def pods_for_deletion(self, node: str) -> PodDeleteList:
        from kubemu.api import errors

        pods: list[Any] = []
        token = ""
        for _ in range(100_000):  # pages; bounded
            page = await self.client.list("pods", "", label_selector=self.pod_selector,
                                          field_selector=f"spec.nodeName={node}",
                                          limit=self.chunk_size, continue_token=token)
            pods.extend(page.items)
            token = page.continue_token
            if not token:
                break
        missing: dict[str, str | None] = {}
        for pod in pods:
            ref = _controller(pod)
            if ref is None or ref.kind != "DaemonSet":
                continue
            key = f"{pod.metadata.namespace}/{ref.name}"
            if key not in missing:
                try:
                    await self.client.get("daemonsets", ref.name, pod.metadata.namespace)
                    missing[key] = None
                except errors.NotFound as exc:
                    missing[key] = exc.message

        def daemonset_missing(pod: Any) -> str | None:
            return missing.get(f"{pod.metadata.namespace}/{_controller(pod).name}")

        return filter_pods(pods, self.filters, self.clock(), daemonset_missing)

    async def _get(self, pod: Any) -> Any | None:
        from kubemu.api import errors

        try:
            return await self.client.get("pods", pod.metadata.name, pod.metadata.namespace)
        except errors.NotFound:
            return None

    async def _wait_gone(self, pod: Any, verb: str, deadline_s: float | None) -> None:
        """waitForDelete: poll every second until the pod is gone or replaced;
        TimeoutError once `deadline_s` (monotonic) passes."""
        while True:
            current = await self._get(pod)
            if current is None or current.metadata.uid != pod.metadata.uid:
                _out(f"pod/{pod.metadata.name} {verb}")
                return
            if should_skip_pod(current, self.filters.skip_wait_for_delete_timeout_s,
                               self.clock()):
                _out(f'pod "{pod.metadata.name}" has DeletionTimestamp older than '
                     f"{self.filters.skip_wait_for_delete_timeout_s} seconds, skipping")
                return
            if deadline_s is not None and self.monotonic() + WAIT_INTERVAL_S > deadline_s:
                raise TimeoutError
            await self.sleep(WAIT_INTERVAL_S)

    async def _evict_one(self, pod: Any, deadline_s: float | None) -> str | None:
        """One pod's eviction then its wait; kubectl's error text, or None.
        As kubectl, the deadline is looked at after each `evicting pod` line."""
        from kubemu import timefmt
        from kubemu.api import errors

        ns, name = pod.metadata.namespace, pod.metadata.name
        server_dry_run = self.dry_run == "server"
        while True:
            _out(f"evicting pod {ns}/{name}" + (" (server dry run)" if server_dry_run else ""))
            if deadline_s is not None and self.monotonic() >= deadline_s:
                return (f'error when evicting pods/"{name}" -n "{ns}": global timeout '
                        f"reached: {timefmt.go_duration(self.timeout_s)}")
            try:
                await self.client.evict(ns, name, grace_period_s=self.grace_period_s,
                                        dry_run=server_dry_run)
                break
            except errors.NotFound:
                return None
            except errors.TooManyRequests as exc:
                _err(f'error when evicting pods/"{name}" -n "{ns}" (will retry after 5s): '
                     f"{exc.message}")
                await self.sleep(self.retry_delay_s)
            except errors.ApiError as exc:
                return f'error when evicting pods/"{name}" -n "{ns}": {exc.message}'
        if server_dry_run:
            return None
        try:
            await self._wait_gone(pod, "evicted", deadline_s)
        except TimeoutError:
            return (f'error when waiting for pod "{name}" in namespace "{ns}" to terminate: '
                    "context deadline exceeded")
        return None

    async def evict_pods(self, pods: list[Any]) -> None:
        deadline_s = self.monotonic() + self.timeout_s if self.timeout_s > 0 else None
        results = await asyncio.gather(*(self._evict_one(p, deadline_s) for p in pods))
        errs = [r for r in results if r is not None]
        if errs:
            raise DrainFailed(errs)

    async def delete_pods(self, pods: list[Any]) -> None:
        from kubemu.api import errors

        server_dry_run = self.dry_run == "server"
        for pod in pods:
            try:
                await self.client.delete("pods", pod.metadata.name, pod.metadata.namespace,
                                         grace_period_s=self.grace_period_s,
                                         dry_run=server_dry_run)
            except errors.NotFound:
                pass
        if server_dry_run:
            return

        deadline_s = self.monotonic() + self.timeout_s if self.timeout_s > 0 else None
        try:
            await asyncio.gather(*(self._wait_gone(p, "deleted", deadline_s) for p in pods))
        except TimeoutError:
            raise DrainFailed(["context deadline exceeded"]) from None

    async def drain_node(self, node: str) -> None:
        """deleteOrEvictPodsSimple."""
        found = await self.pods_for_deletion(node)
        errs = found.errors()
        if errs:
            raise DrainFailed(errs)
        warnings = found.warnings()
        if warnings:
            _err(f"Warning: {warnings}")
        if self.dry_run == "client":
            for pod in found.pods():
                _out(f"evicting pod {pod.metadata.namespace}/{pod.metadata.name} (dry run)")
            return
        pods = found.pods()
        if not pods:
            return
        try:
            if self.disable_eviction:
                await self.delete_pods(pods)
            else:
                await self.evict_pods(pods)
        except DrainFailed as exc:
            pending = (await self.pods_for_deletion(node)).pods()
            if pending:
                _err(f'There are pending pods in node "{node}" when an error occurred: {exc}')
                for pod in pending:
                    _err(f"pod/{pod.metadata.name}")
            raise


async def _cordon(client: Any, node: Any, dry_run: str) -> None:
    suffix = {"client": " (dry run)", "server": " (server dry run)"}.get(dry_run, "")
    label = f"node/{node.metadata.name}"
    if node.spec.unschedulable:
        _out(f"{label} already cordoned{suffix}")
        return
    if dry_run != "client":
        # kubectl's CordonHelper patches spec.unschedulable alone, with no
        # resourceVersion: a kubelet's heartbeat in between must not fail it.
        patch = {"spec": {"unschedulable": True}}
        await client.patch("nodes", node.metadata.name, patch=patch,
                           dry_run=dry_run == "server")
    _out(f"{label} cordoned{suffix}")


async def run_drain(args: argparse.Namespace) -> int:
    from kubemu.api import labels

    if not args.nodes and not args.selector:
        raise CliError("USAGE: drain NODE [flags]\nSee 'kubemu drain -h' for help and "
                       "examples", verbatim=True)
    if args.nodes and args.selector:
        raise CliError("cannot specify both a node name and a --selector option\n"
                       "See 'kubemu drain -h' for help and examples", verbatim=True)
    if args.pod_selector:
        try:
            labels.parse(args.pod_selector)
        except Exception:  # noqa: BLE001 - any parse failure is the one message
            raise CliError("--pod-selector=<pod_selector> must be a valid label selector"
                           ) from None
    if args.delete_local_data:
        # cobra's words for kubectl's deprecated flag, which still works.
        _err("Flag --delete-local-data has been deprecated, This option is deprecated and will "
             "be deleted. Use --delete-emptydir-data.")
    delete_emptydir_data = args.delete_emptydir_data or args.delete_local_data
    suffix = {"client": " (dry run)", "server": " (server dry run)"}.get(args.dry_run, "")
    async with common.client_for(args) as client:
        if args.nodes:
            nodes = [await client.get("nodes", name) for name in args.nodes]
        else:
            nodes = (await client.list_all("nodes", label_selector=args.selector)).items
        for node in nodes:
            await _cordon(client, node, args.dry_run)
        drainer = Drainer(
            client, Filters(force=args.force, ignore_daemonsets=args.ignore_daemonsets,
                            delete_emptydir_data=delete_emptydir_data,
                            skip_wait_for_delete_timeout_s=args.skip_wait_for_delete_timeout),
            grace_period_s=args.grace_period if args.grace_period >= 0 else None,
            timeout_s=args.timeout, pod_selector=args.pod_selector,
            chunk_size=args.chunk_size, disable_eviction=args.disable_eviction,
            dry_run=args.dry_run, retry_delay_s=EVICT_ERROR_RETRY_DELAY_S)
        fatal: list[DrainFailed] = []
        remaining: list[str] = []
        for node in nodes:
            name = node.metadata.name
            try:
                await drainer.drain_node(name)
            except DrainFailed as exc:
                _err(f'error: unable to drain node "{name}" due to error: {exc}, '
                     "continuing command...")
                fatal.append(exc)
                remaining.append(name)
                continue
            _out(f"node/{name} drained{suffix}")
        if remaining:
            _err("There are pending nodes to be drained:")
            for name in remaining:
                _err(f" {name}")
    if fatal:
        # kubectl's CheckErr: an aggregate of one is unwrapped, and an
        # aggregate's errors are printed one a line, as they are.
        for line in fatal[0].errs if len(fatal) == 1 else [str(exc) for exc in fatal]:
            _err(line)
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "drain", help="drain a node in preparation for maintenance",
        description="Cordon the node, then evict (or with --disable-eviction delete) its "
                    "pods, respecting PodDisruptionBudgets, like kubectl drain.")
    p.add_argument("nodes", nargs="*", metavar="NODE")
    p.add_argument("-l", "--selector", default="", help="select nodes by label")
    p.add_argument("--force", action="store_true",
                   help="continue even if there are pods not managed by a ReplicationController, "
                        "ReplicaSet, Job, DaemonSet or StatefulSet")
    p.add_argument("--ignore-daemonsets", action="store_true", help="ignore DaemonSet-managed pods")
    p.add_argument("--delete-emptydir-data", action="store_true",
                   help="continue even if there are pods using emptyDir")
    p.add_argument("--delete-local-data", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--grace-period", type=int, default=-1,
                   help="seconds given to each pod to terminate gracefully; negative: the pod's")
    p.add_argument("--timeout", type=common.parse_duration_s, default=0.0,
                   help="the length of time to wait before giving up, zero means infinite")
    p.add_argument("--pod-selector", default="", help="label selector to filter pods on the node")
    p.add_argument("--disable-eviction", action="store_true",
                   help="delete instead of evict, bypassing PodDisruptionBudgets")
    p.add_argument("--skip-wait-for-delete-timeout", type=int, default=0,
                   help="skip waiting for pods deleted more than N seconds ago")
    p.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE,
                   help="list pods in pages of this size (0: no paging)")
    p.add_argument("--dry-run", choices=("none", "client", "server"), default="none",
                   nargs="?", const="client")
    p.set_defaults(func=run_drain)
