"""The garbage collector (kubernetes/pkg/controller/garbagecollector).

Model, as Kubernetes':
- The owner graph (`Graph`, pure, no I/O): every object of every kind that can
  own or be owned (all of kinds.REGISTRY but `IGNORED_RESOURCES`) is a node,
  keyed by uid, with its ownerReferences and the uids of its dependents. An
  ownerReference to a uid not seen yet makes a *virtual* node for that owner,
  which the informers later observe (or a live GET finds absent). The shared
  informers' handlers feed the graph directly (Kubernetes' GraphBuilder runs
  them through one graphChanges queue in one goroutine; handlers on one event
  loop are already that one serial consumer), and the graph answers which
  uids to look at: `attempt_delete` or `attempt_orphan`.
- attemptToDelete(uid) (the workers): skip an object already being deleted
  (unless it waits for its dependents); GET it live (gone, or another uid:
  a virtual delete); an owner with the `foregroundDeletion` finalizer has its
  finalizer removed once no dependent with `blockOwnerDeletion` remains, and
  its blocking dependents are attempted meanwhile; any other object has its
  ownerReferences classified against live GETs of the owners (`classify`:
  solid, dangling = absent or another uid, waiting = being deleted in the
  foreground) and `decide` says what to do: keep it and drop the dangling and
  waiting references when a solid owner remains; delete it in the foreground
  when an owner waits and it has dependents itself; else delete it, with the
  propagation its own finalizers ask for (orphan, foregroundDeletion,
  otherwise Background). Deletes carry uid and resourceVersion preconditions.
- attemptToOrphan(uid): an owner deleted with propagationPolicy Orphan (the
  `orphan` finalizer): every dependent loses its ownerReferences to it, then
  the finalizer goes.
- Every write of ours is conditioned on the resourceVersion we read (a
  finalizer removal or ownerReference change never overwrites another
  writer's change: Conflict, read again, retry a bounded number of times).
- Every `Options.gc_resync_s` the graph is swept for work a lost event could
  have left undone: virtual owners, owners waiting for their dependents,
  owners waiting to orphan theirs.
- Events: `OwnerRefInvalidNamespace` (Warning) on a dependent whose owner
  reference names an owner in another namespace, or a namespaced owner of a
  cluster-scoped object, as Kubernetes records it.

Keys of the workqueue: "delete:<uid>" and "orphan:<uid>".
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
from typing import Any, Iterable

from google.protobuf.message import Message

from kubemu.api import errors
from kubemu.api.kinds import REGISTRY, Kind
from kubemu.client.events import WARNING
from kubemu.client.informer import object_of

from controller_manager.base import Context, Controller, copy

# Kubernetes' GC ignores events; leases churn and are never owned here.
IGNORED_RESOURCES = frozenset({"events", "leases"})
# The finalizers the apiserver adds on delete (metav1.FinalizerOrphanDependents,
# metav1.FinalizerDeleteDependents).
ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"
BACKGROUND, FOREGROUND, ORPHAN = "Background", "Foreground", "Orphan"
# Kubernetes' absentOwnerCache size.
ABSENT_OWNER_CACHE_MAX = 500
# Conditioned read-modify-write attempts before the key is retried with backoff.
UPDATE_RETRIES = 5
# Dependents changed at once while orphaning.
ORPHAN_PARALLEL_MAX = 20
DELETE_KEY, ORPHAN_KEY = "delete:", "orphan:"


def gc_resources() -> tuple[str, ...]:
    """Every resource the graph watches: all served kinds but the ignored ones."""
    return tuple(k.resource for k in REGISTRY.kinds
                 if k.stored and k.resource not in IGNORED_RESOURCES)


# ---------------------------------------------------------------- the graph (pure)


@dataclasses.dataclass(frozen=True)
class Identity:
    """An object's coordinates (Kubernetes' objectReference)."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str

    def __str__(self) -> str:
        return (f"[{self.api_version}/{self.kind}, namespace: {self.namespace}, "
                f"name: {self.name}, uid: {self.uid}]")


