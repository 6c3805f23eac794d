"""A kubemu.client.Client stand-in served by the apiserver's own ObjectRegistry on
the in-memory store, for CLI tests: real validation, defaulting, patches,
preconditions and deletion rules, no processes.

`MemClient.watch` yields the current objects, then every later change made
through any MemClient on the same registry (a version counter and an
asyncio.Condition stand in for the watch cache); `install(monkeypatch)` makes
`kubemu.cli.common.client_for` hand it out.
"""
from __future__ import annotations

import asyncio
import json
import random
from typing import Any

from apiserver import filters
from apiserver.memstore import MemoryStore
from apiserver.registry import ObjectRegistry
from kubemu.api import codec, errors
from kubemu.api.kinds import REGISTRY
from kubemu.client.clientset import DeleteResult, ListResult, WatchEvent

NOW_S = 1_800_000_000.0


class MemClient:
    def __init__(self, registry: ObjectRegistry):
        self.reg = registry
        self.changed = asyncio.Condition()
        self.version = 0
        self.calls: list[tuple[str, str, str]] = []   # (verb, resource, name)
        self.missing: set[str] = set()   # resources this "server" does not serve
        self.watching = 0   # open watches
        self.delivered = 0   # the last version a watch has handed out the changes of

    @classmethod
    async def new(cls) -> MemClient:
        reg = ObjectRegistry(MemoryStore(), {}, rng=random.Random(7), clock=lambda: NOW_S)
        client = cls(reg)
        for ns in ("default", "kube-system"):
            await reg.create(REGISTRY.by_resource("namespaces"), "",
                             codec.from_dict(REGISTRY.by_resource("namespaces").message,
                                             {"metadata": {"name": ns}}))
        return client

    async def __aenter__(self) -> MemClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def _kind(self, resource: str):
        if resource in self.missing:
            raise errors.NotFound("the server could not find the requested resource")
        return REGISTRY.resolve(resource)

    async def _bump(self) -> None:
        async with self.changed:
            self.version += 1
            self.changed.notify_all()

    # ------------------------------------------------------------ verbs

    async def get(self, resource: str, name: str, namespace: str = ""):
        self.calls.append(("get", resource, name))
        return await self.reg.get(self._kind(resource), namespace, name)

    async def list(self, resource: str, namespace: str = "", *, label_selector: str = "",
                   field_selector: str = "", limit: int = 0, continue_token: str = ""):
        kind = self._kind(resource)
        pred = filters.predicate(kind, label_selector, field_selector)
        items, rev, _, _ = await self.reg.list(kind, namespace, pred, 0, "")
        return ListResult(items=items, resource_version=str(rev))

    list_all = list

    async def create(self, obj, *, dry_run: bool = False):
        kind = REGISTRY.by_message(obj)
        self.calls.append(("create", kind.resource, obj.metadata.name))
        out = await self.reg.create(self._kind(kind.resource), obj.metadata.namespace, obj,
                                    dry_run=dry_run)
        await self._bump()
        return out

    async def update(self, obj, *, dry_run: bool = False):
        kind = REGISTRY.by_message(obj)
        self.calls.append(("update", kind.resource, obj.metadata.name))
        out = await self.reg.update(kind, obj, dry_run=dry_run)
        await self._bump()
        return out

    async def update_status(self, obj):
        out = await self.reg.update(REGISTRY.by_message(obj), obj, status=True)
        await self._bump()
        return out

    async def finalize(self, obj):
        out = await self.reg.update(REGISTRY.by_message(obj), obj, finalize=True)
        await self._bump()
        return out

    async def patch(self, resource: str, name: str, namespace: str = "", *, patch,
                    status: bool = False, dry_run: bool = False, patch_type: str = "merge"):
        self.calls.append(("patch", resource, name))
        out = await self.reg.patch(self._kind(resource), namespace, name,
                                   json.dumps(patch), status=status, dry_run=dry_run,
                                   patch_type=patch_type)
        await self._bump()
        return out

    async def delete(self, resource: str, name: str, namespace: str = "", *,
                     grace_period_s: int | None = None, propagation_policy: str = "",
                     uid: str = "", resource_version: str = "", dry_run: bool = False,
                     **_: Any):
        self.calls.append(("delete", resource, name))
        obj, deleted = await self.reg.delete(
            self._kind(resource), namespace, name, grace_period_s=grace_period_s,
            propagation_policy=propagation_policy, uid=uid, resource_version=resource_version,
            dry_run=dry_run)
        await self._bump()
        return DeleteResult(object=obj, deleted=deleted)

    async def evict(self, namespace: str, name: str, *, grace_period_s: int | None = None,
                    uid: str = "", resource_version: str = "", dry_run: bool = False):
        """pods/eviction through the apiserver's own Evictor on this registry."""
        from apiserver.eviction import Evictor
        from kubemu.api.v1 import policy_pb2

        self.calls.append(("evict", "pods", name))
        eviction = policy_pb2.Eviction(api_version="policy/v1", kind="Eviction")
        eviction.metadata.name, eviction.metadata.namespace = name, namespace
        if grace_period_s is not None:
            eviction.delete_options.grace_period_seconds = grace_period_s
        if uid:
            eviction.delete_options.preconditions.uid = uid
        if resource_version:
            eviction.delete_options.preconditions.resource_version = resource_version
        if dry_run:
            eviction.delete_options.dry_run.append("All")
        out = await Evictor(self.reg, REGISTRY, lambda: NOW_S).evict(namespace, eviction)
        await self._bump()
        return out

    async def watch(self, resource: str, namespace: str = "", *, resource_version: str = "",
                    label_selector: str = "", field_selector: str = "",
                    allow_bookmarks: bool = False, timeout_s: float | None = None):
        """Each change as MODIFIED (or DELETED) of the objects that match."""
        kind = self._kind(resource)
        pred = filters.predicate(kind, label_selector, field_selector)
        seen = {o.metadata.name: o for o in (await self.reg.list(kind, namespace, pred, 0, ""))[0]}
        version = self.delivered = self.version
        self.watching += 1
        try:
            async for event in self._changes(kind, namespace, pred, seen, version):
                yield event
        finally:
            self.watching -= 1

    async def _changes(self, kind, namespace, pred, seen, version):
        while True:
            async with self.changed:
                await self.changed.wait_for(lambda: self.version != version)
                version = self.version
            now = {o.metadata.name: o for o in (await self.reg.list(kind, namespace, pred, 0, ""))[0]}
            for name, obj in now.items():
                before = seen.get(name)
                if before is None:
                    yield WatchEvent("ADDED", obj)
                elif before.metadata.resource_version != obj.metadata.resource_version:
                    yield WatchEvent("MODIFIED", obj)
            for name, obj in seen.items():
                if name not in now:
                    yield WatchEvent("DELETED", obj)
            seen = now
            self.delivered = version

    async def settled(self, timeout_s: float = 5.0) -> None:
        """Until an open watch has handed out every change made so far."""
        from kubemu.client.wait import wait_for

        await wait_for(lambda: self.watching and self.delivered == self.version, timeout_s)

    # ------------------------------------------------------------ test helpers

    async def put(self, data: dict[str, Any]):
        """Create an object from its Kubernetes JSON (namespace default)."""
        kind = REGISTRY.by_gvk(data["apiVersion"], data["kind"])
        data = json.loads(json.dumps(data))
        if kind.namespaced:
            data["metadata"].setdefault("namespace", "default")
        return await self.create(codec.from_dict(kind.message, data, kind=kind.kind))

    async def set_status(self, resource: str, name: str, status: dict[str, Any],
                         namespace: str = "default"):
        return await self.patch(resource, name, namespace, patch={"status": status}, status=True)

    async def doc(self, resource: str, name: str, namespace: str = "default") -> dict[str, Any]:
        return codec.to_dict(await self.get(resource, name, namespace))


