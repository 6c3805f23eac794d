"""The generic registry: Kubernetes object semantics on top of a Store.

One class serves every kind in a kinds Registry; what a kind does
differently lives in its strategy (apiserver.strategy), whose hooks are
called here in a fixed order. The registry owns the generic write rules:
uid/creationTimestamp/generateName on create, validation with field paths,
status written only through update_status, preconditions (metadata.uid of
the request and the resourceVersion it carries, or a delete's
preconditions) checked against the stored object and refused with
kube-apiserver's Conflict, optimistic concurrency on resourceVersion, merge,
JSON and strategic patches, finalizers and deletionTimestamp, and a size limit on what is
stored. A strategy that hands out cluster-wide values (a Service's ClusterIP
and NodePorts) has its keys created and released in the object's own etcd
transaction; a value lost to a concurrent writer is planned again (bounded). Reads of single objects and pages go to the store; watches go to
the watch caches.

Validating admission (`validating_admission`; today ResourceQuota,
apiserver.quota_admission) runs after a strategy's validation, just before
the write of a create or a main-resource update; it may refuse the object or
write elsewhere first (a quota's status).

A stored value that does not decode is reported, never fatal: Get, Update,
Patch and Delete of it answer kube-apiserver's InternalError naming the key;
a List skips it (logged once per key); a Delete with
`ignore_store_read_error` removes it. Every retry loop here is bounded.
"""
from __future__ import annotations

import base64
import binascii
import json
import random
import time
import uuid
from typing import Any, Callable

import structlog
from google.protobuf.message import Message

from apiserver import storage, stored
from apiserver.quota_admission import RESOURCE_QUOTAS, QuotaAdmission
from apiserver.strategy import Strategy, generated_name, now_rfc3339, strategies
from apiserver.watchcache import WatchCache
from kubemu.api import codec, errors, jsonpatch, limits
from kubemu.api.kinds import REGISTRY, Kind, Registry

log = structlog.get_logger()

DEFAULT_PAGE = 500  # a List without a limit gets pages of this size, with continue tokens
MAX_PAGE = 10_000  # the largest page a client may ask for
MAX_SCAN_RANGES = 50  # store ranges one filtered List may read before returning a partial page
UPDATE_RETRIES = 10  # for writes without a client-given resourceVersion
UNSAFE_DELETE_OPTION = "ignoreStoreReadErrorWithClusterBreakingPotential"

Predicate = Callable[[Message], bool]
Change = Callable[[Message, float], None]


def copy_of(obj: Message) -> Message:
    out = type(obj)()
    out.CopyFrom(obj)
    return out


def _apply_patch(kind: Kind, doc: dict[str, Any], patch: Any, patch_type: str) -> Any:
    """`doc` patched; a patch that does not apply is the client's error (BadRequest)."""
    try:
        return jsonpatch.apply_patch(doc, patch, patch_type, kind=kind.kind)
    except ValueError as err:
        raise errors.BadRequest(str(err)) from None


ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"


def gc_finalizers(finalizers: list[str], policy: str, default_policy: str) -> list[str] | None:
    """The finalizers a deletion leaves for the garbage collector (Kubernetes'
    deletionFinalizersForGarbageCollection), or None when they stay as they
    are. The request's policy decides; without one, an `orphan` or
    `foregroundDeletion` finalizer already set does; else the kind's default.
    """
    if policy:
        orphan, foreground = policy == "Orphan", policy == "Foreground"
    else:
        orphan, foreground = default_policy == "Orphan", False
        for name in finalizers:
            if name in (ORPHAN_FINALIZER, FOREGROUND_FINALIZER):
                orphan, foreground = name == ORPHAN_FINALIZER, name == FOREGROUND_FINALIZER
                break
    kept = [f for f in finalizers if f not in (ORPHAN_FINALIZER, FOREGROUND_FINALIZER)]
    wanted = kept + [ORPHAN_FINALIZER] * orphan + [FOREGROUND_FINALIZER] * foreground
    return None if set(wanted) == set(finalizers) else wanted


