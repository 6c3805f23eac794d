"""The generic registry: Kubernetes object semantics on top of the store.

One class serves every kind in kinds.REGISTRY. It owns the write rules that
make the store behave like a Kubernetes apiserver: uid/creationTimestamp/
generateName on create, defaulting and validation with field paths,
generation bumped on spec changes only, status written only through
update_status, optimistic concurrency on resourceVersion, merge patch,
finalizers and deletionTimestamp, graceful pod deletion and the binding
subresource. Reads of single objects and pages go to etcd; watches go to the
watch caches. Every retry loop here is bounded.
"""
from __future__ import annotations

import base64
import binascii
import json
import random
import time
import uuid
from typing import Any, Callable

from google.protobuf.message import Message

from apiserver import storage, strategy
from apiserver.watchcache import WatchCache
from kubemu.api import codec, defaults, errors, validation
from kubemu.api.kinds import REGISTRY, Kind, Registry

DEFAULT_PAGE = 500  # a List without a limit gets pages of this size, with continue tokens
MAX_PAGE = 10_000  # the largest page a client may ask for
MAX_SCAN_RANGES = 50  # etcd ranges one filtered List may read before returning a partial page
UPDATE_RETRIES = 10  # for writes without a client-given resourceVersion
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
TERMINAL_PHASES = ("Succeeded", "Failed")

Predicate = Callable[[Message], bool]