def install(monkeypatch, client: MemClient) -> MemClient:
    from kubemu.cli import common

    monkeypatch.setattr(common, "client_for", lambda args: client)
    return client


async def run_cli(*argv: str) -> int:
    """`kubemu ARGV...` inside the running event loop (main.main would start its own):
    the exit status; output goes to stdout/stderr as main prints it."""
    import inspect
    import sys

    from kubemu.cli import main
    from kubemu.cli.common import format_error, write_error

    words = ["--home", "/nonexistent", *argv]
    trailing: list[str] = []
    if "--" in words:
        cut = words.index("--")
        words, trailing = words[:cut], words[cut + 1:]
    try:
        # Built off the loop, as the real CLI builds it before its loop starts:
        # the parser of every command takes 100-300 ms of CPU on a loaded machine.
        args = await asyncio.to_thread(lambda: main.build_parser().parse_args(words))
    except main.UsageError as exc:
        write_error(f"error: {main._pflag_words(str(exc))}")
        return 1
    args.trailing = trailing
    try:
        result = args.func(args)
        if inspect.isawaitable(result):
            result = await result
        return int(result or 0)
    except Exception as exc:  # noqa: BLE001 - printed as main prints it, bugs re-raised
        message = format_error(exc)
        if message is None:
            raise
        sys.stdout.flush()
        write_error(message)
        return 1
