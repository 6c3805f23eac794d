"""The StatefulSet controller (kubernetes/pkg/controller/statefulset).

Identity: the pod of ordinal i is `<set>-<i>`, labelled
`statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index` and
`controller-revision-hash` (the name of the ControllerRevision whose template
it runs), with hostname = its name and subdomain = spec.serviceName. Each
volumeClaimTemplate gives ordinal i the claim `<template>-<set>-<i>`, created
before the pod and never deleted here, so a recreated pod gets its
predecessor's volume back. persistentVolumeClaimRetentionPolicy: Retain
(the default) leaves claims ownerless; whenDeleted Delete makes the set their
owner and whenScaled Delete makes a condemned pod the owner of its claims
just before it is deleted, so the garbage collector removes them.

Revisions (controller_manager.history): the update revision snapshots the
present template; the current revision is status.currentRevision (the
update one for a new set). A pod is created from the current template when
its ordinal is below the partition, else from the update template.

sync(key), as UpdateStatefulSet: claim revisions and pods (those matching
the selector -- and for pods, named `<set>-<ordinal>` -- are adopted or
kept, ours that do not are released), settle the revisions,
then -- when the expectations are met and the set is not being deleted --
act on `plan(...)`, the pure decision:
  - every ordinal in [start, start+replicas): a missing pod is created, a
    Failed or Succeeded one deleted (recreated next sync); under OrderedReady
    ("monotonic") the walk stops at the first action, at a terminating pod
    and at a pod not yet Running, Ready and available, so ordinal i is
    created only once 0..i-1 are all Running and Ready; under Parallel it
    goes on;
  - pods beyond the range are deleted, highest ordinal first; OrderedReady
    deletes one at a time, each only when the rest are healthy;
  - RollingUpdate: the highest ordinal >= partition not at the update
    revision is deleted (and recreated from the update template), one at a
    time, each after the ordinals above it are healthy; OnDelete: nothing.
Then the status (replicas, readyReplicas, availableReplicas, currentReplicas,
updatedReplicas, current/updateRevision, observedGeneration, collisionCount;
a rolling update whose pods are all updated and Ready makes the update
revision current) and the history limit (revisionHistoryLimit revisions no
pod uses are kept).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Iterable, Sequence

from google.protobuf.message import Message

from kubemu.api import codec, errors, labels
from kubemu.api.v1 import core_pb2
from kubemu.client.events import NORMAL, WARNING
from kubemu.client.informer import meta_namespace_key

from controller_manager import controllerutil as cu
from controller_manager import history
from controller_manager.base import BY_NAMESPACE, Context, Controller, copy, split_key
from controller_manager.expectations import Expectations

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"

ORDERED_READY = "OrderedReady"
PARALLEL = "Parallel"
ROLLING_UPDATE = "RollingUpdate"
ON_DELETE = "OnDelete"

_ORDINAL_RE = re.compile(r"^(.*)-([0-9]+)$")


# ---------------------------------------------------------------- names

def parent_and_ordinal(pod_name: str) -> tuple[str, int]:
    """("web", 2) for "web-2"; ("", -1) for a name with no ordinal."""
    match = _ORDINAL_RE.match(pod_name)
    if match is None:
        return "", -1
    return match.group(1), int(match.group(2))


def pod_name(set_name: str, ordinal: int) -> str:
    return f"{set_name}-{ordinal}"


def claim_name(template_name: str, set_name: str, ordinal: int) -> str:
    return f"{template_name}-{set_name}-{ordinal}"


# ---------------------------------------------------------------- the pure decision

@dataclasses.dataclass(frozen=True)
class PodState:
    """What `plan` needs to know of one existing pod of the set."""

    ordinal: int
    revision: str = ""
    phase: str = "Running"
    ready: bool = True
    # Ready for at least minReadySeconds.
    available: bool = True
    terminating: bool = False
    # Its identity labels are the set's (else they are rewritten).
    consistent: bool = True

    @property
    def running_ready(self) -> bool:
        return self.phase == "Running" and self.ready

    @property
    def healthy(self) -> bool:
        return self.running_ready and not self.terminating


@dataclasses.dataclass(frozen=True)
class SetView:
    """What `plan` needs to know of the set."""

    replicas: int
    start: int = 0
    monotonic: bool = True                 # podManagementPolicy OrderedReady
    on_delete: bool = False                # updateStrategy OnDelete
    partition: int | None = 0              # None: RollingUpdate without rollingUpdate
    current_revision: str = "r1"
    update_revision: str = "r1"
    current_replicas: int = 0              # status.currentReplicas


@dataclasses.dataclass(frozen=True)
class Action:
    verb: str          # "create" | "delete" | "update" (identity) | "claims" (missing PVCs)
    ordinal: int
    revision: str = ""  # create: the revision whose template the pod runs
    why: str = ""       # delete: "failed", "scale down" or "update"


@dataclasses.dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    # What blocks further progress ("" when nothing does), for logs and tests.
    waiting: str = ""

    def writes(self) -> list[Action]:
        return [a for a in self.actions if a.verb in ("create", "delete")]


def revision_for(view: SetView, ordinal: int) -> str:
    """newVersionedStatefulSetPod: below the partition a pod keeps the current revision."""
    index = ordinal - view.start
    if view.partition is None:
        keep = not view.on_delete and index < view.current_replicas
    else:
        keep = not view.on_delete and index < view.partition
    return view.current_revision if keep else view.update_revision


def plan(view: SetView, pods: Iterable[PodState]) -> Plan:
    """What one sync does (updateStatefulSet), in order."""
    replicas: list[PodState | None] = [None] * max(0, view.replicas)
    condemned: list[PodState] = []
    for pod in pods:
        index = pod.ordinal - view.start
        if 0 <= index < len(replicas):
            replicas[index] = pod
        elif pod.ordinal >= 0:
            condemned.append(pod)
    condemned.sort(key=lambda p: -p.ordinal)
    first_unhealthy: PodState | None = None
    if all(p is not None and p.healthy for p in replicas):
        first_unhealthy = next((p for p in reversed(condemned) if not p.healthy), None)

    actions: list[Action] = []

    def done(waiting: str = "") -> Plan:
        return Plan(tuple(actions), waiting)

    # The replicas, lowest ordinal first.
    for index, pod in enumerate(replicas):
        ordinal = view.start + index
        if pod is None:
            actions.append(Action("create", ordinal, revision_for(view, ordinal)))
            if view.monotonic:
                return done()
            continue
        if pod.phase in ("Failed", "Succeeded"):
            if not pod.terminating:
                actions.append(Action("delete", ordinal, why="failed"))
            if view.monotonic:
                return done(f"{ordinal} to be recreated")
            continue
        if pod.phase == "Pending":
            actions.append(Action("claims", ordinal))
        if view.monotonic:
            if pod.terminating:
                return done(f"{ordinal} to terminate")
            if not pod.running_ready:
                return done(f"{ordinal} to be Running and Ready")
            if not pod.available:
                return done(f"{ordinal} to be available")
        if not pod.consistent:
            actions.append(Action("update", ordinal))

    # Scale down, highest ordinal first.
    for pod in condemned:
        if pod.terminating:
            if view.monotonic:
                return done(f"{pod.ordinal} to terminate")
            continue
        if view.monotonic and pod is not first_unhealthy and not (
                pod.running_ready and pod.available):
            return done(f"{pod.ordinal} to be Running and Ready before scale down")
        actions.append(Action("delete", pod.ordinal, why="scale down"))
        if view.monotonic:
            return done()

    if view.on_delete:
        return done()

    # Rolling update: the highest ordinal not at the update revision, one at a time.
    update_min = view.partition or 0
    for index in range(len(replicas) - 1, update_min - 1, -1):
        ordinal = view.start + index
        pod = replicas[index]
        if pod is None:
            return done(f"{ordinal} to be created")
        if pod.revision != view.update_revision and not pod.terminating:
            actions.append(Action("delete", ordinal, why="update"))
            return done()
        if not pod.healthy:
            return done(f"{ordinal} to update")
    return done()


@dataclasses.dataclass(frozen=True)
class Counts:
    replicas: int = 0
    ready: int = 0
    available: int = 0
    current: int = 0
    updated: int = 0


def count(pods: Iterable[PodState], current_revision: str, update_revision: str) -> Counts:
    """computeReplicaStatus over the set's pods."""
    replicas = ready = available = current = updated = 0
    for pod in pods:
        replicas += 1
        if pod.running_ready:
            ready += 1
            if pod.available:
                available += 1
        if not pod.terminating:
            current += pod.revision == current_revision
            updated += pod.revision == update_revision
    return Counts(replicas, ready, available, current, updated)