def copy_of(obj: Message) -> Message:
    out = type(obj)()
    out.CopyFrom(obj)
    return out


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


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
    def __init__(self, store: storage.EtcdStore, caches: dict[str, WatchCache], *,
                 registry: Registry = REGISTRY, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.time,
                 default_toleration_s: int = 300):
        self.default_toleration_s = default_toleration_s
        self.store = store
        self.caches = caches
        self.registry = registry
        self.rng = rng or random.Random()
        self.clock = clock

    # ------------------------------------------------------------ helpers

    def _key(self, kind: Kind, namespace: str, name: str) -> bytes:
        return storage.object_key(kind.resource, namespace if kind.namespaced else "", name)

    def _decode(self, kind: Kind, kv: storage.KeyValue) -> Message:
        obj = kind.message.FromString(kv.value)
        obj.metadata.resource_version = str(kv.mod_revision)
        return obj

    def _encode(self, kind: Kind, obj: Message) -> bytes:
        stored = copy_of(obj)
        stored.api_version, stored.kind = kind.api_version, kind.kind
        stored.metadata.resource_version = ""
        return stored.SerializeToString(deterministic=True)

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

    def _validate(self, kind: Kind, obj: Message, old: Message | None) -> None:
        problems = validation.validate(kind, obj, old)
        if problems:
            raise errors.Invalid(kind.kind, obj.metadata.name or obj.metadata.generate_name,
                                 problems)

    async def _check_namespace_open(self, namespace: str) -> None:
        ns_kind = self.registry.by_resource("namespaces")
        ns = self.caches["namespaces"].objects.get(namespace) if "namespaces" in self.caches else None
        if ns is None:
            kv = await self.store.get(self._key(ns_kind, "", namespace))
            if kv is None:
                raise errors.not_found("namespaces", namespace)
            ns = self._decode(ns_kind, kv)
        if ns.metadata.deletion_timestamp:
            raise errors.Forbidden(
                f"unable to create new content in namespace {namespace} because it is "
                "being terminated")

    # ------------------------------------------------------------ reads

    async def get(self, kind: Kind, namespace: str, name: str) -> Message:
        namespace = self._namespace_of(kind, namespace)
        return self._decode(kind, await self._get_kv(kind, namespace, name))

    async def list(self, kind: Kind, namespace: str, predicate: Predicate | None,
                   limit: int, continue_token: str) -> tuple[list[Message], int, str, int]:
        """One page: (items, revision, continue token, remaining count or -1)."""
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
            revision = page.revision
            consumed = 0
            for kv in page.kvs:
                consumed += 1
                obj = self._decode(kind, kv)
                if predicate is None or predicate(obj):
                    items.append(obj)
                    if len(items) == page_max:
                        break
            more = page.more or consumed < len(page.kvs)
            if not more:
                return items, revision, "", 0 if predicate is None else -1
            start = page.kvs[consumed - 1].key + b"\0"
            if predicate is None:
                remaining = page.count - consumed
            if len(items) == page_max:
                break
        return items, revision, encode_continue(revision, start), remaining

    # ------------------------------------------------------------ writes

    async def create(self, kind: Kind, namespace: str, obj: Message, *,
                     dry_run: bool = False) -> Message:
        self._check_type(kind, obj)
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
            meta.name = strategy.generated_name(meta.generate_name, self.rng)
        meta.uid = str(uuid.uuid4())
        meta.creation_timestamp = strategy.now_rfc3339(self.clock())
        meta.ClearField("deletion_timestamp")
        meta.ClearField("deletion_grace_period_seconds")
        obj.api_version, obj.kind = kind.api_version, kind.kind
        defaults.apply_defaults(kind, obj)
        if kind.kind == "Pod":  # DefaultTolerationSeconds admission
            defaults.add_default_tolerations(obj, self.default_toleration_s,
                                             self.default_toleration_s)
        if kind.kind == "Job" and not obj.spec.HasField("selector"):
            defaults.job_selector_defaults(obj, meta.uid)
        strategy.prepare_for_create(kind, obj)
        self._validate(kind, obj, None)
        key = self._key(kind, meta.namespace, meta.name)
        if dry_run:
            if await self.store.get(key) is not None:
                raise errors.already_exists(kind.qualified_resource, meta.name)
            return obj
        rev = await self.store.put_if(key, self._encode(kind, obj), 0)
        if rev is None:
            raise errors.already_exists(kind.qualified_resource, meta.name)
        meta.resource_version = str(rev)
        return obj

    async def update(self, kind: Kind, obj: Message, *, status: bool = False,
                     dry_run: bool = False) -> Message:
        self._check_type(kind, obj)
        if status and not kind.has_status:
            raise errors.NotFound(f"{kind.resource} has no status subresource")
        namespace = self._namespace_of(kind, obj.metadata.namespace)
        name = obj.metadata.name
        if not name:
            raise errors.Invalid(kind.kind, "", [errors.required("metadata.name")])
        wanted_rv = obj.metadata.resource_version
        for _ in range(UPDATE_RETRIES):
            kv = await self._get_kv(kind, namespace, name)
            if wanted_rv and wanted_rv != str(kv.mod_revision):
                raise errors.conflict(kind.qualified_resource, name)
            result = await self._write_update(kind, kv, obj, status=status, dry_run=dry_run)
            if result is not None:
                return result
            if wanted_rv:
                raise errors.conflict(kind.qualified_resource, name)
        raise errors.conflict(kind.qualified_resource, name, "too many concurrent writers")

    async def _write_update(self, kind: Kind, kv: storage.KeyValue, new: Message, *,
                            status: bool, dry_run: bool = False) -> Message | None:
        """Write `new` over the stored `kv`; None when someone wrote in between."""
        old = self._decode(kind, kv)
        if status:
            obj = strategy.prepare_for_status_update(kind, new, old)
        else:
            obj = copy_of(new)
            obj.api_version, obj.kind = kind.api_version, kind.kind
            new_finalizers = set(obj.metadata.finalizers) - set(old.metadata.finalizers)
            if old.metadata.deletion_timestamp and new_finalizers:
                raise errors.Invalid(kind.kind, old.metadata.name, [errors.forbidden(
                    "metadata.finalizers",
                    "no new finalizers can be added if the object is being deleted, found "
                    f"new finalizers {sorted(new_finalizers)}")])
            strategy.prepare_for_update(kind, obj, old)
            defaults.apply_defaults(kind, obj)
        obj.metadata.resource_version = old.metadata.resource_version
        self._validate(kind, obj, old)
        key = self._key(kind, old.metadata.namespace, old.metadata.name)
        if dry_run:
            return obj
        if strategy.deletion_complete(kind, obj):
            rev = await self.store.delete_if(key, kv.mod_revision)
            return None if rev is None else obj
        encoded = self._encode(kind, obj)
        if encoded == kv.value:
            return old  # nothing changed: no write, same resourceVersion
        rev = await self.store.put_if(key, encoded, kv.mod_revision)
        if rev is None:
            return None
        obj.metadata.resource_version = str(rev)
        return obj

    async def patch(self, kind: Kind, namespace: str, name: str, patch_text: str, *,
                    status: bool = False, dry_run: bool = False) -> Message:
        namespace = self._namespace_of(kind, namespace)
        try:
            patch = json.loads(patch_text)
        except ValueError as err:
            raise errors.BadRequest(f"the patch is not valid JSON: {err}") from None
        if not isinstance(patch, dict):
            raise errors.BadRequest("a merge patch must be a JSON object")
        meta_patch = patch.get("metadata") if isinstance(patch.get("metadata"), dict) else {}
        wanted_rv = str(meta_patch.get("resourceVersion") or "")
        for _ in range(UPDATE_RETRIES):
            kv = await self._get_kv(kind, namespace, name)
            if wanted_rv and wanted_rv != str(kv.mod_revision):
                raise errors.conflict(kind.qualified_resource, name)
            old = self._decode(kind, kv)
            merged = merge_patch(codec.to_dict(old), patch)
            new = codec.from_dict(kind.message, merged, kind=kind.kind, name=name)
            new.metadata.resource_version = str(kv.mod_revision)
            if new.metadata.name != name or (kind.namespaced and new.metadata.namespace != namespace):
                raise errors.BadRequest("a patch may not change metadata.name or metadata.namespace")
            result = await self._write_update(kind, kv, new, status=status, dry_run=dry_run)
            if result is not None:
                return result
            if wanted_rv:
                raise errors.conflict(kind.qualified_resource, name)
        raise errors.conflict(kind.qualified_resource, name, "too many concurrent writers")

    async def delete(self, kind: Kind, namespace: str, name: str, *,
                     grace_period_s: int | None, propagation_policy: str,
                     uid: str = "", resource_version: str = "",
                     dry_run: bool = False) -> tuple[Message, bool]:
        namespace = self._namespace_of(kind, namespace)
        if propagation_policy not in ("", "Background", "Foreground", "Orphan"):
            raise errors.BadRequest(
                f'propagationPolicy: Unsupported value: "{propagation_policy}": supported values: '
                '"Background", "Foreground", "Orphan"')
        if grace_period_s is not None and grace_period_s < 0:
            raise errors.BadRequest("gracePeriodSeconds: Invalid value: must be >= 0")
        if kind.kind == "Namespace" and name in PROTECTED_NAMESPACES:
            raise errors.Forbidden(f'namespaces "{name}" is forbidden: this namespace may not be deleted')
        for _ in range(UPDATE_RETRIES):
            kv = await self._get_kv(kind, namespace, name)
            old = self._decode(kind, kv)
            if uid and uid != old.metadata.uid:
                raise errors.conflict(kind.qualified_resource, name,
                                      f"Precondition failed: UID in precondition: {uid}, "
                                      f"UID in object meta: {old.metadata.uid}")
            if resource_version and resource_version != old.metadata.resource_version:
                raise errors.conflict(kind.qualified_resource, name,
                                      "Precondition failed: ResourceVersion in precondition: "
                                      f"{resource_version}, ResourceVersion in meta: "
                                      f"{old.metadata.resource_version}")
            if dry_run:
                return old, False
            obj = copy_of(old)
            meta = obj.metadata
            pending = self._graceful_pod(kind, obj, grace_period_s)
            if not pending:
                if propagation_policy == "Orphan" and "orphan" not in meta.finalizers:
                    meta.finalizers.append("orphan")
                if propagation_policy == "Foreground" and "foregroundDeletion" not in meta.finalizers:
                    meta.finalizers.append("foregroundDeletion")
                if kind.kind == "Namespace":
                    obj.status.phase = "Terminating"
                    pending = True
                pending = pending or bool(meta.finalizers)
                if pending and not meta.deletion_timestamp:
                    meta.deletion_timestamp = strategy.now_rfc3339(self.clock())
                    meta.deletion_grace_period_seconds = 0
            if pending:
                encoded = self._encode(kind, obj)
                if encoded == kv.value:
                    return old, False
                rev = await self.store.put_if(self._key(kind, namespace, name), encoded,
                                              kv.mod_revision)
                if rev is not None:
                    meta.resource_version = str(rev)
                    return obj, False
                continue
            rev = await self.store.delete_if(self._key(kind, namespace, name), kv.mod_revision)
            if rev is not None:
                return old, True
        raise errors.conflict(kind.qualified_resource, name, "too many concurrent writers")

    def _graceful_pod(self, kind: Kind, pod: Message, grace_period_s: int | None) -> bool:
        """Mark a bound pod for graceful deletion; True if deletion must wait for its node."""
        if kind.kind != "Pod":
            return False
        meta = pod.metadata
        if grace_period_s is None:
            grace_period_s = (pod.spec.termination_grace_period_seconds
                              if pod.spec.HasField("termination_grace_period_seconds") else 30)
        if not pod.spec.node_name or pod.status.phase in TERMINAL_PHASES:
            grace_period_s = 0
        if grace_period_s == 0:
            return False
        if meta.deletion_timestamp and meta.deletion_grace_period_seconds <= grace_period_s:
            return True  # already pending with an equal or shorter grace period
        meta.deletion_timestamp = strategy.now_rfc3339(self.clock() + grace_period_s)
        meta.deletion_grace_period_seconds = grace_period_s
        return True

    async def bind(self, namespace: str, name: str, node_name: str, uid: str) -> Message:
        kind = self.registry.by_resource("pods")
        if not node_name:
            raise errors.Invalid("Binding", name, [errors.required("target.name")])
        for _ in range(UPDATE_RETRIES):
            kv = await self._get_kv(kind, namespace, name)
            pod = self._decode(kind, kv)
            if uid and uid != pod.metadata.uid:
                raise errors.conflict("pods", name, f"Precondition failed: UID in precondition: "
                                      f"{uid}, UID in object meta: {pod.metadata.uid}")
            if pod.metadata.deletion_timestamp:
                raise errors.conflict("pods", name, f"pod {name} is being deleted, cannot be "
                                      "assigned to a host")
            if pod.spec.node_name:
                raise errors.conflict("pods", name, f"pod {name} is already assigned to node "
                                      f'"{pod.spec.node_name}"')
            pod.spec.node_name = node_name
            now = strategy.now_rfc3339(self.clock())
            for cond in pod.status.conditions:
                if cond.type == "PodScheduled":
                    cond.status, cond.reason, cond.message = "True", "", ""
                    cond.last_transition_time = now
                    break
            else:
                pod.status.conditions.add(type="PodScheduled", status="True",
                                          last_transition_time=now)
            rev = await self.store.put_if(kv.key, self._encode(kind, pod), kv.mod_revision)
            if rev is not None:
                pod.metadata.resource_version = str(rev)
                return pod
        raise errors.conflict("pods", name, "too many concurrent writers")