def encode_continue(rv: int, next_key: bytes) -> str:
    raw = json.dumps({"rv": rv, "start": base64.b64encode(next_key).decode()})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_continue(token: str, prefix: bytes) -> tuple[int, bytes]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        rv, start = int(data["rv"]), base64.b64decode(data["start"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise errors.BadRequest("continue key is not valid: malformed token") from None
    if not start.startswith(prefix) or rv <= 0:
        raise errors.BadRequest("continue key is not valid: it does not belong to this list")
    return rv, start


class ObjectRegistry:
    def __init__(self, store: storage.Store, caches: dict[str, WatchCache], *,
                 registry: Registry = REGISTRY,
                 kind_strategies: dict[Kind, Strategy] | None = None,
                 rng: random.Random | None = None,
                 clock: Callable[[], float] = time.time,
                 default_toleration_s: int = 300,
                 corrupt_log: stored.CorruptLog | None = None,
                 store_request_bytes_max: int = limits.STORE_REQUEST_BYTES_MAX,
                 leases: storage.LeaseManager | None = None):
        self.store = store
        # Leases for the kinds whose strategy has a TTL (Events).
        self.leases = leases or storage.LeaseManager(store)
        self.caches = caches
        self.registry = registry
        self.strategies = (kind_strategies if kind_strategies is not None
                           else strategies(registry, default_toleration_s=default_toleration_s))
        self.rng = rng or random.Random()
        self.clock = clock
        self.corrupt_log = corrupt_log or stored.CorruptLog()
        self.store_request_bytes_max = store_request_bytes_max
        # NamespaceLifecycle admission: objects are created only in an open namespace.
        self._namespaces = registry.by_resource("namespaces")
        # Validating admission, run after validation just before an object's
        # write (create, and main-resource update): ResourceQuota.
        self.validating_admission = ([QuotaAdmission(self)] if any(
            k.resource == RESOURCE_QUOTAS for k in registry.kinds) else [])

    # ------------------------------------------------------------ helpers

    def strategy(self, kind: Kind) -> Strategy:
        found = self.strategies.get(kind)
        return found if found is not None else Strategy(kind)

    def _key(self, kind: Kind, namespace: str, name: str) -> bytes:
        return storage.object_key(kind.resource, namespace if kind.namespaced else "", name)

    def _read(self, kind: Kind, kv: storage.KeyValue) -> Message:
        """The object in `kv`; a corrupt value is kube-apiserver's InternalError."""
        try:
            return stored.decode(kind, kv)
        except stored.CorruptObject as err:
            self.corrupt_log.report(err, "read")
            raise err.api_error() from None

    def _encode(self, kind: Kind, obj: Message, key: bytes) -> bytes:
        """The stored form of `obj`, refused (413) if the store would refuse to
        write it: the size given counts the key and the transaction around it."""
        encoded = stored.encode(kind, obj)
        size_b = len(encoded) + 2 * len(key) + limits.STORE_TXN_OVERHEAD_BYTES
        if size_b > self.store_request_bytes_max:
            raise errors.request_entity_too_large(
                f'{kind.qualified_resource} "{obj.metadata.name}" is {size_b} bytes when stored',
                self.store_request_bytes_max)
        return encoded

    def _namespace_of(self, kind: Kind, namespace: str) -> str:
        if not kind.namespaced:
            return ""
        if not namespace:
            raise errors.BadRequest(f"a namespace is required for {kind.resource}")
        return namespace

    async def _get_kv(self, kind: Kind, namespace: str, name: str) -> storage.KeyValue:
        kv = await self.store.get(self._key(kind, namespace, name))
        if kv is None:
            raise errors.not_found(kind.qualified_resource, name)
        return kv

    def _check_type(self, kind: Kind, obj: Message) -> None:
        if obj.DESCRIPTOR.full_name != kind.message.DESCRIPTOR.full_name:
            raise errors.BadRequest(
                f"the object is a {obj.DESCRIPTOR.name}, not a {kind.kind} ({kind.resource})")
        if obj.kind and obj.kind != kind.kind:
            raise errors.BadRequest(f'kind "{obj.kind}" does not match resource {kind.resource}')
        if obj.api_version and obj.api_version != kind.api_version:
            raise errors.BadRequest(
                f'no kind "{obj.kind or kind.kind}" is registered for version "{obj.api_version}"')

    @staticmethod
    def _raise_invalid(kind: Kind, obj: Message, problems: list[errors.FieldError]) -> None:
        if problems:
            raise errors.Invalid(kind.kind, obj.metadata.name or obj.metadata.generate_name,
                                 problems)

    @staticmethod
    def _check_preconditions(kind: Kind, kv: storage.KeyValue, current: Message, *,
                             uid: str = "", resource_version: str = "") -> None:
        """storage.Preconditions.Check: what the writer saw must still stand."""
        name, key = current.metadata.name, kv.key.decode()
        if uid and uid != current.metadata.uid:
            raise errors.precondition_failed(kind.qualified_resource, name, key, "UID", uid,
                                             current.metadata.uid)
        if resource_version and resource_version != str(kv.mod_revision):
            raise errors.precondition_failed(kind.qualified_resource, name, key,
                                             "ResourceVersion", resource_version,
                                             str(kv.mod_revision))

    async def _current_objects(self, resource: str) -> list[Message]:
        """Every object of `resource`, from its watch cache (as admission
        plugins read informers), else from the store (at most one page)."""
        cache = self.caches.get(resource)
        if cache is not None:
            return list(cache.objects.values())
        kind = self.registry.by_resource(resource)
        prefix = storage.prefix_key(resource, "")
        page = await self.store.range(prefix, storage.prefix_end(prefix), limit=MAX_PAGE)
        found = []
        for kv in page.kvs:
            try:
                found.append(stored.decode(kind, kv))
            except stored.CorruptObject as err:
                self.corrupt_log.report(err, "list")
        return found

    async def _check_namespace_open(self, namespace: str) -> None:
        cache = self.caches.get(self._namespaces.resource)
        ns = cache.objects.get(namespace) if cache is not None else None
        if ns is None:
            kv = await self.store.get(self._key(self._namespaces, "", namespace))
            if kv is None:
                raise errors.not_found(self._namespaces.resource, namespace)
            ns = self._read(self._namespaces, kv)
        if ns.metadata.deletion_timestamp:
            raise errors.namespace_terminating(namespace)

    # ------------------------------------------------------------ reads

    async def get(self, kind: Kind, namespace: str, name: str) -> Message:
        namespace = self._namespace_of(kind, namespace)
        return self._read(kind, await self._get_kv(kind, namespace, name))

    async def list(self, kind: Kind, namespace: str, predicate: Predicate | None,
                   limit: int, continue_token: str) -> tuple[list[Message], int, str, int]:
        """One page: (items, revision, continue token, remaining count or -1).

        Every page of a list reads the store at the first page's revision.
        """
        prefix = storage.prefix_key(kind.resource, namespace if kind.namespaced else "")
        end = storage.prefix_end(prefix)
        page_max = min(limit, MAX_PAGE) if limit > 0 else DEFAULT_PAGE
        revision, start = (decode_continue(continue_token, prefix) if continue_token
                           else (0, prefix))
        items: list[Message] = []
        remaining = -1
        for _ in range(MAX_SCAN_RANGES):
            want = page_max - len(items)
            page = await self.store.range(start, end, limit=want if predicate is None else page_max,
                                          revision=revision)
            revision = revision or page.revision
            consumed = skipped = 0
            for kv in page.kvs:
                consumed += 1
                try:
                    obj = stored.decode(kind, kv)
                except stored.CorruptObject as err:
                    self.corrupt_log.report(err, "list")
                    skipped += 1
                    continue
                if predicate is None or predicate(obj):
                    items.append(obj)
                    if len(items) == page_max:
                        break
            more = page.more or consumed < len(page.kvs)
            if not more:
                return items, revision, "", 0 if predicate is None else -1
            start = page.kvs[consumed - 1].key + b"\0"
            if predicate is None and not skipped:
                remaining = page.count - consumed
            if len(items) == page_max:
                break
        return items, revision, encode_continue(revision, start), remaining

    # ------------------------------------------------------------ writes

    async def create(self, kind: Kind, namespace: str, obj: Message, *,
                     dry_run: bool = False) -> Message:
        self._check_type(kind, obj)
        strategy = self.strategy(kind)
        obj = copy_of(obj)
        meta = obj.metadata
        if meta.resource_version:
            raise errors.Invalid(kind.kind, meta.name, [errors.invalid(
                "metadata.resourceVersion", meta.resource_version,
                "must be empty on create")])
        if kind.namespaced:
            if namespace and meta.namespace and namespace != meta.namespace:
                raise errors.BadRequest(
                    "the namespace of the provided object does not match the namespace "
                    "sent on the request")
            meta.namespace = meta.namespace or namespace or "default"
            await self._check_namespace_open(meta.namespace)
        else:
            meta.namespace = ""
        if not meta.name and meta.generate_name:
            meta.name = generated_name(meta.generate_name, self.rng)
        meta.uid = str(uuid.uuid4())
        meta.creation_timestamp = now_rfc3339(self.clock())
        meta.ClearField("deletion_timestamp")
        meta.ClearField("deletion_grace_period_seconds")
        obj.api_version, obj.kind = kind.api_version, kind.kind
        strategy.default(obj)
        if strategy.admission_reads:
            strategy.admit(obj, {resource: await self._current_objects(resource)
                                 for resource in strategy.admission_reads})
        strategy.prepare_for_create(obj)
        self._raise_invalid(kind, obj, strategy.validate(obj))
        strategy.canonicalize(obj)
        for plugin in self.validating_admission:
            await plugin.admit(kind, obj, None, dry_run=dry_run)
        key = self._key(kind, meta.namespace, meta.name)
        # An allocation lost to a concurrent writer is planned again (bounded).
        for _ in range(UPDATE_RETRIES):
            attempt = copy_of(obj) if strategy.reserves else obj
            reservation = (await strategy.reserve(self.store, attempt, None)
                           if strategy.reserves else storage.Reservation())
            encoded = self._encode(kind, attempt, key)
            if dry_run:
                if await self.store.get(key) is not None:
                    raise errors.already_exists(kind.qualified_resource, meta.name)
                return attempt
            rev = await self._write(key, encoded, 0, reservation, ttl_s=strategy.ttl_s)
            if rev is not None:
                attempt.metadata.resource_version = str(rev)
                return attempt
            if not reservation.create or await self.store.get(key) is not None:
                raise errors.already_exists(kind.qualified_resource, meta.name)
        raise errors.conflict(kind.qualified_resource, meta.name, "too many concurrent writers")

    async def _lease(self, ttl_s: int) -> int:
        """The etcd lease a write of a kind with a TTL goes under (0: none)."""
        return await self.leases.get(ttl_s) if ttl_s > 0 else 0

    async def _write(self, key: bytes, encoded: bytes, mod_revision: int,
                     reservation: storage.Reservation, *, ttl_s: int = 0) -> int | None:
        """Put `encoded` at `key` if its mod_revision is `mod_revision`, with
        the reservation's keys created (each must be absent; they hold `key`)
        and released, in one transaction; the new revision or None. With
        `ttl_s`, the key expires that long after this write."""
        lease = await self._lease(ttl_s)
        if not reservation:
            return await self.store.put_if(key, encoded, mod_revision, lease=lease)
        return await self.store.txn(
            [(key, mod_revision)] + [(k, 0) for k in reservation.create],
            [(key, encoded)] + [(k, key) for k in reservation.create],
            reservation.release, lease=lease)

    async def _remove(self, kind: Kind, kv: storage.KeyValue, obj: Message) -> int | None:
        """Delete the stored `kv` (decoded: `obj`) if unchanged, releasing what
        it holds in the same transaction; the revision or None."""
        strategy = self.strategy(kind)
        reservation = strategy.release(obj) if strategy.reserves else storage.Reservation()
        if not reservation:
            return await self.store.delete_if(kv.key, kv.mod_revision)
        return await self.store.txn([(kv.key, kv.mod_revision)], [],
                                    [kv.key] + reservation.release)

    async def update(self, kind: Kind, obj: Message, *, status: bool = False,
                     finalize: bool = False, dry_run: bool = False) -> Message:
        """Replace the object (status: only its status) with `obj`.

        `obj.metadata.uid`, when set, and `obj.metadata.resourceVersion`, when
        set, must match the stored object's (Conflict otherwise).
        """
        self._check_type(kind, obj)
        if status and not kind.has_status:
            raise errors.NotFound(f"{kind.resource} has no status subresource")
        strategy = self.strategy(kind)
        namespace = self._namespace_of(kind, obj.metadata.namespace)
        name = obj.metadata.name
        if not name:
            raise errors.Invalid(kind.kind, "", [errors.required("metadata.name")])
        wanted_rv, wanted_uid = obj.metadata.resource_version, obj.metadata.uid
        key = self._key(kind, namespace, name)
        for _ in range(UPDATE_RETRIES):
            kv = await self.store.get(key)
            if kv is None:
                if status or finalize or not strategy.allow_create_on_update:
                    raise errors.not_found(kind.qualified_resource, name)
                if wanted_uid:
                    raise errors.precondition_failed(kind.qualified_resource, name,
                                                     key.decode(), "UID", wanted_uid, "")
                fresh = copy_of(obj)
                fresh.metadata.resource_version = ""
                try:
                    return await self.create(kind, namespace, fresh, dry_run=dry_run)
                except errors.AlreadyExists:
                    continue  # created meanwhile: update it
            current = self._read(kind, kv)
            self._check_preconditions(kind, kv, current, uid=wanted_uid)
            if wanted_rv and wanted_rv != str(kv.mod_revision):
                raise errors.conflict(kind.qualified_resource, name)
            result = await self._write_update(kind, kv, current, obj, status=status,
                                              finalize=finalize, dry_run=dry_run)
            if result is not None:
                return result
            if wanted_rv:
                raise errors.conflict(kind.qualified_resource, name)
        raise errors.conflict(kind.qualified_resource, name, "too many concurrent writers")

    async def _write_update(self, kind: Kind, kv: storage.KeyValue, old: Message,
                            new: Message, *, status: bool, finalize: bool = False,
                            dry_run: bool = False) -> Message | None:
        """Write `new` over the stored `kv` (decoded: `old`); None when someone
        wrote in between. `status` and `finalize` write only that subresource."""
        strategy = self.strategy(kind)
        if finalize:
            obj = strategy.prepare_for_finalize(new, old)
        elif status:
            obj = strategy.prepare_for_status_update(new, old)
        else:
            obj = copy_of(new)
            obj.api_version, obj.kind = kind.api_version, kind.kind
            new_finalizers = set(obj.metadata.finalizers) - set(old.metadata.finalizers)
            if old.metadata.deletion_timestamp and new_finalizers:
                raise errors.Invalid(kind.kind, old.metadata.name, [errors.forbidden(
                    "metadata.finalizers",
                    "no new finalizers can be added if the object is being deleted, found "
                    f"new finalizers {sorted(new_finalizers)}")])
            strategy.prepare_for_update(obj, old)
            strategy.default(obj)
            if strategy.admits_updates:
                strategy.admit_update(obj, old, {
                    resource: await self._current_objects(resource)
                    for resource in strategy.admission_reads})
        obj.metadata.resource_version = old.metadata.resource_version
        self._raise_invalid(kind, obj, strategy.validate_status_update(obj, old) if status
                            else strategy.validate_update(obj, old))
        if not status and not finalize:
            strategy.canonicalize(obj)
        if strategy.deletion_complete(obj):
            if dry_run:
                return obj
            rev = await self._remove(kind, kv, old)
            return None if rev is None else obj
        if not status and not finalize:
            for plugin in self.validating_admission:
                await plugin.admit(kind, obj, old, dry_run=dry_run)
        reserves = strategy.reserves and not status and not finalize
        for _ in range(UPDATE_RETRIES):
            attempt = copy_of(obj) if reserves else obj
            reservation = (await strategy.reserve(self.store, attempt, old) if reserves
                           else storage.Reservation())
            encoded = self._encode(kind, attempt, kv.key)
            if dry_run:
                return attempt
            if encoded == kv.value:
                return old  # nothing changed: no write, same resourceVersion
            rev = await self._write(kv.key, encoded, kv.mod_revision, reservation,
                                    ttl_s=strategy.ttl_s)
            if rev is not None:
                attempt.metadata.resource_version = str(rev)
                return attempt
            # Lost either the object (the caller reads it again) or an
            # allocation to a concurrent writer (planned again here).
            now = await self.store.get(kv.key) if reservation.create else None
            if now is None or now.mod_revision != kv.mod_revision:
                return None
        raise errors.conflict(kind.qualified_resource, old.metadata.name,
                              "too many concurrent writers")

    async def patch(self, kind: Kind, namespace: str, name: str, patch_text: str, *,
                    status: bool = False, dry_run: bool = False,
                    patch_type: str = "merge") -> Message:
        """Apply a patch: `merge` (RFC 7386), `json` (RFC 6902) or `strategic`
        (kubemu.api.strategicpatch). A `metadata.resourceVersion` in a merge or
        strategic patch, or one a JSON patch writes, is a precondition
        (Conflict when the stored object differs); a different `metadata.uid`
        is refused as an immutable field (Invalid), as kube-apiserver refuses it."""
        namespace = self._namespace_of(kind, namespace)
        try:
            patch = json.loads(patch_text)
        except ValueError as err:
            raise errors.BadRequest(f"the patch is not valid JSON: {err}") from None
        if patch_type == "json":
            if not isinstance(patch, list):
                raise errors.BadRequest("a JSON patch must be a list of operations")
            meta_patch: dict = {}
        else:
            if not isinstance(patch, dict):
                raise errors.BadRequest(f"a {patch_type} patch must be a JSON object")
            meta_patch = patch.get("metadata") if isinstance(patch.get("metadata"), dict) else {}
        wanted_rv = str(meta_patch.get("resourceVersion") or "")
        wanted_uid = str(meta_patch.get("uid") or "")
        for _ in range(UPDATE_RETRIES):
            kv = await self._get_kv(kind, namespace, name)
            old = self._read(kind, kv)
            self._check_preconditions(kind, kv, old)
            merged = _apply_patch(kind, codec.to_dict(old), patch, patch_type)
            if patch_type == "json":
                meta = merged.get("metadata") if isinstance(merged, dict) else None
                meta = meta if isinstance(meta, dict) else {}
                written_rv = str(meta.get("resourceVersion") or "")
                wanted_rv = written_rv if written_rv != str(kv.mod_revision) else ""
                wanted_uid = str(meta.get("uid") or "")
            if wanted_uid and wanted_uid != old.metadata.uid:
                # Not a precondition for a patch (kube-apiserver's patch handler
                # has none): the patched uid fails validation as immutable.
                raise errors.Invalid(kind.kind, name, [errors.invalid(
                    "metadata.uid", wanted_uid, "field is immutable")])
            if wanted_rv and wanted_rv != str(kv.mod_revision):
                raise errors.conflict(kind.qualified_resource, name)
            if not isinstance(merged, dict):
                raise errors.BadRequest("the patched object is not a JSON object")
            new = codec.from_dict(kind.message, merged, kind=kind.kind, name=name)
            new.metadata.resource_version = str(kv.mod_revision)
            if new.metadata.name != name or (kind.namespaced and new.metadata.namespace != namespace):
                raise errors.BadRequest("a patch may not change metadata.name or metadata.namespace")
            result = await self._write_update(kind, kv, old, new, status=status,
                                              dry_run=dry_run)
            if result is not None:
                return result
            if wanted_rv:
                raise errors.conflict(kind.qualified_resource, name)
        raise errors.conflict(kind.qualified_resource, name, "too many concurrent writers")

    async def apply(self, kind: Kind, namespace: str, name: str, change: Change, *,
                    uid: str = "") -> Message:
        """Read, `change(obj, now_s)` in place, write back; retried on concurrent
        writes. For subresources whose rules are the change itself (binding):
        no strategy hook and no validation run, as in Kubernetes."""
        namespace = self._namespace_of(kind, namespace)
        for _ in range(UPDATE_RETRIES):
            kv = await self._get_kv(kind, namespace, name)
            obj = self._read(kind, kv)
            self._check_preconditions(kind, kv, obj, uid=uid)
            change(obj, self.clock())
            rev = await self.store.put_if(kv.key, self._encode(kind, obj, kv.key),
                                          kv.mod_revision,
                                          lease=await self._lease(self.strategy(kind).ttl_s))
            if rev is not None:
                obj.metadata.resource_version = str(rev)
                return obj
        raise errors.conflict(kind.qualified_resource, name, "too many concurrent writers")

    async def delete(self, kind: Kind, namespace: str, name: str, *,
                     grace_period_s: int | None, propagation_policy: str,
                     uid: str = "", resource_version: str = "",
                     dry_run: bool = False,
                     ignore_store_read_error: bool = False) -> tuple[Message | None, bool]:
        """Delete, or mark for deletion: (the object after the call, deleted).

        With `ignore_store_read_error`, an object whose stored value does not
        decode is removed at once (no preconditions, finalizers or grace); the
        object returned is then None.
        """
        namespace = self._namespace_of(kind, namespace)
        if ignore_store_read_error:
            self._check_unsafe_delete_options(kind, name, grace_period_s, propagation_policy,
                                              uid, resource_version, dry_run)
            return await self._delete_corrupt(kind, namespace, name)
        if propagation_policy not in ("", "Background", "Foreground", "Orphan"):
            raise errors.BadRequest(
                f'propagationPolicy: Unsupported value: "{propagation_policy}": supported values: '
                '"Background", "Foreground", "Orphan"')
        if grace_period_s is not None and grace_period_s < 0:
            raise errors.BadRequest("gracePeriodSeconds: Invalid value: must be >= 0")
        strategy = self.strategy(kind)
        strategy.check_delete(name)
        for _ in range(UPDATE_RETRIES):
            kv = await self._get_kv(kind, namespace, name)
            old = self._read(kind, kv)
            self._check_preconditions(kind, kv, old, uid=uid, resource_version=resource_version)
            if dry_run:
                return old, False
            obj = copy_of(old)
            meta = obj.metadata
            pending = strategy.check_graceful_delete(obj, grace_period_s, self.clock())
            # A graceful deletion already under way and left as it was is
            # kube-apiserver's errAlreadyDeleting: nothing else changes either.
            if not (pending and meta == old.metadata):
                finalizers = gc_finalizers(list(meta.finalizers), propagation_policy,
                                           strategy.default_gc_policy)
                if finalizers is not None:
                    del meta.finalizers[:]
                    meta.finalizers.extend(finalizers)
            if not pending:
                pending = strategy.before_delete(obj) or bool(meta.finalizers)
                if pending and not meta.deletion_timestamp:
                    meta.deletion_timestamp = now_rfc3339(self.clock())
                    meta.deletion_grace_period_seconds = 0
            if pending:
                encoded = self._encode(kind, obj, kv.key)
                if encoded == kv.value:
                    return old, False
                rev = await self.store.put_if(kv.key, encoded, kv.mod_revision,
                                              lease=await self._lease(strategy.ttl_s))
                if rev is not None:
                    meta.resource_version = str(rev)
                    return obj, False
                continue
            rev = await self._remove(kind, kv, old)
            if rev is not None:
                return old, True
        raise errors.conflict(kind.qualified_resource, name, "too many concurrent writers")

    @staticmethod
    def _check_unsafe_delete_options(kind: Kind, name: str, grace_period_s: int | None,
                                     propagation_policy: str, uid: str,
                                     resource_version: str, dry_run: bool) -> None:
        """Kubernetes' ValidateDeleteOptions for an unsafe delete: nothing else set."""
        why = f"can not be set together with {UNSAFE_DELETE_OPTION}"
        problems = []
        if dry_run:
            problems.append(errors.invalid("dryRun", "All", why))
        if grace_period_s is not None:
            problems.append(errors.invalid("gracePeriodSeconds", grace_period_s, why))
        if uid or resource_version:
            problems.append(errors.forbidden("preconditions", why))
        if propagation_policy:
            problems.append(errors.invalid("propagationPolicy", propagation_policy, why))
        if problems:
            raise errors.Invalid(kind.qualified_resource, name, problems)

    async def _delete_corrupt(self, kind: Kind, namespace: str,
                              name: str) -> tuple[Message | None, bool]:
        """Remove an undecodable object from the store (Kubernetes'
        corruptObjectDeleter); refused for an object that decodes."""
        for _ in range(UPDATE_RETRIES):
            kv = await self._get_kv(kind, namespace, name)
            try:
                stored.decode(kind, kv)
            except stored.CorruptObject:
                pass
            else:
                raise errors.Invalid(kind.qualified_resource, name, [errors.invalid(
                    UNSAFE_DELETE_OPTION, True, "is exclusively used to delete corrupt "
                    "object(s), try again by removing this option")])
            if await self.store.delete_if(kv.key, kv.mod_revision) is not None:
                log.warning("deleted an undecodable object (unsafe delete)",
                            key=kv.key.decode(errors="replace"), revision=kv.mod_revision)
                return None, True
        raise errors.conflict(kind.qualified_resource, name, "too many concurrent writers")