@dataclasses.dataclass(frozen=True)
class Ref:
    """One ownerReference, as a value."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool = False
    block_owner_deletion: bool = False

    @classmethod
    def of(cls, ref: Any) -> Ref:
        return cls(ref.api_version, ref.kind, ref.name, ref.uid, bool(ref.controller),
                   bool(ref.block_owner_deletion))


@dataclasses.dataclass(frozen=True)
class Observed:
    """What the graph needs of one object as an informer delivered it."""

    identity: Identity
    owners: tuple[Ref, ...] = ()
    being_deleted: bool = False
    finalizers: tuple[str, ...] = ()

    @classmethod
    def of(cls, kind: Kind, obj: Message) -> Observed:
        meta = obj.metadata
        return cls(Identity(kind.api_version, kind.kind, meta.namespace, meta.name, meta.uid),
                   tuple(Ref.of(r) for r in meta.owner_references if r.uid),
                   bool(meta.deletion_timestamp), tuple(meta.finalizers))

    def deleting_with(self, finalizer: str) -> bool:
        return self.being_deleted and finalizer in self.finalizers


@dataclasses.dataclass
class Node:
    identity: Identity
    owners: tuple[Ref, ...] = ()
    dependents: set[str] = dataclasses.field(default_factory=set)
    # False for a virtual node: known only from a dependent's ownerReference.
    observed: bool = False
    being_deleted: bool = False
    deleting_dependents: bool = False
    finalizers: tuple[str, ...] = ()

    @property
    def uid(self) -> str:
        return self.identity.uid


@dataclasses.dataclass
class Outcome:
    """What a graph change asks of the workers (uids, in order, no repeats)."""

    attempt_delete: list[str] = dataclasses.field(default_factory=list)
    attempt_orphan: list[str] = dataclasses.field(default_factory=list)
    # (dependent, its ownerReference naming an owner in another namespace)
    invalid_namespace: list[tuple[Identity, Ref]] = dataclasses.field(default_factory=list)

    def delete(self, uid: str) -> None:
        if uid not in self.attempt_delete:
            self.attempt_delete.append(uid)

    def orphan(self, uid: str) -> None:
        if uid not in self.attempt_orphan:
            self.attempt_orphan.append(uid)


class AbsentOwners:
    """A bounded LRU of owner identities known not to exist (uids never come back)."""

    def __init__(self, max_len: int = ABSENT_OWNER_CACHE_MAX):
        self.max_len = max_len
        self._items: collections.OrderedDict[Identity, None] = collections.OrderedDict()

    def add(self, identity: Identity) -> None:
        self._items[identity] = None
        self._items.move_to_end(identity)
        while len(self._items) > self.max_len:
            self._items.popitem(last=False)

    def __contains__(self, identity: object) -> bool:
        if identity in self._items:
            self._items.move_to_end(identity)  # type: ignore[arg-type]
            return True
        return False

    def __len__(self) -> int:
        return len(self._items)


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def _ref_matches(ref: Ref, identity: Identity) -> bool:
    """Kubernetes' ownerReferenceMatchesCoordinates (the version may differ)."""
    return (ref.uid == identity.uid and ref.name == identity.name and ref.kind == identity.kind
            and _group(ref.api_version) == _group(identity.api_version))


