"""The pods/eviction subresource: kube-apiserver's EvictionREST.

An Eviction names a pod and carries DeleteOptions. The pod is deleted only if
the one PodDisruptionBudget that selects it allows a disruption now:

- a pod that is already terminal, Pending or being deleted ignores budgets
  (it disrupts nothing more) and is deleted at once;
- more than one matching budget: 500 "This pod has more than one
  PodDisruptionBudget, which the eviction subresource does not support.";
- a pod that is not Ready is deleted without spending the budget when the
  budget says AlwaysAllow, or (IfHealthyBudget, the default) when the
  application is healthy anyway (currentHealthy >= desiredHealthy > 0);
- otherwise the budget is checked and spent (`check_and_decrement`, pure):
  a budget the disruption controller has not seen at its generation, or with
  no disruption left, answers 429 TooManyRequests; else disruptionsAllowed
  drops by one and the pod enters status.disruptedPods, written with the
  budget's resourceVersion (a concurrent eviction makes it re-read, bounded);
- then the pod gets the DisruptionTarget condition and is deleted with the
  Eviction's options. Where the pod's health was judged here, the delete is
  conditioned on the pod's resourceVersion, so a pod that became Ready
  meanwhile is not deleted unchecked (429, try again).

`decide_unhealthy` and `check_and_decrement` are pure (tested table-driven);
`evict` does the reads and writes through the ObjectRegistry.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from google.protobuf.message import Message

from apiserver.registry import ObjectRegistry, copy_of
from kubemu import timefmt
from kubemu.api import errors, labels
from kubemu.api.kinds import Registry

PDB_PAGES_MAX = 100  # pages of the namespace's budgets one eviction reads (500 each)
EVICTION_RETRIES = 5  # re-reads of a budget or pod written by someone else meanwhile
# Kubernetes' MaxDisruptedPodSize: evictions the controller has not confirmed yet.
MAX_DISRUPTED_PODS = 2000
DISRUPTION_BUDGET_CAUSE = "DisruptionBudget"
TOO_MANY_REQUESTS_MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."
MORE_THAN_ONE_PDB = ("This pod has more than one PodDisruptionBudget, which the eviction "
                     "subresource does not support.")
ALWAYS_ALLOW = "AlwaysAllow"
TERMINAL_PHASES = ("Succeeded", "Failed")


class BudgetForbids(errors.TooManyRequests):
    """429 with the DisruptionBudget cause kube-apiserver attaches."""

    def __init__(self, cause: str):
        super().__init__(TOO_MANY_REQUESTS_MESSAGE)
        self.cause_type = DISRUPTION_BUDGET_CAUSE
        self.cause = cause


def still_processing(pdb_name: str) -> BudgetForbids:
    return BudgetForbids(f"The disruption budget {pdb_name} is still being processed by the "
                         "server.")


def is_pod_ready(pod: Message) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def can_ignore_pdb(pod: Message) -> bool:
    """A terminal, Pending or terminating pod disrupts nothing more."""
    return (pod.status.phase in (*TERMINAL_PHASES, "Pending")
            or bool(pod.metadata.deletion_timestamp))


def should_enforce_resource_version(pod: Message) -> bool:
    return not (pod.status.phase in TERMINAL_PHASES or pod.metadata.deletion_timestamp)


def matching_pdbs(pod: Message, pdbs: list[Message]) -> list[Message]:
    """The pod's budgets; an empty or invalid selector matches nothing."""
    out = []
    for pdb in pdbs:
        if pdb.metadata.namespace != pod.metadata.namespace or not pdb.spec.HasField("selector"):
            continue
        try:
            selector = labels.from_label_selector(pdb.spec.selector)
        except errors.BadRequest:
            continue
        if selector.empty() or not selector.matches(pod.metadata.labels):
            continue
        out.append(pdb)
    return out


