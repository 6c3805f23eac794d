"""An informer: a local cache of one resource kept current by list + watch.

Model (client-go's Reflector + Indexer + shared processor, in one object):
- List every object (Client.list_all), then watch from the list's
  resourceVersion with bookmarks, tracking the last resourceVersion seen.
- Expired (the server no longer has that version): relist (at once the first
  time; Expired again without any event in between backs off), and deliver the
  difference against the cache as handler calls (like client-go's Replace):
  on_delete for objects gone, on_add for new ones, on_update for changed ones
  (a different resourceVersion). `relists` counts these relists. An object
  whose deletion was seen only through a relist reaches on_delete as a
  `DeletedFinalStateUnknown` tombstone holding its last known state (its
  `metadata` is that object's, so key-only handlers work unchanged; use
  `object_of()` to get the object itself).
- A failure of the call (UNAVAILABLE, a broken stream, a server-side timeout):
  re-watch from the last resourceVersion seen, with exponential backoff capped
  at relist_backoff_s_max; if that version has expired by then, relist.
- "Too large resource version" (the server's store is behind the version
  asked for, e.g. etcd restored from a snapshot): relist, as client-go does,
  instead of waiting for the store to catch up with a version it never had.
- The store is updated before handlers are called, so a handler reading the
  store sees the event it is handling. `has_synced` is set once the first list
  has been delivered. With resync_s > 0 every object is re-delivered as
  on_update(obj, obj) every resync_s.

Objects in the store are never mutated in place by the informer, and handlers
and readers get the stored objects themselves (no copy): callers must copy
(`new = type(obj)(); new.CopyFrom(obj)`) before changing one.

Indexers (client-go's cache.Indexers): `add_indexers({"byNode": fn})` where
`fn(obj)` returns the index values of an object; `by_index(name, value)` lists
the objects with that value, kept current on every add, update, delete and
relist. Ready-made: `index_by_namespace`, `index_by_node_name` (pods'
spec.nodeName), `index_by_owner_uid` (every ownerReference's uid) and
`index_by_controller_uid` (the controlling owner's uid).

`start(loops=...)` runs the informer under a kubemu.loops.Loops, so a bug
that escapes it is logged, restarted and reported on the process's health.

Handlers are sync callables, called on the event loop; they should only turn
the object into a key and enqueue it. An exception from a handler is logged
and does not stop the informer. Everything runs on one event loop: the store
is safe across tasks of that loop, not across threads.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import grpc
import structlog
from google.protobuf.message import Message

from kubemu.api import errors
from kubemu.backoff import exponential_s
from kubemu.client.clientset import TOO_LARGE_RV, Client

if TYPE_CHECKING:
    from kubemu.loops import Loops

log = structlog.get_logger("kubemu.informer")

AddFn = Callable[[Message], Any]
UpdateFn = Callable[[Message, Message], Any]
DeleteFn = Callable[[Any], Any]  # a Message, or a DeletedFinalStateUnknown
IndexFn = Callable[[Message], Iterable[str]]

NAMESPACE_INDEX = "namespace"
NODE_NAME_INDEX = "nodeName"
OWNER_UID_INDEX = "ownerUID"
CONTROLLER_UID_INDEX = "controllerUID"

_BACKOFF_S_BASE = 0.1
# client-go picks a watch timeout between 5 and 10 minutes so that a stream
# that went quiet for a bad reason is replaced now and then.
_WATCH_TIMEOUT_S = 300.0
# A stream that ends normally this soon (or before 90% of its own timeout)
# without any event counts as a failure (backoff), so a server closing streams
# at once is not hammered.
_QUIET_STREAM_S = 1.0


def meta_namespace_key(obj: Message) -> str:
    """The cache key of an object: "namespace/name", or "name" when cluster-scoped."""
    meta = obj.metadata
    return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name


@dataclasses.dataclass(frozen=True)
class DeletedFinalStateUnknown:
    """An object deleted while the watch was down: seen gone only by a relist.

    `obj` is the last state the informer knew, which may be stale.
    """

    key: str
    obj: Message

    @property
    def metadata(self) -> Any:
        return self.obj.metadata


def object_of(obj: Message | DeletedFinalStateUnknown) -> Message:
    """The object an on_delete handler got, tombstone or not."""
    return obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj


def index_by_namespace(obj: Message) -> list[str]:
    return [obj.metadata.namespace]


def index_by_node_name(obj: Message) -> list[str]:
    node = obj.spec.node_name
    return [node] if node else []


def index_by_owner_uid(obj: Message) -> list[str]:
    return [ref.uid for ref in obj.metadata.owner_references if ref.uid]


def index_by_controller_uid(obj: Message) -> list[str]:
    return [ref.uid for ref in obj.metadata.owner_references if ref.controller and ref.uid][:1]


class Store:
    """key -> object, with optional indexes. Objects handed out are the stored
    ones: copy before changing."""

    def __init__(self) -> None:
        self._items: dict[str, Message] = {}
        self._indexers: dict[str, IndexFn] = {}
        # index name -> index value -> keys
        self._indices: dict[str, dict[str, set[str]]] = {}

    def add_indexers(self, indexers: dict[str, IndexFn]) -> None:
        for name, fn in indexers.items():
            if name in self._indexers:
                raise ValueError(f"Store: an indexer named {name!r} exists already")
            self._indexers[name] = fn
            self._indices[name] = {}
            for key, obj in self._items.items():
                self._index_one(name, key, None, obj)

    def by_index(self, index_name: str, value: str) -> list[Message]:
        """The objects whose `index_name` values include `value`."""
        return [self._items[k] for k in sorted(self.index_keys(index_name, value))]

    def index_keys(self, index_name: str, value: str) -> set[str]:
        if index_name not in self._indices:
            raise KeyError(f"Store: no indexer named {index_name!r}")
        return set(self._indices[index_name].get(value, ()))

    def index_values(self, index_name: str) -> list[str]:
        return sorted(self._indices[index_name])

    def _index_one(self, name: str, key: str, old: Message | None, new: Message | None) -> None:
        fn = self._indexers[name]
        index = self._indices[name]
        before = set(_index_values(fn, old)) if old is not None else set()
        after = set(_index_values(fn, new)) if new is not None else set()
        for value in before - after:
            keys = index.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[value]
        for value in after - before:
            index.setdefault(value, set()).add(key)

    def _put(self, key: str, obj: Message) -> Message | None:
        old = self._items.get(key)
        self._items[key] = obj
        for name in self._indexers:
            self._index_one(name, key, old, obj)
        return old

    def _pop(self, key: str) -> Message | None:
        old = self._items.pop(key, None)
        if old is not None:
            for name in self._indexers:
                self._index_one(name, key, old, None)
        return old

    def _replace_all(self, items: dict[str, Message]) -> dict[str, Message]:
        old = self._items
        self._items = dict(items)
        for name in self._indexers:
            self._indices[name] = {}
            for key, obj in self._items.items():
                self._index_one(name, key, None, obj)
        return old

    def get(self, key: str) -> Message | None:
        return self._items.get(key)

    def get_by_name(self, name: str, namespace: str = "") -> Message | None:
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def list(self) -> list[Message]:
        return list(self._items.values())

    def keys(self) -> list[str]:
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))


def _index_values(fn: IndexFn, obj: Message) -> list[str]:
    try:
        return list(fn(obj))
    except Exception:  # noqa: BLE001 - a broken index function must not lose the object
        log.exception("informer: index function failed", key=meta_namespace_key(obj))
        return []


@dataclasses.dataclass
class _Handler:
    on_add: AddFn | None
    on_update: UpdateFn | None
    on_delete: DeleteFn | None


class Informer:
    def __init__(self, client: Client, resource: str, namespace: str = "", *,
                 label_selector: str = "", field_selector: str = "", resync_s: float = 0,
                 relist_backoff_s_max: float = 5.0, page_size: int = 500,
                 watch_timeout_s: float = _WATCH_TIMEOUT_S, rng: random.Random | None = None):
        if resync_s < 0:
            raise ValueError(f"Informer: resync_s must be >= 0, got {resync_s}")
        if relist_backoff_s_max <= 0:
            raise ValueError(
                f"Informer: relist_backoff_s_max must be > 0, got {relist_backoff_s_max}")
        if watch_timeout_s <= 0:
            raise ValueError(f"Informer: watch_timeout_s must be > 0, got {watch_timeout_s}")
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_s = resync_s
        self.relist_backoff_s_max = relist_backoff_s_max
        self.page_size = page_size
        self.watch_timeout_s = watch_timeout_s
        self._rng = rng or random.Random()
        self.store = Store()
        self.has_synced = asyncio.Event()
        # The last resourceVersion seen (list, event or bookmark).
        self.resource_version = ""
        # Lists after the first one (each one a recovery from Expired).
        self.relists = 0
        # Watch streams opened (the first one included).
        self.watches = 0
        self._handlers: list[_Handler] = []
        self._task: asyncio.Task[None] | None = None
        # Whether the current list/watch round has delivered a watch event.
        self._progress = False
        self._log = log.bind(resource=resource, namespace=namespace or "*")

    # ------------------------------------------------------------ public API

    def add_handler(self, on_add: AddFn | None = None, on_update: UpdateFn | None = None,
                    on_delete: DeleteFn | None = None) -> None:
        """Register handlers; added after sync, they get on_add for every cached object."""
        handler = _Handler(on_add, on_update, on_delete)
        self._handlers.append(handler)
        if self.has_synced.is_set() and on_add is not None:
            for obj in self.store.list():
                self._call(on_add, obj)

    def get(self, key: str) -> Message | None:
        return self.store.get(key)

    def list(self) -> list[Message]:
        return self.store.list()

    def add_indexers(self, indexers: dict[str, IndexFn]) -> None:
        self.store.add_indexers(indexers)

    def by_index(self, index_name: str, value: str) -> list[Message]:
        return self.store.by_index(index_name, value)

    async def wait_synced(self, timeout_s: float) -> None:
        """Wait for the first list to be delivered; TimeoutError after timeout_s."""
        async with asyncio.timeout(timeout_s):
            await self.has_synced.wait()

    def start(self, loops: Loops | None = None) -> asyncio.Task[None]:
        """Run the informer; under `loops` when given (restarted after a bug,
        reported on health), else as a plain task."""
        if self._task is None or self._task.done():
            name = f"informer:{self.resource}"
            if self.namespace:
                name += f":{self.namespace}"
            if loops is not None:
                self._task = loops.spawn(name, self.run)
            else:
                self._task = asyncio.get_running_loop().create_task(self.run(), name=name)
        return self._task

    def stop(self) -> asyncio.Future[None]:
        """Cancel the informer; the returned future resolves once it has stopped.

        Awaiting it is optional: `informer.stop()` and `await informer.stop()`
        both stop it.
        """
        stopped: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        task = self._task
        if task is None or task.done():
            stopped.set_result(None)
            return stopped
        task.cancel()
        task.add_done_callback(lambda _t: stopped.done() or stopped.set_result(None))
        return stopped

    async def run(self) -> None:
        """List and watch until cancelled."""
        resync = None
        if self.resync_s > 0:
            resync = asyncio.get_running_loop().create_task(self._resync_loop())
        try:
            await self._list_and_watch()
        finally:
            if resync is not None:
                resync.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await resync

    # ------------------------------------------------------------ the loop

    async def _list_and_watch(self) -> None:
        need_list = True
        # Rounds in a row that delivered no event; reset by any delivered event
        # (a successful list alone is no progress: list, Expired, list, ... must
        # back off too).
        failures = 0
        loop = asyncio.get_running_loop()
        while True:
            self._progress = False
            error: Exception | None = None
            started = loop.time()
            # Jittered like client-go's, so many informers do not re-watch together.
            watch_timeout_s = self.watch_timeout_s * (1 + self._rng.random())
            try:
                if need_list:
                    await self._list()
                    need_list = False
                await self._watch(watch_timeout_s)
            except errors.Expired as exc:
                need_list = True
                error = exc
            except errors.Timeout as exc:
                # The version is ahead of the server's store (client-go's
                # isTooLargeResourceVersionError): relist rather than re-watch.
                # A list that timed out still needs listing: only ever add the need.
                need_list = need_list or TOO_LARGE_RV in str(exc)
                error = exc
            except (errors.ApiError, grpc.RpcError, OSError, TimeoutError) as exc:
                # UNAVAILABLE, a broken stream, a timeout: retry. Anything else is
                # a bug: it ends the round and reaches whoever runs the informer
                # (kubemu.loops restarts it and reports it on health).
                error = exc
            if self._progress:
                failures = 0
            # A stream that ended normally after delivering, or after lasting a
            # while (its own timeout, a server restart), did its job.
            lasted_s = min(_QUIET_STREAM_S, 0.9 * watch_timeout_s)
            if error is None and (self._progress or loop.time() - started >= lasted_s):
                failures = 0
                continue  # re-watch at once
            failures += 1
            if isinstance(error, errors.Expired):
                self._log.info("informer: resourceVersion expired, relisting",
                               resource_version=self.resource_version, error=str(error))
                if failures == 1:
                    continue  # the first Expired after progress relists at once
            delay_s = self._backoff_s(failures)
            if error is not None and not isinstance(error, errors.Expired):
                self._log.warning("informer: list/watch failed, retrying",
                                  phase="list" if need_list else "watch",
                                  error=f"{type(error).__name__}: {error}",
                                  retry_in_s=round(delay_s, 3))
            await asyncio.sleep(delay_s)

    def _backoff_s(self, failures: int) -> float:
        cap = exponential_s(failures, _BACKOFF_S_BASE, self.relist_backoff_s_max)
        return cap / 2 + self._rng.uniform(0, cap / 2)  # equal jitter

    async def _list(self) -> None:
        result = await self.client.list_all(
            self.resource, self.namespace, label_selector=self.label_selector,
            field_selector=self.field_selector, page_size=self.page_size)
        if self.has_synced.is_set():
            self.relists += 1
        self.resource_version = result.resource_version
        self._replace(result.items)
        self.has_synced.set()

    async def _watch(self, timeout_s: float) -> None:
        """Consume one watch stream until it ends or fails."""
        self.watches += 1
        events = self.client.watch(
            self.resource, self.namespace, resource_version=self.resource_version,
            label_selector=self.label_selector, field_selector=self.field_selector,
            allow_bookmarks=True, timeout_s=timeout_s)
        async with contextlib.aclosing(events):
            async for event in events:
                self._progress = True
                self._apply(event.type, event.object)

    # ------------------------------------------------------------ store + handlers

    def _apply(self, event_type: str, obj: Message | None) -> None:
        if obj is None:
            self._log.warning("informer: watch event without an object", type=event_type)
            return
        rv = obj.metadata.resource_version
        if event_type == "BOOKMARK":
            if rv:
                self.resource_version = rv
            return
        key = meta_namespace_key(obj)
        if event_type in ("ADDED", "MODIFIED"):
            old = self.store._put(key, obj)
            if old is None:
                self._dispatch("on_add", obj)
            else:
                self._dispatch("on_update", old, obj)
        elif event_type == "DELETED":
            self.store._pop(key)
            self._dispatch("on_delete", obj)
        else:
            self._log.warning("informer: unknown watch event type", type=event_type, key=key)
            return
        if rv:
            self.resource_version = rv

    def _replace(self, items: list[Message]) -> None:
        """Swap in a full list and deliver what changed (client-go's Replace)."""
        new = {meta_namespace_key(obj): obj for obj in items}
        old = self.store._replace_all(new)
        # Deletions first, like client-go, so a handler never sees two objects
        # that cannot exist together; the watch missed them: tombstones.
        for key, obj in old.items():
            if key not in new:
                self._dispatch("on_delete", DeletedFinalStateUnknown(key, obj))
        for key, obj in new.items():
            before = old.get(key)
            if before is None:
                self._dispatch("on_add", obj)
            elif before.metadata.resource_version != obj.metadata.resource_version:
                self._dispatch("on_update", before, obj)

    def _dispatch(self, which: str, *args: Any) -> None:
        for handler in list(self._handlers):
            fn = getattr(handler, which)
            if fn is not None:
                self._call(fn, *args)

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            self._log.exception("informer: event handler failed",
                                handler=getattr(fn, "__qualname__", repr(fn)),
                                key=meta_namespace_key(args[-1]))

    async def _resync_loop(self) -> None:
        await self.has_synced.wait()
        while True:
            await asyncio.sleep(self.resync_s)
            for obj in self.store.list():
                self._dispatch("on_update", obj, obj)