class Graph:
    """uid -> Node, with owners and dependents kept consistent (GraphBuilder)."""

    def __init__(self, absent: AbsentOwners | None = None):
        self.nodes: dict[str, Node] = {}
        self.absent = absent if absent is not None else AbsentOwners()

    def get(self, uid: str) -> Node | None:
        return self.nodes.get(uid)

    def __len__(self) -> int:
        return len(self.nodes)

    # ------------------------------------------------------------ events

    def observe(self, new: Observed, old: Observed | None = None) -> Outcome:
        """An add or update delivered by an informer."""
        out = Outcome()
        node = self.nodes.get(new.identity.uid)
        if node is None:
            node = Node(new.identity, new.owners, observed=True, being_deleted=new.being_deleted,
                        deleting_dependents=new.deleting_with(FOREGROUND_FINALIZER),
                        finalizers=new.finalizers)
            self.nodes[node.uid] = node
            self._add_to_owners(node, node.owners, out)
            self._transitions(old, new, node, out)
            return out
        if not node.observed:
            node.observed = True
            if node.identity != new.identity:
                # Dependents named us by other coordinates: let them be checked.
                for dep_uid in sorted(node.dependents):
                    dep = self.nodes.get(dep_uid)
                    if dep is None:
                        continue
                    if new.identity.namespace and dep.identity.namespace != new.identity.namespace:
                        out.invalid_namespace.extend(
                            (dep.identity, r) for r in dep.owners if r.uid == node.uid)
                    out.delete(dep_uid)
        node.identity = new.identity
        old_refs = {r.uid: r for r in node.owners}
        new_refs = {r.uid: r for r in new.owners}
        if old_refs != new_refs:
            removed = [r for uid, r in old_refs.items() if uid not in new_refs]
            added = [r for uid, r in new_refs.items() if uid not in old_refs]
            # An owner waiting for its blocking dependents may be unblocked now.
            for ref in removed:
                if ref.block_owner_deletion and ref.uid in self.nodes:
                    out.delete(ref.uid)
            for uid, ref in new_refs.items():
                before = old_refs.get(uid)
                if (before is not None and before.block_owner_deletion
                        and not ref.block_owner_deletion and uid in self.nodes):
                    out.delete(uid)
            node.owners = new.owners
            self._add_to_owners(node, added, out)
            for ref in removed:
                owner = self.nodes.get(ref.uid)
                if owner is not None:
                    owner.dependents.discard(node.uid)
        else:
            node.owners = new.owners
        if new.being_deleted:
            node.being_deleted = True
        node.finalizers = new.finalizers
        self._transitions(old, new, node, out)
        return out

    def observe_delete(self, gone: Observed) -> Outcome:
        """A deletion delivered by an informer."""
        return self._remove(gone.identity, virtual=False)

    def virtual_delete(self, identity: Identity) -> Outcome:
        """A live GET found `identity` absent (or another uid under its name)."""
        return self._remove(identity, virtual=True)

    def resync(self) -> Outcome:
        """Work that a lost event could have left undone (the periodic sweep)."""
        out = Outcome()
        for uid in sorted(self.nodes):
            node = self.nodes[uid]
            if not node.observed or node.deleting_dependents:
                out.delete(uid)
            elif node.being_deleted and ORPHAN_FINALIZER in node.finalizers:
                out.orphan(uid)
        return out

    def blocking_dependents(self, node: Node) -> list[Node]:
        """Dependents whose reference to `node` has blockOwnerDeletion."""
        out = []
        for dep_uid in sorted(node.dependents):
            dep = self.nodes.get(dep_uid)
            if dep is not None and any(r.uid == node.uid and r.block_owner_deletion
                                       for r in dep.owners):
                out.append(dep)
        return out

    # ------------------------------------------------------------ internals

    def _remove(self, identity: Identity, *, virtual: bool) -> Outcome:
        out = Outcome()
        node = self.nodes.get(identity.uid)
        if node is None:
            return out
        if virtual and node.observed and node.identity != identity:
            # A GET by other coordinates found nothing; the observed node stands,
            # but the dependents that named it that way are to be checked.
            for dep_uid in sorted(node.dependents):
                dep = self.nodes.get(dep_uid)
                if dep is not None and any(r.uid == identity.uid and not _ref_matches(r, node.identity)
                                           for r in dep.owners):
                    out.delete(dep_uid)
            self.absent.add(identity)
            return out
        del self.nodes[node.uid]
        for ref in node.owners:
            owner = self.nodes.get(ref.uid)
            if owner is not None:
                owner.dependents.discard(node.uid)
        if node.dependents:
            self.absent.add(identity)
        for dep_uid in sorted(node.dependents):
            out.delete(dep_uid)
        for ref in node.owners:
            owner = self.nodes.get(ref.uid)
            if owner is not None and owner.deleting_dependents:
                # One blocking dependent fewer: maybe the owner can go now.
                out.delete(owner.uid)
        return out

    def _add_to_owners(self, node: Node, refs: Iterable[Ref], out: Outcome) -> None:
        for ref in refs:
            owner = self.nodes.get(ref.uid)
            if owner is None:
                # A virtual owner, in the dependent's namespace (none for a
                # cluster-scoped kind) until observed; a worker checks at once
                # whether it exists.
                kind = _kind_of(ref.api_version, ref.kind)
                namespace = "" if kind is not None and not kind.namespaced \
                    else node.identity.namespace
                owner = Node(Identity(ref.api_version, ref.kind, namespace, ref.name, ref.uid))
                self.nodes[ref.uid] = owner
                owner.dependents.add(node.uid)
                out.delete(ref.uid)
                continue
            owner.dependents.add(node.uid)
            if not owner.observed:
                continue
            if owner.identity.namespace and owner.identity.namespace != node.identity.namespace:
                out.invalid_namespace.append((node.identity, ref))
                out.delete(node.uid)
            elif not _ref_matches(ref, owner.identity):
                out.delete(node.uid)

    @staticmethod
    def _transitions(old: Observed | None, new: Observed, node: Node, out: Outcome) -> None:
        if _starts(old, new, ORPHAN_FINALIZER):
            out.orphan(node.uid)
        if not new.deleting_with(FOREGROUND_FINALIZER):
            return
        node.deleting_dependents = True
        # Both finalizers (asked for by two deletions): orphaning goes first,
        # and attempts the owner again when it is done.
        if _starts(old, new, FOREGROUND_FINALIZER) and ORPHAN_FINALIZER not in new.finalizers:
            for dep_uid in sorted(node.dependents):
                out.delete(dep_uid)
            out.delete(node.uid)