# ---------------------------------------------------------------- objects of the set

def view_of(sts: Message, current_revision: str, update_revision: str) -> SetView:
    spec = sts.spec
    strategy = spec.update_strategy
    partition: int | None = None
    if strategy.HasField("rolling_update"):
        partition = strategy.rolling_update.partition
    return SetView(replicas=spec.replicas, start=spec.ordinals.start,
                   monotonic=spec.pod_management_policy != PARALLEL,
                   on_delete=strategy.type == ON_DELETE, partition=partition,
                   current_revision=current_revision, update_revision=update_revision,
                   current_replicas=sts.status.current_replicas)


def pod_state(sts: Message, pod: Message, now: float) -> PodState:
    _, ordinal = parent_and_ordinal(pod.metadata.name)
    return PodState(ordinal=ordinal, revision=pod.metadata.labels.get(REVISION_LABEL, ""),
                    phase=pod.status.phase, ready=cu.is_pod_ready(pod),
                    available=cu.is_pod_available(pod, sts.spec.min_ready_seconds, now),
                    terminating=bool(pod.metadata.deletion_timestamp),
                    consistent=identity_matches(sts, pod))


def is_member(sts: Message, pod: Message) -> bool:
    parent, ordinal = parent_and_ordinal(pod.metadata.name)
    return ordinal >= 0 and parent == sts.metadata.name