def decide_unhealthy(pod: Message, pdb: Message) -> bool:
    """True: delete this not-Ready pod without spending the budget."""
    if is_pod_ready(pod):
        return False
    if pdb.spec.unhealthy_pod_eviction_policy == ALWAYS_ALLOW:
        return True
    status = pdb.status
    return status.current_healthy >= status.desired_healthy and status.desired_healthy > 0


def check_and_decrement(pdb: Message, pod_name: str, now_s: float) -> Message:
    """The budget after one more disruption, or the error that forbids it."""
    status = pdb.status
    if status.observed_generation < pdb.metadata.generation:
        raise still_processing(pdb.metadata.name)
    if status.disruptions_allowed < 0:
        raise errors.Forbidden(f'poddisruptionbudget.policy "{pdb.metadata.name}" is '
                               "forbidden: pdb disruptions allowed is negative")
    if len(status.disrupted_pods) > MAX_DISRUPTED_PODS:
        raise errors.Forbidden(f'poddisruptionbudget.policy "{pdb.metadata.name}" is '
                               "forbidden: DisruptedPods map too big - too many evictions not "
                               "confirmed by PDB controller")
    if status.disruptions_allowed == 0:
        raise BudgetForbids(f"The disruption budget {pdb.metadata.name} needs "
                            f"{status.desired_healthy} healthy pods and has "
                            f"{status.current_healthy} currently")
    out = copy_of(pdb)
    out.status.disruptions_allowed = status.disruptions_allowed - 1
    if out.status.disruptions_allowed == 0:
        set_disruption_allowed(out, now_s)
    out.status.disrupted_pods[pod_name] = timefmt.rfc3339(now_s)
    return out


def set_disruption_allowed(pdb: Message, now_s: float, reason: str = "") -> None:
    """pdbhelper.UpdateDisruptionAllowedCondition: the condition from
    disruptionsAllowed (SufficientPods / InsufficientPods), or SyncFailed."""
    status = pdb.status
    if reason:
        value, message = "False", ""
    elif status.disruptions_allowed > 0:
        value, reason, message = "True", "SufficientPods", ""
    else:
        value, reason, message = "False", "InsufficientPods", ""
    cond = next((c for c in status.conditions if c.type == "DisruptionAllowed"), None)
    if cond is None:
        cond = status.conditions.add(type="DisruptionAllowed")
    if cond.status != value:
        cond.last_transition_time = timefmt.rfc3339(now_s)
    cond.status, cond.reason, cond.message = value, reason, message
    cond.observed_generation = status.observed_generation


@dataclasses.dataclass(frozen=True)
class DeleteOptions:
    grace_period_s: int | None
    propagation_policy: str
    uid: str
    resource_version: str
    dry_run: bool

    @classmethod
    def of(cls, eviction: Message) -> "DeleteOptions":
        opts = eviction.delete_options
        pre = opts.preconditions
        for value in opts.dry_run:
            if value != "All":
                raise errors.BadRequest(f'dryRun: Unsupported value: "{value}": supported '
                                        'values: "All"')
        return cls(opts.grace_period_seconds if opts.HasField("grace_period_seconds") else None,
                   opts.propagation_policy, pre.uid, pre.resource_version,
                   bool(opts.dry_run))