def _starts(old: Observed | None, new: Observed, finalizer: str) -> bool:
    """Whether `new` starts waiting on `finalizer` (Kubernetes' deletionStartsWithFinalizer)."""
    return new.deleting_with(finalizer) and (old is None or not old.deleting_with(finalizer))


# ---------------------------------------------------------------- decisions (pure)


@dataclasses.dataclass(frozen=True)
class Classified:
    """An object's ownerReferences by the state of their owners."""

    solid: tuple[Ref, ...] = ()
    dangling: tuple[Ref, ...] = ()
    waiting: tuple[Ref, ...] = ()  # owner being deleted in the foreground


NOTHING, REMOVE_REFS, DELETE = "nothing", "remove-refs", "delete"


@dataclasses.dataclass(frozen=True)
class Decision:
    action: str
    remove_uids: tuple[str, ...] = ()
    policy: str = ""
    # Make every ownerReference non-blocking first (a cycle of foreground owners).
    unblock: bool = False


def decide(refs: Classified, *, has_dependents: bool, dependent_deleting_dependents: bool,
           finalizers: Iterable[str]) -> Decision:
    """What attemptToDelete does with an object whose owners are `refs`."""
    if refs.solid:
        gone = tuple(r.uid for r in (*refs.dangling, *refs.waiting))
        return Decision(REMOVE_REFS, gone) if gone else Decision(NOTHING)
    if refs.waiting and has_dependents:
        return Decision(DELETE, policy=FOREGROUND, unblock=dependent_deleting_dependents)
    finalizers = tuple(finalizers)
    if ORPHAN_FINALIZER in finalizers:
        policy = ORPHAN
    elif FOREGROUND_FINALIZER in finalizers:
        policy = FOREGROUND
    else:
        policy = BACKGROUND
    return Decision(DELETE, policy=policy)


class NamespacedOwnerOfClusterScoped(Exception):
    """A cluster-scoped object names a namespaced owner: no retry can resolve it."""


# ---------------------------------------------------------------- the controller