def identity_matches(sts: Message, pod: Message) -> bool:
    parent, ordinal = parent_and_ordinal(pod.metadata.name)
    return (ordinal >= 0 and parent == sts.metadata.name
            and pod.metadata.namespace == sts.metadata.namespace
            and pod.metadata.labels.get(POD_NAME_LABEL) == pod.metadata.name
            and pod.metadata.labels.get(POD_INDEX_LABEL) == str(ordinal))


def set_identity(pod: Message, ordinal: int) -> None:
    pod.metadata.labels[POD_NAME_LABEL] = pod.metadata.name
    pod.metadata.labels[POD_INDEX_LABEL] = str(ordinal)


def claims_for(sts: Message, ordinal: int) -> list[core_pb2.PersistentVolumeClaim]:
    """getPersistentVolumeClaims: one claim per template, labelled with the selector's labels."""
    out = []
    for template in sts.spec.volume_claim_templates:
        claim = core_pb2.PersistentVolumeClaim()
        claim.CopyFrom(template)
        claim.api_version, claim.kind = "v1", "PersistentVolumeClaim"
        claim.ClearField("status")
        claim.metadata.name = claim_name(template.metadata.name, sts.metadata.name, ordinal)
        claim.metadata.namespace = sts.metadata.namespace
        claim.metadata.labels.update(sts.spec.selector.match_labels)
        if sts.spec.persistent_volume_claim_retention_policy.when_deleted == "Delete":
            claim.metadata.owner_references.append(owner_ref(sts))
        out.append(claim)
    return out


def owner_ref(owner: Message) -> Any:
    """setOwnerRef's plain reference: the garbage collector deletes the claim
    after its owner, nothing more (not a controller, blocks nothing)."""
    ref = cu.controller_ref(owner)
    ref.controller = False
    ref.block_owner_deletion = False
    return ref


