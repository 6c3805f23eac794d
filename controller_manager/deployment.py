"""The Deployment controller (kubernetes/pkg/controller/deployment).

A Deployment owns ReplicaSets named `<deployment>-<pod-template-hash>`, one
per pod template it has had; the one whose template (hash label aside) is the
Deployment's is the new one, the others are old. Handlers only enqueue the
Deployment's key: its own events, those of ReplicaSets it controls (or could
adopt), and, for Recreate, pod deletions (the new ReplicaSet waits for the
last old pod to be gone).

sync(key), as syncDeployment: claim the namespace's ReplicaSets (adopt
matching orphans, release ours that stopped matching); a Deployment being
deleted only gets its status; otherwise the Progressing condition records a
pause or a resume, then one of:
- paused, or a scaling event (an active ReplicaSet's desired-replicas
  annotation is not spec.replicas): `scale` (the only active ReplicaSet takes
  all replicas; several active ones scale proportionally), clean-up, status;
- Recreate: old ReplicaSets to 0; once none of their pods is left, the new
  ReplicaSet is created (or found) at full size;
- RollingUpdate: the new ReplicaSet grows within replicas + maxSurge, old
  ones shrink while at least replicas - maxUnavailable pods stay available;
  once complete, old ReplicaSets beyond revisionHistoryLimit go; then the
  status with the Progressing condition, and a delayed re-check of a stuck
  rollout against progressDeadlineSeconds.
Rollback is kubectl's: writing an old template back makes that ReplicaSet
new again, with the next revision. The arithmetic is in deployment_util.

Expectations: a ReplicaSet created is expected until the informer shows it,
and the Deployment is not synced meanwhile, so a burst of events right after
a create never acts on a cache without it.
"""
from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

from kubemu.api import errors, labels
from kubemu.api.v1 import apps_pb2
from kubemu.client.events import NORMAL, WARNING
from kubemu.client.informer import meta_namespace_key, object_of

from controller_manager import controllerutil as cu
from controller_manager import deployment_util as du
from controller_manager.base import BY_NAMESPACE, Context, Controller, copy
from controller_manager.expectations import Expectations

SCALING_REPLICA_SET = "ScalingReplicaSet"
# The soonest a stuck rollout is looked at again for its deadline.
PROGRESS_RECHECK_MIN_S = 0.25