class Evictor:
    def __init__(self, objects: ObjectRegistry, registry: Registry,
                 clock: Callable[[], float]):
        self.objects = objects
        self.pods = registry.by_resource("pods")
        self.pdbs = registry.by_resource("poddisruptionbudgets")
        self.clock = clock

    async def evict(self, namespace: str, eviction: Message) -> Message:
        name = eviction.metadata.name
        if not name:
            raise errors.Invalid("Eviction", "", [errors.required("metadata.name",
                                                                  "name or generateName is "
                                                                  "required")])
        if eviction.metadata.namespace and namespace and eviction.metadata.namespace != namespace:
            raise errors.BadRequest("the namespace of the provided object does not match the "
                                    "namespace sent on the request")
        namespace = eviction.metadata.namespace or namespace or "default"
        options = DeleteOptions.of(eviction)
        for attempt in range(EVICTION_RETRIES):
            pod = await self.objects.get(self.pods, namespace, name)
            if not can_ignore_pdb(pod):
                break
            enforce = should_enforce_resource_version(pod) and not options.resource_version
            try:
                return await self._delete(pod, options, enforce, pdb_name="")
            except errors.Conflict:
                # The pod changed since it was read: judge it again (Kubernetes
                # retries conflicts here unless the client gave a resourceVersion).
                if options.resource_version or attempt == EVICTION_RETRIES - 1:
                    raise

        found = matching_pdbs(pod, await self._pdbs(namespace))
        if len(found) > 1:
            raise errors.Internal(MORE_THAN_ONE_PDB)
        if not found:
            return await self._delete(pod, options, enforce=False, pdb_name="")
        pdb = found[0]
        if decide_unhealthy(pod, pdb):
            return await self._delete(pod, options, enforce=not options.resource_version,
                                      pdb_name=pdb.metadata.name)
        await self._spend(pdb, name, options.dry_run)
        return await self._delete(pod, options, enforce=False, pdb_name=pdb.metadata.name)

    async def _pdbs(self, namespace: str) -> list[Message]:
        out: list[Message] = []
        token = ""
        for _ in range(PDB_PAGES_MAX):
            items, _rev, token, _remaining = await self.objects.list(
                self.pdbs, namespace, None, 0, token)
            out.extend(items)
            if not token:
                return out
        raise errors.internal(f"more than {PDB_PAGES_MAX} pages of PodDisruptionBudgets in "
                              f"namespace {namespace}")

    async def _spend(self, pdb: Message, pod_name: str, dry_run: bool) -> None:
        for _ in range(EVICTION_RETRIES):
            spent = check_and_decrement(pdb, pod_name, self.clock())
            if dry_run:
                return
            try:
                await self.objects.update(self.pdbs, spent, status=True)
                return
            except errors.Conflict:
                pdb = await self.objects.get(self.pdbs, pdb.metadata.namespace,
                                             pdb.metadata.name)
        raise errors.Timeout(f'Timeout: couldn\'t update PodDisruptionBudget '
                             f'"{pdb.metadata.name}" due to conflicts')

    async def _delete(self, pod: Message, options: DeleteOptions, enforce: bool,
                      pdb_name: str) -> Message:
        """addConditionAndDeletePod: DisruptionTarget, then the delete (conditioned on the
        pod's resourceVersion as read when `enforce`)."""
        wanted_rv = pod.metadata.resource_version if enforce else options.resource_version
        try:
            if not options.dry_run:
                pod = await self._mark_disruption_target(pod, wanted_rv, options.uid)
                wanted_rv = pod.metadata.resource_version if wanted_rv else ""
            deleted, _gone = await self.objects.delete(
                self.pods, pod.metadata.namespace, pod.metadata.name,
                grace_period_s=options.grace_period_s,
                propagation_policy=options.propagation_policy, uid=options.uid,
                resource_version=wanted_rv, dry_run=options.dry_run)
        except errors.Conflict:
            if enforce and pdb_name:
                raise still_processing(pdb_name) from None
            raise
        return deleted if deleted is not None else pod

    async def _mark_disruption_target(self, pod: Message, wanted_rv: str, uid: str) -> Message:
        now_s = self.clock()
        name = pod.metadata.name

        def change(obj: Message, _now_s: float) -> None:
            if wanted_rv and obj.metadata.resource_version != wanted_rv:
                raise errors.conflict("pods", name)
            cond = next((c for c in obj.status.conditions if c.type == "DisruptionTarget"), None)
            if cond is None:
                cond = obj.status.conditions.add(type="DisruptionTarget")
            if cond.status != "True":
                cond.last_transition_time = timefmt.rfc3339(now_s)
            cond.status, cond.reason = "True", "EvictionByEvictionAPI"
            cond.message = "Eviction API: evicting"

        if any(c.type == "DisruptionTarget" and c.status == "True"
               for c in pod.status.conditions):
            return pod
        return await self.objects.apply(self.pods, pod.metadata.namespace, name, change, uid=uid)