def new_pod(sts: Message, template: Message, ordinal: int, revision: str) -> core_pb2.Pod:
    """newStatefulSetPod + setPodRevision: the pod of `ordinal` running `template`."""
    name = pod_name(sts.metadata.name, ordinal)
    pod = cu.pod_from_template(template, sts, name=name)
    set_identity(pod, ordinal)
    pod.metadata.labels[REVISION_LABEL] = revision
    pod.spec.hostname = name
    pod.spec.subdomain = sts.spec.service_name
    # updateStorage: the claims' volumes replace template volumes of the same name.
    templates = [t.metadata.name for t in sts.spec.volume_claim_templates]
    kept = [copy(v) for v in pod.spec.volumes if v.name not in templates]
    del pod.spec.volumes[:]
    for tname in templates:
        volume = pod.spec.volumes.add(name=tname)
        volume.persistent_volume_claim.claim_name = claim_name(tname, sts.metadata.name, ordinal)
    pod.spec.volumes.extend(kept)
    return pod


def template_of(sts: Message, rev: Message | None) -> Message:
    """ApplyRevision: the set's template as `rev` recorded it."""
    if rev is None:
        return sts.spec.template
    data = dict(history.revision_data(rev).get("spec", {}).get("template", {}))
    if not data:
        return sts.spec.template
    data.pop("$patch", None)
    return codec.from_dict(type(sts.spec.template), data)


# ---------------------------------------------------------------- the controller