class DeploymentController(Controller):
    name = "deployment-controller"
    aliases = ("deployment",)
    resources = ("deployments", "replicasets", "pods")
    default_workers = 5

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.expectations = Expectations(ttl_s=ctx.options.expectations_ttl_s,
                                         clock=ctx.monotonic)
        self.deployments = self.informer("deployments")
        self.replicasets = self.informer("replicasets")
        self.pods = self.informer("pods")
        # A ReplicaSet becoming available moves its status, which is an update
        # event of its own: no requeue after minReadySeconds here.
        self.events = cu.DependentEvents(self.deployments, "Deployment", self.expectations,
                                         self.enqueue, self.enqueue_after,
                                         requeue_when_ready=False)
        self.deployments.add_handler(self.enqueue, lambda _old, new: self.enqueue(new),
                                     self.events.on_owner_delete)
        self.replicasets.add_handler(self.events.on_add, self.events.on_update,
                                     self.events.on_delete)
        self.pods.add_handler(None, None, self._on_pod_delete)

    # ------------------------------------------------------------ handlers

    def _on_pod_delete(self, obj: Any) -> None:
        # Only Recreate waits for pods to be gone.
        pod = object_of(obj)
        ref = cu.controller_of(pod)
        if ref is None or ref.kind != "ReplicaSet":
            return
        rs = self.replicasets.get(f"{pod.metadata.namespace}/{ref.name}")
        if rs is None or rs.metadata.uid != ref.uid:
            return
        d = self.events.owner_of(rs)
        if d is not None and d.spec.strategy.type == du.RECREATE:
            self.enqueue(d)

    # ------------------------------------------------------------ sync

    async def sync(self, key: str) -> None:
        cached = self.deployments.get(key)
        if cached is None:
            self.expectations.delete(key)
            return
        if not self.expectations.satisfied(key):
            return  # the ReplicaSet we created is not in the cache yet; its event re-enqueues
        d = copy(cached)
        selector_msg = d.spec.selector
        if not selector_msg.match_labels and not selector_msg.match_expressions:
            self.recorder.record(d, WARNING, "SelectingAll",
                                 "This deployment is selecting all pods. A non-empty selector "
                                 "is required.")
            if d.status.observed_generation < d.metadata.generation:
                d.status.observed_generation = d.metadata.generation
                await self._write_status(d)
            return
        rs_list = await self._claim_replica_sets(d)
        pods_by_rs = self._pods_by_rs(d, rs_list)
        if d.metadata.deletion_timestamp:
            new_rs, old_rss = await self._all_replica_sets(d, rs_list, create=False)
            await self._sync_status(d, [*old_rss, new_rs], new_rs)
            return
        d = await self._check_paused_conditions(d)
        if d.spec.paused:
            await self._sync(d, rs_list)
            return
        if await self._is_scaling_event(d, rs_list):
            await self._sync(d, rs_list)
            return
        if d.spec.strategy.type == du.RECREATE:
            await self._rollout_recreate(d, rs_list, pods_by_rs)
        else:
            await self._rollout_rolling(d, rs_list)

    # ------------------------------------------------------------ what it owns

    async def _claim_replica_sets(self, d: Message) -> list[Message]:
        selector = labels.from_label_selector(d.spec.selector)
        candidates = self.replicasets.by_index(BY_NAMESPACE, d.metadata.namespace)
        claimed = await cu.claim(self.client, d, selector, candidates, resource="replicasets")
        return claimed.objects

    def _pods_by_rs(self, d: Message, rs_list: list[Message]) -> dict[str, list[Message]]:
        out: dict[str, list[Message]] = {rs.metadata.uid: [] for rs in rs_list}
        selector = labels.from_label_selector(d.spec.selector)
        for pod in self.pods.by_index(BY_NAMESPACE, d.metadata.namespace):
            ref = cu.controller_of(pod)
            if ref is not None and ref.uid in out and selector.matches(pod.metadata.labels):
                out[ref.uid].append(pod)
        return out

    async def _all_replica_sets(self, d: Message, rs_list: list[Message],
                                create: bool) -> tuple[Message | None, list[Message]]:
        """getAllReplicaSetsAndSyncRevision: (the new ReplicaSet, all old ones)."""
        _, all_old = du.find_old_replica_sets(d, rs_list)
        new_rs = await self._new_replica_set(d, rs_list, all_old, create)
        return new_rs, all_old

    async def _new_replica_set(self, d: Message, rs_list: list[Message], old_rss: list[Message],
                               create: bool) -> Message | None:
        """getNewReplicaSet: the new ReplicaSet with its revision and annotations
        brought up to date, created when `create` and missing."""
        existing = du.find_new_replica_set(d, rs_list)
        new_revision = du.max_revision(old_rss) + 1
        if existing is not None:
            rs = copy(existing)
            changed = du.set_new_rs_annotations(d, rs, new_revision, exists=True)
            if changed or rs.spec.min_ready_seconds != d.spec.min_ready_seconds:
                rs.spec.min_ready_seconds = d.spec.min_ready_seconds
                updated = await self.client.update(rs)
                # Later steps of this sync read rs_list: let them see the write.
                rs_list[:] = [updated if r.metadata.uid == updated.metadata.uid else r
                              for r in rs_list]
                return updated
            await self._set_revision(d, rs.metadata.annotations.get(du.REVISION, ""))
            if du.has_progress_deadline(d) and cu.get_condition(d.status, du.PROGRESSING) is None:
                du.set_condition(d.status, du.new_condition(
                    du.PROGRESSING, "True", du.FOUND_NEW_RS,
                    f'Found new replica set "{rs.metadata.name}"', self.ctx.clock()))
                await self._write_status(d)
            return rs
        if not create:
            return None
        return await self._create_new_replica_set(d, old_rss, new_revision)

    async def _create_new_replica_set(self, d: Message, old_rss: list[Message],
                                      new_revision: int) -> Message:
        key = meta_namespace_key(d)
        collision = d.status.collision_count if d.status.HasField("collision_count") else None
        template = copy(d.spec.template)
        pod_hash = du.compute_hash(template, collision)
        template.metadata.labels[du.UNIQUE_LABEL] = pod_hash
        rs = apps_pb2.ReplicaSet(api_version="apps/v1", kind="ReplicaSet")
        rs.metadata.name = f"{d.metadata.name}-{pod_hash}"
        rs.metadata.namespace = d.metadata.namespace
        rs.metadata.owner_references.append(cu.controller_ref(d))
        rs.metadata.labels.update(template.metadata.labels)
        rs.spec.replicas = 0
        rs.spec.min_ready_seconds = d.spec.min_ready_seconds
        rs.spec.selector.CopyFrom(d.spec.selector)
        rs.spec.selector.match_labels[du.UNIQUE_LABEL] = pod_hash
        rs.spec.template.CopyFrom(template)
        new_replicas = du.new_rs_new_replicas(d, [*old_rss, rs], rs)
        rs.spec.replicas = new_replicas
        du.set_new_rs_annotations(d, rs, new_revision, exists=False)

        already_exists = False
        self.expectations.expect_creations(key, 1)
        try:
            created = await self.client.create(rs)
        except errors.AlreadyExists:
            self.expectations.lower_creations(key, 1)
            already_exists = True
            created = await self._adopt_existing_or_collide(d, rs)
        except errors.ApiError as exc:
            self.expectations.lower_creations(key, 1)
            msg = f'Failed to create new replica set "{rs.metadata.name}": {exc}'
            if du.has_progress_deadline(d):
                du.set_condition(d.status, du.new_condition(
                    du.PROGRESSING, "False", du.FAILED_RS_CREATE, msg, self.ctx.clock()))
                try:
                    await self._write_status(d)
                except errors.ApiError:
                    pass  # the create error is the one to report
            self.recorder.record(d, WARNING, du.FAILED_RS_CREATE, msg)
            raise
        if not already_exists and new_replicas > 0:
            self.recorder.record(d, NORMAL, SCALING_REPLICA_SET,
                                 f"Scaled up replica set {created.metadata.name} from 0 to "
                                 f"{new_replicas}")
        await self._set_revision(d, str(new_revision))
        if not already_exists and du.has_progress_deadline(d):
            du.set_condition(d.status, du.new_condition(
                du.PROGRESSING, "True", du.NEW_REPLICA_SET,
                f'Created new replica set "{created.metadata.name}"', self.ctx.clock()))
            await self._write_status(d)
        return created

    async def _adopt_existing_or_collide(self, d: Message, rs: Message) -> Message:
        """A ReplicaSet of that name exists: ours with our template (a stale
        cache), or a hash collision (collisionCount goes up; retry)."""
        try:
            existing = await self.client.get("replicasets", rs.metadata.name,
                                             rs.metadata.namespace)
        except errors.NotFound:
            raise errors.Conflict(f'replicasets "{rs.metadata.name}" was deleted meanwhile') \
                from None
        if cu.is_controlled_by(existing, d) and du.equal_ignore_hash(d.spec.template,
                                                                     existing.spec.template):
            return existing
        before = d.status.collision_count if d.status.HasField("collision_count") else 0
        d.status.collision_count = before + 1
        await self._write_status(d)
        self.log.info("hash collision; collisionCount raised", deployment=meta_namespace_key(d),
                      collision_count=before + 1)
        raise errors.AlreadyExists(f'replicasets.apps "{rs.metadata.name}" already exists')

    async def _set_revision(self, d: Message, rev: str) -> None:
        """SetDeploymentRevision. Kubernetes writes the annotation with the status
        (its status strategy keeps annotations); kubemu's status write keeps
        only status, so a metadata patch carries it."""
        if not rev or d.metadata.annotations.get(du.REVISION) == rev:
            return
        patched = await self.client.patch(
            "deployments", d.metadata.name, d.metadata.namespace,
            patch={"metadata": {"annotations": {du.REVISION: rev},
                                "resourceVersion": d.metadata.resource_version}})
        d.metadata.CopyFrom(patched.metadata)

    # ------------------------------------------------------------ scaling

    async def _scale_rs(self, rs: Message, new_scale: int, d: Message,
                        operation: str | None = None) -> tuple[bool, Message]:
        """scaleReplicaSet(AndRecordEvent): size and replica annotations, one update."""
        if operation is None:
            if du.replicas(rs) == new_scale:
                return False, rs
            operation = "up" if du.replicas(rs) < new_scale else "down"
        size_changes = du.replicas(rs) != new_scale
        desired, max_replicas = du.replicas(d), du.replicas(d) + du.max_surge(d)
        if not size_changes and not du.replicas_annotations_need_update(rs, desired, max_replicas):
            return False, rs
        old_scale = du.replicas(rs)
        new = copy(rs)
        new.spec.replicas = new_scale
        du.set_replicas_annotations(new, desired, max_replicas)
        updated = await self.client.update(new)
        if size_changes:
            self.recorder.record(d, NORMAL, SCALING_REPLICA_SET,
                                 f"Scaled {operation} replica set {updated.metadata.name} from "
                                 f"{old_scale} to {new_scale}")
        return size_changes, updated

    async def _is_scaling_event(self, d: Message, rs_list: list[Message]) -> bool:
        new_rs, old_rss = await self._all_replica_sets(d, rs_list, create=False)
        for rs in du.filter_active([*old_rss, new_rs]):
            desired = du.desired_replicas_annotation(rs)
            if desired is not None and desired != du.replicas(d):
                return True
        return False

    async def _sync(self, d: Message, rs_list: list[Message]) -> None:
        """sync: scaling (and a paused Deployment): scale, clean up, status."""
        new_rs, old_rss = await self._all_replica_sets(d, rs_list, create=False)
        await self._scale(d, new_rs, old_rss)
        if d.spec.paused:
            await self._cleanup(d, old_rss)
        await self._sync_status(d, [*old_rss, new_rs], new_rs)

    async def _scale(self, d: Message, new_rs: Message | None, old_rss: list[Message]) -> None:
        target = du.find_active_or_latest(new_rs, old_rss)
        if target is not None:
            if du.replicas(target) != du.replicas(d):
                await self._scale_rs(target, du.replicas(d), d)
            return
        if du.is_saturated(d, new_rs):
            for old in du.filter_active(old_rss):
                await self._scale_rs(old, 0, d)
            return
        if du.is_rolling_update(d):
            scaling = du.proportional_sizes(d, du.filter_active([*old_rss, new_rs]))
            for rs, size in scaling.sizes:
                await self._scale_rs(rs, size, d, scaling.operation)

    async def _cleanup(self, d: Message, old_rss: list[Message]) -> None:
        """cleanupDeployment: old ReplicaSets beyond revisionHistoryLimit go."""
        for rs in du.cleanup_candidates(d, old_rss):
            try:
                await self.client.delete("replicasets", rs.metadata.name, rs.metadata.namespace,
                                         uid=rs.metadata.uid)
            except errors.NotFound:
                pass

    # ------------------------------------------------------------ rollouts

    async def _rollout_rolling(self, d: Message, rs_list: list[Message]) -> None:
        new_rs, old_rss = await self._all_replica_sets(d, rs_list, create=True)
        assert new_rs is not None, "created when missing"
        all_rss = [*old_rss, new_rs]
        if await self._reconcile_new(d, all_rss, new_rs):
            await self._sync_rollout_status(d, all_rss, new_rs)
            return
        if await self._reconcile_old(d, du.filter_active(old_rss), new_rs):
            await self._sync_rollout_status(d, all_rss, new_rs)
            return
        if du.deployment_complete(d, d.status):
            await self._cleanup(d, old_rss)
        await self._sync_rollout_status(d, all_rss, new_rs)

    async def _reconcile_new(self, d: Message, all_rss: list[Message], new_rs: Message) -> bool:
        if du.replicas(new_rs) == du.replicas(d):
            return False
        if du.replicas(new_rs) > du.replicas(d):
            scaled, _ = await self._scale_rs(new_rs, du.replicas(d), d)
            return scaled
        target = du.new_rs_new_replicas(d, all_rss, new_rs)
        scaled, _ = await self._scale_rs(new_rs, target, d)
        return scaled

    async def _reconcile_old(self, d: Message, old_rss: list[Message], new_rs: Message) -> bool:
        scaled_down = False
        for rs, size in du.old_rs_scale_downs(d, old_rss, new_rs):
            if size > du.replicas(rs):
                raise ValueError(f"when scaling down old RS, got invalid request to scale down "
                                 f"{meta_namespace_key(rs)} {du.replicas(rs)} -> {size}")
            scaled, _ = await self._scale_rs(rs, size, d)
            scaled_down = scaled_down or scaled
        return scaled_down

    async def _rollout_recreate(self, d: Message, rs_list: list[Message],
                                pods_by_rs: dict[str, list[Message]]) -> None:
        # No new ReplicaSet yet: it is created only once the old pods are gone.
        new_rs, old_rss = await self._all_replica_sets(d, rs_list, create=False)
        all_rss: list[Message | None] = [*old_rss, new_rs]
        scaled_down = False
        for rs in du.filter_active(old_rss):
            scaled, _ = await self._scale_rs(rs, 0, d)
            scaled_down = scaled_down or scaled
        if scaled_down:
            await self._sync_rollout_status(d, all_rss, new_rs)
            return
        if du.old_pods_running(new_rs, old_rss, pods_by_rs):
            await self._sync_rollout_status(d, all_rss, new_rs)
            return
        if new_rs is None:
            new_rs, old_rss = await self._all_replica_sets(d, rs_list, create=True)
            all_rss = [*old_rss, new_rs]
        assert new_rs is not None
        await self._scale_rs(new_rs, du.replicas(d), d)
        if du.deployment_complete(d, d.status):
            await self._cleanup(d, old_rss)
        await self._sync_rollout_status(d, all_rss, new_rs)

    # ------------------------------------------------------------ status

    async def _check_paused_conditions(self, d: Message) -> Message:
        """Progressing Unknown DeploymentPaused / DeploymentResumed, so that the
        time spent paused never counts against progressDeadlineSeconds."""
        if not du.has_progress_deadline(d):
            return d
        cond = cu.get_condition(d.status, du.PROGRESSING)
        if cond is not None and cond.reason == du.TIMED_OUT:
            return d
        paused_now = cond is not None and cond.reason == du.PAUSED
        now = self.ctx.clock()
        if d.spec.paused and not paused_now:
            du.set_condition(d.status, du.new_condition(du.PROGRESSING, "Unknown", du.PAUSED,
                                                        "Deployment is paused", now))
        elif not d.spec.paused and paused_now:
            du.set_condition(d.status, du.new_condition(du.PROGRESSING, "Unknown", du.RESUMED,
                                                        "Deployment is resumed", now))
        else:
            return d
        return await self._write_status(d)

    async def _write_status(self, d: Message) -> Message:
        """update_status; `d` takes the stored object's metadata (a later write
        in the same sync needs its resourceVersion)."""
        written = await self.client.update_status(d)
        d.metadata.CopyFrom(written.metadata)
        return d

    async def _sync_status(self, d: Message, all_rss: list[Message | None],
                           new_rs: Message | None) -> None:
        """syncDeploymentStatus: counts and Available only."""
        status = du.calculate_status(all_rss, new_rs, d, self.ctx.clock())
        if status == d.status:
            return
        d.status.CopyFrom(status)
        await self._write_status(d)

    async def _sync_rollout_status(self, d: Message, all_rss: list[Message | None],
                                   new_rs: Message | None) -> None:
        """syncRolloutStatus: counts, Available, Progressing; a stuck rollout is
        looked at again when its deadline passes."""
        now = self.ctx.clock()
        status = du.rollout_status(all_rss, new_rs, d, now)
        if status == d.status:
            after = du.progress_check_after_s(d, status, now)
            if after is not None:
                # Kubernetes re-adds a deadline about to pass rate-limited; a
                # short floor does the same without a tight loop.
                self.enqueue_after(meta_namespace_key(d), max(after, PROGRESS_RECHECK_MIN_S))
            return
        d.status.CopyFrom(status)
        await self._write_status(d)