class GarbageCollector(Controller):
    name = "garbage-collector-controller"
    aliases = ("garbagecollector",)
    # Kubernetes' --concurrent-gc-syncs default.
    default_workers = 20
    resources = gc_resources()

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.graph = Graph()
        for resource in self.resources:
            kind = REGISTRY.by_resource(resource)
            self.informer(resource).add_handler(
                functools.partial(self._on_add, kind), functools.partial(self._on_update, kind),
                functools.partial(self._on_delete, kind))

    # ------------------------------------------------------------ handlers: feed the graph

    def _on_add(self, kind: Kind, obj: Message) -> None:
        self._apply(self.graph.observe(Observed.of(kind, obj)))

    def _on_update(self, kind: Kind, old: Message, new: Message) -> None:
        self._apply(self.graph.observe(Observed.of(kind, new), Observed.of(kind, old)))

    def _on_delete(self, kind: Kind, obj: Any) -> None:
        self._apply(self.graph.observe_delete(Observed.of(kind, object_of(obj))))

    def _apply(self, out: Outcome) -> None:
        for uid in out.attempt_delete:
            self.enqueue(DELETE_KEY + uid)
        for uid in out.attempt_orphan:
            self.enqueue(ORPHAN_KEY + uid)
        for dependent, ref in out.invalid_namespace:
            self._report_invalid_namespace(dependent, ref)

    def _report_invalid_namespace(self, dependent: Identity, ref: Ref) -> None:
        owner = Identity(ref.api_version, ref.kind, dependent.namespace, ref.name, ref.uid)
        try:
            stub = _stub(dependent)
        except errors.ApiError:
            return
        self.recorder.record(stub, WARNING, "OwnerRefInvalidNamespace",
                             f"ownerRef {owner} does not exist in namespace "
                             f'"{dependent.namespace}"')

    # ------------------------------------------------------------ the loop

    def resync_period_s(self) -> float:
        return self.options.gc_resync_s

    def resync(self) -> None:
        self._apply(self.graph.resync())

    async def sync(self, key: str) -> None:
        if key.startswith(DELETE_KEY):
            await self.attempt_delete(key[len(DELETE_KEY):])
        elif key.startswith(ORPHAN_KEY):
            await self.attempt_orphan(key[len(ORPHAN_KEY):])
        else:
            self.log.error("unknown garbage collector key", key=key)

    # ------------------------------------------------------------ attemptToDelete

    async def attempt_delete(self, uid: str) -> None:
        node = self.graph.get(uid)
        if node is None:
            return
        if node.being_deleted and not node.deleting_dependents:
            return  # a one-way trip: its dependents are looked at once it is gone
        kind = _kind_of(node.identity.api_version, node.identity.kind)
        if kind is None:
            # Only a virtual node can have one; its dependents are never deleted for it.
            self.log.debug("owner reference to a kind this apiserver does not serve",
                           owner=str(node.identity))
            return
        if kind.namespaced and not node.identity.namespace:
            # A namespaced owner named only by cluster-scoped dependents: no
            # such owner can exist; they are checked (and reported) in turn.
            self._apply(self.graph.virtual_delete(node.identity))
            return
        latest = await self._get_live(kind, node.identity, node.identity.namespace)
        if latest is None:
            self._apply(self.graph.virtual_delete(node.identity))
            return
        if node.deleting_dependents:
            if ORPHAN_FINALIZER not in latest.metadata.finalizers:  # else: orphaning first
                await self._process_deleting_dependents(node)
            return
        if latest.metadata.deletion_timestamp:
            return  # already on its way (the graph has not seen it yet): no second delete
        refs = latest.metadata.owner_references
        if not refs:
            return
        try:
            classified = await self.classify(node.identity, refs)
        except NamespacedOwnerOfClusterScoped:
            return  # recorded; retrying cannot help
        dependents = [self.graph.get(d) for d in sorted(node.dependents)]
        decision = decide(
            classified, has_dependents=bool(node.dependents),
            dependent_deleting_dependents=any(d is not None and d.deleting_dependents
                                              for d in dependents),
            finalizers=latest.metadata.finalizers)
        self.log.debug("attempt to delete", item=str(node.identity), decision=decision.action,
                       policy=decision.policy, solid=len(classified.solid),
                       dangling=len(classified.dangling), waiting=len(classified.waiting))
        if decision.action == REMOVE_REFS:
            await self._remove_owner_refs(kind, node.identity, set(decision.remove_uids))
        elif decision.action == DELETE:
            if decision.unblock:
                latest = await self._unblock_owner_refs(kind, latest)
                if latest is None:
                    self._apply(self.graph.virtual_delete(node.identity))
                    return
            await self._delete(kind, node.identity, latest, decision.policy)

    async def classify(self, item: Identity, refs: Iterable[Any]) -> Classified:
        """solid / dangling / waiting, each owner checked with a live GET
        (the absent-owner cache spares repeated GETs of one deleted owner)."""
        solid: list[Ref] = []
        dangling: list[Ref] = []
        waiting: list[Ref] = []
        for raw in refs:
            ref = Ref.of(raw)
            owner = await self._owner_of(item, ref)
            if owner is None:
                dangling.append(ref)
            elif (owner.metadata.deletion_timestamp
                  and FOREGROUND_FINALIZER in owner.metadata.finalizers
                  and ORPHAN_FINALIZER not in owner.metadata.finalizers):
                waiting.append(ref)
            else:
                solid.append(ref)
        return Classified(tuple(solid), tuple(dangling), tuple(waiting))

    async def _owner_of(self, item: Identity, ref: Ref) -> Message | None:
        """The live owner `ref` names, or None when it is absent (dangling)."""
        kind = _kind_of(ref.api_version, ref.kind)
        if kind is None:
            # Not served: never a reason to delete (Kubernetes retries the lookup).
            raise errors.NotFound(f'no matches for kind "{ref.kind}" in version '
                                  f'"{ref.api_version}"')
        if kind.namespaced and not item.namespace:
            self._report_invalid_namespace(item, ref)
            raise NamespacedOwnerOfClusterScoped(f"{item} names a namespaced owner")
        namespace = item.namespace if kind.namespaced else ""
        key = Identity(ref.api_version, ref.kind, namespace, ref.name, ref.uid)
        if key in self.graph.absent:
            return None
        owner = await self._get_live(kind, key, namespace)
        if owner is None:
            self.graph.absent.add(key)
        return owner

    async def _get_live(self, kind: Kind, identity: Identity, namespace: str) -> Message | None:
        """The object under identity's name, or None if absent or another uid."""
        try:
            obj = await self.client.get(kind.resource, identity.name,
                                        namespace if kind.namespaced else "")
        except errors.NotFound:
            return None
        return obj if obj.metadata.uid == identity.uid else None

    async def _process_deleting_dependents(self, node: Node) -> None:
        blocking = self.graph.blocking_dependents(node)
        if not blocking:
            self.log.info("no blocking dependents left; removing the finalizer",
                          item=str(node.identity), finalizer=FOREGROUND_FINALIZER)
            await self.remove_finalizer(node.identity, FOREGROUND_FINALIZER)
            return
        for dep in blocking:
            if not dep.deleting_dependents:
                self.enqueue(DELETE_KEY + dep.uid)

    async def _delete(self, kind: Kind, identity: Identity, latest: Message, policy: str) -> None:
        self.log.info("deleting", item=str(identity), propagation=policy)
        try:
            await self.client.delete(kind.resource, identity.name,
                                     identity.namespace if kind.namespaced else "",
                                     propagation_policy=policy, uid=identity.uid,
                                     resource_version=latest.metadata.resource_version)
        except errors.NotFound:
            self._apply(self.graph.virtual_delete(identity))

    # ------------------------------------------------------------ attemptToOrphan

    async def attempt_orphan(self, uid: str) -> None:
        owner = self.graph.get(uid)
        if owner is None:
            return
        dependents = [d for d in (self.graph.get(u) for u in sorted(owner.dependents))
                      if d is not None]
        for start in range(0, len(dependents), ORPHAN_PARALLEL_MAX):
            batch = dependents[start:start + ORPHAN_PARALLEL_MAX]
            results = await asyncio.gather(
                *(self._orphan_one(d.identity, uid) for d in batch), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
        await self.remove_finalizer(owner.identity, ORPHAN_FINALIZER)
        # Deleted in the foreground as well: that finalizer can go now.
        self.enqueue(DELETE_KEY + uid)

    async def _orphan_one(self, dependent: Identity, owner_uid: str) -> None:
        kind = _kind_of(dependent.api_version, dependent.kind)
        if kind is not None:
            await self._remove_owner_refs(kind, dependent, {owner_uid})

    # ------------------------------------------------------------ conditioned writes

    async def _remove_owner_refs(self, kind: Kind, identity: Identity, uids: set[str]) -> None:
        """Drop the ownerReferences to `uids` from the live object (read, change,
        write with its resourceVersion; Conflict: read again)."""
        def change(obj: Message) -> bool:
            keep = [r for r in obj.metadata.owner_references if r.uid not in uids]
            if len(keep) == len(obj.metadata.owner_references):
                return False
            kept = [copy(r) for r in keep]
            del obj.metadata.owner_references[:]
            obj.metadata.owner_references.extend(kept)
            return True
        await self._read_modify_write(kind, identity, change)

    async def _unblock_owner_refs(self, kind: Kind, latest: Message) -> Message | None:
        """Make every ownerReference of `latest` non-blocking (Kubernetes'
        unblockOwnerReferences, to break a cycle of foreground owners)."""
        def change(obj: Message) -> bool:
            changed = False
            for ref in obj.metadata.owner_references:
                if ref.block_owner_deletion:
                    ref.block_owner_deletion = False
                    changed = True
            return changed
        identity = Observed.of(kind, latest).identity
        return await self._read_modify_write(kind, identity, change)

    async def remove_finalizer(self, identity: Identity, finalizer: str) -> None:
        """Remove `finalizer` from the live object, conditioned on its resourceVersion."""
        def change(obj: Message) -> bool:
            if finalizer not in obj.metadata.finalizers:
                return False
            kept = [f for f in obj.metadata.finalizers if f != finalizer]
            del obj.metadata.finalizers[:]
            obj.metadata.finalizers.extend(kept)
            return True
        kind = _kind_of(identity.api_version, identity.kind)
        if kind is None:
            return
        await self._read_modify_write(kind, identity, change)

    async def _read_modify_write(self, kind: Kind, identity: Identity,
                                 change: Any) -> Message | None:
        """GET, `change(obj)` in place (False: nothing to do), update with the
        resourceVersion read. The object after the write (or as read); None
        when it is gone or another uid holds its name."""
        namespace = identity.namespace if kind.namespaced else ""
        for attempt in range(UPDATE_RETRIES):
            current = await self._get_live(kind, identity, namespace)
            if current is None:
                return None
            new = copy(current)
            if not change(new):
                return current
            try:
                return await self.client.update(new)
            except errors.NotFound:
                return None
            except errors.Conflict:
                if attempt == UPDATE_RETRIES - 1:
                    raise
        return None


def _kind_of(api_version: str, kind: str) -> Kind | None:
    """The served kind a reference names; another version of the same group
    and kind resolves to the served one, as Kubernetes' RESTMapper does."""
    try:
        return REGISTRY.by_gvk(api_version, kind)
    except errors.ApiError:
        group = _group(api_version)
        return next((k for k in REGISTRY.kinds if k.kind == kind and k.group == group), None)


def _stub(identity: Identity) -> Message:
    """An object carrying only `identity`, for an event about it."""
    kind = REGISTRY.by_gvk(identity.api_version, identity.kind)
    obj = kind.message()
    obj.api_version, obj.kind = kind.api_version, kind.kind
    obj.metadata.namespace = identity.namespace
    obj.metadata.name = identity.name
    obj.metadata.uid = identity.uid
    return obj