class StatefulSetController(Controller):
    name = "statefulset-controller"
    aliases = ("statefulset",)
    resources = ("statefulsets", "pods", "controllerrevisions", "persistentvolumeclaims")

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.expectations = Expectations(ttl_s=ctx.options.expectations_ttl_s,
                                         clock=ctx.monotonic)
        self.history = history.History(self.client)
        self.sets = self.informer("statefulsets")
        self.pods = self.informer("pods")
        self.revisions = self.informer("controllerrevisions")
        self.claims = self.informer("persistentvolumeclaims")
        self.events = cu.DependentEvents(self.sets, "StatefulSet", self.expectations,
                                         self.enqueue, self.enqueue_after)
        self.sets.add_handler(self.enqueue, lambda _old, new: self.enqueue(new),
                              self.events.on_owner_delete)
        self.pods.add_handler(self.events.on_add, self.events.on_update, self.events.on_delete)

    # ------------------------------------------------------------ sync

    async def sync(self, key: str) -> None:
        sts = self.sets.get(key)
        if sts is None:
            self.expectations.delete(key)
            return
        namespace, _ = split_key(key)
        selector = labels.from_label_selector(sts.spec.selector)
        if selector.empty():
            return  # validation refuses it; a selector of everything adopts nothing here
        in_namespace = self.revisions.by_index(BY_NAMESPACE, namespace)
        revisions = history.sort_revisions((await cu.claim(
            self.client, sts, selector, in_namespace, resource="controllerrevisions")).objects)
        candidates = [p for p in self.pods.by_index(BY_NAMESPACE, namespace)
                      if cu.is_controlled_by(p, sts) or is_member(sts, p)]
        pods = (await cu.claim(self.client, sts, selector, candidates,
                               also=lambda p: is_member(sts, p))).objects

        current, update, collisions = await self._revisions(sts, revisions)
        view = view_of(sts, current.metadata.name, update.metadata.name)
        now = self.ctx.clock()
        states = [pod_state(sts, p, now) for p in pods]
        error: BaseException | None = None
        if self.expectations.satisfied(key) and not sts.metadata.deletion_timestamp:
            decided = plan(view, states)
            if decided.waiting:
                self.log.debug("statefulset waiting", key=key, pod=decided.waiting)
            error = await self._act(sts, key, decided, pods, current, update)
        await self._update_status(sts, states, view, collisions)
        await self._truncate_history(sts, pods, revisions, current, update)
        if error is not None:
            raise error

    async def _revisions(self, sts: Message,
                         revisions: list[Message]) -> tuple[Message, Message, int]:
        """getStatefulSetRevisions: (current, update, collision count)."""
        collisions = sts.status.collision_count
        data = history.template_patch(sts)
        decision = history.decide_update_revision(revisions, data)
        if decision.verb == "reuse":
            update = decision.revision
        elif decision.verb == "renumber":
            update = await self.history.renumber(decision.revision, decision.number)
        else:
            update, collisions = await self.history.create(
                sts, dict(sts.spec.template.metadata.labels), data, decision.number, collisions)
        assert update is not None
        current = next((r for r in revisions if r.metadata.name == sts.status.current_revision),
                       update)
        return current, update, collisions

    async def _act(self, sts: Message, key: str, decided: Plan, pods: list[Message],
                   current: Message, update: Message) -> BaseException | None:
        by_ordinal = {parent_and_ordinal(p.metadata.name)[1]: p for p in pods}
        templates = {current.metadata.name: template_of(sts, current),
                     update.metadata.name: template_of(sts, update)}
        try:
            for action in decided.actions:
                pod = by_ordinal.get(action.ordinal)
                if action.verb == "update" and pod is not None:
                    await self._update_identity(sts, pod)
                elif action.verb == "claims" and pod is not None:
                    await self._create_claims(sts, pod.metadata.name, action.ordinal)
        except Exception as exc:  # noqa: BLE001 - the status is still written, then a retry
            return exc
        writes = decided.writes()
        if not writes:
            return None
        creates = [a for a in writes if a.verb == "create"]
        deletes = [meta_namespace_key(by_ordinal[a.ordinal]) for a in writes if a.verb == "delete"]
        self.expectations.expect(key, creations=len(creates), deletions=deletes)
        pending = iter(writes)

        async def one() -> None:
            action = next(pending)
            await self._write(sts, key, action, by_ordinal, templates)

        _, error = await cu.slow_start_batch(len(writes), 1, one)
        for action in pending:  # never tried: never observed either
            self._unexpect(key, action, by_ordinal)
        return error

    def _unexpect(self, key: str, action: Action, by_ordinal: dict[int, Message]) -> None:
        if action.verb == "create":
            self.expectations.lower_creations(key, 1)
        else:
            self.expectations.deletion_observed(key, meta_namespace_key(by_ordinal[action.ordinal]))

    async def _write(self, sts: Message, key: str, action: Action,
                     by_ordinal: dict[int, Message], templates: dict[str, Message]) -> None:
        try:
            if action.verb == "create":
                pod = new_pod(sts, templates[action.revision], action.ordinal, action.revision)
                await self._create_pod(sts, pod)
            else:
                pod = by_ordinal[action.ordinal]
                if action.why == "scale down":
                    await self._claims_follow_pod(sts, pod, action.ordinal)
                await self._delete_pod(sts, pod)
        except BaseException:
            self._unexpect(key, action, by_ordinal)
            raise

    # ------------------------------------------------------------ pods and claims

    async def _create_claims(self, sts: Message, name: str, ordinal: int) -> None:
        """createPersistentVolumeClaims: each missing claim of the pod (events as Kubernetes')."""
        problems = []
        for claim in claims_for(sts, ordinal):
            existing = self.claims.get(meta_namespace_key(claim))
            if existing is not None:
                if existing.metadata.deletion_timestamp:
                    problems.append(f"pvc {claim.metadata.name} is being deleted")
                continue
            try:
                await self.client.create(claim)
            except errors.AlreadyExists:
                continue
            except errors.ApiError as exc:
                problems.append(f"failed to create PVC {claim.metadata.name}: {exc}")
                self.recorder.record(
                    sts, WARNING, "FailedCreate",
                    f"create Claim {claim.metadata.name} for Pod {name} in StatefulSet "
                    f"{sts.metadata.name} failed error: {exc}")
                continue
            self.recorder.record(sts, NORMAL, "SuccessfulCreate",
                                 f"create Claim {claim.metadata.name} Pod {name} in StatefulSet "
                                 f"{sts.metadata.name} success")
        if problems:
            # errorutils.NewAggregate's text.
            raise errors.ApiError(problems[0] if len(problems) == 1
                                  else "[" + ", ".join(problems) + "]")

    async def _claims_follow_pod(self, sts: Message, pod: Message, ordinal: int) -> None:
        """whenScaled Delete: a condemned pod's claims get the pod as owner, so
        the garbage collector deletes them with it (Retain: nothing to do)."""
        if sts.spec.persistent_volume_claim_retention_policy.when_scaled != "Delete":
            return
        for wanted in claims_for(sts, ordinal):
            claim = self.claims.get(meta_namespace_key(wanted))
            if claim is None or any(r.uid == pod.metadata.uid
                                    for r in claim.metadata.owner_references):
                continue
            new = copy(claim)
            new.metadata.owner_references.append(owner_ref(pod))
            try:
                await self.client.update(new)
            except errors.NotFound:
                continue

    async def _create_pod(self, sts: Message, pod: Message) -> None:
        name = pod.metadata.name
        try:
            await self._create_claims(sts, name, parent_and_ordinal(name)[1])
            await self.client.create(pod)
        except errors.AlreadyExists:
            raise  # Kubernetes sinks it: no event, a retry later
        except errors.ApiError as exc:
            self._record_pod_event(sts, "create", name, exc)
            raise
        self._record_pod_event(sts, "create", name)

    async def _delete_pod(self, sts: Message, pod: Message) -> None:
        name = pod.metadata.name
        try:
            await self.client.delete("pods", name, pod.metadata.namespace, uid=pod.metadata.uid)
        except errors.NotFound:
            self.expectations.deletion_observed(meta_namespace_key(sts), meta_namespace_key(pod))
            return
        except errors.ApiError as exc:
            self._record_pod_event(sts, "delete", name, exc)
            raise
        self._record_pod_event(sts, "delete", name)

    async def _update_identity(self, sts: Message, pod: Message) -> None:
        """UpdateStatefulPod: the identity labels back (the spec cannot change)."""
        new = copy(pod)
        set_identity(new, parent_and_ordinal(pod.metadata.name)[1])
        name = pod.metadata.name
        try:
            await self.client.update(new)
        except errors.NotFound:
            return
        except errors.Conflict:
            raise
        except errors.ApiError as exc:
            self._record_pod_event(sts, "update", name, exc)
            raise
        self._record_pod_event(sts, "update", name)

    def _record_pod_event(self, sts: Message, verb: str, name: str,
                          error: BaseException | None = None) -> None:
        """recordPodEvent: Successful<Verb> / Failed<Verb> with Kubernetes' texts."""
        where = f"{verb} Pod {name} in StatefulSet {sts.metadata.name}"
        if error is None:
            self.recorder.record(sts, NORMAL, f"Successful{verb.title()}", f"{where} successful")
        else:
            self.recorder.record(sts, WARNING, f"Failed{verb.title()}",
                                 f"{where} failed error: {error}")

    # ------------------------------------------------------------ status and history

    async def _update_status(self, sts: Message, states: Sequence[PodState], view: SetView,
                             collisions: int) -> None:
        counts = count(states, view.current_revision, view.update_revision)
        status = copy(sts.status)
        status.observed_generation = sts.metadata.generation
        status.replicas = counts.replicas
        status.ready_replicas = counts.ready
        status.available_replicas = counts.available
        status.current_replicas = counts.current
        status.updated_replicas = counts.updated
        status.current_revision = view.current_revision
        status.update_revision = view.update_revision
        status.collision_count = collisions
        # completeRollingUpdate
        if (sts.spec.update_strategy.type == ROLLING_UPDATE
                and counts.updated == counts.replicas and counts.ready == counts.replicas):
            status.current_replicas = counts.updated
            status.current_revision = view.update_revision
        spec = sts.spec
        if spec.min_ready_seconds > 0 and counts.available != spec.replicas:
            self.enqueue_after(sts, spec.min_ready_seconds)
        await cu.write_status(self.client, sts, status)

    async def _truncate_history(self, sts: Message, pods: list[Message],
                                revisions: list[Message], current: Message,
                                update: Message) -> None:
        live = {current.metadata.name, update.metadata.name}
        live.update(p.metadata.labels.get(REVISION_LABEL, "") for p in pods)
        for rev in history.truncate(revisions, live, sts.spec.revision_history_limit):
            await self.history.delete(rev)
